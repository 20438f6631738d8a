//! Trust boundaries (issue 19): what comes from a remote, a failing disk
//! or the index is checked before use. Each test is named after the
//! defect it pins: on the code before the fix it wrote outside the working
//! directory, panicked, deleted a needed blob or read damage as data.

use crate::common::{fixture, Reg};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// Every file below `dir`, relative, sorted.
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

/// A file:// remote holding mlp@v1, and its folder.
fn remote_with_one_version(a: &Reg) -> (String, PathBuf) {
    let shared = a.dir.path().join("shared");
    let url = format!("file://{}", shared.display());
    a.push("lightning/mlp/epoch=00.ckpt", "mlp");
    a.ok(&["sync", "push", &url]);
    (url, shared)
}

/// Rewrite the remote's mlp@v1 with `edit` applied to its manifest: the
/// manifest is stored under its new hash and the version entry points at
/// it, as a hostile bucket could.
fn tamper_manifest(shared: &Path, edit: impl Fn(&mut Value)) {
    let entry_path = shared.join("versions/mlp/0000000001");
    let mut entry: Value = serde_json::from_slice(&std::fs::read(&entry_path).expect("entry")).expect("entry json");
    let old_id = entry["id"].as_str().expect("id").to_string();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(shared.join("manifests").join(&old_id)).expect("manifest"))
            .expect("manifest json");
    edit(&mut manifest);
    let bytes = serde_json::to_vec(&manifest).expect("encode");
    let new_id = blake3::hash(&bytes).to_hex().to_string();
    std::fs::write(shared.join("manifests").join(&new_id), &bytes).expect("write manifest");
    entry["id"] = Value::String(new_id);
    std::fs::write(&entry_path, serde_json::to_vec(&entry).expect("encode")).expect("write entry");
}

#[test]
fn remote_manifest_source_cannot_make_pull_write_outside_the_working_directory() {
    let abs = std::env::temp_dir().join(format!("reg-escape-{}.ckpt", std::process::id()));
    let sources = ["../escaped.ckpt", path_str(&abs), "a/b.ckpt", "", "a\u{0}b.ckpt", ".."];
    for source in sources {
        let a = Reg::new();
        let (url, shared) = remote_with_one_version(&a);
        tamper_manifest(&shared, |m| m["source"] = Value::String(source.to_string()));

        let b = Reg::new();
        let wd = b.dir.path().join("wd");
        let sub = wd.join("sub");
        std::fs::create_dir_all(&sub).expect("sub");
        let before = tree(b.dir.path());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_reg"))
            .args(["pull", "mlp", "--remote", &url])
            .env("REG_HOME", b.home())
            .current_dir(&sub)
            .output()
            .expect("run reg");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "source {source:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "source {source:?}: {stderr}");
        assert!(stderr.contains("source"), "source {source:?}: {stderr}");
        assert!(!abs.exists(), "source {source:?} wrote {}", abs.display());
        let after: BTreeSet<PathBuf> = tree(b.dir.path())
            .into_iter()
            .filter(|p| !p.starts_with("registry"))
            .collect();
        let before: BTreeSet<PathBuf> = before.into_iter().filter(|p| !p.starts_with("registry")).collect();
        assert_eq!(after, before, "source {source:?} wrote a file");
        let ls = b.ok(&["ls", "--json"]).json();
        assert_eq!(
            ls,
            serde_json::json!([]),
            "source {source:?}: the local registry changed"
        );
    }
}

#[test]
fn remote_log_with_a_short_or_non_ascii_id_is_an_error_not_a_panic() {
    for id in ["abc", &"é".repeat(32), &"zz".repeat(32), ""] {
        let a = Reg::new();
        let (url, shared) = remote_with_one_version(&a);
        let entry_path = shared.join("versions/mlp/0000000001");
        let mut entry: Value = serde_json::from_slice(&std::fs::read(&entry_path).expect("entry")).expect("json");
        entry["id"] = Value::String(id.to_string());
        std::fs::write(&entry_path, serde_json::to_vec(&entry).expect("encode")).expect("write");
        for args in [
            vec!["log", "mlp", "--remote", &url],
            vec!["pull", "mlp", "--remote", &url],
        ] {
            let r = a.run(&args);
            assert_eq!(r.code, 2, "{args:?} with id {id:?}: {}", r.stderr);
            assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        }
    }
}

