//! An S3 server inside the test process: s3s-fs (the `s3s` and `s3s-fs`
//! crates, dev-dependencies pinned in crates/reg-cli/Cargo.toml) serving a
//! temp folder on a loopback port, on a tokio runtime thread of its own.
//! Nothing needs installing, so the S3 tests run wherever `cargo test`
//! does, and never skip.
//!
//! Two ways to serve conditional creates (`If-None-Match: *` PUTs):
//! - [`Creates::Exclusive`]: a create of an existing key fails, atomically
//!   (s3s-fs checks and writes in two steps; the wrapper holds a lock
//!   around both, as a real server's create is one step);
//! - [`Creates::Ignored`]: the header is dropped and the PUT overwrites,
//!   as Garage 2.5 does.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, S3};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Access key the server accepts.
pub const ACCESS_KEY: &str = "reg-test-access";
/// Its secret.
pub const SECRET_KEY: &str = "reg-test-secret-key";
/// The one bucket.
pub const BUCKET: &str = "regtest";

/// How the server treats `If-None-Match: *`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creates {
    /// A create of an existing key fails with 412.
    Exclusive,
    /// The header is ignored: the PUT overwrites.
    Ignored,
}

/// s3s-fs with conditional creates made atomic, or ignored; counts the
/// PUTs that replaced an existing version entry.
struct Served {
    fs: s3s_fs::FileSystem,
    creates: Creates,
    /// Serialises conditional creates (Exclusive).
    create_lock: tokio::sync::Mutex<()>,
    root: PathBuf,
    overwrites: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl S3 for Served {
    async fn put_object(&self, mut req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let conditional = req.input.if_none_match.is_some();
        let path = self.root.join(&req.input.bucket).join(&req.input.key);
        let entry = req.input.key.contains("versions/");
        let _one_at_a_time = match self.creates {
            Creates::Exclusive if conditional => Some(self.create_lock.lock().await),
            _ => None,
        };
        if self.creates == Creates::Ignored {
            req.input.if_none_match = None;
        }
        let existed = path.exists();
        let put = self.fs.put_object(req).await;
        if put.is_ok() && existed && entry {
            self.overwrites.fetch_add(1, Ordering::SeqCst);
        }
        put
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.fs.get_object(req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.fs.delete_objects(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.fs.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }
}

/// A running server; stopped (its runtime shut down) on drop.
pub struct S3Server {
    /// The loopback port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
    overwrites: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3Server {
    /// A server whose creates are exclusive.
    pub fn start() -> S3Server {
        S3Server::start_with(Creates::Exclusive)
    }

    /// A server that treats `If-None-Match` as `creates` says.
    pub fn start_with(creates: Creates) -> S3Server {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(BUCKET)).expect("bucket dir");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let overwrites = Arc::new(AtomicU64::new(0));
        let served = Served {
            fs: s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs on the temp folder"),
            creates,
            create_lock: tokio::sync::Mutex::new(()),
            root: dir.path().to_path_buf(),
            overwrites: overwrites.clone(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("s3-{port}"))
            .spawn(move || serve(listener, served, stopped))
            .expect("spawn the server thread");
        S3Server {
            port,
            dir,
            overwrites,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the server keeps the object `key` of the bucket.
    pub fn object(&self, key: &str) -> PathBuf {
        self.dir.path().join(BUCKET).join(key)
    }

    /// PUTs that replaced an existing version entry (`.../versions/...`).
    pub fn overwrites(&self) -> u64 {
        self.overwrites.load(Ordering::SeqCst)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The server loop: one task per connection until `stopped`.
fn serve(listener: TcpListener, served: Served, stopped: tokio::sync::oneshot::Receiver<()>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder as ConnBuilder;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let service = {
            let mut b = s3s::service::S3ServiceBuilder::new(served);
            b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let http = ConnBuilder::new(TokioExecutor::new());
        let mut stopped = std::pin::pin!(stopped);
        loop {
            let socket = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => socket,
                    Err(_) => continue,
                },
                _ = stopped.as_mut() => break,
            };
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    rt.shutdown_background();
}
