//! Human-readable formatting helpers.

pub use reg_registry::units::bytes;
use reg_registry::units::Civil;

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
    let c = Civil::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        c.year, c.month, c.day, c.hour, c.minute, c.second
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

/// Text that holds file names, tensor names, tags or messages, safe to
/// print: the control characters a terminal would act on (ESC, CR, BEL,
/// backspace, the C1 set) shown as `\x1b`-style escapes. Newline and tab
/// are kept (the text's own lines and columns).
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_control(c) {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn is_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// `println!` of text made [`printable`].
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", $crate::human::printable(&format!($($arg)*)))
    };
}

/// `eprintln!` of text made [`printable`].
macro_rules! say_err {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::human::printable(&format!($($arg)*)))
    };
}

pub(crate) use {say, say_err};

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
