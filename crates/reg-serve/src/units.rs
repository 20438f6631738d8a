//! Numbers for people: sizes in binary units, times in UTC (the pages'
//! script shows them in the viewer's time zone), scores, ratios.

pub use reg_registry::units::bytes;
use reg_registry::units::Civil;

/// `logical / stored` as `3.2×`, or `-` when nothing is stored.
pub fn ratio(logical: u64, stored: u64) -> String {
    if stored == 0 {
        "-".into()
    } else {
        format!("{:.2}×", logical as f64 / stored as f64)
    }
}

/// `2024-05-01T12:00:00Z`, for `<time datetime>`.
pub fn iso_time(secs: u64) -> String {
    let c = Civil::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `2024-05-01 12:00 UTC`, shown without the script.
pub fn utc_time(secs: u64) -> String {
    let c = Civil::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        c.year, c.month, c.day, c.hour, c.minute
    )
}

/// A score or statistic, compactly: 4 significant digits, exponent form
/// for very small or large values.
pub fn number(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{x:.3e}")
    } else {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() || s == "-" {
            "0".into()
        } else {
            s.to_string()
        }
    }
}

/// A fraction as a percentage.
pub fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::iso_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::utc_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::number(0.25), "0.25");
        assert_eq!(super::number(1.0), "1");
        assert_eq!(super::number(0.00001234), "1.234e-5");
        assert_eq!(super::ratio(10, 4), "2.50×");
    }
}
