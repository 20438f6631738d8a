//! Manifest decoding: `Manifest::from_json` on arbitrary bytes (what the
//! index, a manifest blob or a remote hands reg), and `exact_json::parse`
//! (Python-written JSON such as `trainer_state.json`).
//!
//! Also checks the promise a push relies on: every manifest that decodes
//! encodes again, and that encoding reads back as itself (so a version
//! committed from it is readable); and that presenting, printing and
//! diffing its metadata never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use reg_ckpt::exact_json;
use reg_registry::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_json(data) {
        let _ = m.check_shape();
        let _ = m.blobs();
        let _ = m.files();
        let _ = m.payload_lens();
        let _ = m.skeleton_lens();
        let json = m.encode().expect("a manifest that decodes encodes and reads back as itself");
        Manifest::check_decodes(&json).expect("its encoding reads back");
        let meta = serde_json::to_value(&m.meta).expect("metadata as JSON");
        let _ = exact_json::present(&meta);
        let _ = exact_json::to_text(&meta);
        let hp = m.meta.hyper_parameters.clone().unwrap_or_default();
        let d = reg_registry::diff::diff_values(&hp, &hp, "");
        assert_eq!(d.count(), 0, "a value differs from itself");
    }
    if let Ok(v) = exact_json::parse(data) {
        let shown = exact_json::present(&v);
        let _ = exact_json::to_text(&v);
        assert!(exact_json::same(&v, &v));
        // What is presented is plain JSON: it prints and parses again.
        let text = serde_json::to_string(&shown).expect("presented JSON prints");
        let _: serde_json::Value = serde_json::from_str(&text).expect("presented JSON parses");
    }
});
