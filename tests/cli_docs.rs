//! The man pages and shell completions the wheel installs
//! (python/wheel-data) are what `reg manpage` and `reg completions` make
//! now (issue 25): a flag added without regenerating them fails here.
//!
//! Regenerate from the repository root:
//!
//! ```sh
//! d=python/wheel-data/data/share
//! reg completions bash > $d/bash-completion/completions/reg
//! reg completions zsh > $d/zsh/site-functions/_reg
//! reg completions fish > $d/fish/vendor_completions.d/reg.fish
//! rm $d/man/man1/*.1 && reg manpage --dir $d/man/man1
//! ```

use crate::common::Reg;
use std::path::PathBuf;

fn shipped(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../python/wheel-data/data/share")
        .join(rel)
}

#[test]
fn shipped_completions_are_what_reg_prints() {
    let reg = Reg::new();
    for (shell, rel) in [
        ("bash", "bash-completion/completions/reg"),
        ("zsh", "zsh/site-functions/_reg"),
        ("fish", "fish/vendor_completions.d/reg.fish"),
    ] {
        let out = reg.ok(&["completions", shell]).stdout;
        assert!(
            out.contains("push") && out.contains("registry") && out.contains("wait-timeout"),
            "{shell}: {out}"
        );
        let file = std::fs::read_to_string(shipped(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(
            file == out,
            "{rel} is out of date: regenerate it (see tests/cli_docs.rs)"
        );
    }
    let r = reg.run(&["completions", "tcsh"]);
    assert_eq!(r.code, 1, "an unknown shell is a usage error");
}

#[test]
fn shipped_man_pages_are_what_reg_writes_one_per_command() {
    let reg = Reg::new();
    let dir = reg.work().join("man");
    reg.ok(&["manpage", "--dir", dir.to_str().expect("utf8")]);
    let mut made: Vec<String> = std::fs::read_dir(&dir)
        .expect("man dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert!(
        made.contains(&"reg.1".to_string()) && made.contains(&"reg-push.1".to_string()),
        "{made:?}"
    );
    let mut shipped_pages: Vec<String> = std::fs::read_dir(shipped("man/man1"))
        .expect("shipped man pages")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    shipped_pages.sort();
    assert_eq!(made, shipped_pages, "regenerate the man pages (see tests/cli_docs.rs)");
    for page in &made {
        let ours = std::fs::read(dir.join(page)).expect("made page");
        let theirs = std::fs::read(shipped(&format!("man/man1/{page}"))).expect("shipped page");
        assert!(ours == theirs, "{page} is out of date: regenerate it");
    }
    let printed = reg.ok(&["manpage"]).stdout;
    assert!(printed.starts_with(".ie") && printed.contains(".TH reg 1"), "{printed}");
    // It works where no registry can be opened.
    let broken = std::process::Command::new(env!("CARGO_BIN_EXE_reg"))
        .args(["--registry", "/dev/null/nowhere", "completions", "bash"])
        .output()
        .expect("run reg");
    assert!(broken.status.success());
}
