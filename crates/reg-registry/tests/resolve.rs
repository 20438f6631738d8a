//! How refs resolve (`NAME@REF`): every form, the note when several
//! versions match, tags, id prefixes, and what an unknown name or ref
//! says exists.

mod common;

use common::*;
use reg_registry::{FileHash, Manifest, RegistryError, VersionRef};
use std::collections::HashMap;

/// The version number and note `spec` resolves to.
fn resolves(s: &Scratch, spec: &str) -> (u32, Option<String>) {
    let v = s.resolve(spec);
    assert_eq!(v.record.number, v.manifest.number, "{spec}");
    (v.record.number.get(), v.note.clone())
}

/// The error resolving `spec` gives.
fn fails(s: &Scratch, spec: &str) -> RegistryError {
    let r = VersionRef::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    match s.reg.resolve(&r) {
        Ok(v) => panic!("{spec} resolved to v{}", v.record.number),
        Err(e) => e,
    }
}

/// What a `NoSuchVersion` error says exists.
fn available(e: RegistryError) -> String {
    match e {
        RegistryError::NoSuchVersion { available, .. } => available,
        other => panic!("not NoSuchVersion: {other}"),
    }
}

#[test]
fn numbers_latest_epochs_and_steps() {
    let s = Scratch::new();
    s.push_all(&SERIES, "mlp");
    assert_eq!(resolves(&s, "mlp"), (4, None));
    assert_eq!(resolves(&s, "mlp@latest"), (4, None));
    for n in 1..=4u32 {
        assert_eq!(resolves(&s, &format!("mlp@v{n}")), (n, None));
        // The run's epochs are 0..3 and its steps 8, 16, 24, 32.
        assert_eq!(resolves(&s, &format!("mlp@epoch={}", n - 1)), (n, None));
        assert_eq!(resolves(&s, &format!("mlp@step={}", 8 * n)), (n, None));
    }
    let v3 = s.resolve("mlp@epoch=2");
    assert_eq!((v3.record.epoch, v3.record.global_step), (Some(2), Some(24)));
    assert_eq!(v3.record.source.as_str(), "epoch=02.ckpt");
}

#[test]
fn an_epoch_or_step_several_versions_have_is_the_newest_with_a_note() {
    let s = Scratch::new();
    s.push_all(&SERIES, "mlp");
    // The fine-tune's epochs 0 and 1 (steps 8 and 16) under the same name.
    s.push_all(&FINETUNE, "mlp");
    let note = |what: &str, others: &str, n: u32| Some(format!("{what} also matches {others}; using the newest, v{n}"));
    assert_eq!(resolves(&s, "mlp@epoch=0"), (5, note("epoch=0", "v1", 5)));
    assert_eq!(resolves(&s, "mlp@step=16"), (6, note("step=16", "v2", 6)));
    assert_eq!(resolves(&s, "mlp@epoch=3"), (4, None));
    // A third match lists both older ones.
    let third = s.work().join("again.ckpt");
    let w = Tensor::new(
        "w",
        reg_ckpt::DType::Float32,
        &[4],
        encode(&[1.0, 2.0, 3.0, 4.0], reg_ckpt::DType::Float32),
    );
    write_ckpt(&third, 0, 99, &[w], Vec::new());
    s.push(&third, "mlp");
    assert_eq!(resolves(&s, "mlp@epoch=0"), (7, note("epoch=0", "v1, v5", 7)));
}

#[test]
fn best_follows_the_monitor_and_its_mode() {
    let s = Scratch::new();
    s.push_all(&MONITORED, "mon");
    let scores = expected("lightning/monitored/scores")["scores"].clone();
    let score = |file: &str| scores[file].as_f64().expect("score");
    // val_loss, mode min: the last epoch has the lowest.
    let best = Some(format!("best val_loss (min) = {} at v4", score("epoch=03.ckpt")));
    assert_eq!(resolves(&s, "mon@best"), (4, best.clone()));
    assert_eq!(resolves(&s, "mon@best:val_loss"), (4, best));
    // --mode max turns the direction around.
    let max = VersionRef::parse("mon@best")
        .expect("ref")
        .with_best(None, Some(reg_format::refs::ScoreMode::Max));
    let v = s.reg.resolve(&max).expect("resolve");
    let note = format!("best val_loss (max) = {} at v1", score("epoch=00.ckpt"));
    assert_eq!((v.record.number.get(), v.note.as_deref()), (1, Some(note.as_str())));
    // --by a metric no version records: says which ones do.
    assert_eq!(available(fails(&s, "mon@best:train_loss")), "scored metrics: val_loss");
}

