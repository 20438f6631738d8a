//! Remotes belong to their registry (issue 17): kept in the registry's own
//! `config.toml` whichever way the registry was found; a `registry.toml`
//! declares remotes only for the registry it names; `reg remote add` and
//! the first push probe whether the server's creates are exclusive and
//! record it; on a server that ignores `If-None-Match`, concurrent pushes
//! still get distinct numbers and overwrite nothing.

use crate::common::{fixture, Reg};
use crate::remote::{add_s3_remote, ok, path_str, push_files, reg_cmd, run, MLP, PREFIX};
use crate::s3_server::{Creates, S3Server, BUCKET};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `reg ARGS` in `cwd`, finding the registry by `how`.
fn reg_in(cwd: &Path, how: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reg"));
    c.current_dir(cwd).env_remove("REG_HOME");
    let mut full: Vec<String> = Vec::new();
    for (way, path) in how {
        match *way {
            "REG_HOME" => {
                c.env("REG_HOME", path);
            }
            "--registry" => {
                full.push("--registry".into());
                full.push(path.display().to_string());
            }
            other => panic!("unknown way {other}"),
        }
    }
    full.extend(args.iter().map(|a| a.to_string()));
    c.args(&full).output().expect("run reg")
}

fn must(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names and URLs `reg remote ls --json` shows.
fn remotes_of(cwd: &Path, how: &[(&str, &Path)]) -> Vec<(String, String)> {
    let text = must(reg_in(cwd, how, &["remote", "ls", "--json"]), "remote ls");
    let v: Value = serde_json::from_str(&text).expect("json");
    v.as_array()
        .expect("list")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().expect("name").to_string(),
                r["url"].as_str().expect("url").to_string(),
            )
        })
        .collect()
}

#[test]
fn two_registries_used_from_one_working_directory_keep_their_own_remotes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let wd = tmp.path().join("wd");
    std::fs::create_dir_all(&wd).expect("wd");
    let (ra, rb, rc) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let url = |n: &str| format!("file://{}", tmp.path().join(format!("remote-{n}")).display());

    // REG_HOME, twice from one folder: each registry gets its own origin.
    must(
        reg_in(&wd, &[("REG_HOME", &ra)], &["remote", "add", "origin", &url("a")]),
        "add a",
    );
    must(
        reg_in(&wd, &[("REG_HOME", &rb)], &["remote", "add", "origin", &url("b")]),
        "add b",
    );
    // --registry works the same.
    must(
        reg_in(&wd, &[("--registry", &rc)], &["remote", "add", "origin", &url("c")]),
        "add c",
    );
    assert!(
        !wd.join("registry.toml").exists(),
        "remote add wrote into the working directory"
    );
    for (root, n) in [(&ra, "a"), (&rb, "b"), (&rc, "c")] {
        assert!(
            root.join("config.toml").is_file(),
            "{n}: no config.toml in the registry"
        );
        assert_eq!(
            remotes_of(&wd, &[("REG_HOME", root)]),
            vec![("origin".to_string(), url(n))]
        );
        assert_eq!(
            remotes_of(&wd, &[("--registry", root)]),
            vec![("origin".to_string(), url(n))]
        );
    }

    // A registry.toml here names registry d and declares a remote of it
    // (an existing setup): it counts for d, not for a.
    std::fs::write(
        wd.join("registry.toml"),
        format!(
            "[registry]\npath = \"d\"\n\n[remotes.legacy]\nurl = \"{}\"\n",
            url("legacy")
        ),
    )
    .expect("registry.toml");
    let found: Vec<(&str, &Path)> = Vec::new();
    assert_eq!(remotes_of(&wd, &found), vec![("legacy".to_string(), url("legacy"))]);
    assert_eq!(
        remotes_of(&wd, &[("REG_HOME", &ra)]),
        vec![("origin".to_string(), url("a"))]
    );
    // remote add through the registry.toml goes into d's own config.
    must(reg_in(&wd, &found, &["remote", "add", "origin", &url("d")]), "add d");
    assert!(wd.join("d/config.toml").is_file());
    let toml = std::fs::read_to_string(wd.join("registry.toml")).expect("registry.toml");
    assert!(!toml.contains("remote-d"), "the registry.toml was edited: {toml}");
    assert_eq!(
        remotes_of(&wd, &found),
        vec![("legacy".to_string(), url("legacy")), ("origin".to_string(), url("d"))]
    );
    // A name d knows already, from either file, is refused.
    let dup = reg_in(&wd, &found, &["remote", "add", "legacy", &url("x")]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("registry.toml"));

    // Each registry pushes to its own origin.
    let ckpt = fixture("lightning/mlp/epoch=00.ckpt");
    must(
        reg_in(
            &wd,
            &[("REG_HOME", &ra)],
            &["push", path_str(&ckpt), "--name", "mlp", "-q"],
        ),
        "push",
    );
    must(
        reg_in(&wd, &[("REG_HOME", &ra)], &["sync", "push", "origin"]),
        "sync push",
    );
    assert!(tmp.path().join("remote-a/versions/mlp/0000000001").is_file());
    assert!(!tmp.path().join("remote-b/versions").exists());

    // rm removes from the file that declares it.
    must(reg_in(&wd, &found, &["remote", "rm", "legacy"]), "rm legacy");
    let toml = std::fs::read_to_string(wd.join("registry.toml")).expect("registry.toml");
    assert!(!toml.contains("legacy"), "{toml}");
    must(reg_in(&wd, &[("REG_HOME", &rb)], &["remote", "rm", "origin"]), "rm b");
    assert!(remotes_of(&wd, &[("REG_HOME", &rb)]).is_empty());
    assert_eq!(remotes_of(&wd, &[("REG_HOME", &ra)]).len(), 1);
}

