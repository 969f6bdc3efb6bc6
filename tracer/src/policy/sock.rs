//! Socket arguments (`type: sock`) and their `matchArgs` operators: the names and
//! values Tetragon's policies use, parsed once for validation and for the kernel tables,
//! and written back as names in events.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The `matchArgs` operators on a `sock` argument.
pub const OPERATORS: &[&str] = &[
    "SAddr",
    "NotSAddr",
    "DAddr",
    "NotDAddr",
    "SPort",
    "NotSPort",
    "DPort",
    "NotDPort",
    "SPortPriv",
    "NotSPortPriv",
    "DPortPriv",
    "NotDPortPriv",
    "Protocol",
    "Family",
    "State",
];

/// Operators that take no values (privileged ports: below 1024).
pub fn takes_no_values(op: &str) -> bool {
    op.ends_with("PortPriv")
}

/// Tetragon spells one of them `NotSportPriv`.
pub fn canonical(op: &str) -> &str {
    if op == "NotSportPriv" {
        "NotSPortPriv"
    } else {
        op
    }
}

/// A value of a socket operator that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SockError {
    #[error("`{0}` is not an IPv4 or IPv6 address")]
    Address(String),
    #[error("`/{bits}` is not a prefix length from 0 to {max}")]
    PrefixLength { bits: String, max: u8 },
    /// Host bits set under the prefix: read as the range they fall in, as Tetragon
    /// does (a warning, not an error).
    #[error("`{value}` has bits set past its prefix: read as {start}/{len}, the range it falls in")]
    HostBits {
        value: String,
        start: IpAddr,
        len: u8,
    },
    #[error("`{0}` is not a port number (0 to 65535)")]
    Port(String),
    /// Neither a number nor a name of `table` (`what`: a socket family, a protocol...).
    #[error("`{value}` is not a {what}; expected a number or one of {}", names(.table))]
    Name {
        value: String,
        what: &'static str,
        table: &'static [(&'static str, u16)],
    },
}

/// An address range: the address as IPv6 (IPv4 mapped into `::ffff:0:0/96`, as a dual
/// stack socket sees it) and the prefix length over those 128 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: [u8; 16],
    pub bits: u8,
}

/// `10.0.0.0/8`, `fd00::/8`, or a single address; host bits past the prefix cleared.
pub fn parse_cidr(v: &str) -> Result<Cidr, SockError> {
    parse_cidr_noting(v).map(|(cidr, _)| cidr)
}

/// [`parse_cidr`], with [`SockError::HostBits`] when it cleared host bits.
pub fn parse_cidr_noting(v: &str) -> Result<(Cidr, Option<SockError>), SockError> {
    let (addr, bits) = match v.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (v, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| SockError::Address(addr.to_owned()))?;
    let (max, offset, bytes) = match ip {
        IpAddr::V4(v4) => (32u8, 96u8, v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) => (128, 0, v6.octets()),
    };
    let len =
        match bits {
            None => max,
            Some(b) => b.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(|| {
                SockError::PrefixLength {
                    bits: b.to_owned(),
                    max,
                }
            })?,
        };
    let bits = offset + len;
    // Host bits set under the prefix (`127.0.0.1/8`): the range they fall in, said.
    let mut masked = bytes;
    for (i, byte) in masked.iter_mut().enumerate() {
        let keep = (usize::from(bits)).saturating_sub(i * 8).min(8);
        *byte &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
    }
    let note = (masked != bytes).then(|| SockError::HostBits {
        value: v.to_owned(),
        start: masked_addr(ip, masked),
        len,
    });
    Ok((Cidr { addr: masked, bits }, note))
}

/// `masked` (IPv6, IPv4 mapped) as an address of `ip`'s family.
fn masked_addr(ip: IpAddr, masked: [u8; 16]) -> IpAddr {
    match ip {
        IpAddr::V4(_) => {
            let [a, b, c, d] = [masked[12], masked[13], masked[14], masked[15]];
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        }
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(masked)),
    }
}

pub fn parse_port(v: &str) -> Result<u16, SockError> {
    v.parse().map_err(|_| SockError::Port(v.to_owned()))
}

