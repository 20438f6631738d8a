//! `reg serve` on a free loopback port: every route, the JSON twins against
//! the CLI's `--json` byte for byte, downloads (ranges, HEAD, exports),
//! 405 and 404s, hostile URLs, and pushes landing while 32 clients ask;
//! the Host rule (DNS rebinding), security headers, slow clients, and
//! what it says on stderr while it waits.
//!
//! The client is a raw `TcpStream`, so malformed requests (bad UTF-8, NUL,
//! other methods) go out exactly as written.

use crate::common::{fixture, Reg};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `reg serve --port 0`, killed when dropped.
struct Served {
    child: Child,
    addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the server on the scratch registry; its first stdout line names
/// the address (`reg serve: http://127.0.0.1:PORT/ ...`).
fn serve(reg: &Reg) -> Served {
    serve_with(reg, &[], Stdio::inherit())
}

/// [`serve`] with more arguments, its stderr going to `stderr`.
fn serve_with(reg: &Reg, args: &[&str], stderr: Stdio) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reg"))
        .args(["serve", "--port", "0"])
        .args(args)
        .env("REG_HOME", reg.home())
        .current_dir(reg.work())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start reg serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read the address line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Served {
        child,
        addr,
        _stdout: stdout,
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send `raw` as it is and read the answer to the end (`Connection: close`).
fn send(addr: SocketAddr, raw: &[u8], head: bool) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    s.write_all(raw).expect("send");
    let mut data = Vec::new();
    s.read_to_end(&mut data).expect("read answer");
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&data)));
    let head_text = String::from_utf8_lossy(&data[..end]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = Resp {
        status,
        headers,
        body: data[end + 4..].to_vec(),
    };
    if resp.header("transfer-encoding") == Some("chunked") {
        resp.body = dechunk(&resp.body);
    } else if let (Some(len), false) = (resp.header("content-length"), head) {
        let len: usize = len.parse().expect("content-length");
        assert_eq!(
            resp.body.len(),
            len,
            "body length vs Content-Length for {:?}",
            String::from_utf8_lossy(raw)
        );
    }
    resp
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).expect("hex").trim(), 16).expect("hex");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn request(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)]) -> Resp {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    send(addr, raw.as_bytes(), method == "HEAD")
}

/// A request with this Host header (none: no Host header at all).
fn request_for(addr: SocketAddr, method: &str, path: &str, host: Option<&str>) -> Resp {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    let raw = format!("{method} {path} HTTP/1.1\r\n{host}Connection: close\r\n\r\n");
    send(addr, raw.as_bytes(), method == "HEAD")
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[])
}

