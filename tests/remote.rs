//! Remotes against a real S3 server on loopback (s3s-fs, served inside
//! the test process: tests/s3_server.rs) and against a `file://`
//! directory. Nothing is skipped: the server needs nothing installed.

use crate::common::{fixture, Reg, Run};
use crate::s3_server::{S3Server, ACCESS_KEY, BUCKET, SECRET_KEY};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The remotes below live under this prefix of the bucket.
pub const PREFIX: &str = "team";

/// Where the server keeps an object of the remote.
pub fn remote_object(s3: &S3Server, key: &str) -> PathBuf {
    s3.object(&format!("{PREFIX}/{key}"))
}

/// Blob ids present on the server.
fn blobs(s3: &S3Server) -> BTreeSet<String> {
    list_names(&remote_object(s3, "blobs"))
}

pub fn list_names(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// `reg` in a scratch registry with the test server's credentials.
pub fn reg_cmd(reg: &Reg, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reg"));
    c.args(args)
        .env("REG_HOME", reg.home())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .current_dir(reg.work());
    c
}

pub fn run(reg: &Reg, args: &[&str]) -> Run {
    let out = reg_cmd(reg, args).output().expect("run reg");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn ok(reg: &Reg, args: &[&str]) -> Run {
    let r = run(reg, args);
    assert_eq!(r.code, 0, "reg {args:?} failed: {}{}", r.stdout, r.stderr);
    r
}

/// `reg remote add NAME s3://bucket/team --endpoint ... --allow-http`.
pub fn add_s3_remote(reg: &Reg, name: &str, endpoint: &str) {
    let url = format!("s3://{BUCKET}/{PREFIX}");
    ok(
        reg,
        &["remote", "add", name, &url, "--endpoint", endpoint, "--allow-http"],
    );
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

pub fn push_files(reg: &Reg, dir: &str, files: &[&str], name: &str) {
    let paths: Vec<PathBuf> = files.iter().map(|f| fixture(&format!("{dir}/{f}"))).collect();
    let mut args = vec!["push", "--name", name, "-q"];
    args.extend(paths.iter().map(|p| path_str(p)));
    ok(reg, &args);
}

pub const MLP: [&str; 5] = [
    "epoch=00.ckpt",
    "epoch=01.ckpt",
    "epoch=02.ckpt",
    "epoch=03.ckpt",
    "last.ckpt",
];

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// Payload blob ids of every version of a name (from `reg show --json`).
fn payload_blobs(reg: &Reg, name: &str) -> BTreeSet<String> {
    let log = ok(reg, &["log", name, "--json"]).json();
    let mut out = BTreeSet::new();
    for e in log.as_array().expect("log") {
        let r = format!("{name}@v{}", e["version"]);
        let shown = ok(reg, &["show", &r, "--json"]).json();
        for t in shown["tensors"].as_array().expect("tensors") {
            out.insert(t["blob"].as_str().expect("blob").to_string());
        }
    }
    out
}

#[test]
fn s3_push_series_pull_one_then_finetune_sends_only_new_blobs() {
    let s3 = S3Server::start();
    let a = Reg::new();
    push_files(&a, "lightning/mlp", &MLP, "mlp");
    add_s3_remote(&a, "origin", &s3.endpoint());
    let listed = ok(&a, &["remote", "ls", "--json"]).json();
    assert_eq!(listed[0]["name"], "origin");
    // Kept in the registry's own config, without the credentials.
    assert!(!a.work().join("registry.toml").exists());
    let toml = std::fs::read_to_string(a.home().join("config.toml")).expect("config.toml");
    assert!(toml.contains("[remotes.origin]"), "{toml}");
    assert!(!toml.contains(SECRET_KEY) && !toml.contains(ACCESS_KEY), "{toml}");
    assert!(
        toml.contains("creates = \"exclusive\""),
        "the probe's answer is recorded: {toml}"
    );

    let first = ok(&a, &["sync", "push", "origin", "mlp", "--json"]).json();
    let sent = count(&first, "blobs_transferred");
    assert!(sent > 0);
    assert_eq!(count(&first, "blobs_skipped"), 0);
    assert_eq!(blobs(&s3).len() as u64, sent, "the server holds exactly what was sent");
    // last.ckpt is byte-identical to epoch=03: four versions.
    assert_eq!(first["versions"].as_array().map(Vec::len), Some(4));
    let remote_ls = ok(&a, &["ls", "--remote", "origin", "--json"]).json();
    assert_eq!(remote_ls[0]["name"], "mlp");
    assert_eq!(remote_ls[0]["versions"], 4);
    let remote_log = ok(&a, &["log", "mlp", "--remote", "origin", "--json"]).json();
    assert_eq!(remote_log[2]["epoch"], 2);
    // Nothing travels twice.
    let again = ok(&a, &["sync", "push", "origin", "--json"]).json();
    assert_eq!(count(&again, "objects_transferred"), 0);

    // An empty registry pulls one version: byte-identical.
    let b = Reg::new();
    add_s3_remote(&b, "origin", &s3.endpoint());
    let out = b.work().join("e2.ckpt");
    ok(&b, &["pull", "mlp@epoch=2", "--remote", "origin", "-o", path_str(&out)]);
    let want = std::fs::read(fixture("lightning/mlp/epoch=02.ckpt")).expect("fixture");
    assert!(std::fs::read(&out).expect("pulled") == want, "pulled file differs");
    let b_log = ok(&b, &["log", "mlp", "--json"]).json();
    assert_eq!(b_log.as_array().map(Vec::len), Some(1));
    ok(&b, &["verify", "--full"]);

    // The fine-tune shares the frozen encoder: only the blobs the mlp
    // upload did not send travel (new payloads plus one skeleton each).
    let before = blobs(&s3);
    let mlp_payloads = payload_blobs(&a, "mlp");
    let ft: Vec<PathBuf> = ["epoch=00.ckpt", "epoch=01.ckpt"]
        .iter()
        .map(|f| fixture(&format!("lightning/mlp-finetune/{f}")))
        .collect();
    let pushed = ok(
        &a,
        &[
            "push",
            path_str(&ft[0]),
            path_str(&ft[1]),
            "--name",
            "mlp-finetune",
            "--remote",
            "origin",
            "--json",
        ],
    )
    .json();
    let remote = &pushed["remote"];
    let ft_payloads = payload_blobs(&a, "mlp-finetune");
    let new_payloads = ft_payloads.difference(&mlp_payloads).count() as u64;
    assert!(new_payloads < ft_payloads.len() as u64, "the fixture shares an encoder");
    assert_eq!(count(remote, "blobs_transferred"), new_payloads + 2);
    assert!(count(remote, "blobs_skipped") > 0);
    let after = blobs(&s3);
    assert_eq!((after.len() - before.len()) as u64, count(remote, "blobs_transferred"));
    assert!(before.is_subset(&after));
}

/// A TCP relay that forwards client bytes until `limit`, then holds every
/// connection without forwarding (a transfer stuck mid-way).
struct Stall {
    port: u16,
    forwarded: Arc<AtomicU64>,
    stalled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Stall {
    fn start(upstream: u16, limit: u64) -> Stall {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let forwarded = Arc::new(AtomicU64::new(0));
        let stalled = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s, st) = (forwarded.clone(), stalled.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_in, mut s_out) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                let (mut s_in, mut c_out) = (server, client);
                // server -> client, unthrottled
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                });
                let (f, s, st) = (f.clone(), s.clone(), st.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match c_in.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if f.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > limit {
                            s.store(true, Ordering::SeqCst);
                            while !st.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            return;
                        }
                        if s_out.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Stall {
            port,
            forwarded,
            stalled,
            stop,
        }
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn s3_push_killed_mid_way_resumes_sending_only_what_is_missing() {
    let s3 = S3Server::start();
    let a = Reg::new();
    push_files(&a, "lightning/mlp", &MLP, "mlp");
    let stats = a.ok(&["stats", "--json"]).json();
    let stored = count(&stats, "stored_bytes");
    // Let about half of the blob bytes through, then hold the connections.
    let relay = Stall::start(s3.port, stored / 2);
    add_s3_remote(&a, "origin", &s3.endpoint());
    add_s3_remote(&a, "slow", &format!("http://127.0.0.1:{}", relay.port));

    let mut child = reg_cmd(&a, &["sync", "push", "slow", "mlp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn push");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !relay.stalled.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the push never reached the stall point");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("push finished before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("kill push");
    let _ = child.wait();
    assert!(relay.forwarded.load(Ordering::SeqCst) > 0);
    drop(relay);

    let arrived = blobs(&s3);
    assert!(!arrived.is_empty(), "some blobs should have arrived before the kill");
    // Blobs go first and version entries last: the partial push is invisible.
    let listed = ok(&a, &["ls", "--remote", "origin", "--json"]).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    let rerun = ok(&a, &["sync", "push", "origin", "mlp", "--json"]).json();
    let all = blobs(&s3);
    assert!(arrived.len() < all.len(), "the kill came before the end");
    assert_eq!(count(&rerun, "blobs_skipped"), arrived.len() as u64);
    assert_eq!(count(&rerun, "blobs_transferred"), (all.len() - arrived.len()) as u64);
    assert_eq!(rerun["versions"].as_array().map(Vec::len), Some(4));

    let b = Reg::new();
    add_s3_remote(&b, "origin", &s3.endpoint());
    for (e, v) in [(0, 1), (3, 4)] {
        let out = b.work().join(format!("e{e}.ckpt"));
        ok(
            &b,
            &["pull", &format!("mlp@v{v}"), "--remote", "origin", "-o", path_str(&out)],
        );
        let want = std::fs::read(fixture(&format!("lightning/mlp/epoch=0{e}.ckpt"))).expect("fixture");
        assert!(std::fs::read(&out).expect("pulled") == want);
    }
}

#[test]
fn s3_concurrent_pushes_of_one_name_both_land() {
    let s3 = S3Server::start();
    let a = Reg::new();
    let b = Reg::new();
    push_files(&a, "lightning/mlp", &MLP[..2], "mlp");
    push_files(&b, "lightning/mlp", &MLP[2..4], "mlp");
    add_s3_remote(&a, "origin", &s3.endpoint());
    add_s3_remote(&b, "origin", &s3.endpoint());
    let spawn = |reg: &Reg| {
        reg_cmd(reg, &["sync", "push", "origin", "mlp", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn push")
    };
    let (ca, cb) = (spawn(&a), spawn(&b));
    for c in [ca, cb] {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let log = ok(&a, &["log", "mlp", "--remote", "origin", "--json"]).json();
    let entries = log.as_array().expect("log");
    let numbers: Vec<u64> = entries.iter().filter_map(|e| e["version"].as_u64()).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4], "four distinct versions: {log}");
    let epochs: BTreeSet<i64> = entries.iter().filter_map(|e| e["epoch"].as_i64()).collect();
    assert_eq!(epochs, BTreeSet::from([0, 1, 2, 3]));
    // Each lands intact.
    let c = Reg::new();
    add_s3_remote(&c, "origin", &s3.endpoint());
    for e in 0..4 {
        let out = c.work().join(format!("e{e}.ckpt"));
        ok(
            &c,
            &[
                "pull",
                &format!("mlp@epoch={e}"),
                "--remote",
                "origin",
                "-o",
                path_str(&out),
            ],
        );
        let want = std::fs::read(fixture(&format!("lightning/mlp/epoch=0{e}.ckpt"))).expect("fixture");
        assert!(std::fs::read(&out).expect("pulled") == want);
    }
}

#[test]
fn s3_corrupted_blob_is_detected_and_not_stored() {
    let s3 = S3Server::start();
    let a = Reg::new();
    push_files(&a, "lightning/mlp", &MLP[1..2], "mlp");
    add_s3_remote(&a, "origin", &s3.endpoint());
    ok(&a, &["sync", "push", "origin"]);
    let shown = a.ok(&["show", "mlp", "--json"]).json();
    let hex = shown["tensors"][2]["blob"].as_str().expect("blob").to_string();
    let path = remote_object(&s3, &format!("blobs/{hex}"));
    let mut bytes = std::fs::read(&path).expect("object file");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");

    let b = Reg::new();
    add_s3_remote(&b, "origin", &s3.endpoint());
    let out = b.work().join("out.ckpt");
    let r = run(&b, &["pull", "mlp@v1", "--remote", "origin", "-o", path_str(&out)]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("mlp@v1") && r.stderr.contains(&hex), "{}", r.stderr);
    assert!(!out.exists());
    let local = b.home().join("blobs").join(&hex[..2]).join(&hex[2..]);
    assert!(!local.exists(), "a damaged blob entered the local store");
    assert_eq!(list_names(&b.home().join("blobs/tmp")).len(), 0);
    let ls = b.ok(&["ls", "--json"]).json();
    assert_eq!(ls.as_array().map(Vec::len), Some(0));
}

/// A safetensors file with one incompressible f32 tensor of `len` bytes.
fn big_safetensors(path: &Path, len: usize) {
    let header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{len}]}}}}"#,
        len / 4
    );
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut data = Vec::with_capacity(8 + header.len() + len);
    data.extend_from_slice(&(header.len() as u64).to_le_bytes());
    data.extend_from_slice(&header);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    while data.len() < 8 + header.len() + len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes()[..4]);
    }
    std::fs::write(path, data).expect("write safetensors");
}

