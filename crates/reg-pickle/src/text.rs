//! Decoding of opcode arguments: protocol-0 text lines (numbers, quoted
//! `STRING`s, raw-unicode-escaped `UNICODE`) and little-endian longs.
//!
//! Errors are plain reasons; the machine adds the opcode offset.

use super::graph::Node;

/// Bytes as a `String`: UTF-8 when valid, else Latin-1 (every byte a char).
pub(crate) fn latin1_or_utf8(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Strips ASCII whitespace from both ends, as Python's `int()` / `float()` do.
fn trim(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    line.get(start..end).unwrap_or(&[])
}

/// A decimal integer line (`INT` / `LONG`): an [`Node::Int`] when it fits in
/// an `i64`, else a [`Node::BigInt`] holding the normalized decimal text
/// (optional `-`, digits without leading zeros).
pub(crate) fn decimal_int(line: &[u8]) -> Result<Node, String> {
    let text = trim(line);
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!("expected a decimal integer, found {:?}", shown(line)));
    }
    let first_nonzero = digits.iter().position(|&b| b != b'0');
    let Some(first) = first_nonzero else {
        return Ok(Node::Int(0));
    };
    let digits = digits.get(first..).unwrap_or(&[]);
    // Accumulate negatively so i64::MIN fits.
    let mut value: i64 = 0;
    let mut fits = true;
    for &d in digits {
        let next = value.checked_mul(10).and_then(|v| v.checked_sub(i64::from(d - b'0')));
        match next {
            Some(v) => value = v,
            None => {
                fits = false;
                break;
            }
        }
    }
    if fits {
        if negative {
            return Ok(Node::Int(value));
        }
        if let Some(v) = value.checked_neg() {
            return Ok(Node::Int(v));
        }
    }
    let mut text = Vec::with_capacity(digits.len() + 1);
    if negative {
        text.push(b'-');
    }
    text.extend_from_slice(digits);
    Ok(Node::BigInt(text))
}

/// The `INT` opcode's line: `01` / `00` are `True` / `False` (protocol-0
/// bools), anything else a decimal integer.
pub(crate) fn int_line(line: &[u8]) -> Result<Node, String> {
    match line {
        b"01" => Ok(Node::Bool(true)),
        b"00" => Ok(Node::Bool(false)),
        _ => decimal_int(line),
    }
}

/// The `LONG` opcode's line: a decimal integer with an optional trailing `L`.
pub(crate) fn long_line(line: &[u8]) -> Result<Node, String> {
    let line = trim(line);
    let line = line.strip_suffix(b"L").unwrap_or(line);
    decimal_int(line)
}

/// A non-negative decimal memo key (`GET` / `PUT`).
pub(crate) fn memo_key(line: &[u8]) -> Result<u64, String> {
    let text = trim(line);
    let parsed = std::str::from_utf8(text)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok());
    parsed.ok_or_else(|| format!("bad memo key {:?}", shown(line)))
}

/// The `FLOAT` opcode's line, e.g. `1.5`, `-inf`, `nan`, `1e+100`.
pub(crate) fn float_line(line: &[u8]) -> Result<f64, String> {
    std::str::from_utf8(trim(line))
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| format!("bad float text {:?}", shown(line)))
}

/// A little-endian two's-complement integer (`LONG1` / `LONG4`): an
/// [`Node::Int`] when it fits in an `i64`, else [`Node::BigInt`] of the bytes.
pub(crate) fn le_long(bytes: &[u8]) -> Node {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let fill = if negative { 0xff } else { 0x00 };
    let (low, high) = bytes.split_at(bytes.len().min(8));
    let mut buf = [fill; 8];
    for (slot, &b) in buf.iter_mut().zip(low) {
        *slot = b;
    }
    let value = i64::from_le_bytes(buf);
    // Fits when every byte past the eighth just repeats the sign.
    if high.iter().all(|&b| b == fill) && (value < 0) == negative {
        Node::Int(value)
    } else {
        Node::BigInt(bytes.to_vec())
    }
}

