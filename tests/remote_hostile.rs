//! Hostile remotes (issue 19), over `file://` and over S3 (the in-process
//! server): version entries, tag entries, manifests, blob headers, keys
//! and the format marker, each damaged the way a hostile or broken bucket
//! could. Every case must end in one line on stderr with exit code 2,
//! naming the object; nothing is written outside the registry; the local
//! registry is unchanged (`reg ls --json`, `reg stats --json`, the blob
//! files, an empty `blobs/tmp`).

use crate::common::{fixture, Reg};
use crate::remote::{add_s3_remote, list_names, ok, path_str, push_files, reg_cmd, MLP, PREFIX};
use crate::s3_server::S3Server;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug)]
enum Kind {
    File,
    S3,
}

/// A remote holding mlp@v1 (stored as deltas against v2), mlp@v2 and the
/// tag mlp@good -> v1, and a victim registry with a version of its own
/// and the remote added as `origin`.
struct Hostile {
    _a: Reg,
    victim: Reg,
    _s3: Option<S3Server>,
    /// The folder that holds the remote's objects.
    objects: PathBuf,
}

impl Hostile {
    fn new(kind: Kind) -> Hostile {
        let a = Reg::new();
        push_files(&a, "lightning/mlp", &MLP[..2], "mlp");
        ok(&a, &["deltas", "mlp"]);
        ok(&a, &["tag", "mlp@v1", "good"]);
        let victim = Reg::new();
        push_files(&victim, "lightning/mlp", &MLP[3..4], "other");
        let (s3, objects) = match kind {
            Kind::File => {
                let shared = a.dir.path().join("shared");
                let url = format!("file://{}", shared.display());
                ok(&a, &["remote", "add", "origin", &url]);
                ok(&victim, &["remote", "add", "origin", &url]);
                (None, shared)
            }
            Kind::S3 => {
                let s3 = S3Server::start();
                add_s3_remote(&a, "origin", &s3.endpoint());
                add_s3_remote(&victim, "origin", &s3.endpoint());
                let objects = s3.object(PREFIX);
                (Some(s3), objects)
            }
        };
        ok(&a, &["sync", "push", "origin"]);
        Hostile {
            _a: a,
            victim,
            _s3: s3,
            objects,
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.objects.join(key)
    }

    fn json(&self, key: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.path(key)).expect("object")).expect("json")
    }

    fn write(&self, key: &str, bytes: &[u8]) {
        let p = self.path(key);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, bytes).expect("write object");
    }

    /// Rewrite the version entry of v1 with `edit`.
    fn edit_entry(&self, edit: impl Fn(&mut Value)) {
        let key = "versions/mlp/0000000001";
        let mut e = self.json(key);
        edit(&mut e);
        self.write(key, &serde_json::to_vec(&e).expect("encode"));
    }

    /// Store v1's manifest with `edit` applied under its new hash and
    /// point v1's entry at it.
    fn edit_manifest(&self, edit: impl Fn(&mut Value)) {
        let entry = self.json("versions/mlp/0000000001");
        let old = entry["id"].as_str().expect("id").to_string();
        let mut m = self.json(&format!("manifests/{old}"));
        edit(&mut m);
        let bytes = serde_json::to_vec(&m).expect("encode");
        let new = blake3::hash(&bytes).to_hex().to_string();
        self.write(&format!("manifests/{new}"), &bytes);
        self.edit_entry(|e| e["id"] = Value::String(new.clone()));
        // The tag of v1 follows, as a hostile bucket would have it.
        let mut t = self.json("tags/mlp/good");
        t["id"] = Value::String(new);
        self.write("tags/mlp/good", &serde_json::to_vec(&t).expect("encode"));
    }

    /// Payload blobs of v1 on the remote that are deltas (codec byte 3).
    fn delta_blobs(&self) -> Vec<String> {
        let entry = self.json("versions/mlp/0000000001");
        let m = self.json(&format!("manifests/{}", entry["id"].as_str().expect("id")));
        let mut out = Vec::new();
        for p in m["pieces"].as_array().expect("pieces") {
            if let Some(b) = p["blob"].as_str() {
                let bytes = std::fs::read(self.path(&format!("blobs/{b}"))).expect("blob");
                if bytes.get(5) == Some(&3) && !out.contains(&b.to_string()) {
                    out.push(b.to_string());
                }
            }
        }
        out
    }

    /// What must not change in the victim.
    fn snapshot(&self) -> (String, String, BTreeSet<PathBuf>, BTreeSet<PathBuf>) {
        let v = &self.victim;
        let ls = ok(v, &["ls", "--json"]).stdout;
        let mut stats: Value = ok(v, &["stats", "--json"]).json();
        // The index's size on disk may move as sled works; everything
        // that counts versions, blobs and bytes must not.
        if let Some(o) = stats.as_object_mut() {
            o.retain(|k, _| !k.contains("index"));
        }
        // Blob files: blobs/<2 hex>/<62 hex>.
        let blobs = tree(&v.home().join("blobs"))
            .into_iter()
            .filter(|p| p.components().count() == 2 && !p.starts_with("tmp"))
            .collect();
        let outside: BTreeSet<PathBuf> = tree(v.dir.path())
            .into_iter()
            .filter(|p| !p.starts_with("registry"))
            .collect();
        (ls, stats.to_string(), blobs, outside)
    }

    /// `reg ARGS` in the victim's `work/sub` must fail with exit 2, one
    /// line naming `names`, and change nothing.
    fn refused(&self, case: &str, args: &[&str], names: &str) {
        let sub = self.victim.work().join("sub");
        std::fs::create_dir_all(&sub).expect("sub");
        let before = self.snapshot();
        let out = reg_cmd(&self.victim, args).current_dir(&sub).output().expect("run reg");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{case}: {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        assert!(
            stderr.contains(names),
            "{case}: {args:?}: {stderr} does not name {names}"
        );
        let after = self.snapshot();
        assert_eq!(after.0, before.0, "{case}: reg ls changed");
        assert_eq!(after.1, before.1, "{case}: reg stats changed");
        assert_eq!(after.2, before.2, "{case}: the blob folder changed");
        assert_eq!(after.3, before.3, "{case}: a file was written outside the registry");
        assert!(
            list_names(&self.victim.home().join("blobs/tmp")).is_empty(),
            "{case}: tmp not empty"
        );
    }
}

