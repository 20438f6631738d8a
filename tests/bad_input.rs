use crate::common::{fixture, fixture_files, Reg};

#[test]
fn bad_files_are_refused_and_change_nothing() {
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=00.ckpt", "mlp");
    let ls = reg.ok(&["ls", "--json"]).stdout;
    let stats = reg.ok(&["stats", "--json"]).stdout;
    let blobs_before = list_files(&reg.home().join("blobs"));
    // Single hostile files; bad/dirs/ holds hostile directories, whose
    // files may each be fine on their own (tests/dirs.rs pushes them whole).
    let bad: Vec<String> = fixture_files(&["bad"])
        .into_iter()
        .filter(|f| !f.starts_with("bad/dirs/"))
        .collect();
    assert!(bad.len() >= 7, "{bad:?}");
    for rel in &bad {
        for name in [None, Some("mlp")] {
            let path = fixture(rel);
            let mut args = vec!["push", path.to_str().expect("utf8")];
            if let Some(n) = name {
                args.extend(["--name", n]);
            }
            let r = reg.run(&args);
            assert_ne!(r.code, 0, "{rel} was accepted");
            assert_eq!(r.code, 1, "{rel}: exit code");
            let lines: Vec<&str> = r.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{rel}: error is not one line: {}", r.stderr);
            assert!(lines[0].starts_with("reg: error: "), "{rel}: {}", r.stderr);
            assert!(r.stdout.is_empty(), "{rel}: printed {}", r.stdout);
        }
        assert_eq!(reg.ok(&["ls", "--json"]).stdout, ls, "{rel} changed ls");
        assert_eq!(reg.ok(&["stats", "--json"]).stdout, stats, "{rel} changed stats");
        assert_eq!(
            list_files(&reg.home().join("blobs")),
            blobs_before,
            "{rel} left blobs behind"
        );
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let reg = Reg::new();
    let cases = [
        ("bad/evil.pt", "os.system"),
        ("bad/bad_crc.ckpt", "crc"),
        ("bad/empty.ckpt", "empty"),
        ("bad/garbage.ckpt", "safetensors"),
        ("bad/truncated.ckpt", "zip"),
        ("bad/huge_header.safetensors", "header"),
        ("bad/short_data.safetensors", "w"),
    ];
    for (rel, needle) in cases {
        let r = reg.run(&["push", fixture(rel).to_str().expect("utf8")]);
        assert!(r.stderr.contains(needle), "{rel}: {:?} lacks {needle:?}", r.stderr);
    }
}

#[test]
fn evil_pickle_is_never_run() {
    // The pickle would `touch /tmp/reg-pwned` if executed by Python.
    let marker = std::path::Path::new("/tmp/reg-pwned");
    let existed = marker.exists();
    let reg = Reg::new();
    let r = reg.run(&["push", fixture("bad/evil.pt").to_str().expect("utf8")]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("os.system"), "{}", r.stderr);
    if !existed {
        assert!(!marker.exists(), "the evil pickle ran");
    }
}

#[test]
fn unreadable_paths_and_bad_refs_are_one_line_errors() {
    let reg = Reg::new();
    for args in [
        vec!["push", "/nonexistent/file.ckpt"],
        vec!["push", "/"],
        vec!["pull", "nothing"],
        vec!["pull", "bad@@ref"],
        vec!["show", "x@epoch=abc"],
        vec!["log", "missing"],
    ] {
        let r = reg.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    }
}

fn list_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}
