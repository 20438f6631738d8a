//! `reg_ckpt::inspect` and `inspect_deferred`: format detection, container
//! reading, pickle parsing, tensor listing, metadata and safety verdicts.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ckpt) = reg_ckpt::inspect(data) {
        // Segments cover the file exactly once, in order.
        let mut at = 0u64;
        // (Empty payload segments cover no byte and may sit anywhere.)
        for s in ckpt.segments.iter().filter(|s| !s.is_empty()) {
            assert_eq!(s.range.start, at, "segments leave a hole or overlap");
            at = s.range.end;
        }
        assert_eq!(at, data.len() as u64, "segments do not reach the end of the file");
        for t in &ckpt.tensors {
            let _ = t.numel();
            let _ = t.is_contiguous();
            let _ = t.storage_extent();
        }
        let _ = serde_json::to_string(&ckpt.meta.hyper_parameters);
    }
    let _ = reg_ckpt::inspect_deferred(data);
});
