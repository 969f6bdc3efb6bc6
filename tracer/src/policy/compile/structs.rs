//! Struct arguments read field by field (`bpf_attr`, `bpf_map`, `module`, ...): which
//! fields of which kernel structs, at offsets from the running kernel's BTF, where each
//! lands in the record (`FieldRead`, run by the kprobe program's `tracer_read_field`),
//! and how events write them (Tetragon's `bpf_attr_arg`, `module_arg`, ...).

use serde_json::{Value, json};
use tracer_common::policy::{
    FIELD_BYTES, FIELD_DEREFS, FIELD_MAX, FIELD_STR, FIELD_USER_STR, FIELD_ZERO, FieldRead,
    KPROBE_STRUCT_HALF,
};

/// A struct argument type whose fields are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StructType {
    BpfAttr,
    BpfProg,
    PerfEvent,
    BpfMap,
    UserNamespace,
    /// `struct load_info *` (a module being loaded: its name, signature and taints).
    LoadInfo,
    Module,
    /// `struct net_device *`: its name, as a string.
    NetDevice,
    /// A `kernel_cap_t *`, written in hexadecimal under one of four keys.
    Caps(CapKey),
}

/// The key a `kernel_cap_t` argument is written under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapKey {
    KernelCapT,
    Inheritable,
    Permitted,
    Effective,
}

/// One field: the pointers followed to reach its struct (each a BTF member path whose
/// value is the next struct's address), the member read, how and how many bytes.
struct Field {
    name: &'static str,
    derefs: &'static [&'static str],
    /// A BTF member path, or "" for the address reached itself (a `kernel_cap_t`).
    member: &'static str,
    kind: u8,
    size: u8,
    /// Left zero (not an error) where the kernel lacks it (`load_info.sig_ok` without
    /// `CONFIG_MODULE_SIG`).
    optional: bool,
}

const fn f(name: &'static str, member: &'static str, kind: u8, size: u8) -> Field {
    Field {
        name,
        derefs: &[],
        member,
        kind,
        size,
        optional: false,
    }
}

/// Each type by its name in a policy.
const NAMES: [(&str, StructType); 12] = [
    ("bpf_attr", StructType::BpfAttr),
    ("bpf_prog", StructType::BpfProg),
    ("perf_event", StructType::PerfEvent),
    ("bpf_map", StructType::BpfMap),
    ("user_namespace", StructType::UserNamespace),
    ("load_info", StructType::LoadInfo),
    ("module", StructType::Module),
    ("net_device", StructType::NetDevice),
    ("kernel_cap_t", StructType::Caps(CapKey::KernelCapT)),
    ("cap_inheritable", StructType::Caps(CapKey::Inheritable)),
    ("cap_permitted", StructType::Caps(CapKey::Permitted)),
    ("cap_effective", StructType::Caps(CapKey::Effective)),
];

