//! `reg stage SESSION PATH` streams one file of a staging session (a DCP
//! rank's data file) with its tensor chunks straight into blobs, and
//! `reg push DIR --staged SESSION` makes the version: exactly the version
//! a push of the same folder makes, byte-identical on pull. Bad sessions,
//! paths and streams are refused in one line.

use crate::common::{copy_dir, fixture, Reg};
use crate::dirs::snapshot;
use crate::push_stream::run_piped;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A new staging session of the registry (its folder and lock file), as
/// the DCP writer's coordinator makes one.
fn session(reg: &Reg, id: &str) -> PathBuf {
    let staging = reg.ok(&["init", "--json"]).json()["staging"]
        .as_str()
        .expect("staging")
        .to_string();
    let dir = Path::new(&staging).join(id);
    std::fs::create_dir_all(&dir).expect("session");
    std::fs::write(dir.join(".lock"), b"").expect("lock");
    dir
}

/// Stream `input` into `reg stage SESSION PATH --json`.
fn stage(reg: &Reg, session: &Path, rel: &str, input: Vec<u8>) -> crate::common::Run {
    let s = session.to_str().expect("utf8");
    run_piped(reg, &["stage", s, rel, "--json"], std::io::Cursor::new(input)).run
}

/// Stage every data file of a DCP folder fixture, copy the rest (its
/// `.metadata`) as the coordinator writes it, and push the folder with
/// --staged: the version is the one a push of the folder makes (pushing
/// the folder after adds none), and it pulls back byte for byte.
#[test]
fn staged_dcp_folders_make_the_version_a_folder_push_makes() {
    for rel in [
        "dirs/dcp/mlp/step=1",
        "dirs/dcp/fsdp2-2rank/step=2",
        "dirs/dcp/st-format/step=1",
        "dirs/dcp/odd/step=7",
    ] {
        let reg = Reg::new();
        let src = fixture(rel);
        let session = session(&reg, "dcp-test");
        let folder = session.join("ckpt");
        std::fs::create_dir_all(&folder).expect("folder");
        for e in std::fs::read_dir(&src).expect("fixture") {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".distcp") {
                let r = stage(
                    &reg,
                    &session,
                    &format!("ckpt/{name}"),
                    std::fs::read(e.path()).expect("read"),
                );
                assert_eq!(r.code, 0, "{rel}/{name}: {}", r.stderr);
                let j = r.json();
                assert_eq!(
                    j["bytes"].as_u64(),
                    Some(e.metadata().expect("meta").len()),
                    "{rel}: {j}"
                );
            } else {
                std::fs::copy(e.path(), folder.join(&name)).expect("copy");
            }
        }
        let f = folder.to_str().expect("utf8");
        let s = session.to_str().expect("utf8");
        let pushed = reg.ok(&["push", f, "--staged", s, "-n", "run", "--json"]).json();
        assert_eq!(pushed["created"], true, "{rel}: {pushed}");
        let again = reg
            .ok(&["push", src.to_str().expect("utf8"), "-n", "run", "--json"])
            .json();
        assert_eq!(
            again["created"], false,
            "{rel}: a folder push differs from the staged one: {again}"
        );
        assert_eq!(reg.ok(&["show", "run", "--json"]).json()["layout"], "dcp", "{rel}");
        let out = reg.work().join("back");
        reg.ok(&["pull", "run", "-o", out.to_str().expect("utf8")]);
        for e in std::fs::read_dir(&src).expect("fixture") {
            let e = e.expect("entry");
            let back = std::fs::read(out.join(e.file_name())).expect("pulled file");
            assert!(
                back == std::fs::read(e.path()).expect("read"),
                "{rel}: {:?} differs",
                e.file_name()
            );
        }
        reg.ok(&["verify"]);
    }
}