/// `probes` of a registry's own config.
fn recorded(reg: &Reg) -> String {
    std::fs::read_to_string(reg.home().join("config.toml")).unwrap_or_default()
}

const NOTE: &str = "does not make conditional creates exclusive";

#[test]
fn remote_add_probes_the_server_once_and_says_when_creates_are_not_exclusive() {
    let lax = S3Server::start_with(Creates::Ignored);
    let a = Reg::new();
    push_files(&a, "lightning/mlp", &MLP[..1], "mlp");
    let url = format!("s3://{BUCKET}/{PREFIX}");
    let added = run(
        &a,
        &[
            "remote",
            "add",
            "lax",
            &url,
            "--endpoint",
            &lax.endpoint(),
            "--allow-http",
        ],
    );
    assert_eq!(added.code, 0, "{}", added.stderr);
    assert_eq!(added.stderr.matches(NOTE).count(), 1, "{}", added.stderr);
    assert!(recorded(&a).contains("creates = \"not-exclusive\""), "{}", recorded(&a));
    // The probe key is gone.
    let top: BTreeSet<String> = crate::remote::list_names(&lax.object(PREFIX));
    assert!(top.iter().all(|n| !n.starts_with("reg-probe")), "{top:?}");
    // The push knows it already: it does not say it again.
    let sent = ok(&a, &["sync", "push", "lax", "--json"]).json();
    assert!(!sent["notes"].to_string().contains(NOTE), "{sent}");

    // A remote declared in registry.toml is probed by its first push,
    // which says it once.
    let b = Reg::new();
    push_files(&b, "lightning/mlp", &MLP[1..2], "mlp");
    std::fs::write(
        b.work().join("registry.toml"),
        format!(
            "[registry]\npath = \"{}\"\n\n[remotes.lax]\nurl = \"{url}\"\nendpoint = \"{}\"\nallow_http = true\n",
            b.home().display(),
            lax.endpoint()
        ),
    )
    .expect("registry.toml");
    let first = ok(&b, &["sync", "push", "lax", "--json"]).json();
    assert_eq!(first["notes"].to_string().matches(NOTE).count(), 1, "{first}");
    assert!(recorded(&b).contains("not-exclusive"), "{}", recorded(&b));
    push_files(&b, "lightning/mlp", &MLP[2..3], "mlp");
    let second = ok(&b, &["sync", "push", "lax", "--json"]).json();
    assert!(!second["notes"].to_string().contains(NOTE), "{second}");
    assert_eq!(lax.overwrites(), 0);

    // An exclusive server is recorded as such, and nothing is said.
    let strict = S3Server::start();
    let c = Reg::new();
    let added = run(
        &c,
        &[
            "remote",
            "add",
            "s",
            &url,
            "--endpoint",
            &strict.endpoint(),
            "--allow-http",
        ],
    );
    assert_eq!(added.code, 0, "{}", added.stderr);
    assert!(!added.stderr.contains(NOTE), "{}", added.stderr);
    assert!(recorded(&c).contains("creates = \"exclusive\""), "{}", recorded(&c));
}