/// Every path below `dir`, relative.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p.strip_prefix(dir).expect("prefix").to_path_buf());
        }
    }
    out
}

/// A change to a version entry.
type EntryEdit = Box<dyn Fn(&mut Value)>;

const PULL: [&str; 4] = ["pull", "mlp@v1", "--remote", "origin"];
const LOG: [&str; 4] = ["log", "mlp", "--remote", "origin"];
const ENTRY: &str = "versions/mlp/0000000001";

fn malformed_version_entries(kind: Kind) {
    let cases: Vec<(&str, EntryEdit)> = vec![
        ("short id", Box::new(|e| e["id"] = "abc123".into())),
        ("non-hex id", Box::new(|e| e["id"] = "zz".repeat(32).into())),
        ("non-ascii id", Box::new(|e| e["id"] = "é".repeat(32).into())),
        ("wrong type", Box::new(|e| e["size"] = "big".into())),
        ("number not the key's", Box::new(|e| e["number"] = 7.into())),
        ("name not a model name", Box::new(|e| e["name"] = "../x".into())),
        ("source not a file name", Box::new(|e| e["source"] = "../x.ckpt".into())),
        ("10 MB body", Box::new(|e| e["message"] = "m".repeat(10 << 20).into())),
    ];
    for (case, edit) in cases {
        let h = Hostile::new(kind);
        h.edit_entry(edit);
        h.refused(case, &PULL, ENTRY);
        h.refused(case, &LOG, ENTRY);
    }
}

#[test]
fn malformed_version_entries_are_damage_over_file() {
    malformed_version_entries(Kind::File);
}

#[test]
fn malformed_version_entries_are_damage_over_s3() {
    malformed_version_entries(Kind::S3);
}

fn bad_keys_and_marker(kind: Kind) {
    let h = Hostile::new(kind);
    let entry = std::fs::read(h.path(ENTRY)).expect("entry");
    h.write("versions/a@b/0000000001", &entry);
    h.refused(
        "a key whose name is not a model name",
        &["ls", "--remote", "origin"],
        "versions/a@b",
    );
    let h = Hostile::new(kind);
    h.write("versions/mlp/12", &entry);
    h.refused("a key whose number is not 10 digits", &LOG, "versions/mlp/12");
    let h = Hostile::new(kind);
    h.write("reg-remote.json", b"{\"format\": \"one\"");
    h.refused(
        "a marker that does not parse",
        &["ls", "--remote", "origin"],
        "reg-remote.json",
    );
}

#[test]
fn bad_keys_and_marker_are_damage_over_file() {
    bad_keys_and_marker(Kind::File);
}

#[test]
fn bad_keys_and_marker_are_damage_over_s3() {
    bad_keys_and_marker(Kind::S3);
}

fn manifests_whose_source_is_not_a_file_name(kind: Kind) {
    let abs = std::env::temp_dir().join(format!("reg-hostile-{}.ckpt", std::process::id()));
    for source in ["../x", path_str(&abs), "a/b", "", "a\u{0}b"] {
        let h = Hostile::new(kind);
        h.edit_manifest(|m| m["source"] = Value::String(source.to_string()));
        h.refused(&format!("source {source:?}"), &PULL, "source");
        assert!(!abs.exists(), "source {source:?} wrote {}", abs.display());
    }
}

#[test]
fn manifests_whose_source_is_not_a_file_name_are_damage_over_file() {
    manifests_whose_source_is_not_a_file_name(Kind::File);
}

