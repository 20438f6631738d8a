//! Versions that arrive from another registry (`Registry::import_version`):
//! the next local number, a file that is here already, tags, and what is
//! refused as damage of the other side.

mod common;

use common::*;
use reg_registry::{Manifest, RegistryError};
use reg_store::BlobId;
use std::collections::BTreeSet;

/// What a registry holds: its versions, tags and blob files.
type State = (Vec<(u32, String)>, Vec<(String, u32)>, Vec<(BlobId, Vec<u8>)>);

fn state(s: &Scratch, name: &str) -> State {
    let versions = s
        .reg
        .versions(&model(name))
        .map(|v| v.iter().map(|r| (r.number.get(), r.id.to_hex())).collect())
        .unwrap_or_default();
    let tags = s.reg.tags(&model(name)).expect("tags");
    let tags = tags.into_iter().map(|(t, n)| (t.to_string(), n.get())).collect();
    (versions, tags, s.store_snapshot())
}

/// Copy the blobs `blobs` needs from `from` to `to`, as a sync does:
/// stored form, delta parents first, each checked by `put_stored`.
fn copy_blobs(from: &Scratch, to: &Scratch, blobs: &[BlobId]) {
    for b in blobs {
        let mut chain = from.reg.store().chain(*b).expect("chain");
        chain.reverse();
        chain.push(*b);
        for id in chain {
            let stored = from.reg.store().read_stored(id).expect("read_stored");
            to.reg.store().put_stored(id, &stored).expect("put_stored");
        }
    }
}

/// `spec`'s manifest JSON in `from`, with every blob it needs copied to `to`.
fn offer(from: &Scratch, to: &Scratch, spec: &str) -> Vec<u8> {
    let v = from.resolve(spec);
    copy_blobs(from, to, &v.manifest.blobs());
    from.reg
        .manifest_json(&v.manifest.name, &v.record)
        .expect("manifest_json")
}

fn import(to: &Scratch, json: &[u8], tags: &[&str]) -> Result<reg_registry::import::ImportReport, RegistryError> {
    let guard = to.reg.writer().expect("writer");
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    to.reg.import_version(&guard, json, &tags, "origin:mlp")
}

/// The mlp run with its deltas (elsewhere), and a registry here whose
/// mlp@v1 is the run's first epoch, pushed with a message of its own (so
/// its manifest, and id, differ from theirs even when both were pushed
/// in the same second).
fn two_registries() -> (Scratch, Scratch) {
    let there = Scratch::new();
    there.push_series_with_deltas("mlp");
    let here = Scratch::new();
    let opts = reg_registry::PushOptions {
        message: Some("pushed here".into()),
        ..named("mlp")
    };
    here.push_opts(&fixture(SERIES[0]), &opts);
    (there, here)
}

#[test]
fn a_version_from_elsewhere_takes_the_next_local_number() {
    let (there, here) = two_registries();
    let json = offer(&there, &here, "mlp@v3");
    let r = import(&here, &json, &[]).expect("import");
    assert!(r.created);
    assert_eq!((r.name.as_str(), r.number), ("mlp", 2));
    // The manifest was rewritten with its local number: a new id, whose
    // blake3 is the manifest stored here.
    let theirs = there.resolve("mlp@v3");
    assert_ne!(r.id, theirs.record.id);
    let ours = here.resolve("mlp@v2");
    assert_eq!(ours.record.id, r.id);
    let stored = here.reg.manifest_json("mlp", &ours.record).expect("manifest_json");
    assert_eq!(BlobId::of(&stored), r.id.blob());
    let mut as_there = Manifest::from_json(&stored).expect("manifest");
    assert_eq!(as_there.number, 2);
    as_there.number = 3;
    assert_eq!(as_there, theirs.manifest);
    drop(theirs);
    // Its blobs are deltas there, and here: the index knows every chain.
    let edges: BTreeSet<(BlobId, BlobId)> = here
        .reg
        .with_index("test", |idx| Ok(idx.deltas()?))
        .expect("deltas")
        .into_iter()
        .collect();
    let named: BTreeSet<BlobId> = ours.manifest.blobs().into_iter().collect();
    let (mut parents, mut stranded) = (BTreeSet::new(), 0);
    for b in &named {
        let mut child = *b;
        for parent in here.reg.store().chain(*b).expect("chain") {
            assert!(edges.contains(&(parent, child)), "{child} -> {parent} not in the index");
            parents.insert(parent);
            child = parent;
        }
        stranded += usize::from(here.parent(*b).is_some_and(|p| !named.contains(&p)));
    }
    assert!(
        stranded > 0,
        "no imported blob is a delta against a blob v2 does not name"
    );
    drop(ours);
    here.assert_pulls("mlp@v2", SERIES[2]);
    let verified = here.reg.verify(None, true).expect("verify");
    assert!(verified.is_clean(), "{verified:?}");
    // The parents came along only to decode v2's deltas (their version
    // stayed there): gc makes v2's blobs whole and deletes them.
    let gc = here.reg.gc(false).expect("gc");
    let only_parents = parents.difference(&named).count();
    assert_eq!((gc.reencoded_blobs, gc.removed_blobs), (stranded, only_parents));
    here.assert_pulls("mlp@v2", SERIES[2]);
}

