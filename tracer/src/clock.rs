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

/// RFC 3339 in UTC, as protojson writes timestamps: the fraction of a second with 9, 6 or
/// 3 digits, the fewest that hold it, or none for a whole second
/// (`2023-10-06T22:03:57.700326678Z`, `2023-10-06T22:03:57.700326Z`,
/// `2023-10-06T22:03:57Z`).
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
    /// formatter's padding machinery costs more than the rest of the field), in 64-bit
    /// arithmetic (128-bit division is a library call), with its length once the fraction
    /// is cut to protojson's 6, 3 or 0 digits where the rest are zeros. A time outside
    /// 1678..2262, which no kernel clock gives, is written as the epoch.
    fn text(&self) -> ([u8; 30], usize) {
        let ns = i64::try_from(self.0).unwrap_or(0);
        let secs = ns.div_euclid(1_000_000_000);
        // Both remainders are in range of u32: below 10^9 and 86,400.
        let nanosecond = ns.rem_euclid(1_000_000_000) as u32;
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let mut b = *b"0000-00-00T00:00:00.000000000Z";
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, of_day / 3600);
        put(14, 2, of_day / 60 % 60);
        put(17, 2, of_day % 60);
        put(20, 9, nanosecond);
        let len = if nanosecond == 0 {
            19
        } else if nanosecond.is_multiple_of(1_000_000) {
            23
        } else if nanosecond.is_multiple_of(1_000) {
            26
        } else {
            29
        };
        b[len] = b'Z';
        (b, len + 1)
    }

    /// Hands [`Self::text`] as a `str` to `f`.
    fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        let (b, len) = self.text();
        // The buffer holds ASCII digits and separators only: never the empty fallback.
        f(std::str::from_utf8(&b[..len]).unwrap_or_default())
    }
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01, for
/// the years an `i64` of nanoseconds spans (1677 to 2262): H. Hinnant's `civil_from_days`,
/// in whole 400-year eras from 0000-03-01, where a year's leap day is its last.
fn civil_from_days(days: i64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    // In 0..146_097: a day of the era.
    let doe = z.rem_euclid(146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    // `era` is 3 or more for the days an i64 of nanoseconds spans: a positive year.
    let year = (era * 400) as u32 + yoe + u32::from(month <= 2);
    (year, month, day)
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
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // protojson's 9, 6, 3 or no digits.
        assert_eq!(
            rfc3339(1_696_629_837_700_326_000),
            "2023-10-06T22:03:57.700326Z"
        );
        assert_eq!(
            rfc3339(1_696_629_837_700_000_000),
            "2023-10-06T22:03:57.700Z"
        );
        assert_eq!(
            rfc3339(1_696_629_837_000_000_001),
            "2023-10-06T22:03:57.000000001Z"
        );
        assert_eq!(rfc3339(1_696_629_837_000_000_000), "2023-10-06T22:03:57Z");
    }

    #[test]
    fn agrees_with_the_calendar_across_the_range() {
        let fmt = time::format_description::parse_borrowed::<2>(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z",
        )
        .unwrap();
        // The nine digits, as the calendar gives them, cut as protojson cuts them.
        let protojson = |t: String| -> String {
            let (head, frac) = t.trim_end_matches('Z').split_at(19);
            let frac = &frac[1..];
            let cut = if frac == "000000000" {
                String::new()
            } else if frac.ends_with("000000") {
                format!(".{}", &frac[..3])
            } else if frac.ends_with("000") {
                format!(".{}", &frac[..6])
            } else {
                format!(".{frac}")
            };
            format!("{head}{cut}Z")
        };
        // Leap days, century years (1900 not leap, 2000 leap), the ends of the range, and
        // a step that lands on every time of day over the years.
        let mut cases: Vec<i128> = vec![
            -1,
            0,
            951_782_400_000_000_000,    // 2000-02-29
            951_868_799_999_999_999,    // 2000-02-29T23:59:59.999999999
            -2_203_891_200_000_000_000, // 1900-03-01
            4_107_542_400_000_000_000,  // 2100-03-01
            i64::MIN.into(),
            i64::MAX.into(),
        ];
        let step = 86_399_999_999_937_i128 * 7 + 123_456_789;
        let mut t = i128::from(i64::MIN) + 1;
        while t < i64::MAX.into() {
            cases.push(t);
            t += step;
        }
        for ns in cases {
            let want = protojson(
                time::OffsetDateTime::from_unix_timestamp_nanos(ns)
                    .unwrap()
                    .format(&fmt)
                    .unwrap(),
            );
            assert_eq!(rfc3339(ns), want, "{ns}");
        }
        // Outside what an i64 of nanoseconds spans: the epoch.
        assert_eq!(rfc3339(i128::from(i64::MAX) + 1), rfc3339(0));
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
