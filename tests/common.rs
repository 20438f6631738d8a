use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A fixture file by relative path.
pub fn fixture(rel: &str) -> PathBuf {
    fixtures().join(rel)
}

/// The expected JSON torch wrote for a fixture.
pub fn expected(rel: &str) -> Value {
    let path = fixtures().join("expected").join(format!("{rel}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every checkpoint fixture of a format, relative to the fixtures folder.
pub fn fixture_files(dirs: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for d in dirs {
        let mut stack = vec![fixtures().join(d)];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())) {
                let path = e.expect("dir entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(fixtures())
                        .expect("prefix")
                        .to_string_lossy()
                        .into_owned();
                    out.push(rel);
                }
            }
        }
    }
    out.sort();
    out
}

/// A scratch registry and working directory.
pub struct Reg {
    pub dir: tempfile::TempDir,
}

/// What a `reg` run returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.stdout))
    }
}

impl Reg {
    pub fn new() -> Reg {
        Reg {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("registry")
    }

    pub fn work(&self) -> PathBuf {
        let w = self.dir.path().join("work");
        std::fs::create_dir_all(&w).expect("work dir");
        w
    }

    /// Run reg with REG_HOME set to the scratch registry.
    pub fn run(&self, args: &[&str]) -> Run {
        let out: Output = Command::new(env!("CARGO_BIN_EXE_reg"))
            .args(args)
            .env("REG_HOME", self.home())
            .env_remove("NO_COLOR")
            .current_dir(self.work())
            .output()
            .expect("run reg");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run reg in the work directory without REG_HOME, so a registry.toml
    /// there (or in a parent) decides where the registry is.
    pub fn run_with_toml(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_reg"))
            .args(args)
            .env_remove("REG_HOME")
            .current_dir(self.work())
            .output()
            .expect("run reg")
    }

    /// Run and require success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "reg {args:?} failed: {}{}", r.stdout, r.stderr);
        r
    }

    /// Wait until the background re-encoding a push leaves has finished:
    /// `reg deltas` takes the same one-at-a-time lock (and finds nothing
    /// left to do). Tests that change registry files behind reg's back,
    /// or compare stored sizes, call this first.
    pub fn settle(&self) {
        self.ok(&["deltas"]);
    }

    /// Generate a checkpoint of `size` (`6M`) with big storages into the
    /// work folder as `gen.ckpt` (`reg bench generate`); returns its bytes.
    pub fn generated(&self, size: &str) -> Vec<u8> {
        let src = self.work().join("gen.ckpt");
        self.ok(&["bench", "generate", src.to_str().expect("utf8"), "--size", size]);
        std::fs::read(&src).expect("generated")
    }

    /// Push a fixture under a name.
    pub fn push(&self, rel: &str, name: &str) -> Run {
        let path = fixture(rel);
        self.ok(&["push", path.to_str().expect("utf8 path"), "--name", name, "--json"])
    }
}

/// Pull `version` into the work folder and require the bytes of fixture `rel`.
pub fn pulls_identical(reg: &Reg, version: &str, rel: &str) {
    let out = format!("pulled-{}", version.replace(['@', '/'], "-"));
    reg.ok(&["pull", version, "-o", &out, "--force"]);
    assert!(
        std::fs::read(reg.work().join(&out)).ok() == std::fs::read(fixture(rel)).ok(),
        "{version} is not byte-identical to {rel}"
    );
}

/// Copy a folder tree (a registry fixture into a scratch registry).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}