#[test]
fn a_file_that_is_a_version_here_already_is_not_imported_again() {
    let (there, here) = two_registries();
    let first = import(&here, &offer(&there, &here, "mlp@v3"), &[]).expect("import");
    let again = import(&here, &offer(&there, &here, "mlp@v3"), &[]).expect("import again");
    assert!(!again.created);
    assert_eq!((again.number, again.id), (2, first.id));
    // Matched by the file's hash, not the version id: their v1 is our v1.
    let theirs = there.resolve("mlp@v1").record.id;
    let r = import(&here, &offer(&there, &here, "mlp@v1"), &[]).expect("import v1");
    assert!(!r.created);
    assert_eq!((r.number, r.id), (1, here.resolve("mlp@v1").record.id));
    assert_ne!(r.id, theirs);
    assert_eq!(here.numbers("mlp"), vec![1, 2]);
}

#[test]
fn tags_are_set_unless_they_point_at_another_version_here() {
    let (there, here) = two_registries();
    let r = import(&here, &offer(&there, &here, "mlp@v3"), &["prod", "best"]).expect("import");
    assert_eq!(r.tags_set, vec!["prod", "best"]);
    assert!(r.tags_kept.is_empty());
    let r = import(&here, &offer(&there, &here, "mlp@v4"), &["prod", "new"]).expect("import");
    assert_eq!(
        (r.number, r.tags_set.clone(), r.tags_kept.clone()),
        (3, vec!["new".to_string()], vec![("prod".to_string(), 2)])
    );
    let r = import(&here, &offer(&there, &here, "mlp@v4"), &["prod", "new"]).expect("import again");
    assert!(!r.created && r.tags_set.is_empty());
    assert_eq!(r.tags_kept, vec![("prod".to_string(), 2)]);
    let tags = vec![
        (tag("best"), reg_format::VersionNumber(2)),
        (tag("new"), reg_format::VersionNumber(3)),
        (tag("prod"), reg_format::VersionNumber(2)),
    ];
    assert_eq!(here.reg.tags(&common::model("mlp")).expect("tags"), tags);
    // A tag that is not a valid tag refuses the whole import.
    let json = offer(&there, &here, "mlp@v2");
    let before = state(&here, "mlp");
    for bad in ["v9", "latest", "a b"] {
        let e = import(&here, &json, &[bad]).expect_err("bad tag");
        assert!(matches!(e, RegistryError::BadRef(_)), "{bad}: {e}");
        assert!(state(&here, "mlp") == before, "{bad} changed the registry");
    }
}