#[test]
fn concurrent_pushes_to_a_server_that_ignores_if_none_match_get_distinct_numbers_and_overwrite_nothing() {
    let lax = S3Server::start_with(Creates::Ignored);
    let regs: Vec<Reg> = (0..4).map(|_| Reg::new()).collect();
    for (i, r) in regs.iter().enumerate() {
        push_files(r, "lightning/mlp", &MLP[i..i + 1], "mlp");
        add_s3_remote(r, "origin", &lax.endpoint());
        assert!(recorded(r).contains("not-exclusive"));
    }
    for round in 0..2 {
        if round == 1 {
            // A second round on top: two of them have a new file each (the
            // others push nothing new, at the same time).
            for (i, r) in regs.iter().enumerate().take(2) {
                let f = ["epoch=00.ckpt", "epoch=01.ckpt"][i];
                let path = fixture(&format!("lightning/mlp-finetune/{f}"));
                ok(r, &["push", path_str(&path), "--name", "mlp", "-q"]);
            }
        }
        let children: Vec<_> = regs
            .iter()
            .map(|r| {
                reg_cmd(r, &["sync", "push", "origin", "mlp", "--json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn push")
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().expect("wait");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    assert_eq!(lax.overwrites(), 0, "a version entry was overwritten");
    let log = ok(&regs[0], &["log", "mlp", "--remote", "origin", "--json"]).json();
    let entries = log.as_array().expect("log");
    let numbers: Vec<u64> = entries.iter().filter_map(|e| e["version"].as_u64()).collect();
    // Four epochs and the two fine-tune files: six distinct files.
    assert_eq!(numbers, (1..=6).collect::<Vec<u64>>(), "{log}");
    let ids: BTreeSet<String> = entries.iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(ids.len(), 6, "{log}");
    // Every remote version pulls whole, and together they are the six files.
    let pushed: BTreeSet<String> = MLP[..4]
        .iter()
        .map(|f| format!("lightning/mlp/{f}"))
        .chain(
            ["epoch=00.ckpt", "epoch=01.ckpt"]
                .iter()
                .map(|f| format!("lightning/mlp-finetune/{f}")),
        )
        .map(|rel| {
            blake3::hash(&std::fs::read(fixture(&rel)).expect("fixture"))
                .to_hex()
                .to_string()
        })
        .collect();
    let c = Reg::new();
    add_s3_remote(&c, "origin", &lax.endpoint());
    let mut pulled = BTreeSet::new();
    for e in entries {
        let v = e["version"].as_u64().expect("version");
        let out = c.work().join(format!("v{v}.ckpt"));
        ok(
            &c,
            &["pull", &format!("mlp@v{v}"), "--remote", "origin", "-o", path_str(&out)],
        );
        let got = std::fs::read(&out).expect("pulled");
        pulled.insert(blake3::hash(&got).to_hex().to_string());
    }
    assert_eq!(pulled, pushed);
    ok(&c, &["verify", "--full"]);
    // No lease is left behind.
    let leases = crate::remote::list_names(&lax.object(&format!("{PREFIX}/leases/mlp")));
    assert!(leases.is_empty(), "{leases:?}");
}