fn get_ok(addr: SocketAddr, path: &str) -> Resp {
    let r = get(addr, path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r
}

/// A registry with the Lightning fixture series pushed.
fn pushed() -> Reg {
    let reg = Reg::new();
    for series in ["mlp", "mlp-finetune", "monitored"] {
        let mut files: Vec<_> = std::fs::read_dir(fixture(&format!("lightning/{series}")))
            .expect("fixtures")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for f in files {
            reg.ok(&["push", f.to_str().expect("utf8"), "--name", series, "-q"]);
        }
    }
    reg.settle();
    reg
}

#[test]
fn every_page_and_the_json_twins() {
    let reg = pushed();
    let s = serve(&reg);
    // JSON twins: byte for byte what the CLI prints.
    let twins: &[(&str, &[&str])] = &[
        ("/api/ls", &["ls", "--json"]),
        ("/api/log/mlp", &["log", "mlp", "--json"]),
        ("/api/log/monitored", &["log", "monitored", "--json"]),
        ("/api/show/mlp@v2", &["show", "mlp@v2", "--json"]),
        ("/api/show/mlp", &["show", "mlp", "--json"]),
        ("/api/show/mlp@epoch=1", &["show", "mlp@epoch=1", "--json"]),
        ("/api/show/monitored@best", &["show", "monitored@best", "--json"]),
        (
            "/api/diff?a=mlp@v1&b=mlp@v3",
            &["diff", "mlp@v1", "mlp@v3", "--stats", "--json"],
        ),
        (
            "/api/diff?a=mlp@latest&b=mlp-finetune%40v2",
            &["diff", "mlp@latest", "mlp-finetune@v2", "--stats", "--json"],
        ),
    ];
    for (path, args) in twins {
        let r = get_ok(s.addr, path);
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        let cli = reg.ok(args);
        assert!(
            r.text() == cli.stdout,
            "{path} differs from reg {args:?}:\n{}\nvs\n{}",
            r.text(),
            cli.stdout
        );
    }

    let index = get_ok(s.addr, "/").text();
    for name in ["mlp", "mlp-finetune", "monitored"] {
        assert!(index.contains(&format!("href=\"/m/{name}\"")), "index lacks {name}");
    }
    assert!(index.contains("<time datetime="), "times are <time> elements");

    // Model pages: the bytes plot always, the score plot where scores are.
    let monitored = get_ok(s.addr, "/m/monitored").text();
    assert!(monitored.contains("<svg class=\"plot line\""), "no score plot");
    assert!(monitored.contains("<svg class=\"plot bars\""), "no bytes plot");
    let show: serde_json::Value =
        serde_json::from_str(&reg.ok(&["show", "monitored@best", "--json"]).stdout).expect("json");
    let best = format!("v{}", show["version"]);
    assert!(monitored.contains("class=\"point best\""), "best point not marked");
    assert!(monitored.contains(&format!("href=\"/m/monitored/{best}\"")));
    let mlp = get_ok(s.addr, "/m/mlp").text();
    assert!(mlp.contains("action=\"/diff\""), "no diff form");
    assert!(mlp.contains("href=\"/diff?a=mlp@v1&amp;b=mlp@v2\""), "no diff link");

    // A version page lists every tensor and links its downloads.
    let v2: serde_json::Value = serde_json::from_str(&reg.ok(&["show", "mlp@v2", "--json"]).stdout).expect("json");
    for path in [
        "/m/mlp/v2",
        &format!("/m/mlp/{}", &v2["id"].as_str().expect("id")[..12]),
    ] {
        let page = get_ok(s.addr, path).text();
        for t in v2["tensors"].as_array().expect("tensors") {
            let p = t["path"].as_str().expect("path");
            let escaped = p
                .replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            assert!(page.contains(&escaped), "{path} lacks tensor {p}");
        }
        assert!(page.contains("href=\"/pull/mlp@v2\""), "no download link");
        assert!(page.contains("href=\"/pull/mlp@v2?format=safetensors\""));
    }
    assert_eq!(get(s.addr, "/m/mlp/epoch=1").status, 200);

    // The diff page draws the tensor changes, identical ones marked.
    let diff = get_ok(s.addr, "/diff?a=mlp@v1&b=mlp@v3").text();
    assert!(diff.contains("<svg class=\"plot changes\""), "no tensor-change plot");
    let json: serde_json::Value =
        serde_json::from_str(&reg.ok(&["diff", "mlp@v1", "mlp@v3", "--stats", "--json"]).stdout).expect("json");
    if !json["tensors"]["identical"].as_array().expect("identical").is_empty() {
        assert!(diff.contains("class=\"same\""), "identical tensors not marked");
    }
    let changed = json["tensors"]["changed"].as_array().expect("changed");
    assert!(!changed.is_empty());
    let bars = diff.matches("class=\"change ").count();
    let with_rel = changed.iter().filter(|c| c["rel_l2"].is_number()).count();
    assert_eq!(bars, with_rel, "one bar per changed tensor with a relative change");

    // Static files, and HEAD on pages.
    let css = get_ok(s.addr, "/static/reg.css");
    assert!(css.text().contains("prefers-color-scheme: dark"));
    assert!(get_ok(s.addr, "/static/reg.js").text().contains("datetime"));
    let head = request(s.addr, "HEAD", "/m/mlp", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body");
}

#[test]
fn downloads_are_byte_identical_with_ranges() {
    let reg = pushed();
    let s = serve(&reg);
    let file = std::fs::read(fixture("lightning/mlp/epoch=01.ckpt")).expect("fixture");
    let size = file.len();
    let show: serde_json::Value = serde_json::from_str(&reg.ok(&["show", "mlp@v2", "--json"]).stdout).expect("json");
    let etag = format!("\"{}\"", show["id"].as_str().expect("id"));

    let r = get_ok(s.addr, "/pull/mlp@v2");
    assert!(r.body == file, "pull differs from the pushed file");
    assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r
        .header("content-disposition")
        .expect("disposition")
        .contains("filename=\"epoch=01.ckpt\""));

    let head = request(s.addr, "HEAD", "/pull/mlp@v2", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(size.to_string().as_str()));
    assert!(head.body.is_empty());

    // Ranges: ends, middles, suffixes, across pieces, open-ended.
    let mut cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=0-".into(), 0, size - 1),
        ("bytes=-1".into(), size - 1, size - 1),
        (format!("bytes=-{}", size + 10), 0, size - 1),
        (format!("bytes={}-{}", size - 5, size + 100), size - 5, size - 1),
    ];
    for start in (0..size).step_by(size / 13 + 1) {
        cases.push((
            format!("bytes={start}-{}", (start + 4097).min(size - 1)),
            start,
            (start + 4097).min(size - 1),
        ));
        cases.push((format!("bytes={start}-"), start, size - 1));
    }
    for (range, a, b) in &cases {
        let r = request(s.addr, "GET", "/pull/mlp@v2", &[("Range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{size}").as_str()),
            "{range}"
        );
        assert!(r.body == file[*a..=*b], "{range}: bytes differ");
    }
    let r = request(s.addr, "GET", "/pull/mlp@v2", &[("Range", &format!("bytes={size}-"))]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some(format!("bytes */{size}").as_str()));
    // A range of another version (If-Range mismatch) is answered whole.
    let r = request(
        s.addr,
        "GET",
        "/pull/mlp@v2",
        &[("Range", "bytes=0-9"), ("If-Range", "\"other\"")],
    );
    assert_eq!((r.status, r.body.len()), (200, size));
    let r = request(
        s.addr,
        "GET",
        "/pull/mlp@v2",
        &[("Range", "bytes=0-9"), ("If-Range", &etag)],
    );
    assert_eq!((r.status, r.body.len()), (206, 10));
    let r = request(s.addr, "GET", "/pull/mlp@v2", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    // Several ranges: the whole file.
    let r = request(s.addr, "GET", "/pull/mlp@v2", &[("Range", "bytes=0-1,5-6")]);
    assert!(r.status == 200 && r.body == file);

    // Exports equal what `reg pull` writes; ranges of them too.
    for (query, flag, out) in [
        ("format=safetensors", vec!["--format", "safetensors"], "s.safetensors"),
        ("weights_only=1", vec!["--weights-only"], "w.ckpt"),
    ] {
        let mut args = vec!["pull", "mlp@v2", "-o", out, "-q"];
        args.extend(flag);
        reg.ok(&args);
        let want = std::fs::read(reg.work().join(out)).expect("export");
        let r = get_ok(s.addr, &format!("/pull/mlp@v2?{query}"));
        assert!(r.body == want, "{query} differs from reg pull");
        let r = request(
            s.addr,
            "GET",
            &format!("/pull/mlp@v2?{query}"),
            &[("Range", "bytes=10-99")],
        );
        assert!(r.status == 206 && r.body == want[10..100], "{query} range");
    }
    for bad in [
        "/pull/mlp@v2?format=onnx",
        "/pull/mlp@v2?format=safetensors&weights_only=2",
        "/pull/mlp@v2?weights_only=maybe",
    ] {
        assert_eq!(get(s.addr, bad).status, 400, "{bad}");
    }
    // No export file is left behind in the registry.
    let left: Vec<_> = std::fs::read_dir(reg.home())
        .expect("registry")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".serve-export"))
        .collect();
    assert!(left.is_empty(), "export temp files left: {left:?}");
    // Directory-version paths answer 404 for a file version.
    assert_eq!(get(s.addr, "/pull/mlp@v2/model.safetensors").status, 404);
}

