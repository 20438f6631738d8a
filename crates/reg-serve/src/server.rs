//! The listener, the runtime and the connection loop.
//!
//! Connections are HTTP/1.1 (hyper): a client gets `header_timeout` to
//! send a request's headers (also between keep-alive requests), at most
//! `max_connections` are open at once, and each handler has
//! `handler_timeout` to produce its response (downloads then stream for as
//! long as the client keeps reading).
//!
//! Slow or idle clients cannot fill the server: when `max_connections`
//! are open, a new connection closes the one that has waited longest for
//! its request headers (a connection serving a request is never closed
//! so); only when every connection is serving a request does the new one
//! wait for one to finish.

use crate::access::RegistryAccess;
use crate::app;
use crate::host::{AllowedHost, HostRule};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use reg_registry::Config;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// Limits of a server, and the names it answers.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Connections open at once; past it, the one waiting longest for its
    /// request headers is closed to make room.
    pub max_connections: usize,
    /// Downloads streamed at once (each holds a blob reader: a few frame
    /// buffers of 8 MiB); more get 503 with `Retry-After`.
    pub max_downloads: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a handler has to produce a response (a page, the start of a
    /// download); then 503.
    pub handler_timeout: Duration,
    /// Time a download waits for the client to take the next chunk before
    /// it is cut off.
    pub stall_timeout: Duration,
    /// Threads serving connections (registry work runs on the blocking pool).
    pub worker_threads: usize,
    /// Host names answered besides the loopback names and the bound
    /// address (`--allow-host`; see [`crate::host`]). On a non-loopback
    /// bind, none means every Host is answered.
    pub allow_hosts: Vec<AllowedHost>,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            max_connections: 512,
            max_downloads: 16,
            header_timeout: Duration::from_secs(10),
            handler_timeout: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(60),
            worker_threads: 2,
            allow_hosts: Vec::new(),
        }
    }
}

/// Returned by [`Server::bind`] and [`Server::run`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The registry cannot be opened.
    #[error(transparent)]
    Registry(#[from] reg_registry::RegistryError),
    /// The runtime or the listener failed.
    #[error("serving on {addr}: {source}")]
    Serve {
        /// The bound address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
}

/// A bound, not yet running server.
pub struct Server {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    access: RegistryAccess,
    options: ServeOptions,
}

impl Server {
    /// Bind `addr` (port 0: any free port) to serve the registry `config`
    /// names.
    pub fn bind(addr: SocketAddr, config: Config, options: ServeOptions) -> Result<Server, ServeError> {
        let bind_err = |source| ServeError::Bind { addr, source };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        Ok(Server {
            listener,
            addr,
            access: RegistryAccess::new(config)?,
            options,
        })
    }

    /// The address bound (with the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve until Ctrl-C or SIGTERM.
    pub fn run(self) -> Result<(), ServeError> {
        let addr = self.addr;
        let serve_err = |source| ServeError::Serve { addr, source };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.options.worker_threads.max(1))
            // Registry work (bounded by RegistryAccess) and download pumps
            // (bounded by max_downloads) run here.
            .max_blocking_threads(self.options.max_downloads + 16)
            .enable_all()
            .thread_name("reg-serve")
            .build()
            .map_err(serve_err)?;
        runtime.block_on(self.serve()).map_err(serve_err)
    }

    async fn serve(self) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        let state = AppState {
            access: Arc::new(self.access),
            downloads: Arc::new(Semaphore::new(self.options.max_downloads)),
            stall_timeout: self.options.stall_timeout,
        };
        let hosts = Arc::new(HostRule::new(self.addr, &self.options.allow_hosts));
        let service = TowerToHyperService::new(app::router(state, self.options.handler_timeout, hosts));
        let connections = Arc::new(Semaphore::new(self.options.max_connections.max(1)));
        let open = Arc::new(Connections::default());
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, go on.
                        eprintln!("reg serve: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let permit = match connections.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    // Full: close the connection that has waited longest
                    // for its headers (its slot comes free at once); when
                    // all are serving requests, wait for one to end.
                    open.evict_longest_waiting();
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        permit = connections.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
                    }
                }
            };
            let _ = stream.set_nodelay(true);
            let (id, conn_state) = open.add();
            let service = Tracked {
                inner: service.clone(),
                conn: conn_state.clone(),
                open: open.clone(),
            };
            let header_timeout = self.options.header_timeout;
            let open = open.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    // The read buffer may grow past max_buf_size by a read;
                    // max_header_size is the exact bound (then 431).
                    .max_buf_size(MAX_HEADER_BYTES)
                    .max_header_size(MAX_HEADER_BYTES)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    // A client that goes away mid-response is not an error of ours.
                    _ = conn => {}
                    // Evicted while waiting for its headers: drop it, which closes it.
                    () = conn_state.evicted.notified() => {}
                }
                open.remove(id);
            });
        }
    }
}

