//! Trust boundaries the CLI tests cannot time (issue 29): a folder that
//! changes between being listed and being read, and tags set by a
//! release that allowed ones looking like version ids.

mod common;

use common::{named, Scratch, SERIES};
use reg_registry::test_hooks::set_after_walk;
use std::path::Path;
use std::sync::Mutex;

/// The hook is process-wide: tests that set it run one at a time.
static HOOKED: Mutex<()> = Mutex::new(());

/// A folder of three small files, and a secret outside it.
fn folder(s: &Scratch) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = s.work().join("ckpt");
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("config.json"), b"{\"a\": 1}").expect("write");
    std::fs::write(dir.join("sub/data.bin"), vec![7u8; 5000]).expect("write");
    std::fs::write(dir.join("notes.txt"), b"hello").expect("write");
    let secret = s.work().join("secret.txt");
    std::fs::write(&secret, b"the outside file's contents").expect("write secret");
    (dir, secret)
}

/// Push `dir` with `swap` run between listing and reading; the error.
fn push_swapped(s: &Scratch, dir: &Path, swap: impl Fn(&Path) + Send + Sync + 'static) -> reg_registry::RegistryError {
    let _one = HOOKED.lock().unwrap_or_else(|e| e.into_inner());
    set_after_walk(Some(Box::new(swap)));
    let result = s.reg.push(dir, &named("swapped"));
    set_after_walk(None);
    match result {
        Ok(r) => panic!("the swapped folder was stored as {}@v{}", r.name, r.number),
        Err(e) => e,
    }
}

#[cfg(unix)]
#[test]
fn a_file_swapped_for_a_link_to_an_outside_file_after_listing_is_refused() {
    let s = Scratch::new();
    let (dir, secret) = folder(&s);
    let e = push_swapped(&s, &dir, move |dir| {
        // What the attacker's loop does: rename a link over a listed file.
        let link = dir.join(".swap");
        std::os::unix::fs::symlink(&secret, &link).expect("symlink");
        std::fs::rename(&link, dir.join("notes.txt")).expect("rename over");
    });
    let text = e.to_string();
    assert!(
        text.contains("notes.txt") && text.contains("changed between listing"),
        "{text}"
    );
    assert!(s.blobs_on_disk().is_empty(), "blobs were stored");
    assert!(s.reg.names().expect("names").is_empty());
}

#[cfg(unix)]
#[test]
fn a_file_replaced_by_another_after_listing_is_refused() {
    let s = Scratch::new();
    let (dir, secret) = folder(&s);
    let e = push_swapped(&s, &dir, move |dir| {
        // A hard link to the outside file (same bytes, other inode than
        // the listed one), renamed over a listed file.
        let copy = dir.join(".swap");
        std::fs::hard_link(&secret, &copy).expect("hard link");
        std::fs::rename(&copy, dir.join("sub/data.bin")).expect("rename over");
    });
    assert!(e.to_string().contains("changed between listing"), "{e}");
    assert!(s.blobs_on_disk().is_empty(), "blobs were stored");
}

#[cfg(unix)]
#[test]
fn the_target_of_a_listed_link_swapped_for_an_outside_link_is_refused() {
    let s = Scratch::new();
    let (dir, secret) = folder(&s);
    // An in-tree link is followed (its target's bytes are stored) ...
    std::os::unix::fs::symlink("notes.txt", dir.join("readme")).expect("symlink");
    let ok = s.reg.push(&dir, &named("fine")).expect("an in-tree link pushes");
    assert!(ok.created);
    let before = s.blobs_on_disk();
    // ... but not when its target turns into a link out of the tree.
    std::fs::write(dir.join("notes.txt"), b"changed, so the tree is new").expect("write");
    let e = push_swapped(&s, &dir, move |dir| {
        let link = dir.join(".swap");
        std::os::unix::fs::symlink(&secret, &link).expect("symlink");
        std::fs::rename(&link, dir.join("notes.txt")).expect("rename over");
    });
    assert!(e.to_string().contains("changed between listing"), "{e}");
    assert_eq!(s.blobs_on_disk(), before, "blobs were stored");
}

#[test]
fn a_folder_left_alone_between_listing_and_reading_pushes() {
    let s = Scratch::new();
    let (dir, _) = folder(&s);
    let _one = HOOKED.lock().unwrap_or_else(|e| e.into_inner());
    set_after_walk(Some(Box::new(|_| {})));
    let r = s.reg.push(&dir, &named("calm"));
    set_after_walk(None);
    assert!(r.expect("push").created);
}

#[test]
fn an_id_prefix_names_its_version_even_when_an_old_release_made_it_a_tag() {
    let s = Scratch::new();
    s.push_all(&SERIES[..3], "mon");
    let v1 = s.resolve("mon@v1");
    let prefix = v1.record.id.to_hex()[..12].to_string();
    // reg refuses such a tag now ...
    let e = reg_format::TagName::new(&prefix).expect_err("a hex tag");
    assert!(e.to_string().contains("may not look like a version id"), "{e}");
    // ... and one an older release set does not take the id's place.
    s.reg
        .with_index("test", |idx| {
            Ok(idx.set_tag(
                &v1.manifest.name,
                &reg_format::TagName::stored(prefix.clone()),
                reg_format::VersionNumber(3),
            )?)
        })
        .expect("legacy tag");
    drop(v1);
    assert_eq!(s.resolve(&format!("mon@{prefix}")).record.number, 1);
    // A short hex word is no id: it can be a tag.
    let v2 = s.resolve("mon@v2");
    s.reg.tag(&v2, &common::tag("cafe"), false).expect("tag cafe");
    drop(v2);
    assert_eq!(s.resolve("mon@cafe").record.number, 2);
}