/// The blob files of the registry, by id.
fn blob_files(reg: &Reg) -> BTreeSet<String> {
    let root = reg.home().join("blobs");
    tree(&root)
        .into_iter()
        .filter(|p| p.components().count() == 2 && !p.starts_with("tmp"))
        .map(|p| p.to_string_lossy().replace('/', ""))
        .collect()
}

#[test]
fn gc_with_an_unreadable_blob_header_keeps_every_blob_and_exits_2() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=00.ckpt", "mlp");
    reg.push("lightning/mlp/epoch=01.ckpt", "mlp");
    reg.ok(&["deltas", "mlp"]);
    // v1's changed tensors are deltas against v2's; without v2 those
    // parents are named by no version, and only v1's deltas keep them.
    let show = reg.ok(&["show", "mlp@v1", "--json"]).json();
    assert!(show["stored"]["deltas"].as_u64().unwrap_or(0) > 0, "no deltas: {show}");
    reg.ok(&["rm", "mlp@v2"]);
    let delta = show["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| t["blob"].as_str().expect("blob").to_string())
        .find(|b| {
            let path = reg.home().join("blobs").join(&b[..2]).join(&b[2..]);
            // Byte 5 of a blob file is its codec tag; 3 is a delta
            // (docs/format.md).
            std::fs::read(&path).is_ok_and(|bytes| bytes.get(5) == Some(&3))
        })
        .expect("a delta blob of v1");
    let path = reg.home().join("blobs").join(&delta[..2]).join(&delta[2..]);
    let saved = std::fs::read(&path).expect("blob");
    // An unreadable blob file: the path is a directory now (reading it
    // fails with EISDIR for any user, root included).
    std::fs::remove_file(&path).expect("remove");
    std::fs::create_dir(&path).expect("dir in its place");
    let before = blob_files(&reg);

    let r = reg.run(&["gc"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("before deleting anything"), "{}", r.stderr);
    assert!(r.stderr.contains(&delta), "{}", r.stderr);
    assert_eq!(blob_files(&reg), before, "gc deleted blobs after a read error");
    let dry = reg.run(&["gc", "--dry-run"]);
    assert_eq!(dry.code, 2, "{}", dry.stderr);

    // With the blob readable again, gc re-encodes it and v1 pulls whole.
    std::fs::remove_dir(&path).expect("rmdir");
    std::fs::write(&path, &saved).expect("restore");
    let dry = reg.ok(&["gc", "--dry-run", "--json"]).json();
    assert!(
        dry["kept_by_reason"]["named by a version"].as_u64().unwrap_or(0) > 0,
        "{dry}"
    );
    reg.ok(&["gc"]);
    let out = reg.work().join("v1.ckpt");
    reg.ok(&["pull", "mlp@v1", "-o", path_str(&out)]);
    let want = std::fs::read(fixture("lightning/mlp/epoch=00.ckpt")).expect("fixture");
    assert!(std::fs::read(&out).expect("pulled") == want);
    reg.ok(&["verify", "--full"]);
}

#[test]
fn a_malformed_tag_value_in_the_index_is_damage_not_version_0() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=00.ckpt", "mlp");
    reg.ok(&["tag", "mlp@v1", "good"]);
    reg.settle();
    {
        let db = sled::open(reg.home().join("index")).expect("open index");
        let tags = db.open_tree("tags").expect("tags tree");
        tags.insert(b"mlp\0broken", &[1u8, 2, 3][..]).expect("insert");
        db.flush().expect("flush");
    }
    for args in [["log", "mlp"], ["show", "mlp@good"]] {
        let r = reg.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("broken"), "{}", r.stderr);
    }
}

