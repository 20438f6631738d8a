//! `reg_ckpt::torchzip::read` (zip segmenter + CRC checks) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(zip) = reg_ckpt::torchzip::read(data) {
        let segments = zip.segments(data.len() as u64);
        // The segments must cover the file exactly once, in order.
        let mut at = 0u64;
        // (Empty payload segments cover no byte and may sit anywhere.)
        for s in segments.iter().filter(|s| !s.is_empty()) {
            assert_eq!(s.range.start, at, "segments leave a hole or overlap");
            at = s.range.end;
        }
        assert_eq!(at, data.len() as u64, "segments do not reach the end of the file");
    }
    let _ = reg_ckpt::torchzip::read_with(data, false);
});