/// A file whose storages are large streams them into blobs: the staged
/// file is sparse (holes where they are), the chunks are kept in the
/// session until the push adopts them (nothing left after), a second
/// staging of the same bytes keeps none (the store holds them), and every
/// version pulls byte-identical.
#[test]
fn big_chunks_go_straight_into_blobs_and_are_kept_once() {
    let reg = Reg::new();
    let bytes = reg.generated("8M");
    let session_a = session(&reg, "dcp-a");
    let r = stage(&reg, &session_a, "run/model.ckpt", bytes.clone());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert!(j["chunks"].as_u64() > Some(0) && j["new_chunks"] == j["chunks"], "{j}");
    assert!(j["new_bytes"].as_u64() > Some(bytes.len() as u64 / 2), "{j}");
    let staged = std::fs::metadata(session_a.join("run/model.ckpt")).expect("staged file");
    assert_eq!(staged.len(), bytes.len() as u64);
    assert!(
        staged.blocks() * 512 < staged.len() / 2,
        "the staged file holds the big storages ({} of {} bytes allocated)",
        staged.blocks() * 512,
        staged.len()
    );
    let kept = session_a.join(".staged/blobs");
    assert!(std::fs::read_dir(&kept).expect("kept").count() > 0);
    let (fa, sa) = (session_a.join("run"), session_a.clone());
    let pushed = reg
        .ok(&[
            "push",
            fa.to_str().expect("utf8"),
            "--staged",
            sa.to_str().expect("utf8"),
            "--json",
        ])
        .json();
    assert_eq!(pushed["created"], true, "{pushed}");
    assert_eq!(
        std::fs::read_dir(&kept).expect("kept").count(),
        0,
        "the push adopted every kept chunk"
    );
    let out = reg.work().join("back");
    reg.ok(&["pull", "run", "-o", out.to_str().expect("utf8")]);
    assert!(std::fs::read(out.join("model.ckpt")).expect("pulled") == bytes);

    // The same bytes again, beside a new file: nothing kept, all deduped.
    let session_b = session(&reg, "dcp-b");
    let r = stage(&reg, &session_b, "run/model.ckpt", bytes.clone());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["new_chunks"], 0, "{}", r.stdout);
    std::fs::write(session_b.join("run/notes.txt"), b"second save").expect("notes");
    let (fb, sb) = (session_b.join("run"), session_b.clone());
    let second = reg
        .ok(&[
            "push",
            fb.to_str().expect("utf8"),
            "--staged",
            sb.to_str().expect("utf8"),
            "--json",
        ])
        .json();
    assert_eq!(second["created"], true, "{second}");
    assert_eq!(second["new_payloads"], 0, "{second}");
    reg.settle();
    let out2 = reg.work().join("back2");
    reg.ok(&["pull", "run@v2", "-o", out2.to_str().expect("utf8")]);
    assert!(std::fs::read(out2.join("model.ckpt")).expect("pulled") == bytes);
    reg.ok(&["verify"]);
}

/// A session outside the registry's staging folder, a path that escapes
/// it, a stream cut inside a big storage, and a staged folder whose
/// records do not match its files: one-line errors, the registry and the
/// session's records unchanged.
#[test]
fn bad_sessions_paths_and_streams_are_refused_in_one_line() {
    let reg = Reg::new();
    let bytes = reg.generated("6M");
    reg.push("lightning/mlp/epoch=00.ckpt", "run");
    reg.settle();
    let session = session(&reg, "dcp-bad");
    let elsewhere = reg.work().join("not-a-session");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    std::fs::write(elsewhere.join(".lock"), b"").expect("lock");
    let before = snapshot(&reg);
    let cases: Vec<(&str, &Path, &str, Vec<u8>, &str)> = vec![
        (
            "not a session",
            &elsewhere,
            "a.distcp",
            bytes.clone(),
            "is not a staging session",
        ),
        (
            "escaping path",
            &session,
            "../x.distcp",
            bytes.clone(),
            "is not a path a staging session can hold",
        ),
        (
            "its own records",
            &session,
            ".staged/x",
            bytes.clone(),
            "is not a path a staging session can hold",
        ),
        (
            "cut in a storage",
            &session,
            "c/a.distcp",
            bytes[..bytes.len() / 2].to_vec(),
            "the item at byte 0",
        ),
    ];
    for (what, s, rel, input, says) in cases {
        let r = stage(&reg, s, rel, input);
        assert_eq!(r.code, 1, "{what}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{what}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{what}: {}", r.stderr);
        assert_eq!(snapshot(&reg), before, "{what}: the registry changed");
    }
    assert!(!session.join("c/a.distcp").exists(), "a refused stream leaves no file");

    // Two torch zips one after another (as a DCP data file holds items),
    // pushed without the .metadata that locates them: the file is not the
    // checkpoint its records describe, and the push says so.
    let mut two = bytes.clone();
    two.extend_from_slice(&bytes);
    let r = stage(&reg, &session, "d/__0_0.distcp", two);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (f, s) = (session.join("d"), session.clone());
    let r = reg.run(&["push", f.to_str().expect("utf8"), "--staged", s.to_str().expect("utf8")]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("not where the checkpoint's own records put it"),
        "{}",
        r.stderr
    );
    // A folder that is not in the session it names.
    let other = reg.work().join("folder");
    copy_dir(&fixture("dirs/dcp/mlp/step=1"), &other);
    let r = reg.run(&[
        "push",
        other.to_str().expect("utf8"),
        "--staged",
        s.to_str().expect("utf8"),
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("is not in the staging session"), "{}", r.stderr);
    assert_eq!(
        reg.ok(&["log", "run", "--json"]).json().as_array().map(Vec::len),
        Some(1)
    );
}
