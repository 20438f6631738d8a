//! `reg_ckpt::safetensors::read` on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = reg_ckpt::safetensors::looks_like(data);
    if let Ok(file) = reg_ckpt::safetensors::read(data) {
        let _ = file.segments(data.len() as u64);
    }
});
