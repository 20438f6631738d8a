use crate::common::{expected, fixture_files, Reg};
use std::collections::BTreeMap;

#[test]
fn run_and_finetune_store_each_storage_once() {
    let reg = Reg::new();
    let files = fixture_files(&["lightning/mlp", "lightning/mlp-finetune"]);
    let mut distinct: BTreeMap<String, u64> = BTreeMap::new();
    let mut created = 0;
    for rel in &files {
        let r = reg.push(rel, "mlp").json();
        if r["created"] == true {
            created += 1;
        } else {
            assert!(
                rel.ends_with("last.ckpt"),
                "{rel} unexpectedly matched an existing version"
            );
        }
        for s in expected(rel)["storages"].as_array().expect("storages") {
            distinct.insert(
                s["sha256"].as_str().expect("sha").to_string(),
                s["nbytes"].as_u64().expect("nbytes"),
            );
        }
    }
    assert_eq!(created, files.len() - 1, "last.ckpt must add no version");
    let stats = reg.ok(&["stats", "--json"]).json();
    assert_eq!(stats["versions"], created as u64);
    let logical: u64 = files
        .iter()
        .map(|rel| expected(rel)["size"].as_u64().expect("size"))
        .sum();
    let last = expected("lightning/mlp/last.ckpt")["size"].as_u64().expect("size");
    assert_eq!(stats["logical_bytes"], logical - last);
    // Skeletons: everything of each version that is not storage bytes.
    let skeletons: u64 = files
        .iter()
        .filter(|rel| !rel.ends_with("last.ckpt"))
        .map(|rel| {
            let e = expected(rel);
            let payload: u64 = e["storages"]
                .as_array()
                .expect("storages")
                .iter()
                .map(|s| s["nbytes"].as_u64().unwrap_or(0))
                .sum();
            e["size"].as_u64().expect("size") - payload
        })
        .sum();
    let distinct_bytes: u64 = distinct.values().sum();
    let stored = stats["stored_bytes"].as_u64().expect("stored_bytes");
    assert!(
        stored <= distinct_bytes + skeletons,
        "stored {stored} > distinct storages {distinct_bytes} + skeletons {skeletons}"
    );
    // Every distinct storage is one blob; plus a skeleton and a manifest per version.
    let blobs = stats["blobs"].as_u64().expect("blobs");
    assert!(blobs <= distinct.len() as u64 + 2 * created as u64, "{blobs} blobs");
    // The frozen encoder is shared by all six versions.
    let shown = reg.ok(&["show", "mlp@v1", "--json"]).json();
    let enc = shown["tensors"][0]["blob"].clone();
    let last_shown = reg.ok(&["show", "mlp", "--json"]).json();
    assert_eq!(last_shown["tensors"][0]["path"], "state_dict/encoder.weight");
    assert_eq!(last_shown["tensors"][0]["blob"], enc);
}

#[test]
fn tied_and_view_tensors_share_one_blob() {
    let reg = Reg::new();
    reg.push("torch/zoo.pt", "zoo");
    let shown = reg.ok(&["show", "zoo", "--json"]).json();
    let blob_of = |p: &str| {
        shown["tensors"]
            .as_array()
            .expect("tensors")
            .iter()
            .find(|t| t["path"] == p)
            .map(|t| t["blob"].clone())
    };
    assert_eq!(blob_of("tied_a"), blob_of("tied_b"));
    assert_eq!(blob_of("view_row"), blob_of("transposed"));
    assert_eq!(blob_of("narrow"), blob_of("transposed"));
    assert_ne!(blob_of("f32"), blob_of("tied_a"));
}