const U4: u8 = 4;
// Tetragon's `copy_bpf_attr`: the `BPF_PROG_LOAD` part of the union.
const BPF_ATTR: &[Field] = &[
    f("prog_type", "bpf_attr.prog_type", FIELD_BYTES, U4),
    f("insn_cnt", "bpf_attr.insn_cnt", FIELD_BYTES, U4),
    f("prog_name", "bpf_attr.prog_name", FIELD_BYTES, 16),
];
const BPF_PROG: &[Field] = &[
    f("prog_type", "bpf_prog.type", FIELD_BYTES, U4),
    f("insn_cnt", "bpf_prog.len", FIELD_BYTES, U4),
    Field {
        derefs: &["bpf_prog.aux"],
        ..f("prog_name", "bpf_prog_aux.name", FIELD_BYTES, 16)
    },
];
const PERF_EVENT: &[Field] = &[
    f("type", "perf_event.attr.type", FIELD_BYTES, U4),
    f("config", "perf_event.attr.config", FIELD_BYTES, 8),
    f(
        "probe_offset",
        "perf_event.attr.probe_offset",
        FIELD_BYTES,
        8,
    ),
    // The name a kprobe PMU event is asked for: a string in the process's memory (the
    // attribute holds the caller's pointer).
    Field {
        derefs: &["perf_event.attr.kprobe_func"],
        ..f("kprobe_func", "", FIELD_USER_STR, FIELD_MAX)
    },
];
const BPF_MAP: &[Field] = &[
    f("map_type", "bpf_map.map_type", FIELD_BYTES, U4),
    f("key_size", "bpf_map.key_size", FIELD_BYTES, U4),
    f("value_size", "bpf_map.value_size", FIELD_BYTES, U4),
    f("max_entries", "bpf_map.max_entries", FIELD_BYTES, U4),
    f("map_name", "bpf_map.name", FIELD_BYTES, 16),
];
const USER_NAMESPACE: &[Field] = &[
    f("level", "user_namespace.level", FIELD_BYTES, U4),
    f("uid", "user_namespace.owner", FIELD_BYTES, U4),
    f("gid", "user_namespace.group", FIELD_BYTES, U4),
    f("inum", "user_namespace.ns.inum", FIELD_BYTES, U4),
];
const LOAD_INFO: &[Field] = &[
    Field {
        derefs: &["load_info.mod"],
        ..f("taints", "module.taints", FIELD_BYTES, 8)
    },
    Field {
        optional: true,
        ..f("sig_ok", "load_info.sig_ok", FIELD_BYTES, U4)
    },
    Field {
        derefs: &["load_info.name"],
        ..f("name", "", FIELD_STR, 56)
    },
];
const MODULE: &[Field] = &[
    f("taints", "module.taints", FIELD_BYTES, 8),
    f("name", "module.name", FIELD_STR, 56),
];
const NET_DEVICE: &[Field] = &[f("name", "net_device.name", FIELD_STR, 16)];
const CAPS: &[Field] = &[f("caps", "", FIELD_BYTES, 8)];

