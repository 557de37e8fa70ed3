//! Human-friendly durations (`10s`, `6h`, `1h30m`) and sizes (`2GiB`, `10MB`) for flags and the
//! config file.
//!
//! Sizes follow Mesos: every unit is binary (`KB` = `KiB` = 1024 bytes), so Mesos's `2GB` default
//! means the same here.

use std::fmt;
use std::time::Duration;

/// Parses a duration: one or more `<number><unit>` parts (`1h30m`), unit one of `ns`, `us`, `ms`,
/// `s`, `m`, `h`, `d`, `w`; a bare `0` is zero. Numbers may have a fraction (`1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (expected e.g. `10s`, `5m`, `6h`)".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "invalid duration `{s}`: expected a number at `{rest}` (e.g. `10s`, `5m`, `6h`)"
            ));
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| {
            format!(
                "invalid duration `{s}`: `{}` is not a number",
                &rest[..num_len]
            )
        })?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" | "week" | "weeks" => 604_800.0,
            "" => return Err(format!("invalid duration `{s}`: missing unit after `{number}` (use ns, us, ms, s, m, h, d or w)")),
            other => return Err(format!("invalid duration `{s}`: unknown unit `{other}` (use ns, us, ms, s, m, h, d or w)")),
        };
        total += number * seconds;
    }
    if !total.is_finite() || total > 100.0 * 365.0 * 86_400.0 {
        return Err(format!("invalid duration `{s}`: too large"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a size: `<number>[unit]`, unit one of `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`,
/// `G`/`GB`/`GiB`, `T`/`TB`/`TiB` (all binary, as in Mesos; case-insensitive). A bare number is
/// bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    if num_len == 0 {
        return Err(format!(
            "invalid size `{s}`: expected a number followed by a unit (e.g. `512MiB`, `2GiB`)"
        ));
    }
    let number: f64 = s[..num_len]
        .parse()
        .map_err(|_| format!("invalid size `{s}`: `{}` is not a number", &s[..num_len]))?;
    let unit = s[num_len..].trim();
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size `{s}`: unknown unit `{unit}` (use B, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    let bytes = number * factor as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("invalid size `{s}`: too large"));
    }
    Ok(bytes.round() as u64)
}

/// Formats a duration the way [`parse_duration`] reads it (`6h`, `5m`, `10s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let units: [(&str, u128); 8] = [
        ("w", 604_800_000_000_000),
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let mut out = String::new();
    let mut rest = nanos;
    for (name, size) in units {
        if rest >= size {
            out.push_str(&format!("{}{name}", rest / size));
            rest %= size;
        }
    }
    out
}

/// Formats a size with the largest binary unit that divides it (`2GiB`, `10MiB`, `1536B`).
pub fn format_size(bytes: u64) -> String {
    for (name, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{name}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// A byte count shown with one decimal in the largest fitting unit (`1.5 MiB`), for progress.
pub struct HumanBytes(pub u64);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        for (name, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= size {
                return write!(f, "{:.1} {name}", b / size as f64);
            }
        }
        write!(f, "{} B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit_and_combination() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(6 * 3600));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(
            parse_duration("6hrs").unwrap(),
            Duration::from_secs(6 * 3600),
            "Mesos spelling"
        );
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("10x")
            .unwrap_err()
            .contains("unknown unit `x`"));
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("s")
            .unwrap_err()
            .contains("expected a number"));
        assert!(parse_duration("1..2s")
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_duration("99999999999w")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn sizes_are_binary_like_mesos() {
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("2GB").unwrap(), 2 << 30);
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("1.5MiB").unwrap(), 3 << 19);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("2XB").unwrap_err().contains("unknown unit `XB`"));
        assert!(parse_size("GiB").unwrap_err().contains("expected a number"));
    }

    #[test]
    fn formatting_round_trips() {
        for d in ["6h", "5m", "10s", "250ms", "1h30m", "0s"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
        for s in ["2GiB", "10MiB", "1536B", "1KiB"] {
            assert_eq!(format_size(parse_size(s).unwrap()), s);
        }
        assert_eq!(HumanBytes(1536).to_string(), "1.5 KiB");
        assert_eq!(HumanBytes(12).to_string(), "12 B");
    }
}
