//! The Host rule, against DNS rebinding.
//!
//! A web page on `evil.example.com` whose name is made to resolve to
//! 127.0.0.1 can make the viewer's browser send requests to a server on
//! loopback, and read the answers as its own (same origin as far as the
//! browser knows). The browser still says which name it asked for, in the
//! `Host` header: a server on a loopback address answers only requests
//! for `localhost`, `127.0.0.1`, `[::1]`, the address it is bound to, and
//! the names given with `--allow-host`; every other request gets 421
//! before any registry work.
//!
//! On any other address (`0.0.0.0`, a LAN address, chosen with a warning)
//! every Host is answered, unless `--allow-host` names some: then only
//! those, the loopback names and the bound address.

use crate::failure::Failure;
use axum::http::{header, HeaderMap, StatusCode, Uri, Version};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// A name requests may be addressed to (`--allow-host NAME`): a host name
/// or an IP address (IPv6 in brackets), with an optional port. Without a
/// port it matches the name with no port or with the server's own port;
/// with one, only that port. Names compare case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lower-case name; an IPv6 address in its canonical bracketed form.
    name: String,
    /// The only port accepted, when given.
    port: Option<u16>,
}

/// An `--allow-host` value that is not a host name with an optional port.
#[derive(Debug, thiserror::Error)]
#[error("{given:?} is not a host name (NAME or NAME:PORT): {why}")]
pub struct BadHost {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl FromStr for AllowedHost {
    type Err = BadHost;

    fn from_str(s: &str) -> Result<AllowedHost, BadHost> {
        let bad = |why| BadHost {
            given: s.to_string(),
            why,
        };
        let (name, port) = split_authority(s).map_err(bad)?;
        if name.is_empty() {
            return Err(bad("the name is empty"));
        }
        Ok(AllowedHost { name, port })
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl AllowedHost {
    fn of_ip(ip: IpAddr) -> AllowedHost {
        let name = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        AllowedHost { name, port: None }
    }

    fn matches(&self, name: &str, port: Option<u16>, own_port: u16) -> bool {
        self.name == name
            && match self.port {
                Some(only) => port == Some(only),
                None => port.is_none() || port == Some(own_port),
            }
    }
}

/// `host[:port]` as a lower-case name (an IPv6 literal canonical, in
/// brackets) and a port. An empty port (`name:`) is no port.
fn split_authority(s: &str) -> Result<(String, Option<u16>), &'static str> {
    let (name, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or("an IPv6 address needs its closing ]")?;
        let ip = Ipv6Addr::from_str(inside).map_err(|_| "not an IPv6 address in [ ]")?;
        let port = match after {
            "" => None,
            a => Some(a.strip_prefix(':').ok_or("only :PORT may follow ]")?),
        };
        (format!("[{ip}]"), port)
    } else {
        let (name, port) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if !name.chars().all(fine) {
            return Err("a name has only letters, digits, '-', '.' and '_' (an IPv6 address goes in [ ])");
        }
        (name.to_ascii_lowercase(), port)
    };
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().map_err(|_| "the port is over 65535")?),
        Some(_) => return Err("the port is not a number"),
    };
    Ok((name, port))
}

/// Which Host values a server answers.
#[derive(Debug)]
pub struct HostRule {
    /// Every Host is answered (a non-loopback bind without `--allow-host`).
    any: bool,
    allowed: Vec<AllowedHost>,
    port: u16,
}