#[test]
fn best_of_a_max_metric_takes_the_highest_and_the_newest_of_equals() {
    let s = Scratch::new();
    for (e, acc) in [0.5, 0.9, 0.7, 0.9, 0.2].iter().enumerate() {
        let path = s.work().join(format!("epoch={e}.ckpt"));
        let w = Tensor::new(
            "w",
            reg_ckpt::DType::Float32,
            &[2],
            encode(&[*acc, 1.0], reg_ckpt::DType::Float32),
        );
        write_ckpt(
            &path,
            e as i64,
            e as i64,
            &[w],
            vec![model_checkpoint("acc", "max", *acc)],
        );
        s.push(&path, "clf");
    }
    assert_eq!(resolves(&s, "clf@best"), (4, Some("best acc (max) = 0.9 at v4".into())));
    let min = VersionRef::parse("clf@best:acc")
        .expect("ref")
        .with_best(None, Some(reg_format::refs::ScoreMode::Min));
    let v = s.reg.resolve(&min).expect("resolve");
    assert_eq!(
        (v.record.number.get(), v.note.as_deref()),
        (5, Some("best acc (min) = 0.2 at v5"))
    );
}

#[test]
fn best_without_a_monitor_is_the_tag_named_best() {
    let s = Scratch::new();
    s.push_all(&SERIES, "mlp");
    assert_eq!(
        available(fails(&s, "mlp@best")),
        "no version records a monitored score (its ModelCheckpoint had no monitor)"
    );
    let v2 = s.resolve("mlp@v2");
    s.reg.tag(&v2, &common::tag("best"), false).expect("tag");
    drop(v2);
    assert_eq!(resolves(&s, "mlp@best"), (2, Some("best by tag".into())));
    // A metric asked for by name has no tag to fall back to.
    assert_eq!(
        available(fails(&s, "mlp@best:val_loss")),
        "no version records a monitored score (its ModelCheckpoint had no monitor)"
    );
}

#[test]
fn tags_point_at_one_version_and_move_only_when_forced() {
    let s = Scratch::new();
    s.push_all(&SERIES, "mlp");
    let (v2, v3) = (s.resolve("mlp@v2"), s.resolve("mlp@v3"));
    assert_eq!(s.reg.tag(&v2, &common::tag("prod"), false).expect("tag"), None);
    assert_eq!(s.reg.tag(&v2, &common::tag("prod"), false).expect("tag again"), None);
    assert_eq!(resolves(&s, "mlp@prod"), (2, None));
    match s.reg.tag(&v3, &common::tag("prod"), false) {
        Err(RegistryError::Tag(reg_registry::TagError::Exists { tag, number, .. })) => {
            assert_eq!((tag.as_str(), number), ("prod", 2))
        }
        other => panic!("moved without force: {other:?}"),
    }
    assert_eq!(
        s.reg.tag(&v3, &common::tag("prod"), true).expect("tag --force"),
        Some(reg_format::VersionNumber(2))
    );
    assert_eq!(resolves(&s, "mlp@prod"), (3, None));
    assert_eq!(
        s.reg.tags(&common::model("mlp")).expect("tags"),
        vec![(common::tag("prod"), reg_format::VersionNumber(3))]
    );
    for bad in ["v1", "latest", "epoch=1", "best:loss", "a/b", ""] {
        assert!(reg_format::TagName::new(bad).is_err(), "tag {bad:?} accepted");
    }
    s.reg
        .remove_tag(&common::model("mlp"), &common::tag("prod"))
        .expect("tag -d");
    assert_eq!(
        available(fails(&s, "mlp@prod")),
        "no tag or version id prod; tags: none; versions: v1..v4"
    );
    let e = s
        .reg
        .remove_tag(&common::model("mlp"), &common::tag("prod"))
        .expect_err("tag -d twice");
    assert_eq!(e.to_string(), "mlp has no tag prod; tags: none");
    // Removing a version removes its tags.
    s.reg.tag(&v2, &common::tag("old"), false).expect("tag");
    s.reg.remove(v2.clone()).expect("rm");
    drop((v2, v3));
    assert_eq!(s.reg.tags(&common::model("mlp")).expect("tags"), Vec::new());
}

#[test]
fn an_id_prefix_of_six_digits_or_more_names_the_one_version_it_starts() {
    let s = Scratch::new();
    s.push_all(&SERIES, "mlp");
    let ids: Vec<String> = (1..=4)
        .map(|v| s.resolve(&format!("mlp@v{v}")).record.id.to_hex())
        .collect();
    for (i, id) in ids.iter().enumerate() {
        // The shortest prefix of 6+ digits no other version shares.
        let len = (6..=64)
            .find(|l| ids.iter().filter(|o| o.starts_with(&id[..*l])).count() == 1)
            .expect("unique prefix");
        let n = i as u32 + 1;
        assert_eq!(resolves(&s, &format!("mlp@{}", &id[..len])), (n, None));
        assert_eq!(resolves(&s, &format!("mlp@{}", id[..len].to_uppercase())), (n, None));
        assert_eq!(resolves(&s, &format!("mlp@{id}")), (n, None));
    }
    // Five digits is a tag, not a prefix.
    let five = &ids[0][..5];
    assert!(available(fails(&s, &format!("mlp@{five}"))).starts_with(&format!("no tag or version id {five};")));
    let none = ["000000", "111111", "222222"]
        .into_iter()
        .find(|p| ids.iter().all(|id| !id.starts_with(p)))
        .expect("a prefix no id has");
    assert_eq!(
        available(fails(&s, &format!("mlp@{none}"))),
        format!("no tag or version id {none}; tags: none; versions: v1..v4")
    );
}

