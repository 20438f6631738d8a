//! `Range: bytes=...` for resumable downloads (RFC 9110 §14): one range is
//! served as 206; a range that starts past the end gets 416; several
//! ranges, other units and malformed headers are ignored (the whole file,
//! as the RFC allows).

/// What to send of a file of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The whole file (200).
    Full,
    /// Bytes `start..=end` (206).
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416, with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Decide what a `Range` header asks of a file of `size` bytes.
pub fn answer(header: Option<&str>, size: u64) -> Answer {
    let Some(spec) = header.and_then(parse) else {
        return Answer::Full;
    };
    let (start, end) = match spec {
        Spec::From(start) => (start, size.saturating_sub(1)),
        Spec::Between(start, end) => (start, end.min(size.saturating_sub(1))),
        Spec::Last(0) => return Answer::Unsatisfiable,
        Spec::Last(n) => (size.saturating_sub(n), size.saturating_sub(1)),
    };
    if size == 0 || start >= size {
        return Answer::Unsatisfiable;
    }
    Answer::Partial { start, end }
}

enum Spec {
    From(u64),
    Between(u64, u64),
    Last(u64),
}

fn parse(header: &str) -> Option<Spec> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => None,
        (true, false) => number(last).map(Spec::Last),
        (false, true) => number(first).map(Spec::From),
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            (a <= b).then_some(Spec::Between(a, b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{answer, Answer};

    #[test]
    fn ranges() {
        let p = |start, end| Answer::Partial { start, end };
        assert_eq!(answer(None, 10), Answer::Full);
        assert_eq!(answer(Some("bytes=0-"), 10), p(0, 9));
        assert_eq!(answer(Some("bytes=2-4"), 10), p(2, 4));
        assert_eq!(answer(Some("bytes=2-400"), 10), p(2, 9));
        assert_eq!(answer(Some("bytes=-3"), 10), p(7, 9));
        assert_eq!(answer(Some("bytes=-30"), 10), p(0, 9));
        assert_eq!(answer(Some("bytes=10-"), 10), Answer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=-0"), 10), Answer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=0-"), 0), Answer::Unsatisfiable);
        assert_eq!(answer(Some("bytes=4-2"), 10), Answer::Full);
        assert_eq!(answer(Some("bytes=0-1,3-4"), 10), Answer::Full);
        assert_eq!(answer(Some("items=0-1"), 10), Answer::Full);
        assert_eq!(answer(Some("bytes=a-b"), 10), Answer::Full);
        assert_eq!(answer(Some("bytes=+1-2"), 10), Answer::Full);
        assert_eq!(answer(Some("bytes=99999999999999999999-"), 10), Answer::Full);
    }
}
