//! Remote round trips on `file://` remotes (the S3 tests live in the
//! workspace's tests/remote.rs).

use crate::config::RemoteSpec;
use crate::layout;
use crate::push::Outgoing;
use crate::{Remote, Selection, Tuning};
use reg_registry::{Config, Manifest, PushOptions, Registry, Silent, VersionRef};
use reg_store::BlobId;
use std::path::{Path, PathBuf};

type R = Result<(), Box<dyn std::error::Error>>;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn registry(dir: &Path) -> Result<Registry, Box<dyn std::error::Error>> {
    Ok(Registry::open(Config::at(dir))?)
}

fn push(reg: &Registry, rel: &str, name: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let opts = PushOptions {
        name: Some(name.into()),
        ..PushOptions::default()
    };
    Ok(reg.push(&fixture(rel), &opts)?.number)
}

fn remote(dir: &Path) -> Result<Remote, Box<dyn std::error::Error>> {
    let spec = RemoteSpec {
        name: "shared".into(),
        url: format!("file://{}", dir.display()),
        ..RemoteSpec::default()
    };
    Ok(Remote::open(&spec)?)
}

fn pulled_bytes(reg: &Registry, r: &str, out: &Path) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let v = reg.resolve(&VersionRef::parse(r)?)?;
    reg.pull(&v, out, true)?;
    Ok(std::fs::read(out)?)
}

#[test]
fn push_pull_round_trip_and_nothing_twice() -> R {
    let tmp = tempfile::tempdir()?;
    let a = registry(&tmp.path().join("a"))?;
    for e in 0..4 {
        push(&a, &format!("lightning/mlp/epoch=0{e}.ckpt"), "mlp")?;
    }
    let rem = remote(&tmp.path().join("remote"))?;
    let first = rem.push(&a, &Selection::Name("mlp".into()), &Silent)?;
    assert_eq!(first.versions.len(), 4);
    assert!(first.versions.iter().all(|v| v.transferred && v.local == v.remote));
    assert!(first.blobs_transferred > 0);
    let again = rem.push(&a, &Selection::All, &Silent)?;
    assert_eq!(again.blobs_transferred, 0);
    assert_eq!(again.objects_transferred, 0);
    assert!(again.versions.iter().all(|v| !v.transferred));

    let names = rem.list_names()?;
    assert_eq!(names.len(), 1);
    assert_eq!((names[0].versions, names[0].latest), (4, 4));
    assert_eq!(rem.log("mlp")?.len(), 4);
    assert_eq!(rem.resolve(&VersionRef::parse("mlp@epoch=2")?)?.number, 3);

    let b = registry(&tmp.path().join("b"))?;
    let got = rem.pull(&b, &VersionRef::parse("mlp@epoch=2")?, &Silent)?;
    assert_eq!(got.versions[0].local, 1);
    assert_eq!(got.versions[0].remote, 3);
    assert!(got.blobs_transferred > 0);
    let want = std::fs::read(fixture("lightning/mlp/epoch=02.ckpt"))?;
    assert_eq!(pulled_bytes(&b, "mlp@v1", &tmp.path().join("out.ckpt"))?, want);
    // The renumbered manifest is a new local id; the file is the same.
    assert_ne!(got.versions[0].local_id, got.versions[0].remote_id);
    assert!(b.verify(None, true)?.is_clean());
    // Pulling again transfers nothing.
    let twice = rem.pull(&b, &VersionRef::parse("mlp@v3")?, &Silent)?;
    assert_eq!(twice.objects_transferred, 0);
    assert!(!twice.versions[0].transferred);
    // Pushing it back from b adds no version.
    let back = rem.push(&b, &Selection::All, &Silent)?;
    assert_eq!(back.versions[0].remote, 3);
    assert!(!back.versions[0].transferred);
    Ok(())
}