#[test]
fn manifests_whose_source_is_not_a_file_name_are_damage_over_s3() {
    manifests_whose_source_is_not_a_file_name(Kind::S3);
}

fn tags_pointing_at_missing_versions(kind: Kind) {
    let h = Hostile::new(kind);
    let mut t = h.json("tags/mlp/good");
    t["number"] = 99.into();
    h.write("tags/mlp/good", &serde_json::to_vec(&t).expect("encode"));
    h.refused(
        "tag -> v99",
        &["pull", "mlp@good", "--remote", "origin"],
        "tags/mlp/good",
    );
    h.refused("tag -> v99", &LOG, "tags/mlp/good");
    h.refused("tag -> v99", &PULL, "tags/mlp/good");
    let h = Hostile::new(kind);
    let mut t = h.json("tags/mlp/good");
    t["id"] = "ab".repeat(32).into();
    h.write("tags/mlp/good", &serde_json::to_vec(&t).expect("encode"));
    h.refused(
        "tag with another id",
        &["pull", "mlp@good", "--remote", "origin"],
        "tags/mlp/good",
    );
    let h = Hostile::new(kind);
    let t = h.json("tags/mlp/good");
    h.write("tags/mlp/other", &serde_json::to_vec(&t).expect("encode"));
    h.refused("tag under another key", &LOG, "tags/mlp/other");
}

#[test]
fn tags_pointing_at_missing_versions_are_damage_over_file() {
    tags_pointing_at_missing_versions(Kind::File);
}

#[test]
fn tags_pointing_at_missing_versions_are_damage_over_s3() {
    tags_pointing_at_missing_versions(Kind::S3);
}

fn blobs_with_a_garbage_parent_or_truncated(kind: Kind) {
    let h = Hostile::new(kind);
    let deltas = h.delta_blobs();
    assert!(!deltas.is_empty(), "v1 has no delta blobs on the remote");
    let victim = &deltas[0];
    let key = format!("blobs/{victim}");
    let mut bytes = std::fs::read(h.path(&key)).expect("blob");
    // The parent id: bytes 16..48 of a delta blob's header (docs/format.md).
    for b in &mut bytes[16..48] {
        *b = 0x5a;
    }
    h.write(&key, &bytes);
    h.refused("garbage parent id", &PULL, victim);

    // The parent is the blob itself: a chain that loops.
    let h = Hostile::new(kind);
    let mut bytes = std::fs::read(h.path(&key)).expect("blob");
    let own = reg_store_id_bytes(victim);
    bytes[16..48].copy_from_slice(&own);
    h.write(&key, &bytes);
    h.refused("parent is itself", &PULL, victim);

    let h = Hostile::new(kind);
    let bytes = std::fs::read(h.path(&key)).expect("blob");
    h.write(&key, &bytes[..bytes.len() / 2]);
    h.refused("truncated delta", &PULL, victim);
    let h = Hostile::new(kind);
    let bytes = std::fs::read(h.path(&key)).expect("blob");
    h.write(&key, &bytes[..10]);
    h.refused("truncated header", &PULL, victim);

    // After all that, the intact remote still pulls byte-identical.
    let h = Hostile::new(kind);
    let out = h.victim.work().join("v1.ckpt");
    ok(
        &h.victim,
        &["pull", "mlp@v1", "--remote", "origin", "-o", path_str(&out)],
    );
    let want = std::fs::read(fixture("lightning/mlp/epoch=00.ckpt")).expect("fixture");
    assert!(std::fs::read(&out).expect("pulled") == want);
}

/// The 32 bytes of a hex blob id.
fn reg_store_id_bytes(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

#[test]
fn blobs_with_a_garbage_parent_or_truncated_are_damage_over_file() {
    blobs_with_a_garbage_parent_or_truncated(Kind::File);
}

#[test]
fn blobs_with_a_garbage_parent_or_truncated_are_damage_over_s3() {
    blobs_with_a_garbage_parent_or_truncated(Kind::S3);
}

#[test]
fn local_damage_found_by_a_sync_exits_2() {
    let a = Reg::new();
    push_files(&a, "lightning/mlp", &MLP[..1], "mlp");
    a.settle();
    let shared = a.dir.path().join("shared");
    ok(
        &a,
        &["remote", "add", "shared", &format!("file://{}", shared.display())],
    );
    let shown = ok(&a, &["show", "mlp", "--json"]).json();
    let hex = shown["tensors"][2]["blob"].as_str().expect("blob").to_string();
    let path = a.home().join("blobs").join(&hex[..2]).join(&hex[2..]);
    let mut bytes = std::fs::read(&path).expect("blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    let r = crate::remote::run(&a, &["sync", "push", "shared"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains(&hex) && r.stderr.contains("mlp@v1"), "{}", r.stderr);
    // Nothing damaged was spread, and no version appeared there.
    assert!(!shared.join("blobs").join(&hex).exists());
    assert!(!shared.join("versions").exists());
}