#[test]
fn s3_large_blob_goes_in_parts() {
    let s3 = S3Server::start();
    let a = Reg::new();
    let file = a.work().join("big.safetensors");
    big_safetensors(&file, 20 << 20);
    ok(&a, &["push", path_str(&file), "--name", "big", "-q"]);
    add_s3_remote(&a, "origin", &s3.endpoint());
    let sent = ok(&a, &["sync", "push", "origin", "big", "--json"]).json();
    assert_eq!(count(&sent, "multipart_blobs"), 1, "{sent}");
    let b = Reg::new();
    add_s3_remote(&b, "origin", &s3.endpoint());
    let out = b.work().join("big.safetensors");
    ok(&b, &["pull", "big", "--remote", "origin", "-o", path_str(&out)]);
    assert!(std::fs::read(&out).expect("pulled") == std::fs::read(&file).expect("file"));
}

#[test]
fn file_remote_round_trip_and_remote_config() {
    let a = Reg::new();
    push_files(&a, "lightning/mlp", &MLP[..3], "mlp");
    a.ok(&["tag", "mlp@v2", "candidate"]);
    let shared = a.dir.path().join("shared");
    let url = format!("file://{}", shared.display());
    ok(&a, &["remote", "add", "shared", &url]);
    let dup = run(&a, &["remote", "add", "shared", &url]);
    assert_eq!(dup.code, 1, "{}", dup.stderr);
    let bad = run(&a, &["remote", "add", "x", "ftp://nowhere"]);
    assert_eq!(bad.code, 1);
    let sent = ok(&a, &["sync", "push", "shared", "--json"]).json();
    assert!(count(&sent, "blobs_transferred") > 0);
    assert_eq!(sent["tags"][0], "mlp@candidate -> v2");
    assert!(shared.join("versions/mlp/0000000003").is_file());

    // A second registry pulls by tag (as `reg sync pull`), then as a file.
    let b = Reg::new();
    ok(&b, &["remote", "add", "shared", &url]);
    let got = ok(&b, &["sync", "pull", "shared", "mlp@candidate", "--json"]).json();
    assert_eq!(got["versions"][0]["local"], 1);
    assert_eq!(got["versions"][0]["remote"], 2);
    let out = b.work().join("c.ckpt");
    ok(&b, &["pull", "mlp@candidate", "-o", path_str(&out)]);
    let want = std::fs::read(fixture("lightning/mlp/epoch=01.ckpt")).expect("fixture");
    assert!(std::fs::read(&out).expect("pulled") == want);
    // Pushing it back adds nothing; a new local version gets the next remote number.
    push_files(&b, "lightning/mlp", &MLP[3..4], "mlp");
    let back = ok(&b, &["sync", "push", "shared", "mlp", "--json"]).json();
    let versions = back["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(
        (versions[0]["transferred"].as_bool(), versions[0]["remote"].as_u64()),
        (Some(false), Some(2))
    );
    assert_eq!(
        (versions[1]["transferred"].as_bool(), versions[1]["remote"].as_u64()),
        (Some(true), Some(4))
    );
    let text = ok(&b, &["log", "mlp", "--remote", "shared"]).stdout;
    assert!(text.contains("candidate"), "{text}");

    ok(&a, &["remote", "rm", "shared"]);
    let gone = run(&a, &["ls", "--remote", "shared"]);
    assert_eq!(gone.code, 1);
    assert!(gone.stderr.contains("no remote named"), "{}", gone.stderr);
}

