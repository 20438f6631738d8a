//! The listener, the runtime and the connection loop.
//!
//! Connections are HTTP/1.1 (hyper): a client gets `header_timeout` to
//! send a request's headers, at most `max_connections` are served at once
//! (further ones wait in the kernel's accept queue), and each handler has
//! `handler_timeout` to produce its response (downloads then stream for as
//! long as the client keeps reading).

use crate::access::RegistryAccess;
use crate::app::{self, AppState};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use reg_meta::Config;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Limits of a server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Connections served at once.
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
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            max_connections: 256,
            max_downloads: 16,
            header_timeout: Duration::from_secs(10),
            handler_timeout: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(60),
            worker_threads: 2,
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
    Registry(#[from] reg_meta::RegistryError),
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
        let service = TowerToHyperService::new(app::router(state, self.options.handler_timeout));
        let connections = Arc::new(Semaphore::new(self.options.max_connections.max(1)));
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                permit = connections.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
            };
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
            let _ = stream.set_nodelay(true);
            let service = service.clone();
            let header_timeout = self.options.header_timeout;
            tokio::spawn(async move {
                let _permit = permit;
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .max_buf_size(64 << 10)
                    .serve_connection(TokioIo::new(stream), service);
                // A client that goes away mid-response is not an error of ours.
                let _ = conn.await;
            });
        }
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