/// Request line and headers, at most (hyper answers 431 past it, and past
/// its default of 100 header fields).
const MAX_HEADER_BYTES: usize = 64 << 10;

/// `Conn::since` while a request is being served.
const BUSY: u64 = u64::MAX;
/// `Conn::since` once the connection was chosen to be closed.
const EVICTED: u64 = u64::MAX - 1;

/// One open connection, as the accept loop sees it.
struct Conn {
    /// Milliseconds (of [`Connections::now`]) since it began waiting for a
    /// request's headers; [`BUSY`] while it serves one; [`EVICTED`].
    since: AtomicU64,
    /// Told when it is evicted.
    evicted: Notify,
}

/// The open connections.
struct Connections {
    started: Instant,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Default for Connections {
    fn default() -> Connections {
        Connections {
            started: Instant::now(),
            next_id: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        }
    }
}

impl Connections {
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(EVICTED - 1)
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // The map stays whole whatever panicked while holding it.
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new connection, waiting for its first request's headers.
    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            since: AtomicU64::new(self.now()),
            evicted: Notify::new(),
        });
        self.live().insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.live().remove(&id);
    }

    /// Close the connection that has waited longest for a request's
    /// headers; false when every one is serving a request.
    fn evict_longest_waiting(&self) -> bool {
        let mut waiting: Vec<(u64, Arc<Conn>)> = self
            .live()
            .values()
            .map(|c| (c.since.load(Ordering::Acquire), c.clone()))
            .filter(|(since, _)| *since < EVICTED)
            .collect();
        waiting.sort_by_key(|(since, _)| *since);
        for (since, conn) in waiting {
            // Only if it has not started a request meanwhile.
            if conn
                .since
                .compare_exchange(since, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                conn.evicted.notify_one();
                return true;
            }
        }
        false
    }
}

/// The application, marking its connection busy from the moment a
/// request's headers are in until its response body is sent.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
    open: Arc<Connections>,
}

/// Marks its connection as waiting for headers again when dropped (when
/// the response body has been sent, or the client went away).
struct Busy {
    conn: Arc<Conn>,
    open: Arc<Connections>,
}

impl Busy {
    fn start(conn: &Arc<Conn>, open: &Arc<Connections>) -> Busy {
        let mut since = conn.since.load(Ordering::Acquire);
        // An evicted connection stays so: it is being closed.
        while since < EVICTED {
            match conn
                .since
                .compare_exchange(since, BUSY, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => since = now,
            }
        }
        Busy {
            conn: conn.clone(),
            open: open.clone(),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.open.now();
        let _ = self
            .conn
            .since
            .compare_exchange(BUSY, now, Ordering::AcqRel, Ordering::Acquire);
    }
}

impl<S> hyper::service::Service<hyper::Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = hyper::Response<TrackedBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let busy = Busy::start(&self.conn, &self.open);
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| TrackedBody { inner, _busy: busy }))
        })
    }
}

/// A response body that keeps its connection marked busy until it is
/// dropped.
struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// A server with room for 4 connections, running until the test
    /// process ends.
    fn small_server(dir: &std::path::Path) -> SocketAddr {
        let options = ServeOptions {
            max_connections: 4,
            header_timeout: Duration::from_secs(60),
            ..ServeOptions::default()
        };
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = Server::bind(loopback, Config::at(dir), options).expect("bind");
        let addr = server.local_addr();
        std::thread::spawn(move || server.run());
        addr
    }

    fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        let mut c = TcpStream::connect(addr)?;
        c.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(c, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut answer = String::new();
        c.read_to_string(&mut answer)?;
        Ok(answer)
    }

    #[test]
    fn a_full_server_closes_the_longest_waiting_connection_for_a_new_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = small_server(dir.path());
        let mut slow = Vec::new();
        for _ in 0..12 {
            let mut c = TcpStream::connect(addr).expect("connect");
            c.write_all(b"GET / HT").expect("partial request line");
            c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            slow.push(c);
        }
        // Four times over the limit, each new one closing the oldest: a
        // real request is answered now, not when header timeouts (60 s)
        // free a place.
        let started = Instant::now();
        let answer = get(addr, "/static/reg.css").expect("answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        // The oldest slow clients were closed without an answer.
        let mut buf = [0u8; 16];
        for c in &mut slow[..4] {
            assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "a closed slow client got bytes");
        }
    }
}