#[test]
fn file_remote_moves_delta_chains_parents_first() {
    // In `a` the older versions are deltas against the newer ones.
    let a = Reg::new();
    push_files(&a, "lightning/mlp", &MLP[..4], "mlp");
    // The re-encoding runs in the background; no reader waits for it.
    a.settle();
    let shared = a.dir.path().join("shared");
    let url = format!("file://{}", shared.display());
    ok(&a, &["remote", "add", "shared", &url]);
    ok(&a, &["sync", "push", "shared", "mlp"]);
    assert!(ok(&a, &["stats", "--json"]).json()["codecs"]["delta"][0].as_u64() >= Some(3));

    // The oldest version alone: its blobs come with the parents they are
    // deltas against, and it pulls back byte-identical.
    let b = Reg::new();
    ok(&b, &["remote", "add", "shared", &url]);
    ok(&b, &["sync", "pull", "shared", "mlp@v1"]);
    let out = b.work().join("v1.ckpt");
    ok(&b, &["pull", "mlp@v1", "-o", path_str(&out)]);
    let want = std::fs::read(fixture("lightning/mlp/epoch=00.ckpt")).expect("fixture");
    assert!(std::fs::read(&out).expect("pulled") == want, "pulled file differs");
    ok(&b, &["verify", "--full"]);
    // gc keeps the parents that only a delta needs: they are not versions
    // here, so gc re-encodes the deltas whole, and v1 still pulls.
    ok(&b, &["gc"]);
    ok(&b, &["pull", "mlp@v1", "-o", path_str(&out), "--force"]);
    assert!(
        std::fs::read(&out).expect("pulled") == want,
        "pulled file differs after gc"
    );
    ok(&b, &["verify", "--full"]);
    // The rest of the run follows; everything pulls.
    for v in 2..=4 {
        ok(&b, &["sync", "pull", "shared", &format!("mlp@v{v}")]);
    }
    for (v, f) in MLP[..4].iter().enumerate() {
        let out = b.work().join(format!("p{v}.ckpt"));
        ok(&b, &["pull", &format!("mlp@epoch={v}"), "-o", path_str(&out)]);
        let want = std::fs::read(fixture(&format!("lightning/mlp/{f}"))).expect("fixture");
        assert!(std::fs::read(&out).expect("pulled") == want, "{f} differs");
    }
    ok(&b, &["verify", "--full"]);
}

