//! Human-readable formatting helpers.

/// Bytes as B / KiB / MiB / GiB with one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `took 1.23 s, 812.4 MiB/s`.
pub fn rate(bytes: u64, took: std::time::Duration) -> String {
    let secs = took.as_secs_f64();
    if secs <= 0.0 {
        return format!("took {secs:.2} s");
    }
    format!("took {secs:.2} s, {}/s", self::bytes((bytes as f64 / secs) as u64))
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Shape as `[a, b]`.
pub fn shape(s: &[u64]) -> String {
    let parts: Vec<String> = s.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// A tensor path for a terminal: Lightning's long callback state keys
/// (`ModelCheckpoint{'monitor': ...}`) are shortened to `ModelCheckpoint{…}`.
pub fn short_path(path: &str) -> String {
    path.split('/')
        .map(|part| match (part.find('{'), part.rfind('}')) {
            (Some(a), Some(b)) if b > a + 1 => format!("{}{{…}}{}", &part[..a], &part[b + 1..]),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Pad columns: each row's cells left-aligned to the widest cell.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::time(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }
}