impl StructType {
    /// The type a policy's `type:` names.
    pub fn named(name: &str) -> Option<Self> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("struct", |(n, _)| n)
    }

    /// The fields read, in record order (each at the next multiple of its size, up to
    /// 8).
    fn fields(self) -> &'static [Field] {
        match self {
            Self::BpfAttr => BPF_ATTR,
            Self::BpfProg => BPF_PROG,
            Self::PerfEvent => PERF_EVENT,
            Self::BpfMap => BPF_MAP,
            Self::UserNamespace => USER_NAMESPACE,
            Self::LoadInfo => LOAD_INFO,
            Self::Module => MODULE,
            Self::NetDevice => NET_DEVICE,
            Self::Caps(_) => CAPS,
        }
    }

    /// The reads of argument `arg` into the struct region (at `base` of it), resolved
    /// with `offset` (a BTF member path's byte offset), and the bytes they fill.
    pub(super) fn reads(
        self,
        arg: u8,
        offset: &dyn Fn(&str) -> Result<u32, String>,
    ) -> Result<(Vec<FieldRead>, u16), StructError> {
        let mut out = Vec::new();
        let mut at = 0u16;
        for field in self.fields() {
            at = align(at, field.size);
            let resolve = |path: &str| {
                let off = offset(path).map_err(|why| StructError::Field {
                    ty: self.name(),
                    path: path.to_owned(),
                    why,
                })?;
                u16::try_from(off).map_err(|_| StructError::Field {
                    ty: self.name(),
                    path: path.to_owned(),
                    why: format!("offset {off} is past 65535"),
                })
            };
            let member = if field.member.is_empty() {
                Ok(0)
            } else {
                resolve(field.member)
            };
            let member = match member {
                Ok(m) => m,
                Err(_) if field.optional => {
                    out.push(FieldRead {
                        arg,
                        kind: FIELD_ZERO,
                        size: field.size,
                        dst: at,
                        ..Default::default()
                    });
                    at += u16::from(field.size);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut chain = [0u16; FIELD_DEREFS];
            for (c, d) in chain.iter_mut().zip(field.derefs) {
                *c = resolve(d)?;
            }
            out.push(FieldRead {
                arg,
                kind: field.kind,
                derefs: field.derefs.len() as u8,
                size: field.size,
                dst: at,
                at: member,
                chain,
            });
            at += u16::from(field.size);
        }
        debug_assert!(at <= KPROBE_STRUCT_HALF);
        Ok((out, at))
    }

    /// The event's key and value for the bytes the reads filled.
    pub fn to_json(self, bytes: &[u8]) -> (&'static str, Value) {
        let mut values = std::collections::HashMap::new();
        let mut at = 0usize;
        for field in self.fields() {
            at = usize::from(align(at as u16, field.size));
            let end = (at + usize::from(field.size)).min(bytes.len());
            values.insert(field.name, bytes.get(at..end).unwrap_or_default());
            at += usize::from(field.size);
        }
        let get = |name: &str| values.get(name).copied().unwrap_or_default();
        let uint = |name: &str| {
            let b = get(name);
            let mut raw = [0u8; 8];
            raw[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
            u64::from_le_bytes(raw)
        };
        let text = |name: &str| {
            let b = get(name);
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        };
        match self {
            Self::BpfAttr | Self::BpfProg => (
                if self == Self::BpfAttr {
                    "bpf_attr_arg"
                } else {
                    "bpf_prog_arg"
                },
                json!({
                    "ProgType": named(PROG_TYPES, uint("prog_type")),
                    "InsnCnt": uint("insn_cnt") as u32,
                    "ProgName": text("prog_name"),
                }),
            ),
            Self::PerfEvent => (
                "perf_event_arg",
                json!({
                    "KprobeFunc": text("kprobe_func"),
                    "Type": named(PERF_TYPES, uint("type")),
                    "Config": uint("config").to_string(),
                    "ProbeOffset": uint("probe_offset").to_string(),
                }),
            ),
            Self::BpfMap => (
                "bpf_map_arg",
                json!({
                    "MapType": named(MAP_TYPES, uint("map_type")),
                    "KeySize": uint("key_size") as u32,
                    "ValueSize": uint("value_size") as u32,
                    "MaxEntries": uint("max_entries") as u32,
                    "MapName": text("map_name"),
                }),
            ),
            Self::UserNamespace => {
                let level = uint("level") as u32 as i32;
                (
                    "user_ns_arg",
                    json!({
                        "level": level,
                        "uid": uint("uid") as u32,
                        "gid": uint("gid") as u32,
                        "ns": { "inum": uint("inum") as u32, "is_host": level == 0 },
                    }),
                )
            }
            Self::LoadInfo | Self::Module => {
                let mut m = json!({ "name": text("name") });
                if self == Self::LoadInfo {
                    m["signature_ok"] = Value::Bool(uint("sig_ok") != 0);
                }
                let taints = tainted(uint("taints"));
                if !taints.is_empty() {
                    m["tainted"] = json!(taints);
                }
                ("module_arg", m)
            }
            Self::NetDevice => ("string_arg", Value::String(text("name"))),
            Self::Caps(key) => (
                match key {
                    CapKey::KernelCapT => "kernel_cap_t_arg",
                    CapKey::Inheritable => "cap_inheritable_arg",
                    CapKey::Permitted => "cap_permitted_arg",
                    CapKey::Effective => "cap_effective_arg",
                },
                Value::String(format!("{:016x}", uint("caps"))),
            ),
        }
    }
}

/// Why a struct argument cannot be read on this kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StructError {
    #[error(
        "`{ty}` is read field by field at offsets from the kernel's BTF, and `{path}` cannot be resolved: {why}"
    )]
    Field {
        ty: &'static str,
        path: String,
        why: String,
    },
}

/// `at` rounded up to a multiple of `size` (up to 8).
fn align(at: u16, size: u8) -> u16 {
    let a = u16::from(size.clamp(1, 8)).next_power_of_two().min(8);
    at.div_ceil(a) * a
}

/// `names[v]`, or the number where the list has no name for it (as Tetragon writes it).
fn named(names: &[&str], v: u64) -> String {
    usize::try_from(v)
        .ok()
        .and_then(|i| names.get(i))
        .map_or_else(|| v.to_string(), |n| (*n).to_owned())
}

