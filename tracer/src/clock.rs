//! Kernel timestamps to wall-clock time. The programs stamp events with CLOCK_MONOTONIC
//! (`bpf_ktime_get_ns`); /proc gives start times since boot (CLOCK_BOOTTIME). Both are
//! turned into UTC by the offset measured once at start-up.

use nix::time::{ClockId, clock_gettime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Realtime minus monotonic, ns.
    mono_to_wall: i128,
    /// Realtime minus boottime, ns.
    boot_to_wall: i128,
}

fn ns(clock: ClockId) -> i128 {
    clock_gettime(clock)
        .map(|t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
        .unwrap_or(0)
}

impl Clock {
    pub fn now() -> Self {
        let real = ns(ClockId::CLOCK_REALTIME);
        Self {
            mono_to_wall: real - ns(ClockId::CLOCK_MONOTONIC),
            boot_to_wall: real - ns(ClockId::CLOCK_BOOTTIME),
        }
    }

    /// For tests: fixed offsets.
    pub fn fixed(mono_to_wall: i128, boot_to_wall: i128) -> Self {
        Self {
            mono_to_wall,
            boot_to_wall,
        }
    }

    /// Unix time in ns of a CLOCK_MONOTONIC (or, with `boottime`, CLOCK_BOOTTIME) stamp.
    pub fn wall_ns(&self, ktime_ns: u64, boottime: bool) -> i128 {
        let off = if boottime {
            self.boot_to_wall
        } else {
            self.mono_to_wall
        };
        off + i128::from(ktime_ns)
    }

    pub fn rfc3339(&self, ktime_ns: u64, boottime: bool) -> String {
        rfc3339(self.wall_ns(ktime_ns, boottime))
    }

    /// The wall-clock time of a kernel stamp.
    pub fn timestamp(&self, ktime_ns: u64, boottime: bool) -> Timestamp {
        Timestamp(self.wall_ns(ktime_ns, boottime))
    }

    /// Now, in RFC 3339.
    pub fn now_rfc3339() -> String {
        rfc3339(ns(ClockId::CLOCK_REALTIME))
    }
}

/// RFC 3339 in UTC with nanoseconds, as protojson writes timestamps with nine digits:
/// `2023-10-06T22:03:57.700326678Z`.
pub fn rfc3339(unix_ns: i128) -> String {
    Timestamp(unix_ns).to_string()
}

/// A point in time (Unix ns), written as [`rfc3339`] without building a string first:
/// events carry these, and the JSON encoder writes them straight into its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub i128);

impl Timestamp {
    pub fn now() -> Self {
        Self(ns(ClockId::CLOCK_REALTIME))
    }

    /// `YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ`, digit by digit into a fixed buffer (the
    /// formatter's padding machinery costs more than the rest of the field).
    fn text(&self) -> [u8; 30] {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(self.0)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let mut b = *b"0000-00-00T00:00:00.000000000Z";
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        // Each of the accessors would work the calendar out again: once for all.
        let (year, month, day) = t.to_calendar_date();
        let (hour, minute, second, nanosecond) = t.to_hms_nano();
        put(0, 4, year.clamp(0, 9999) as u32);
        put(5, 2, u32::from(u8::from(month)));
        put(8, 2, u32::from(day));
        put(11, 2, u32::from(hour));
        put(14, 2, u32::from(minute));
        put(17, 2, u32::from(second));
        put(20, 9, nanosecond);
        b
    }

    /// Hands [`Self::text`] as a `str` to `f`.
    fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        let b = self.text();
        // The buffer holds ASCII digits and separators only: never the empty fallback.
        f(std::str::from_utf8(&b).unwrap_or_default())
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_str(|t| f.write_str(t))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_str(|t| s.serialize_str(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_nanoseconds() {
        assert_eq!(
            rfc3339(1_696_629_837_700_326_678),
            "2023-10-06T22:03:57.700326678Z"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn ktime_is_offset_by_its_clock() {
        let c = Clock::fixed(1_000, 500);
        assert_eq!(c.wall_ns(10, false), 1_010);
        assert_eq!(c.wall_ns(10, true), 510);
    }

    #[test]
    fn now_is_close_to_the_system_clock() {
        let c = Clock::now();
        let mono = ns(ClockId::CLOCK_MONOTONIC) as u64;
        let real = ns(ClockId::CLOCK_REALTIME);
        assert!((c.wall_ns(mono, false) - real).abs() < 1_000_000_000);
    }
}