impl HostRule {
    /// The rule of a server bound to `bound`, with the names `extra`
    /// (`--allow-host`) added.
    pub fn new(bound: SocketAddr, extra: &[AllowedHost]) -> HostRule {
        let mut allowed: Vec<AllowedHost> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|n| AllowedHost {
                name: (*n).to_string(),
                port: None,
            })
            .collect();
        let ip = bound.ip();
        if !ip.is_unspecified() {
            allowed.push(AllowedHost::of_ip(ip));
        }
        allowed.extend(extra.iter().cloned());
        let mut seen = Vec::new();
        allowed.retain(|a| {
            let new = !seen.contains(a);
            seen.push(a.clone());
            new
        });
        HostRule {
            any: !ip.is_loopback() && extra.is_empty(),
            allowed,
            port: bound.port(),
        }
    }

    /// Whether a request for `authority` (a Host value) is answered.
    pub fn accepts(&self, authority: &str) -> bool {
        if self.any {
            return true;
        }
        match split_authority(authority) {
            Ok((name, port)) => self.allowed.iter().any(|a| a.matches(&name, port, self.port)),
            Err(_) => false,
        }
    }

    /// `Ok` when a request with this version, URI and headers is for a
    /// name this server answers; else 400 (no or several Host headers, one
    /// that is not text) or 421.
    pub fn check(&self, version: Version, uri: &Uri, headers: &HeaderMap) -> Result<(), Failure> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let host = match (hosts.next(), hosts.next()) {
            (Some(h), None) => Some(
                h.to_str()
                    .map_err(|_| Failure::bad_request("the Host header is not text"))?,
            ),
            (None, _) => None,
            (Some(_), Some(_)) => return Err(Failure::bad_request("a request has one Host header, not several")),
        };
        // An absolute URI (`GET http://name/ HTTP/1.1`) names the host too.
        let named: Vec<&str> = host.into_iter().chain(uri.authority().map(|a| a.as_str())).collect();
        if named.is_empty() {
            if version == Version::HTTP_10 || version == Version::HTTP_09 {
                // No browser sends those without a Host: not a rebinding.
                return Ok(());
            }
            return Err(Failure::bad_request("a request needs a Host header"));
        }
        if self.any {
            return Ok(());
        }
        match named.iter().find(|n| !self.accepts(n)) {
            None => Ok(()),
            Some(wrong) => Err(self.misdirected(wrong)),
        }
    }

    fn misdirected(&self, wrong: &str) -> Failure {
        let names: Vec<String> = self.allowed.iter().map(|a| a.to_string()).collect();
        let shown: String = wrong.chars().take(100).flat_map(char::escape_default).collect();
        Failure::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "Host \"{shown}\" is not answered here: this reg serve answers only {} (with no port or :{}, unless a port is named); start it with --allow-host NAME to add a name",
                names.join(", "),
                self.port
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(bound: &str, extra: &[&str]) -> HostRule {
        let extra: Vec<AllowedHost> = extra.iter().map(|e| e.parse().expect("host")).collect();
        HostRule::new(bound.parse().expect("addr"), &extra)
    }

    #[test]
    fn loopback_answers_only_its_names_with_its_port() {
        let r = rule("127.0.0.1:8780", &[]);
        for ok in [
            "localhost",
            "LOCALHOST:8780",
            "127.0.0.1",
            "127.0.0.1:8780",
            "[::1]",
            "[::1]:8780",
            "[0:0:0:0:0:0:0:1]:8780",
            "localhost:",
        ] {
            assert!(r.accepts(ok), "{ok}");
        }
        for no in [
            "evil.example.com",
            "localhost:8781",
            "127.0.0.1:80",
            "localhost.",
            "127.0.0.2",
            "localhost.evil.example.com",
            "::1",
            "[::1",
            "",
            "localhost:x",
            "localhost:99999",
            "local host",
        ] {
            assert!(!r.accepts(no), "{no}");
        }
        let r = rule("127.0.0.5:9000", &[]);
        assert!(r.accepts("127.0.0.5:9000") && r.accepts("localhost") && !r.accepts("127.0.0.5:9001"));
        let r = rule("[::1]:9000", &[]);
        assert!(r.accepts("[::1]:9000") && !r.accepts("evil.example.com:9000"));
    }

    #[test]
    fn allow_host_adds_a_name_or_a_name_with_a_port() {
        let r = rule("127.0.0.1:8780", &["Example.Test", "proxy.test:443", "[fe80::1]"]);
        for ok in [
            "example.test",
            "EXAMPLE.TEST:8780",
            "proxy.test:443",
            "[FE80::1]:8780",
            "localhost",
        ] {
            assert!(r.accepts(ok), "{ok}");
        }
        for no in ["example.test:1", "proxy.test", "proxy.test:8780", "other.test"] {
            assert!(!r.accepts(no), "{no}");
        }
        for bad in ["", ":80", "a/b", "a b", "[::1", "[zz]", "a:b", "a:70000", "[::1]x"] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            "Proxy.Test:443".parse::<AllowedHost>().expect("host").to_string(),
            "proxy.test:443"
        );
    }

    #[test]
    fn other_binds_answer_any_host_unless_names_are_given() {
        for bound in ["0.0.0.0:8780", "192.168.1.5:8780", "[::]:8780"] {
            assert!(rule(bound, &[]).accepts("evil.example.com"), "{bound}");
            let r = rule(bound, &["reg.lan"]);
            assert!(r.accepts("reg.lan") && r.accepts("localhost:8780"), "{bound}");
            assert!(!r.accepts("evil.example.com"), "{bound}");
        }
        let r = rule("192.168.1.5:8780", &["reg.lan"]);
        assert!(r.accepts("192.168.1.5:8780") && !r.accepts("192.168.1.6:8780"));
    }

    #[test]
    fn a_request_needs_one_host_and_an_absolute_uri_is_checked_too() {
        let r = rule("127.0.0.1:8780", &[]);
        let uri: Uri = "/api/ls".parse().expect("uri");
        let headers = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::HOST, v.parse().expect("value"));
            }
            h
        };
        let status = |res: Result<(), Failure>| res.err().map(|f| f.status.as_u16());
        assert_eq!(status(r.check(Version::HTTP_11, &uri, &headers(&["localhost"]))), None);
        assert_eq!(status(r.check(Version::HTTP_11, &uri, &headers(&[]))), Some(400));
        assert_eq!(status(r.check(Version::HTTP_10, &uri, &headers(&[]))), None);
        assert_eq!(
            status(r.check(Version::HTTP_11, &uri, &headers(&["localhost", "localhost"]))),
            Some(400)
        );
        let f = r
            .check(Version::HTTP_11, &uri, &headers(&["evil.example.com"]))
            .expect_err("421");
        assert_eq!(f.status.as_u16(), 421);
        assert!(f.message.contains("--allow-host NAME") && f.message.contains("localhost, 127.0.0.1, [::1]"));
        let absolute: Uri = "http://evil.example.com/api/ls".parse().expect("uri");
        assert_eq!(
            status(r.check(Version::HTTP_11, &absolute, &headers(&["localhost"]))),
            Some(421)
        );
        assert_eq!(status(r.check(Version::HTTP_10, &absolute, &headers(&[]))), Some(421));
    }
}