#[cfg(unix)]
#[test]
fn sync_honours_wait_timeout_and_quiet() {
    // Issue 26: `reg sync` opened the registry with its own wait policy,
    // so --wait-timeout was ignored (it waited for ever) and waits were
    // printed under --quiet.
    use std::os::unix::io::AsRawFd;
    let reg = Reg::new();
    reg.push("lightning/mlp/epoch=00.ckpt", "mlp");
    let url = format!("file://{}", reg.dir.path().join("shared").display());
    // Another process's index session: hold the index lock.
    let lock = std::fs::File::options()
        .read(true)
        .write(true)
        .open(reg.home().join("lock"))
        .expect("index lock file");
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let started = std::time::Instant::now();
    let r = reg.run(&["--wait-timeout", "1", "--quiet", "sync", "push", &url]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("gave up after"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("reg: waiting"),
        "--quiet printed a wait: {}",
        r.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    drop(lock);
    reg.ok(&["sync", "push", &url]);
}

/// The tensor names of a safetensors header export (`--header-only -o -`).
fn header_keys(bytes: &[u8]) -> Vec<String> {
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + len]).expect("header JSON");
    let mut keys: Vec<String> = header
        .as_object()
        .expect("object")
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Blob files in a registry (temp files aside).
fn local_blobs(reg: &Reg) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for shard in std::fs::read_dir(reg.home().join("blobs")).expect("blobs").flatten() {
        if shard.file_name() == "tmp" || !shard.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(shard.path()).expect("shard").flatten() {
            out.insert(f.path());
        }
    }
    out
}

