//! What a remote hands reg: version entries, tag entries, the format
//! marker and object keys (`reg_remote::layout`), and manifests, parsed
//! and then imported into a registry (`Registry::import_version`), as a
//! pull does after its downloads.
//!
//! The first byte picks what the rest is: 0 a version entry (read from
//! `versions/mlp/0000000001`), 1 a tag entry (`tags/mlp/good`), 2 the
//! marker, 3 an object key, anything else a manifest. The registry is
//! made once per process in a temp folder and holds a push of
//! tests/fixtures/lightning/mlp/epoch=00.ckpt, so a manifest that names
//! its blobs (the seeds do) gets past the blob checks into the import.
#![no_main]
use libfuzzer_sys::fuzz_target;
use object_store::path::Path;
use reg_registry::{Config, PushOptions, Registry};
use reg_remote::layout;
use std::sync::OnceLock;

struct Fixture {
    _dir: tempfile::TempDir,
    reg: Registry,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            deltas: reg_registry::DeltaTiming::Off,
            durability: reg_store::Durability::Fast,
            ..Config::at(dir.path().join("registry"))
        };
        let reg = Registry::open(config).expect("open registry");
        let ckpt =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lightning/mlp/epoch=00.ckpt");
        let opts = PushOptions {
            name: Some("mlp".into()),
            ..PushOptions::default()
        };
        reg.push(&ckpt, &opts).expect("push the fixture");
        Fixture { _dir: dir, reg }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind {
        0 => {
            let key = layout::version_key("mlp", 1);
            if let Ok(e) = layout::parse_version_entry(&key, rest) {
                assert_eq!((e.name.as_str(), e.number), ("mlp", 1));
                let again = serde_json::to_vec(&e).expect("encode");
                assert_eq!(layout::parse_version_entry(&key, &again).ok(), Some(e));
            }
        }
        1 => {
            let key = layout::tag_key("mlp", "good");
            if let Ok(t) = layout::parse_tag_entry(&key, rest) {
                assert_eq!((t.name.as_str(), t.tag.as_str()), ("mlp", "good"));
                assert!(t.number > 0);
            }
        }
        2 => {
            let _ = layout::parse_marker(rest);
        }
        3 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let Ok(key) = Path::parse(text) else { return };
            if let Ok((name, n)) = layout::parse_version_key(&key) {
                assert_eq!(layout::version_key(&name, n), key);
            }
            if let Ok((ms, token)) = layout::parse_lease_key(&key) {
                assert!(!token.is_empty() && ms < 10_000_000_000_000_000);
            }
        }
        _ => {
            let f = fixture();
            let parsed = reg_registry::Manifest::from_json(rest);
            let guard = f.reg.writer().expect("writer");
            let imported = f.reg.import_version(&guard, rest, &["fuzzed".to_string()], "fuzz:mlp@v1");
            drop(guard);
            match imported {
                Ok(report) => {
                    let m = parsed.expect("an imported manifest parses");
                    assert_eq!(report.name, m.name.as_str());
                    let v = f
                        .reg
                        .resolve(
                            &reg_registry::VersionRef::parse(&format!("{}@v{}", report.name, report.number)).expect("ref"),
                        )
                        .expect("the imported version resolves");
                    // What pull would write in the working directory is one
                    // plain file name.
                    let source: &std::path::Path = v.manifest.source.as_ref();
                    assert_eq!(source.components().count(), 1);
                    assert!(!source.is_absolute());
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
});