#[test]
fn taken_numbers_are_skipped() -> R {
    let tmp = tempfile::tempdir()?;
    let a = registry(&tmp.path().join("a"))?;
    push(&a, "lightning/mlp/epoch=00.ckpt", "mlp")?;
    let rem = remote(&tmp.path().join("remote"))?;
    // Someone else took v1 and v2 after this push looked.
    let rec = a.versions(&reg_format::ModelName::new("mlp")?)?.remove(0);
    let json = a.manifest_json("mlp", &rec)?;
    let o = Outgoing {
        name: reg_registry::ModelName::new("mlp")?,
        id: BlobId::of(&json),
        manifest: Manifest::from_json(&json)?,
        record: rec,
        json,
    };
    let (first, _) = rem.block_on(rem.create_entry(&o, 1))?;
    let (second, _) = rem.block_on(rem.create_entry(&o, 1))?;
    let (third, _) = rem.block_on(rem.create_entry(&o, 2))?;
    assert_eq!((first.number, second.number, third.number), (1, 2, 3));
    Ok(())
}

#[test]
fn multipart_and_tags_travel() -> R {
    let tmp = tempfile::tempdir()?;
    let a = registry(&tmp.path().join("a"))?;
    push(&a, "lightning/mlp/epoch=01.ckpt", "mlp")?;
    let v = a.resolve(&VersionRef::parse("mlp@v1")?)?;
    a.tag(&v, &reg_format::TagName::new("good")?, false)?;
    let tuning = Tuning {
        multipart_threshold: 1,
        part_size: 4096,
        part_concurrency: 3,
        concurrency: 2,
    };
    let rem = remote(&tmp.path().join("remote"))?.with_tuning(tuning);
    let sent = rem.push(&a, &Selection::All, &Silent)?;
    assert_eq!(sent.multipart_blobs, sent.blobs_transferred);
    assert_eq!(sent.tags, vec!["mlp@good -> v1".to_string()]);
    let b = registry(&tmp.path().join("b"))?;
    push(&b, "lightning/mlp/epoch=03.ckpt", "mlp")?;
    let got = rem.pull(&b, &VersionRef::parse("mlp@good")?, &Silent)?;
    assert_eq!(got.versions[0].local, 2);
    assert_eq!(got.tags, vec!["mlp@good -> v2".to_string()]);
    let want = std::fs::read(fixture("lightning/mlp/epoch=01.ckpt"))?;
    assert_eq!(pulled_bytes(&b, "mlp@good", &tmp.path().join("out.ckpt"))?, want);
    Ok(())
}

#[test]
fn damaged_remote_blob_is_not_stored() -> R {
    let tmp = tempfile::tempdir()?;
    let a = registry(&tmp.path().join("a"))?;
    push(&a, "lightning/mlp/epoch=01.ckpt", "mlp")?;
    let dir = tmp.path().join("remote");
    let rem = remote(&dir)?;
    rem.push(&a, &Selection::All, &Silent)?;
    let m = a.resolve(&VersionRef::parse("mlp")?)?.manifest;
    let victim = m.blobs()[1];
    let path = dir.join(layout::blob_key(victim).as_ref());
    let mut bytes = std::fs::read(&path)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes)?;

    let b = registry(&tmp.path().join("b"))?;
    let err = match rem.pull(&b, &VersionRef::parse("mlp@v1")?, &Silent) {
        Ok(_) => return Err("pull of a damaged version succeeded".into()),
        Err(e) => e,
    };
    assert!(err.is_damage(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("shared:mlp@v1") && text.contains(&victim.to_hex()),
        "{text}"
    );
    assert!(!b.store().contains(victim));
    assert!(b.all_versions()?.is_empty());
    assert_eq!(std::fs::read_dir(b.store().temp_dir())?.count(), 0);

    std::fs::remove_file(&path)?;
    let err = rem.pull(&b, &VersionRef::parse("mlp@v1")?, &Silent).err();
    assert!(err.is_some_and(|e| e.to_string().contains("missing")));
    Ok(())
}