/// `pull REF --remote R --tensors GLOB --format safetensors` reads only
/// what the export needs from the remote (the skeleton, those tensors'
/// blobs and their delta parents): the output is what the registry that
/// pushed would export, the local registry gets no version, and most of
/// the version's blobs never move. Also for `--header-only` (no tensor
/// blob) and for a directory version; a glob that matches nothing is a
/// one-line error naming it.
#[test]
fn partial_pull_from_a_remote_moves_only_the_chosen_tensors() {
    let s3 = S3Server::start();
    let a = Reg::new();
    push_files(&a, "lightning/mlp", &MLP[..3], "mlp");
    a.settle(); // v1 and v2 become deltas against the next version
    let dir = fixture("dirs/hf-trainer/tiny-bert/checkpoint-8");
    ok(&a, &["push", path_str(&dir), "--name", "bert", "-q"]);
    add_s3_remote(&a, "team", &s3.endpoint());
    ok(&a, &["sync", "push", "team", "-q"]);

    let b = Reg::new();
    add_s3_remote(&b, "team", &s3.endpoint());
    for version in ["mlp@v1", "bert@v1"] {
        let header = |reg: &Reg, remote: bool| {
            let mut args = vec!["pull", version, "--format", "safetensors", "--header-only", "-o", "-"];
            if remote {
                args.extend(["--remote", "team"]);
            }
            reg_cmd(reg, &args).output().expect("run").stdout
        };
        let theirs = header(&b, true);
        assert_eq!(theirs, header(&a, false), "{version}: header read through the remote");
        let keys = header_keys(&theirs);
        assert!(keys.len() >= 3, "{version}: {keys:?}");
        let chosen = keys[keys.len() / 2].clone();
        let before = local_blobs(&b).len();
        let export = |reg: &Reg, remote: bool| {
            let mut args = vec![
                "pull",
                version,
                "--format",
                "safetensors",
                "--tensors",
                &chosen,
                "-o",
                "-",
            ];
            if remote {
                args.extend(["--remote", "team"]);
            }
            let out = reg_cmd(reg, &args).output().expect("run");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
        };
        let (got, said) = export(&b, true);
        assert_eq!(
            got,
            export(&a, false).0,
            "{version} {chosen}: what the remote's reader wrote"
        );
        assert!(said.contains("from remote team"), "{said}");
        let all = ok(&a, &["show", version, "--json"]).json();
        let stored = all["blobs"]
            .as_u64()
            .or_else(|| all["tensors"].as_array().map(|t| t.len() as u64));
        let moved = local_blobs(&b).len() - before;
        assert!(moved >= 1, "{version}: nothing was fetched");
        assert!(
            (moved as u64) < stored.unwrap_or(u64::MAX),
            "{version}: {moved} blobs moved for one tensor of {stored:?}"
        );
    }
    // b holds no version: only blobs, which gc frees.
    assert_eq!(ok(&b, &["ls", "--json"]).json(), serde_json::json!([]));
    let r = run(
        &b,
        &[
            "pull",
            "mlp@v2",
            "--remote",
            "team",
            "--format",
            "safetensors",
            "--tensors",
            "nope*",
            "-o",
            "-",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("nope*"), "{}", r.stderr);
    ok(&b, &["gc"]);
    assert!(local_blobs(&b).is_empty(), "gc frees what a partial read fetched");
}