/// The `STRING` opcode's line: a Python `repr` of a byte string, quoted with
/// `'` or `"`, with backslash escapes (`codecs.escape_decode`).
pub(crate) fn quoted_string(line: &[u8]) -> Result<String, String> {
    let body = match line {
        [q @ (b'\'' | b'"'), body @ .., last] if last == q => body,
        _ => return Err("the STRING opcode argument must be quoted".into()),
    };
    Ok(latin1_or_utf8(&escape_decode(body)?))
}

fn hex_digit(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// Python's `codecs.escape_decode`: `\\ \' \" \a \b \f \n \r \t \v`, octal
/// `\NNN`, `\xNN`, backslash-newline; unknown escapes keep the backslash.
fn escape_decode(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = body.get(i) else {
            return Err("trailing \\ in STRING".into());
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                // Python truncates octal escapes above 0o377 to a byte.
                out.push((value & 0xff) as u8);
            }
            b'x' => {
                let hi = body.get(i).copied().and_then(hex_digit);
                let lo = body.get(i + 1).copied().and_then(hex_digit);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => return Err(format!("invalid \\x escape at position {}", i - 2)),
                }
                i += 2;
            }
            _ => {
                out.push(b'\\');
                i -= 1;
            }
        }
    }
    Ok(out)
}

/// Python's `raw-unicode-escape` decoding (the `UNICODE` opcode): bytes are
/// Latin-1 characters except `\uXXXX` / `\UXXXXXXXX` after an odd number of
/// backslashes. A surrogate pair written as two `\u` escapes is combined; a
/// lone surrogate (which a Rust `String` cannot hold) becomes U+FFFD.
pub(crate) fn raw_unicode_escape(bytes: &[u8]) -> Result<String, String> {
    let mut out = String::with_capacity(bytes.len());
    let mut high: Option<u32> = None;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            flush_high(&mut out, &mut high);
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let run_start = i;
        while bytes.get(i) == Some(&b'\\') {
            i += 1;
        }
        let run = i - run_start;
        let width = match bytes.get(i) {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => {
                flush_high(&mut out, &mut high);
                out.extend(std::iter::repeat_n('\\', run));
                continue;
            }
        };
        if run > 1 {
            flush_high(&mut out, &mut high);
            out.extend(std::iter::repeat_n('\\', run - 1));
        }
        i += 1;
        let mut code: u32 = 0;
        for _ in 0..width {
            let digit = bytes.get(i).copied().and_then(hex_digit);
            let Some(digit) = digit else {
                return Err(format!("truncated \\u escape at position {}", run_start + run - 1));
            };
            code = code * 16 + digit;
            i += 1;
        }
        push_code(&mut out, &mut high, code)?;
    }
    flush_high(&mut out, &mut high);
    Ok(out)
}

fn flush_high(out: &mut String, high: &mut Option<u32>) {
    if high.take().is_some() {
        out.push(char::REPLACEMENT_CHARACTER);
    }
}

fn push_code(out: &mut String, high: &mut Option<u32>, code: u32) -> Result<(), String> {
    if code > 0x10ffff {
        return Err(format!("\\U escape {code:#x} is not a Unicode code point"));
    }
    match code {
        0xd800..=0xdbff => {
            flush_high(out, high);
            *high = Some(code);
        }
        0xdc00..=0xdfff => match high.take() {
            Some(h) => {
                let combined = 0x10000 + ((h - 0xd800) << 10) + (code - 0xdc00);
                out.push(char::from_u32(combined).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            None => out.push(char::REPLACEMENT_CHARACTER),
        },
        _ => {
            flush_high(out, high);
            out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
    }
    Ok(())
}

/// A short, lossy rendering of a bad argument for error messages.
fn shown(line: &[u8]) -> String {
    let cut = line.get(..40).unwrap_or(line);
    String::from_utf8_lossy(cut).into_owned()
}
