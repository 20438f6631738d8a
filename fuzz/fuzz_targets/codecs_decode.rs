//! `reg_store::codecs::decode` on arbitrary (hostile) blob encodings.
//!
//! The raw length passed is the one the header records (what a caller whose
//! index names the blob's length would pass when the blob's bytes were
//! damaged or swapped), and for an XOR delta the parent is all zero bytes of
//! that length (the seeds are encoded against such a parent), so the fuzzer
//! reaches the block decoder rather than stopping at a length or parent
//! mismatch.
//!
//! `decode` allocates the caller's raw length by design (an all-zero blob of
//! gigabytes legitimately encodes to a few hundred bytes), so headers that
//! claim more than `MAX_RAW` are only inspected, not decoded.
#![no_main]
use libfuzzer_sys::fuzz_target;

/// Largest raw length decoded (and parent built by the harness).
const MAX_RAW: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = reg_store::codecs::inspect(data) else {
        assert!(reg_store::codecs::decode(data, 0, None).is_err());
        return;
    };
    if info.raw_len > MAX_RAW {
        return;
    }
    let parent = info.transform.parent().map(|_| vec![0u8; info.raw_len as usize]);
    if let Ok(raw) = reg_store::codecs::decode(data, info.raw_len, parent.as_deref()) {
        assert_eq!(raw.len() as u64, info.raw_len);
    }
});