const FAMILIES: &[(&str, u16)] = &[("AF_UNIX", 1), ("AF_INET", 2), ("AF_INET6", 10)];
const PROTOCOLS: &[(&str, u16)] = &[
    ("IPPROTO_IP", 0),
    ("IPPROTO_ICMP", 1),
    ("IPPROTO_TCP", 6),
    ("IPPROTO_UDP", 17),
    ("IPPROTO_ICMPV6", 58),
    ("IPPROTO_SCTP", 132),
    ("IPPROTO_UDPLITE", 136),
    ("IPPROTO_RAW", 255),
];
/// TCP states (`include/net/tcp_states.h`), as `sock_arg.state` names them.
const STATES: &[(&str, u16)] = &[
    ("TCP_ESTABLISHED", 1),
    ("TCP_SYN_SENT", 2),
    ("TCP_SYN_RECV", 3),
    ("TCP_FIN_WAIT1", 4),
    ("TCP_FIN_WAIT2", 5),
    ("TCP_TIME_WAIT", 6),
    ("TCP_CLOSE", 7),
    ("TCP_CLOSE_WAIT", 8),
    ("TCP_LAST_ACK", 9),
    ("TCP_LISTEN", 10),
    ("TCP_CLOSING", 11),
    ("TCP_NEW_SYN_RECV", 12),
];

fn by_name(
    table: &'static [(&'static str, u16)],
    what: &'static str,
    v: &str,
) -> Result<u16, SockError> {
    if let Some((_, n)) = table.iter().find(|(name, _)| *name == v) {
        return Ok(*n);
    }
    v.parse().map_err(|_| SockError::Name {
        value: v.to_owned(),
        what,
        table,
    })
}

/// The names of `table`, for people: `AF_UNIX, AF_INET, AF_INET6`.
fn names(table: &[(&str, u16)]) -> String {
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

fn name_of(table: &[(&'static str, u16)], n: u16) -> Option<&'static str> {
    table.iter().find(|(_, v)| *v == n).map(|(name, _)| *name)
}

pub fn parse_family(v: &str) -> Result<u16, SockError> {
    by_name(FAMILIES, "socket family", v)
}
pub fn parse_protocol(v: &str) -> Result<u16, SockError> {
    by_name(PROTOCOLS, "protocol", v)
}
pub fn parse_state(v: &str) -> Result<u16, SockError> {
    by_name(STATES, "TCP state", v)
}

/// `AF_INET`, or the number when it has no name here.
pub fn family_name(n: u16) -> String {
    name_of(FAMILIES, n).map_or_else(|| n.to_string(), str::to_owned)
}
pub fn protocol_name(n: u16) -> String {
    name_of(PROTOCOLS, n).map_or_else(|| n.to_string(), str::to_owned)
}
pub fn state_name(n: u16) -> String {
    name_of(STATES, n).map_or_else(|| n.to_string(), str::to_owned)
}

/// Checks one value of socket operator `op`.
pub fn check_value(op: &str, v: &str) -> Result<(), SockError> {
    match canonical(op) {
        "SAddr" | "NotSAddr" | "DAddr" | "NotDAddr" => parse_cidr(v).map(|_| ()),
        "SPort" | "NotSPort" | "DPort" | "NotDPort" => parse_port(v).map(|_| ()),
        "Protocol" => parse_protocol(v).map(|_| ()),
        "Family" => parse_family(v).map(|_| ()),
        "State" => parse_state(v).map(|_| ()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_map_ipv4_into_ipv6() {
        let c = parse_cidr("10.0.0.0/8").unwrap();
        assert_eq!(c.bits, 104);
        assert_eq!(&c.addr[10..13], &[0xff, 0xff, 10]);
        assert_eq!(parse_cidr("127.0.0.1").unwrap().bits, 128);
        assert_eq!(parse_cidr("fd00::/8").unwrap().bits, 8);
        assert_eq!(parse_cidr("::1").unwrap().addr[15], 1);
        let (c, note) = parse_cidr_noting("10.1.0.0/8").unwrap();
        assert_eq!(c, parse_cidr("10.0.0.0/8").unwrap());
        assert_eq!(
            note.unwrap().to_string(),
            "`10.1.0.0/8` has bits set past its prefix: read as 10.0.0.0/8, the range it falls in"
        );
        assert!(parse_cidr_noting("10.0.0.0/8").unwrap().1.is_none());
        assert_eq!(
            parse_cidr("10.0.0.0/33").unwrap_err().to_string(),
            "`/33` is not a prefix length from 0 to 32"
        );
        assert_eq!(
            parse_cidr("example.com").unwrap_err().to_string(),
            "`example.com` is not an IPv4 or IPv6 address"
        );
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_family("AF_INET6"), Ok(10));
        assert_eq!(parse_protocol("IPPROTO_UDP"), Ok(17));
        assert_eq!(parse_protocol("6"), Ok(6));
        assert_eq!(parse_state("TCP_SYN_SENT"), Ok(2));
        assert!(
            parse_state("SYN_SENT")
                .unwrap_err()
                .to_string()
                .contains("TCP_SYN_SENT")
        );
        assert_eq!(state_name(10), "TCP_LISTEN");
        assert_eq!(family_name(99), "99");
        assert_eq!(
            parse_port("65536").unwrap_err().to_string(),
            "`65536` is not a port number (0 to 65535)"
        );
    }
}