#[test]
fn a_manifest_that_does_not_validate_is_damage_and_changes_nothing() {
    let (there, here) = two_registries();
    let json = offer(&there, &here, "mlp@v3");
    let good: serde_json::Value = serde_json::from_slice(&json).expect("json");
    let before = state(&here, "mlp");
    let edit = |field: &str, value: serde_json::Value| {
        let mut m = good.clone();
        m[field] = value;
        serde_json::to_vec(&m).expect("json")
    };
    let size = good["size"].as_u64().expect("size");
    let mut short_piece = good.clone();
    let pieces = short_piece["pieces"].as_array_mut().expect("pieces");
    let payload = pieces.iter_mut().find(|p| p["kind"] == "payload").expect("a payload");
    payload["len"] = serde_json::json!(payload["len"].as_u64().expect("len") - 4);
    let mut short_piece_and_size = short_piece.clone();
    short_piece_and_size["size"] = serde_json::json!(size - 4);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("source with a parent", edit("source", "../epoch=02.ckpt".into())),
        ("source with a folder", edit("source", "runs/epoch=02.ckpt".into())),
        ("absolute source", edit("source", "/tmp/epoch=02.ckpt".into())),
        ("name with a slash", edit("name", "a/b".into())),
        ("empty name", edit("name", "".into())),
        ("short file hash", edit("blake3", "abc123".into())),
        (
            "upper-case file hash",
            edit("blake3", good["blake3"].as_str().expect("hash").to_uppercase().into()),
        ),
        ("skeleton that is no id", edit("skeleton", "zz".into())),
        ("pieces that do not add up", edit("size", (size + 1).into())),
        (
            "payload shorter than its blob",
            serde_json::to_vec(&short_piece_and_size).expect("json"),
        ),
        ("not JSON", b"{\"schema\": 1, ".to_vec()),
    ];
    for (what, json) in bad {
        let e = import(&here, &json, &["prod"]).expect_err(what);
        assert!(e.is_damage(), "{what}: {e}");
        assert!(e.to_string().contains("origin:mlp"), "{what}: {e}");
        assert!(state(&here, "mlp") == before, "{what} changed the registry");
    }
    // A newer schema is not damage: this reg is too old to read it.
    let e = import(&here, &edit("schema", 99.into()), &[]).expect_err("newer schema");
    assert!(!e.is_damage() && e.to_string().contains("upgrade reg"), "{e}");
    assert!(state(&here, "mlp") == before);
    // The unedited manifest imports.
    assert!(import(&here, &json, &[]).expect("import").created);
}

#[test]
fn a_version_whose_blobs_are_not_all_here_is_refused() {
    let (there, here) = two_registries();
    let v3 = there.resolve("mlp@v3");
    let head = blob_of(&v3.manifest, HEAD);
    let json = there.reg.manifest_json("mlp", &v3.record).expect("manifest_json");
    let others: Vec<BlobId> = v3.manifest.blobs().into_iter().filter(|b| *b != head).collect();
    copy_blobs(&there, &here, &others);
    assert_eq!(here.reg.missing_blobs(&v3.manifest), vec![head]);
    let before = state(&here, "mlp");
    let e = import(&here, &json, &[]).expect_err("a blob is missing");
    assert!(e.is_damage(), "{e}");
    assert!(
        matches!(&e, RegistryError::Damaged { source: reg_store::StoreError::Missing(id), .. } if *id == head),
        "{e}"
    );
    assert!(state(&here, "mlp") == before);

    // The head is here but not the blob it is a delta against (v4's head,
    // which no blob of v3's manifest names).
    let parent = there.parent(head).expect("v3's head is a delta");
    let stored = there.reg.store().read_stored(head).expect("read_stored");
    let e = here
        .reg
        .store()
        .put_stored(head, &stored)
        .expect_err("a delta without its parent");
    assert!(
        matches!(e, reg_store::StoreError::MissingParent { id, parent: p } if id == head && p == parent),
        "{e}"
    );
    assert_eq!(here.reg.missing_blobs(&v3.manifest), vec![head]);
    copy_blobs(&there, &here, &[head]);
    std::fs::remove_file(here.reg.store().path_of(parent)).expect("rm parent");
    assert!(here.reg.missing_blobs(&v3.manifest).is_empty());
    let before = state(&here, "mlp");
    let e = import(&here, &json, &[]).expect_err("a delta parent is missing");
    assert!(e.is_damage(), "{e}");
    assert!(state(&here, "mlp") == before);
}
