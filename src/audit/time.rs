//! Timestamps as logs write them: RFC 3339 with any UTC offset (journald's `--since`, Debian 12's
//! rsyslog), and the classic syslog `Nov 23 13:00:01`, which has neither year nor zone.
//!
//! Pure arithmetic on the text: the year and UTC offset a classic stamp lacks are passed in, never
//! read from the system here. humantime parses only `Z`-suffixed RFC 3339, hence this file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a classic syslog stamp leaves out: the reader's "now" (for the year) and the UTC offset
/// the log was written in (syslog writes local time).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: SystemTime,
    pub utc_offset_secs: i64,
}

impl Clock {
    pub fn utc(now: SystemTime) -> Clock {
        Clock {
            now,
            utc_offset_secs: 0,
        }
    }
}

/// `2026-11-23T13:00:01.123456+00:00`, `2026-11-23T13:00:01Z`, `2026-11-23 13:00:01+01:00`.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(s, 0, 4)?;
    let month = digits(s, 5, 2)?;
    let day = digits(s, 8, 2)?;
    let (hour, min, sec) = hms(s.get(11..19)?)?;
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        // Nanoseconds from the first 9 digits; finer digits are dropped.
        let kept = &frac[..n.min(9)];
        let value: u32 = kept.parse().ok()?;
        let value = value * 10u32.pow(9 - kept.len() as u32);
        nanos = value;
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = rest.as_bytes();
            if r.len() != 6 || r[3] != b':' {
                return None;
            }
            let h = digits(rest, 1, 2)?;
            let m = digits(rest, 4, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let local = civil_seconds(year, month, day, hour, min, sec)?;
    from_unix(local - offset, nanos)
}

/// `Nov 23 13:00:01` (day padded with a space or a zero): the year is the one that puts the
/// stamp at most a day after `clock.now` (logs are read after they are written).
pub fn parse_classic(s: &str, clock: &Clock) -> Option<SystemTime> {
    let month = month_number(s.get(0..3)?)?;
    if s.as_bytes().get(3) != Some(&b' ') {
        return None;
    }
    let day: i64 = s.get(4..6)?.trim_start().parse().ok()?;
    if s.as_bytes().get(6) != Some(&b' ') || s.len() != 15 {
        return None;
    }
    let (hour, min, sec) = hms(s.get(7..15)?)?;
    let now_year = year_of(clock.now)?;
    let soon = unix_seconds(clock.now)? + 86_400;
    for year in [now_year, now_year - 1] {
        let t = civil_seconds(year, month, day, hour, min, sec)? - clock.utc_offset_secs;
        if t <= soon {
            return from_unix(t, 0);
        }
    }
    None
}

fn hms(s: &str) -> Option<(i64, i64, i64)> {
    let b = s.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, sec) = (digits(s, 0, 2)?, digits(s, 3, 2)?, digits(s, 6, 2)?);
    // 60: a leap second, as RFC 3339 allows.
    (h <= 23 && m <= 59 && sec <= 60).then_some((h, m, sec))
}

fn digits(s: &str, start: usize, len: usize) -> Option<i64> {
    let part = s.get(start..start + len)?;
    if !part.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

fn month_number(name: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|m| *m == name).map(|i| i as i64 + 1)
}

/// Seconds since the epoch of a UTC civil time (Howard Hinnant's days_from_civil).
fn civil_seconds(year: i64, month: i64, day: i64, h: i64, m: i64, s: i64) -> Option<i64> {
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn year_of(t: SystemTime) -> Option<i64> {
    // Civil year from days since the epoch (inverse of civil_seconds, year part only).
    let days = unix_seconds(t)?.div_euclid(86_400) + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    Some(yoe + era * 400 + i64::from(month <= 2))
}

pub fn unix_seconds(t: SystemTime) -> Option<i64> {
    i64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()
}

fn from_unix(secs: i64, nanos: u32) -> Option<SystemTime> {
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        assert_eq!(
            parse_rfc3339("2026-11-23T13:00:01.123456+00:00"),
            Some(at("2026-11-23T13:00:01.123456Z"))
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T14:30:01+01:30"),
            Some(at("2026-11-23T13:00:01Z"))
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T08:00:01-05:00"),
            Some(at("2026-11-23T13:00:01Z"))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29 23:59:59Z"),
            Some(at("2024-02-29T23:59:59Z"))
        );
    }

    #[test]
    fn rfc3339_rejects_what_is_not_a_time() {
        for s in [
            "",
            "2026-11-23",
            "2026-11-23T13:00:01",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-23T25:00:00Z",
            "2026-11-23T13:00:01+0100",
            "2026-11-23T13:00:01.Z",
            "Nov 23 13:00:01",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }

    #[test]
    fn classic_stamp_takes_the_year_that_is_not_in_the_future() {
        let clock = Clock::utc(at("2026-01-02T00:00:00Z"));
        assert_eq!(
            parse_classic("Jan  1 13:00:01", &clock),
            Some(at("2026-01-01T13:00:01Z"))
        );
        // Written last December, read in January.
        assert_eq!(
            parse_classic("Dec 31 23:59:59", &clock),
            Some(at("2025-12-31T23:59:59Z"))
        );
    }

    #[test]
    fn classic_stamp_is_local_time_at_the_given_offset() {
        let clock = Clock {
            now: at("2026-11-24T00:00:00Z"),
            utc_offset_secs: 3600,
        };
        assert_eq!(
            parse_classic("Nov 23 14:00:01", &clock),
            Some(at("2026-11-23T13:00:01Z"))
        );
    }

    #[test]
    fn classic_stamp_rejects_garbage() {
        let clock = Clock::utc(at("2026-11-24T00:00:00Z"));
        for s in [
            "Foo 23 13:00:01",
            "Nov 31 13:00:01",
            "Nov 23 13:00",
            "Nov 23 13:00:01x",
        ] {
            assert_eq!(parse_classic(s, &clock), None, "{s}");
        }
    }

    #[test]
    fn year_of_matches_civil_seconds() {
        for y in [1970, 1999, 2000, 2024, 2026, 2100] {
            let t = from_unix(civil_seconds(y, 12, 31, 23, 59, 59).unwrap(), 0).unwrap();
            assert_eq!(year_of(t), Some(y));
            let t = from_unix(civil_seconds(y, 1, 1, 0, 0, 0).unwrap(), 0).unwrap();
            assert_eq!(year_of(t), Some(y));
        }
    }
}