#[test]
fn methods_not_found_and_hostile_urls() {
    let reg = pushed();
    let s = serve(&reg);
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"] {
        for path in ["/", "/api/ls", "/pull/mlp@v1", "/nowhere"] {
            let r = request(s.addr, method, path, &[("Content-Length", "0")]);
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
    // 404s carry the CLI's one-line message.
    for (path, args) in [
        ("/api/log/nope", vec!["log", "nope"]),
        ("/api/show/mlp@v99", vec!["show", "mlp@v99"]),
        ("/api/show/mlp@nosuchtag", vec!["show", "mlp@nosuchtag"]),
        ("/pull/nope@v1", vec!["pull", "nope@v1"]),
        ("/m/mlp/v99", vec!["show", "mlp@v99"]),
        ("/m/nope", vec!["log", "nope"]),
        ("/api/diff?a=mlp@v1&b=mlp@v99", vec!["diff", "mlp@v1", "mlp@v99"]),
    ] {
        let r = get(s.addr, path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        let cli = reg.run(&args);
        assert_eq!(cli.code, 1);
        let message = cli
            .stderr
            .trim()
            .strip_prefix("reg: error: ")
            .expect("one-line error")
            .to_string();
        let escaped = message
            .replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(
            r.text().contains(&message) || r.text().contains(&escaped),
            "{path}: {:?} lacks {message:?}",
            r.text()
        );
        if path.starts_with("/api/") || path.starts_with("/pull/") {
            assert_eq!(r.text(), format!("{message}\n"), "{path}");
        }
    }
    let long = "a".repeat(3000);
    let hostile: Vec<String> = vec![
        "/m/%2e%2e/%2e%2e/etc/passwd".into(),
        "/m/%2e%2e%2f%2e%2e%2fetc%2fpasswd".into(),
        "/static/%2e%2e%2f%2e%2e%2fCargo.toml".into(),
        "/static/../../Cargo.toml".into(),
        "/pull/%2e%2e%2f%2e%2e%2fetc%2fpasswd".into(),
        "/pull/mlp@v1/%2e%2e/%2e%2e/%2e%2e/etc/passwd".into(),
        "/pull/mlp@v1/../../../../etc/passwd".into(),
        "/m/mlp%00".into(),
        "/api/log/%00".into(),
        "/api/show/mlp@v1%00".into(),
        "/m/%ff%fe".into(),
        "/api/show/%c3%28".into(),
        "/m/mlp/%ff".into(),
        "/diff?a=%ff&b=mlp".into(),
        "/diff".into(),
        "/api/diff?a=mlp@v1".into(),
        format!("/m/{long}"),
        format!("/api/show/{long}"),
        format!("/api/log/{long}"),
        format!("/pull/mlp@{long}"),
        format!("/diff?a={long}&b=mlp@v1"),
        format!("/static/{long}"),
        "/m/mlp/v1/extra".into(),
        "//etc/passwd".into(),
    ];
    for path in &hostile {
        let r = get(s.addr, path);
        assert!(r.status == 400 || r.status == 404, "{path}: {} {}", r.status, r.text());
        assert!(!r.text().contains("root:"), "{path} leaked a file");
    }
    // Malformed request lines never reach a handler.
    for raw in [
        b"GET /m/\xff\xfe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /m/a\x00b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        b"GARBAGE\r\n\r\n".to_vec(),
    ] {
        let r = send(s.addr, &raw, false);
        assert!(
            r.status == 400 || r.status == 404,
            "{:?}: {}",
            String::from_utf8_lossy(&raw),
            r.status
        );
    }
    // Request line and headers are 64 KiB at most: past it 431 (hyper's
    // read buffer alone let 100 KB through).
    let big = |n: usize| {
        format!(
            "GET /api/ls HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            s.addr,
            "a".repeat(n)
        )
    };
    assert_eq!(status_of_raw(s.addr, big(70 << 10).as_bytes()), Some(431));
    assert_eq!(status_of_raw(s.addr, big(60 << 10).as_bytes()), Some(200));
    // Still serving.
    get_ok(s.addr, "/api/ls");
}

/// The status of the answer to `raw`, read leniently: a server that
/// refuses a request may close before reading all of it (a reset then
/// ends the read).
fn status_of_raw(addr: SocketAddr, raw: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let _ = s.write_all(raw);
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&data);
    text.lines().next()?.split(' ').nth(1)?.parse().ok()
}

#[test]
fn pushes_land_while_serving_and_800_requests_are_answered() {
    let reg = Reg::new();
    reg.ok(&["init"]);
    let s = serve(&reg);
    let log_len = |name: &str| -> usize {
        let r = get(s.addr, &format!("/api/log/{name}"));
        if r.status != 200 {
            return 0;
        }
        serde_json::from_slice::<serde_json::Value>(&r.body)
            .expect("json")
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(get_ok(s.addr, "/api/ls").text(), "[]\n");
    let files: Vec<String> = ["epoch=00", "epoch=01", "epoch=02", "epoch=03"]
        .iter()
        .map(|e| {
            fixture(&format!("lightning/mlp/{e}.ckpt"))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // Each push is seen within a second of `reg push` returning.
    for (i, f) in files[..2].iter().enumerate() {
        reg.ok(&["push", f, "--name", "mlp", "-q"]);
        let pushed = Instant::now();
        while log_len("mlp") < i + 1 {
            assert!(
                pushed.elapsed() < Duration::from_secs(1),
                "v{} not visible after 1 s",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(get_ok(s.addr, "/m/mlp")
            .text()
            .contains(&format!("href=\"/m/mlp/v{}\"", i + 1)));
    }
    // 32 clients, 25 requests each, while more pushes land.
    let addr = s.addr;
    let home = reg.home();
    let pusher = {
        let files = files[2..].to_vec();
        let finetune: Vec<String> = ["epoch=00", "epoch=01"]
            .iter()
            .map(|e| {
                fixture(&format!("lightning/mlp-finetune/{e}.ckpt"))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        std::thread::spawn(move || {
            let mut pushed = 0;
            for (f, name) in files
                .iter()
                .map(|f| (f, "mlp"))
                .chain(finetune.iter().map(|f| (f, "ft")))
            {
                let out = Command::new(env!("CARGO_BIN_EXE_reg"))
                    .args(["push", f, "--name", name, "-q"])
                    .env("REG_HOME", &home)
                    .output()
                    .expect("push");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                pushed += 1;
            }
            pushed
        })
    };
    let paths = [
        "/",
        "/m/mlp",
        "/m/mlp/v1",
        "/api/ls",
        "/api/log/mlp",
        "/api/show/mlp@v2",
        "/diff?a=mlp@v1&b=mlp@v2",
        "/pull/mlp@v1",
        "/api/diff?a=mlp@v1&b=mlp@latest",
        "/static/reg.css",
    ];
    let started = Instant::now();
    let clients: Vec<_> = (0..32)
        .map(|c| {
            std::thread::spawn(move || {
                let mut answered = 0;
                for i in 0..25 {
                    let path = paths[(c + i) % paths.len()];
                    let r = get(addr, path);
                    assert_eq!(r.status, 200, "client {c} request {i} {path}: {}", r.text());
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let answered: usize = clients.into_iter().map(|c| c.join().expect("client")).sum();
    assert_eq!(answered, 800);
    assert_eq!(pusher.join().expect("pusher"), 4);
    eprintln!("800 requests in {:.1} s", started.elapsed().as_secs_f64());
    // Every push landed and shows.
    let deadline = Instant::now() + Duration::from_secs(5);
    while log_len("mlp") < 4 || log_len("ft") < 2 {
        assert!(Instant::now() < deadline, "pushes did not show");
        std::thread::sleep(Duration::from_millis(50));
    }
    let index = get_ok(s.addr, "/").text();
    assert!(index.contains("href=\"/m/ft\""));
    let r = get_ok(s.addr, "/pull/mlp@v4");
    assert!(r.body == std::fs::read(&files[3]).expect("fixture"));
}

#[test]
fn idle_and_slow_clients_do_not_stall_it() {
    let reg = pushed();
    let s = serve(&reg);
    // Connections that send nothing, and ones that send half a header.
    let idle: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(s.addr).expect("connect")).collect();
    let mut slow: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(s.addr).expect("connect")).collect();
    for c in &mut slow {
        c.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .expect("partial header");
    }
    let started = Instant::now();
    for path in ["/", "/m/mlp", "/pull/mlp@v1", "/api/ls"] {
        get_ok(s.addr, path);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answers waited behind idle clients"
    );
    // The server closes connections whose headers do not arrive (10 s).
    let mut c = TcpStream::connect(s.addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "an idle connection got data");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "idle connection kept {:?}",
        t.elapsed()
    );
    drop((idle, slow));
}

#[test]
fn other_bind_addresses_warn_before_anything_is_bound() {
    // A folder that is not a registry: reg stops before it binds, so the
    // test never listens beyond loopback, yet the warning has been printed.
    let reg = Reg::new();
    let not_a_registry = reg.work().join("not-a-registry");
    std::fs::create_dir_all(&not_a_registry).expect("dir");
    std::fs::write(not_a_registry.join("notes.txt"), "mine").expect("file");
    let dir = not_a_registry.to_str().expect("utf8");
    let r = reg.run(&["--registry", dir, "serve", "--bind", "0.0.0.0", "--port", "0"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("anyone who can reach this address can read"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("is not a reg registry"), "{}", r.stderr);
    let r = reg.run(&["--registry", dir, "serve", "--port", "0"]);
    assert_eq!(r.code, 1);
    assert!(
        !r.stderr.contains("anyone who can reach"),
        "loopback warned: {}",
        r.stderr
    );
}

#[test]
fn directory_versions_download_as_tar_and_file_by_file() {
    let reg = Reg::new();
    let dir = crate::common::fixture("dirs/hf-trainer/tiny-bert/checkpoint-8");
    reg.ok(&["push", dir.to_str().expect("utf8"), "--name", "tr"]);
    let s = serve(&reg);
    let page = get_ok(s.addr, "/m/tr/v1");
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(
        html.contains("optimizer.pt") && html.contains("hf-trainer"),
        "files card missing"
    );

    let tar_bytes = get_ok(s.addr, "/pull/tr@v1").body;
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut files = std::collections::BTreeMap::new();
    for e in archive.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut bytes).expect("read");
        files.insert(path, bytes);
    }
    assert_eq!(files.len(), 7);
    for (path, bytes) in &files {
        let want = std::fs::read(dir.join(path)).expect("fixture file");
        assert!(*bytes == want, "{path} differs in the tar");
        let one = get_ok(s.addr, &format!("/pull/tr@v1/{path}"));
        assert!(one.body == want, "{path} differs on its own");
    }
    let r = request(s.addr, "GET", "/pull/tr@v1", &[("Range", "bytes=700-1699")]);
    assert!(r.status == 206 && r.body == tar_bytes[700..1700], "tar range");
    let r = request(s.addr, "GET", "/pull/tr@v1/optimizer.pt", &[("Range", "bytes=10-19")]);
    let want = std::fs::read(dir.join("optimizer.pt")).expect("optimizer.pt");
    assert!(r.status == 206 && r.body == want[10..20], "file range");
    for bad in [
        "/pull/tr@v1/nope.json",
        "/pull/tr@v1/%2e%2e/%2e%2e/etc/passwd",
        "/pull/tr@v1/config.json/x",
    ] {
        let st = get(s.addr, bad).status;
        assert!(st == 404 || st == 400, "{bad}: {st}");
    }
}

#[test]
fn the_pages_rank_a_diverged_run_as_at_best_does() {
    // val_loss 0.5, nan, 0.3, 0.3, 0.4 (issue 24): @best is v4 (the newer
    // of the tie), never the NaN; the pages name the same version.
    let reg = Reg::new();
    for e in 0..5 {
        reg.push(&format!("lightning/diverged/epoch=0{e}.ckpt"), "run");
    }
    let at_best = reg.ok(&["show", "run@best", "--json"]).json()["version"].clone();
    assert_eq!(at_best, 4);
    let s = serve(&reg);
    let model = get_ok(s.addr, "/m/run").text();
    let stat = model
        .split("best val_loss (min)")
        .nth(1)
        .unwrap_or_else(|| panic!("no best stat: {model}"));
    assert!(stat.contains("href=\"/m/run/v4\""), "{stat}");
    assert!(model.contains(">nan<"), "the NaN score is shown as nan: {model}");
    let index = get_ok(s.addr, "/").text();
    let row = index
        .split("val_loss (min) at")
        .nth(1)
        .unwrap_or_else(|| panic!("no best score on /: {index}"));
    assert!(row.trim_start().starts_with("</span><a href=\"/m/run/v4\""), "{row}");
}

#[test]
fn the_diff_page_lists_the_leaves_of_groups_one_side_lacks() {
    let reg = Reg::new();
    reg.push("objects/hparams_cnn.pt", "cnn");
    reg.push("objects/hparams_gpt.pt", "gpt");
    let s = serve(&reg);
    let page = get_ok(s.addr, "/diff?a=cnn@v1&b=gpt@v1").text();
    for leaf in [
        "data.name",
        "data.augment",
        "data.loader.workers",
        "optim.momentum",
        "head.kind",
    ] {
        assert!(page.contains(leaf), "{leaf} missing from the page");
    }
    assert!(!page.contains("&quot;name&quot;:"), "a group shown whole");
    let api = get_ok(s.addr, "/api/diff?a=cnn@v1&b=gpt@v1").text();
    let cli = reg.ok(&["diff", "cnn@v1", "gpt@v1", "--stats", "--json"]).stdout;
    assert_eq!(api, cli);
}

#[test]
fn only_requests_for_loopback_names_are_answered_on_loopback() {
    let reg = pushed();
    let s = serve(&reg);
    let port = s.addr.port();
    // A page of evil.example.com resolving to 127.0.0.1 (DNS rebinding):
    // 421 on every route, HEAD and unknown ones too, before any lookup.
    for path in [
        "/",
        "/api/ls",
        "/pull/mlp@v1",
        "/m/mlp",
        "/api/log/nope",
        "/pull/nope@v1",
        "/nowhere",
        "/static/reg.css",
    ] {
        for host in ["evil.example.com", &format!("evil.example.com:{port}"), "localhost:1"] {
            let r = request_for(s.addr, "GET", path, Some(host));
            assert_eq!(r.status, 421, "{host} {path}: {}", r.text());
            assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
            let text = r.text();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(
                text.contains("localhost, 127.0.0.1, [::1]") && text.contains("--allow-host NAME"),
                "{text}"
            );
            assert_eq!(request_for(s.addr, "HEAD", path, Some(host)).status, 421, "HEAD {path}");
        }
    }
    // The method is not even looked at.
    assert_eq!(
        request_for(s.addr, "POST", "/api/ls", Some("evil.example.com")).status,
        421
    );
    for host in [
        "localhost".to_string(),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("127.0.0.1:{port}"),
        "127.0.0.1".into(),
        format!("[::1]:{port}"),
    ] {
        let r = request_for(s.addr, "GET", "/api/ls", Some(&host));
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        assert_eq!(request_for(s.addr, "GET", "/m/mlp", Some(&host)).status, 200, "{host}");
    }
    // No Host on HTTP/1.1: 400. An absolute URI names the host too.
    assert_eq!(request_for(s.addr, "GET", "/api/ls", None).status, 400);
    let r = request_for(s.addr, "GET", "http://evil.example.com/api/ls", Some("localhost"));
    assert_eq!(r.status, 421);

    // --allow-host adds names, with the server's port or none, or only the
    // port given.
    let s = serve_with(
        &reg,
        &["--allow-host", "example.test", "--allow-host", "Proxy.Test:8443"],
        Stdio::inherit(),
    );
    let port = s.addr.port();
    for (host, status) in [
        ("example.test".to_string(), 200),
        (format!("example.test:{port}"), 200),
        (format!("EXAMPLE.test:{port}"), 200),
        ("proxy.test:8443".into(), 200),
        (format!("localhost:{port}"), 200),
        ("example.test:1".into(), 421),
        ("proxy.test".into(), 421),
        ("evil.example.com".into(), 421),
    ] {
        let r = request_for(s.addr, "GET", "/pull/mlp@v1", Some(&host));
        assert_eq!(r.status, status, "{host}: {}", r.text());
    }
    let r = reg.run(&["serve", "--port", "0", "--allow-host", "a/b"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("is not a host name"), "{}", r.stderr);
}

#[test]
fn every_response_carries_the_security_headers_and_pages_need_no_inline_code() {
    let reg = pushed();
    let s = serve(&reg);
    let csp = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
               form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    let pages = [
        "/",
        "/m/mlp",
        "/m/monitored",
        "/m/mlp/v2",
        "/diff?a=mlp@v1&b=mlp@v3",
        "/nowhere",
        "/m/nope",
    ];
    let mut answers: Vec<(String, Resp)> = pages.iter().map(|p| (p.to_string(), get(s.addr, p))).collect();
    for path in [
        "/api/ls",
        "/api/show/mlp@v1",
        "/pull/mlp@v1",
        "/static/reg.css",
        "/static/reg.js",
        "/pull/nope@v1",
    ] {
        answers.push((path.to_string(), get(s.addr, path)));
    }
    answers.push(("HEAD /m/mlp".into(), request(s.addr, "HEAD", "/m/mlp", &[])));
    answers.push((
        "POST /".into(),
        request(s.addr, "POST", "/", &[("Content-Length", "0")]),
    ));
    answers.push(("421".into(), request_for(s.addr, "GET", "/", Some("evil.example.com"))));
    for (what, r) in &answers {
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{what}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
        assert_eq!(r.header("cross-origin-resource-policy"), Some("same-origin"), "{what}");
        assert_eq!(r.header("content-security-policy"), Some(csp), "{what}");
    }
    // The policy admits only /static/ files: no page may carry inline
    // script, inline style or event handlers (a browser would refuse them).
    for (path, r) in answers.iter().filter(|(p, _)| pages.contains(&p.as_str())) {
        let html = r.text();
        assert!(html.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(!html.contains("<style"), "{path} has a <style> element");
        assert!(!html.contains(" style="), "{path} has a style= attribute");
        assert!(!html.contains("javascript:"), "{path}");
        for tag in html.split('<').skip(1) {
            let tag = tag.split('>').next().unwrap_or("");
            if tag.starts_with("script") {
                assert_eq!(tag, "script src=\"/static/reg.js\" defer", "{path}");
            }
            if tag.starts_with("link") && tag.contains("stylesheet") {
                assert!(tag.contains("href=\"/static/reg.css\""), "{path}: {tag}");
            }
            let attributes = tag.split_whitespace().skip(1);
            for a in attributes {
                assert!(!a.starts_with("on"), "{path}: event handler in <{tag}>");
            }
        }
        assert_eq!(html.matches("<script").count(), 1, "{path}");
    }
    // The legend swatches of the bytes plot take their colours from the
    // stylesheet now.
    let model = get_ok(s.addr, "/m/mlp").text();
    for class in ["logical", "stored", "added"] {
        assert!(model.contains(&format!("<i class=\"{class}\">")), "no {class} swatch");
    }
    let css = get_ok(s.addr, "/static/reg.css").text();
    assert!(css.contains(".legend i.logical { background: var(--bar-logical); }"));
}

#[test]
fn three_hundred_slow_clients_do_not_stall_a_request() {
    // Slowloris: connections that start a request line and never finish
    // it. The server once served 256 connections and let the rest wait in
    // the kernel's queue until the header timeout (10 s) freed them.
    let reg = pushed();
    let s = serve(&reg);
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut c = TcpStream::connect(s.addr).expect("connect");
        c.write_all(b"GET /m/mlp HT").expect("partial request line");
        slow.push(c);
    }
    let started = Instant::now();
    get_ok(s.addr, "/api/ls");
    get_ok(s.addr, "/m/mlp");
    let took = started.elapsed();
    // Generous for a loaded machine; what it was is >= 10 s.
    assert!(
        took < Duration::from_secs(6),
        "a request behind 300 slow clients took {took:?}"
    );
    // The slow ones are still open (nothing was closed to make room: 512
    // fit), and are closed at their header timeout.
    let mut first = slow.swap_remove(0);
    first.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut buf = [0u8; 64];
    let t = Instant::now();
    let n = first.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "a slow client got an answer");
    assert!(t.elapsed() < Duration::from_secs(20), "kept {:?}", t.elapsed());
    drop(slow);
}

#[test]
fn waits_are_told_at_most_once_a_minute_and_never_for_itself() {
    let reg = pushed();
    let log = reg.work().join("serve-stderr.txt");
    let s = serve_with(&reg, &[], Stdio::from(std::fs::File::create(&log).expect("log")));
    let server_pid = s.child.id();
    // 48 requests from 8 clients at once: they queue for the index among
    // themselves, which is no wait for another process.
    let addr = s.addr;
    let paths = [
        "/",
        "/m/mlp",
        "/m/mlp/v2",
        "/api/ls",
        "/api/log/mlp",
        "/diff?a=mlp@v1&b=mlp@v3",
    ];
    let clients: Vec<_> = (0..8)
        .map(|c| {
            std::thread::spawn(move || {
                for i in 0..6 {
                    get_ok(addr, paths[(c + i) % paths.len()]);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    // Another process (this test) holds the index three times while a
    // request waits for it: said once, naming it.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(reg.home().join("lock"))
        .expect("index lock file");
    let holder = format!("a test holding the index (pid {})", std::process::id());
    for _ in 0..3 {
        lock.lock().expect("lock the index");
        std::fs::write(reg.home().join("lock.owner"), format!("{holder}\n")).expect("owner note");
        let waiting = std::thread::spawn(move || get_ok(addr, "/api/ls"));
        std::thread::sleep(Duration::from_millis(1000));
        lock.unlock().expect("unlock");
        waiting.join().expect("request");
    }
    drop(s);
    let text = std::fs::read_to_string(&log).expect("stderr");
    let waits: Vec<&str> = text.lines().filter(|l| l.contains("waiting")).collect();
    let own = format!("(pid {server_pid})");
    assert!(
        !waits.iter().any(|l| l.contains(&own)),
        "the server said it waits for itself:\n{text}"
    );
    assert_eq!(waits, [format!("reg serve: waiting for {holder}")], "{text}");
}