#[cfg(unix)]
#[test]
fn pulled_files_get_the_umask_mode_and_keep_the_executable_bit() {
    use std::os::unix::fs::PermissionsExt;
    let reg = Reg::new();
    let exe = reg.work().join("run.ckpt");
    std::fs::copy(fixture("lightning/mlp/epoch=00.ckpt"), &exe).expect("copy");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    reg.ok(&["push", path_str(&exe), "--name", "exe"]);
    reg.push("lightning/mlp/epoch=01.ckpt", "plain");
    // The test process's umask is what reg sees; a new file from cp gets
    // 0666 / 0777 less it.
    let probe = reg.work().join("probe");
    std::fs::write(&probe, b"x").expect("probe");
    let umask = !std::fs::metadata(&probe).expect("probe").permissions().mode() & 0o666;
    let plain = reg.work().join("plain.ckpt");
    reg.ok(&["pull", "plain", "-o", path_str(&plain)]);
    let mode = std::fs::metadata(&plain).expect("plain").permissions().mode() & 0o777;
    assert_eq!(mode, 0o666 & !umask, "plain file mode {mode:o}");
    let exe_out = reg.work().join("exe-out.ckpt");
    reg.ok(&["pull", "exe", "-o", path_str(&exe_out)]);
    let mode = std::fs::metadata(&exe_out).expect("exe").permissions().mode() & 0o777;
    assert_eq!(mode, 0o777 & !umask, "executable file mode {mode:o}");
}

#[test]
fn a_tag_that_looks_like_a_version_id_is_refused_and_ids_stay_permalinks() {
    let reg = Reg::new();
    for e in 0..3 {
        reg.push(&format!("lightning/mlp/epoch=0{e}.ckpt"), "mon");
    }
    let v1 = reg.ok(&["show", "mon@v1", "--json"]).json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    for tag in [&v1[..12], v1.as_str(), "DEADBEEF", "abcdef"] {
        let r = reg.run(&["tag", "mon@v3", tag]);
        assert_eq!(r.code, 1, "tag {tag}: {}", r.stderr);
        assert!(r.stderr.contains("may not look like a version id"), "{}", r.stderr);
        let file = fixture("lightning/mlp/epoch=03.ckpt");
        let r = reg.run(&["push", file.to_str().expect("utf8"), "--name", "mon", "--tag", tag]);
        assert_eq!(r.code, 1, "push --tag {tag}: {}", r.stderr);
    }
    assert_eq!(
        reg.ok(&["show", &format!("mon@{}", &v1[..12]), "--json"]).json()["version"],
        1
    );
    // Words that are no id are tags as before.
    reg.ok(&["tag", "mon@v3", "cafe"]);
    reg.ok(&["tag", "mon@v2", "run-2b"]);
    assert_eq!(reg.ok(&["show", "mon@cafe", "--json"]).json()["version"], 3);
}

#[cfg(unix)]
#[test]
fn pushing_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer() {
    let reg = Reg::new();
    let fifo = reg.work().join("pipe.ckpt");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let started = std::time::Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_reg"))
        .args(["push", path_str(&fifo)])
        .env("REG_HOME", reg.home())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run reg");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("reg push of a FIFO is still waiting after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("stderr");
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn a_blob_replaced_by_a_folder_is_damage_exit_2() {
    let reg = Reg::new();
    reg.push("safetensors/mlp.safetensors", "m");
    let show = reg.ok(&["show", "m", "--json"]).json();
    let blob = show["tensors"][0]["blob"].as_str().expect("blob").to_string();
    let path = reg.home().join("blobs").join(&blob[..2]).join(&blob[2..]);
    std::fs::remove_file(&path).expect("rm blob");
    std::fs::create_dir(&path).expect("folder in its place");
    let r = reg.run(&["pull", "m", "-o", "out.safetensors"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    assert!(!reg.work().join("out.safetensors").exists());
}

#[test]
fn control_characters_in_names_and_refused_files_are_escaped_on_the_terminal() {
    let reg = Reg::new();
    // A file name with ESC and CR, refused (not a checkpoint): the error
    // line shows them escaped.
    let bad = reg.work().join("evil\u{1b}[2J\rname.ckpt");
    std::fs::write(&bad, b"not a checkpoint").expect("write");
    let r = reg.run(&["push", path_str(&bad)]);
    assert_eq!(r.code, 1);
    assert!(
        !r.stderr.contains('\u{1b}') && !r.stderr.contains('\r'),
        "{:?}",
        r.stderr
    );
    assert!(r.stderr.contains("\\x1b[2J\\x0dname.ckpt"), "{:?}", r.stderr);
    // A tag with them is refused the same way.
    reg.push("safetensors/mlp.safetensors", "m");
    let r = reg.run(&["tag", "m@v1", "a\u{1b}]0;pwned\u{7}b"]);
    assert_ne!(r.code, 0);
    assert!(
        !r.stderr.contains('\u{1b}') && !r.stderr.contains('\u{7}'),
        "{:?}",
        r.stderr
    );
}