/// The taint flags of a module, as Tetragon's `TaintedBitsType` names them.
fn tainted(taints: u64) -> Vec<&'static str> {
    const TAINTS: [(u32, &str); 8] = [
        (0, "TAINT_PROPRIETARY_MODULE"),
        (1, "TAINT_FORCED_MODULE"),
        (2, "TAINT_FORCED_UNLOAD_MODULE"),
        (10, "TAINT_STAGED_MODULE"),
        (12, "TAINT_OUT_OF_TREE_MODULE"),
        (13, "TAINT_UNSIGNED_MODULE"),
        (15, "TAINT_KERNEL_LIVE_PATCH_MODULE"),
        (18, "TAINT_TEST_MODULE"),
    ];
    TAINTS
        .iter()
        .filter(|(bit, _)| taints & (1 << bit) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// `enum bpf_prog_type` (include/uapi/linux/bpf.h), by value.
const PROG_TYPES: &[&str] = &[
    "BPF_PROG_TYPE_UNSPEC",
    "BPF_PROG_TYPE_SOCKET_FILTER",
    "BPF_PROG_TYPE_KPROBE",
    "BPF_PROG_TYPE_SCHED_CLS",
    "BPF_PROG_TYPE_SCHED_ACT",
    "BPF_PROG_TYPE_TRACEPOINT",
    "BPF_PROG_TYPE_XDP",
    "BPF_PROG_TYPE_PERF_EVENT",
    "BPF_PROG_TYPE_CGROUP_SKB",
    "BPF_PROG_TYPE_CGROUP_SOCK",
    "BPF_PROG_TYPE_LWT_IN",
    "BPF_PROG_TYPE_LWT_OUT",
    "BPF_PROG_TYPE_LWT_XMIT",
    "BPF_PROG_TYPE_SOCK_OPS",
    "BPF_PROG_TYPE_SK_SKB",
    "BPF_PROG_TYPE_CGROUP_DEVICE",
    "BPF_PROG_TYPE_SK_MSG",
    "BPF_PROG_TYPE_RAW_TRACEPOINT",
    "BPF_PROG_TYPE_CGROUP_SOCK_ADDR",
    "BPF_PROG_TYPE_LWT_SEG6LOCAL",
    "BPF_PROG_TYPE_LIRC_MODE2",
    "BPF_PROG_TYPE_SK_REUSEPORT",
    "BPF_PROG_TYPE_FLOW_DISSECTOR",
    "BPF_PROG_TYPE_CGROUP_SYSCTL",
    "BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE",
    "BPF_PROG_TYPE_CGROUP_SOCKOPT",
    "BPF_PROG_TYPE_TRACING",
    "BPF_PROG_TYPE_STRUCT_OPS",
    "BPF_PROG_TYPE_EXT",
    "BPF_PROG_TYPE_LSM",
    "BPF_PROG_TYPE_SK_LOOKUP",
    "BPF_PROG_TYPE_SYSCALL",
];

/// `enum bpf_map_type`, by value.
const MAP_TYPES: &[&str] = &[
    "BPF_MAP_TYPE_UNSPEC",
    "BPF_MAP_TYPE_HASH",
    "BPF_MAP_TYPE_ARRAY",
    "BPF_MAP_TYPE_PROG_ARRAY",
    "BPF_MAP_TYPE_PERF_EVENT_ARRAY",
    "BPF_MAP_TYPE_PERCPU_HASH",
    "BPF_MAP_TYPE_PERCPU_ARRAY",
    "BPF_MAP_TYPE_STACK_TRACE",
    "BPF_MAP_TYPE_CGROUP_ARRAY",
    "BPF_MAP_TYPE_LRU_HASH",
    "BPF_MAP_TYPE_LRU_PERCPU_HASH",
    "BPF_MAP_TYPE_LPM_TRIE",
    "BPF_MAP_TYPE_ARRAY_OF_MAPS",
    "BPF_MAP_TYPE_HASH_OF_MAPS",
    "BPF_MAP_TYPE_DEVMAP",
    "BPF_MAP_TYPE_SOCKMAP",
    "BPF_MAP_TYPE_CPUMAP",
    "BPF_MAP_TYPE_XSKMAP",
    "BPF_MAP_TYPE_SOCKHASH",
    "BPF_MAP_TYPE_CGROUP_STORAGE",
    "BPF_MAP_TYPE_REUSEPORT_SOCKARRAY",
    "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE",
    "BPF_MAP_TYPE_QUEUE",
    "BPF_MAP_TYPE_STACK",
    "BPF_MAP_TYPE_SK_STORAGE",
    "BPF_MAP_TYPE_DEVMAP_HASH",
    "BPF_MAP_TYPE_STRUCT_OPS",
    "BPF_MAP_TYPE_RINGBUF",
    "BPF_MAP_TYPE_INODE_STORAGE",
    "BPF_MAP_TYPE_TASK_STORAGE",
    "BPF_MAP_TYPE_BLOOM_FILTER",
];

/// `enum perf_type_id` (include/uapi/linux/perf_event.h), by value.
const PERF_TYPES: &[&str] = &[
    "PERF_TYPE_HARDWARE",
    "PERF_TYPE_SOFTWARE",
    "PERF_TYPE_TRACEPOINT",
    "PERF_TYPE_HW_CACHE",
    "PERF_TYPE_RAW",
    "PERF_TYPE_BREAKPOINT",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets of a made-up kernel: each member path at a distinct place.
    fn offsets(path: &str) -> Result<u32, String> {
        match path {
            "load_info.sig_ok" => Err("no member `sig_ok`".into()),
            p => Ok(8 * (p.len() as u32 % 13)),
        }
    }

    #[test]
    fn every_type_fits_half_the_struct_region_and_names_itself() {
        let names: Vec<&str> = crate::policy::validate::names::KPROBE_ARG_TYPES
            .iter()
            .copied()
            .filter(|n| StructType::named(n).is_some())
            .collect();
        assert_eq!(names.len(), NAMES.len(), "every type is one a kprobe takes");
        for name in names {
            let t = StructType::named(name).expect(name);
            assert_eq!(t.name(), name);
            let (reads, len) = t.reads(2, &offsets).expect(name);
            assert!(len <= KPROBE_STRUCT_HALF, "{name}: {len} bytes");
            for r in &reads {
                assert_eq!(r.arg, 2);
                assert!(r.size <= FIELD_MAX);
                assert!(r.dst + u16::from(r.size) <= len);
                assert_eq!(r.dst % u16::from(r.size.clamp(1, 8)).min(8), 0, "{name}");
            }
        }
    }

    #[test]
    fn a_field_the_kernel_lacks_is_named_unless_optional() {
        // `load_info.sig_ok` is optional: left zero, its bytes still counted.
        let (reads, len) = StructType::LoadInfo.reads(1, &offsets).unwrap();
        assert_eq!(reads.len(), 3);
        assert_eq!(len, 8 + 4 + 4 + 56, "the name aligned to 8");
        assert_eq!(
            (reads[1].kind, reads[1].dst, reads[1].size),
            (FIELD_ZERO, 8, 4)
        );
        assert_eq!(reads[2].derefs, 1);
        assert_eq!(reads[2].at, 0);
        assert_eq!(reads[2].kind, FIELD_STR);
        let missing = |p: &str| {
            if p == "bpf_map.name" {
                Err("no such member".to_owned())
            } else {
                Ok(0)
            }
        };
        let e = StructType::BpfMap.reads(0, &missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`bpf_map` is read field by field at offsets from the kernel's BTF, and `bpf_map.name` cannot be resolved: no such member"
        );
    }

    #[test]
    fn events_write_tetragons_keys_and_names() {
        let mut b = vec![0u8; 64];
        b[0..4].copy_from_slice(&2u32.to_le_bytes());
        b[4..8].copy_from_slice(&11u32.to_le_bytes());
        b[8..12].copy_from_slice(b"prog");
        assert_eq!(
            StructType::BpfAttr.to_json(&b),
            (
                "bpf_attr_arg",
                json!({"ProgType": "BPF_PROG_TYPE_KPROBE", "InsnCnt": 11, "ProgName": "prog"})
            )
        );
        let mut m = vec![0u8; 64];
        m[0..8].copy_from_slice(&(1u64 << 12 | 1 << 13).to_le_bytes());
        m[8..11].copy_from_slice(b"dum");
        assert_eq!(
            StructType::Module.to_json(&m),
            (
                "module_arg",
                json!({"name": "dum", "tainted": ["TAINT_OUT_OF_TREE_MODULE", "TAINT_UNSIGNED_MODULE"]})
            )
        );
        let mut u = vec![0u8; 16];
        u[12..16].copy_from_slice(&4026531837u32.to_le_bytes());
        assert_eq!(
            StructType::UserNamespace.to_json(&u).1,
            json!({"level": 0, "uid": 0, "gid": 0, "ns": {"inum": 4026531837u32, "is_host": true}})
        );
        let c = 0x1_ffff_ffffu64.to_le_bytes();
        assert_eq!(
            StructType::Caps(CapKey::Effective).to_json(&c),
            ("cap_effective_arg", json!("00000001ffffffff"))
        );
        assert_eq!(named(MAP_TYPES, 99), "99");
    }
}