/// The id a manifest gets when committed as version `number`.
fn id_as(m: &Manifest, number: u32) -> String {
    let mut m = m.clone();
    m.number = number;
    reg_store::BlobId::of(&m.to_json().expect("json")).to_hex()
}

#[test]
fn an_id_prefix_two_versions_share_is_ambiguous() {
    let s = Scratch::new();
    s.push_fixture("safetensors/mlp.safetensors", "twins");
    let v1 = s.resolve("twins@v1");
    let template = v1.manifest.clone();
    drop(v1);
    // Two versions of the same bytes under other file hashes (which makes
    // them two versions; they are never pulled) whose ids, as v2 and v3,
    // share their first six hex digits: a birthday search.
    let variant = |k: u64| {
        let mut m = template.clone();
        m.blake3 = FileHash(*blake3::hash(&k.to_le_bytes()).as_bytes());
        m
    };
    let (mut as_v2, mut as_v3) = (HashMap::new(), HashMap::new());
    let (a, b) = (0u64..1 << 20)
        .find_map(|k| {
            let (id2, id3) = (id_as(&variant(k), 2), id_as(&variant(k), 3));
            as_v2.insert(id2[..6].to_string(), k);
            as_v3.insert(id3[..6].to_string(), k);
            let twin = as_v3.get(&id2[..6]).filter(|j| **j != k).map(|j| (k, *j));
            twin.or_else(|| as_v2.get(&id3[..6]).filter(|j| **j != k).map(|j| (*j, k)))
        })
        .expect("two ids with one prefix");
    let guard = s.reg.writer().expect("writer");
    for k in [a, b] {
        let json = variant(k).to_json().expect("json");
        let r = s.reg.import_version(&guard, &json, &[], "test").expect("import");
        assert!(r.created);
    }
    drop(guard);
    let (id2, id3) = (id_as(&variant(a), 2), id_as(&variant(b), 3));
    assert_eq!(s.resolve("twins@v2").record.id.to_hex(), id2);
    assert_eq!(s.resolve("twins@v3").record.id.to_hex(), id3);
    let shared = id2.chars().zip(id3.chars()).take_while(|(x, y)| x == y).count();
    assert!(shared >= 6, "{id2} {id3}");
    let prefix = &id2[..shared];
    assert_eq!(
        available(fails(&s, &format!("twins@{prefix}"))),
        format!("id prefix {prefix} is ambiguous (v2, v3); give more digits")
    );
    // One more digit tells them apart.
    assert_eq!(resolves(&s, &format!("twins@{}", &id2[..shared + 1])), (2, None));
    assert_eq!(resolves(&s, &format!("twins@{}", &id3[..shared + 1])), (3, None));
}

#[test]
fn an_unknown_name_suggests_the_nearest_names() {
    let s = Scratch::new();
    match fails(&s, "mlp") {
        RegistryError::NoSuchName { name, hint } => {
            assert_eq!((name.as_str(), hint.as_str()), ("mlp", " (the registry is empty)"))
        }
        other => panic!("{other}"),
    }
    s.push_fixture(SERIES[0], "mlp");
    s.push_fixture(FINETUNE[0], "mlp-finetune");
    s.push_fixture("torch/zoo.pt", "zoo");
    s.push_fixture("torch/mlp_state_dict.pt", "mnist");
    // By edit distance: mlp 2, zoo 3, mnist 4, mlp-finetune 11; three of them.
    let e = fails(&s, "mpl@v1");
    assert_eq!(e.to_string(), "no model named \"mpl\"; known names: mlp, zoo, mnist");
    let e = s
        .reg
        .versions(&common::model("mpl"))
        .expect_err("versions of an unknown name");
    assert!(matches!(e, RegistryError::NoSuchName { .. }), "{e}");
}

#[test]
fn an_unknown_ref_says_what_exists() {
    let s = Scratch::new();
    s.push_all(&SERIES, "mlp");
    let e = fails(&s, "mlp@v9");
    assert_eq!(e.to_string(), "mlp@v9 matches no version; versions are v1..v4");
    assert!(!e.is_damage());
    assert_eq!(available(fails(&s, "mlp@epoch=9")), "available epochs: 0, 1, 2, 3");
    assert_eq!(available(fails(&s, "mlp@step=5")), "available steps: 8, 16, 24, 32");
    let v3 = s.resolve("mlp@v3");
    s.reg.tag(&v3, &common::tag("prod"), false).expect("tag");
    drop(v3);
    assert_eq!(
        available(fails(&s, "mlp@nosuch")),
        "no tag or version id nosuch; tags: prod->v3; versions: v1..v4"
    );
    let v2 = s.resolve("mlp@v2");
    s.reg.remove(v2).expect("rm");
    assert_eq!(
        available(fails(&s, "mlp@v2")),
        "versions are v1..v4 (existing: v1, v3, v4)"
    );
    assert_eq!(available(fails(&s, "mlp@epoch=1")), "available epochs: 0, 2, 3");
}
