//! The two time formats the Engine API uses: RFC 3339 (with nanoseconds) in responses and log
//! prefixes, and `seconds.nanoseconds` Unix time in `since`/`until` query parameters.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses an RFC 3339 timestamp such as `2024-05-01T12:00:00.123456789Z` or
/// `2024-05-01T14:00:00+02:00`.
///
/// Returns `None` for text that is not RFC 3339 and for Go's zero time (`0001-01-01T00:00:00Z`),
/// which Docker reports for events that never happened (a container that never finished).
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&b[0..4])? as i64;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])? as i64;
    let minute = digits(&b[14..16])? as i64;
    let second = digits(&b[17..19])? as i64;
    if year <= 1
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let len = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        for (i, c) in frac[..len].iter().enumerate() {
            if i < 9 {
                nanos = nanos * 10 + u32::from(c - b'0');
            }
        }
        for _ in len..9 {
            nanos *= 10;
        }
        rest = &frac[len..];
    }
    let offset_seconds = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])? as i64;
            let minutes = digits(&[*m1, *m2])? as i64;
            let total = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                total
            } else {
                -total
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    if seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(seconds as u64, nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(seconds.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

/// Formats a time as the `seconds.nanoseconds` Unix time Docker accepts in `since`/`until`.
/// Times before the epoch are clamped to it.
pub fn unix_seconds_nanos(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", since.as_secs(), since.subsec_nanos())
}

/// Formats a time as RFC 3339 in UTC with nanoseconds (`2024-05-01T12:00:00.000000007Z`), the
/// format Docker puts in front of log entries. Times before the epoch are clamped to it.
pub fn format_rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// Splits the `<RFC 3339> ` prefix Docker puts in front of each log entry when `timestamps=true`.
/// Returns the time and the number of bytes to drop (timestamp and the space).
pub(crate) fn split_log_timestamp(data: &[u8]) -> Option<(SystemTime, usize)> {
    // RFC3339Nano with an offset is at most 35 bytes; look no further.
    let space = data.iter().take(40).position(|&c| c == b' ')?;
    let text = std::str::from_utf8(&data[..space]).ok()?;
    parse_rfc3339(text).map(|t| (t, space + 1))
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(t: SystemTime) -> (u64, u32) {
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        (d.as_secs(), d.subsec_nanos())
    }

    #[test]
    fn parses_docker_timestamps() {
        // `date -u -d 2024-05-01T12:00:00Z +%s` = 1714564800
        assert_eq!(
            secs(parse_rfc3339("2024-05-01T12:00:00Z").unwrap()),
            (1_714_564_800, 0)
        );
        assert_eq!(
            secs(parse_rfc3339("2024-05-01T12:00:00.123456789Z").unwrap()),
            (1_714_564_800, 123_456_789)
        );
        assert_eq!(
            secs(parse_rfc3339("2024-05-01T12:00:00.5Z").unwrap()),
            (1_714_564_800, 500_000_000)
        );
        assert_eq!(
            secs(parse_rfc3339("2024-05-01T14:00:00.1234567891+02:00").unwrap()),
            (1_714_564_800, 123_456_789)
        );
        assert_eq!(secs(parse_rfc3339("1970-01-01T00:00:00Z").unwrap()), (0, 0));
        assert_eq!(
            secs(parse_rfc3339("2000-02-29T00:00:00Z").unwrap()),
            (951_782_400, 0)
        );
    }

    #[test]
    fn zero_time_and_garbage_are_none() {
        assert!(parse_rfc3339("0001-01-01T00:00:00Z").is_none());
        for bad in [
            "",
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00Zjunk",
            "abcd-05-01T12:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn formats_and_parses_back() {
        let t = UNIX_EPOCH + Duration::new(951_782_400 + 3661, 7);
        assert_eq!(format_rfc3339(t), "2000-02-29T01:01:01.000000007Z");
        for secs in [
            0u64,
            59,
            86_399,
            1_714_564_800,
            4_102_444_800,
            253_402_300_799,
        ] {
            let t = UNIX_EPOCH + Duration::new(secs, 123);
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t), "{secs}");
        }
    }

    #[test]
    fn pre_epoch_times_parse() {
        let t = parse_rfc3339("1969-12-31T23:59:59.5Z").unwrap();
        assert_eq!(
            UNIX_EPOCH.duration_since(t).unwrap(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn formats_since_with_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_714_564_800, 5);
        assert_eq!(unix_seconds_nanos(t), "1714564800.000000005");
        assert_eq!(
            unix_seconds_nanos(UNIX_EPOCH - Duration::from_secs(3)),
            "0.000000000"
        );
    }

    #[test]
    fn splits_log_prefixes() {
        let line = b"2024-05-01T12:00:00.000000001Z hello\n";
        let (t, skip) = split_log_timestamp(line).unwrap();
        assert_eq!(secs(t), (1_714_564_800, 1));
        assert_eq!(&line[skip..], b"hello\n");
        assert!(split_log_timestamp(b"hello world").is_none());
        assert!(split_log_timestamp(b"no-space-at-all").is_none());
    }
}
