//! Downloads: `/pull/NAME@REF` streams a version's original bytes (with
//! `Range` support, `ETag` = the version id) or an export
//! (`?format=safetensors`, `?weights_only=1`, as `reg pull`).
//!
//! The original file is read by `reg_registry::stream::VersionReader`, piece
//! by piece, starting at the range's first byte: nothing is assembled in
//! memory and the registry is closed before the first byte is sent (the
//! reader holds only blob files). Exports are written by
//! `Registry::export` into a temp file in the registry directory (with the
//! registry open, as `reg pull --format` does), which is unlinked as soon
//! as it is open and streamed from the open handle; a range request of an
//! export makes the export again.
//!
//! The bytes are pumped on the blocking pool into a channel of a few
//! 256 KiB chunks that the connection drains, so memory per download is
//! bounded; a client that stops reading for `stall_timeout` is cut off.

use crate::api::bad_path;
use crate::failure::Failure;
use crate::range::{self, Answer};
use crate::state::AppState;
use crate::urls;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reg_registry::stream::VersionReader;
use reg_registry::{ExportFormat, Registry, RegistryError, Resolved, VersionRef};
use serde::Deserialize;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// Bytes per chunk sent.
const CHUNK: usize = 256 << 10;
/// Chunks buffered between the reader and the connection.
const CHUNKS_AHEAD: usize = 4;
/// How long a download waits for one of the `max_downloads` slots.
const SLOT_WAIT: Duration = Duration::from_secs(10);

/// `?format=safetensors` / `?weights_only=1`.
#[derive(Debug, Deserialize)]
pub struct PullQuery {
    format: Option<String>,
    weights_only: Option<String>,
}

impl PullQuery {
    fn export(&self) -> Result<Option<ExportFormat>, Failure> {
        let weights_only = match self.weights_only.as_deref() {
            None | Some("0" | "false" | "no") => false,
            Some("" | "1" | "true" | "yes") => true,
            Some(other) => return Err(Failure::bad_request(format!("weights_only={other:?}: use 1 or 0"))),
        };
        match (weights_only, self.format.as_deref()) {
            (true, Some("safetensors")) => Ok(Some(ExportFormat::SafetensorsWeights)),
            (true, None) => Ok(Some(ExportFormat::WeightsOnly)),
            (false, Some("safetensors")) => Ok(Some(ExportFormat::Safetensors)),
            (_, Some(other)) => Err(Failure::bad_request(format!(
                "unknown format {other:?}; the formats are: safetensors"
            ))),
            (false, None) => Ok(None),
        }
    }
}

/// What the request asked of the file, from its headers.
struct Conditions {
    range: Option<String>,
    if_range: Option<String>,
    if_none_match: Option<String>,
    body: bool,
}

/// Where the bytes come from.
enum Source {
    Version(Box<VersionReader>),
    File(std::fs::File),
    /// A stream another thread writes (a directory version's tar).
    Pipe(std::io::PipeReader),
}

/// A download ready to answer.
struct Prepared {
    etag: String,
    filename: String,
    size: u64,
    answer: Answer,
    not_modified: bool,
    source: Option<Source>,
}

/// `/pull/NAME@REF`.
pub async fn version(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    reference: Result<Path<String>, PathRejection>,
    query: Result<Query<PullQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let Path(reference) = reference.map_err(bad_path)?;
    let Query(query) = query.map_err(|e| Failure::bad_request(e.body_text()))?;
    let export = query.export()?;
    let wanted = urls::parse_ref(&reference)?;
    let conditions = conditions_of(&headers, &method);
    let permit = download_slot(&state, &conditions).await?;
    let prepared = state
        .access
        .read(move |reg| prepare(reg, &wanted, export, &conditions))
        .await?;
    respond(prepared, permit, state.stall_timeout)
}

/// `/pull/NAME@REF/PATH`: one file of a directory version. PATH is
/// matched exactly against the version's file list (never joined to a
/// file-system path); ranges, HEAD and the ETag (version id and path)
/// work as for a whole version.
pub async fn directory_file(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, Failure> {
    let Path((reference, path)) = params.map_err(bad_path)?;
    let wanted = urls::parse_ref(&reference)?;
    let conditions = conditions_of(&headers, &method);
    let permit = download_slot(&state, &conditions).await?;
    let prepared = state
        .access
        .read(move |reg| {
            let v = reg.resolve(&wanted)?;
            let label = urls::spec(&v.manifest.name, v.manifest.number);
            let files = v.manifest.files();
            let Some(file) = files.iter().find(|f| f.path.is_some_and(|p| p.as_str() == path)) else {
                let why = if v.manifest.is_directory() {
                    format!("{label} has no file {path:?}")
                } else {
                    format!("{label} is a single file, not a directory: it has no file {path:?}; download it at /pull/{label}")
                };
                return Err(RegistryError::NoSuchVersion {
                    name: v.manifest.name.to_string(),
                    spec: format!("v{}/{path}", v.manifest.number),
                    available: why,
                });
            };
            let etag = format!("\"{}/{}\"", v.record.id.to_hex(), file.blake3.short());
            let mut prepared = Prepared::new(&conditions, etag, path.clone(), file.size);
            if let Some(start) = prepared.start(&conditions) {
                prepared.source = Some(Source::Version(Box::new(reg.file_reader(&v, &path, start)?)));
            }
            Ok(prepared)
        })
        .await?;
    respond(prepared, permit, state.stall_timeout)
}

/// The request's conditional and range headers.
fn conditions_of(headers: &HeaderMap, method: &Method) -> Conditions {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(String::from);
    Conditions {
        range: text(header::RANGE),
        if_range: text(header::IF_RANGE),
        if_none_match: text(header::IF_NONE_MATCH),
        body: *method != Method::HEAD,
    }
}

/// Take a download slot before any work; a server that stays full says so.
async fn download_slot(state: &AppState, conditions: &Conditions) -> Result<Option<OwnedSemaphorePermit>, Failure> {
    if !conditions.body {
        return Ok(None);
    }
    let slot = tokio::time::timeout(SLOT_WAIT, state.downloads.clone().acquire_owned()).await;
    match slot {
        Ok(Ok(permit)) => Ok(Some(permit)),
        _ => Err(Failure::unavailable(
            "too many downloads at once; try again in a few seconds",
        )),
    }
}

impl Prepared {
    /// The answer to `conditions` for `size` bytes under `etag`, with no
    /// source opened yet.
    fn new(conditions: &Conditions, etag: String, filename: String, size: u64) -> Prepared {
        let not_modified = conditions
            .if_none_match
            .as_deref()
            .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        let range_header = match &conditions.if_range {
            // A range of another version's bytes would corrupt the download.
            Some(tag) if tag.trim() != etag => None,
            _ => conditions.range.as_deref(),
        };
        Prepared {
            answer: range::answer(range_header, size),
            etag,
            filename,
            size,
            not_modified,
            source: None,
        }
    }

    /// Where the bytes to send start, when a body is to be sent.
    fn start(&self, conditions: &Conditions) -> Option<u64> {
        if conditions.body && !self.not_modified {
            first_byte(self.answer)
        } else {
            None
        }
    }
}

/// Writes through only the bytes `skip..skip + take` of what it is given
/// (a range of a stream made from its start).
struct Window<W> {
    inner: W,
    skip: u64,
    take: u64,
}

impl<W: std::io::Write> std::io::Write for Window<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        let skipped = rest.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
        rest = &rest[skipped..];
        self.skip -= skipped as u64;
        let n = rest.len().min(usize::try_from(self.take).unwrap_or(usize::MAX));
        if n > 0 {
            self.inner.write_all(&rest[..n])?;
            self.take -= n as u64;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A directory version as a tar stream (bytes `start..start + len`),
/// written by a thread of its own into a pipe; the answer reads the pipe.
fn tar_source(reg: &std::sync::Arc<Registry>, v: Resolved, start: u64, len: u64) -> Result<Source, RegistryError> {
    let (reader, writer) = std::io::pipe().map_err(|source| RegistryError::Io {
        action: "making a pipe for",
        path: reg.config().root.clone(),
        source,
    })?;
    let reg = reg.clone();
    std::thread::spawn(move || {
        let mut w = Window {
            inner: writer,
            skip: start,
            take: len,
        };
        // A damaged file ends the stream early: the client sees fewer
        // bytes than Content-Length said, never wrong ones.
        if let Err(e) = reg.pull_tar_to(&v, &[], &mut w) {
            eprintln!("reg serve: {e}");
        }
    });
    Ok(Source::Pipe(reader))
}

/// Resolve the version and open what the answer sends (with the registry open).
fn prepare(
    reg: &std::sync::Arc<Registry>,
    wanted: &VersionRef,
    export: Option<ExportFormat>,
    conditions: &Conditions,
) -> Result<Prepared, RegistryError> {
    let v = reg.resolve(wanted)?;
    if v.manifest.is_directory() && export.is_none() {
        let etag = format!("\"{}.tar\"", v.record.id.to_hex());
        let size = reg.tar_len(&v, &[])?;
        let mut prepared = Prepared::new(conditions, etag, format!("{}.tar", v.manifest.source), size);
        if let Some(start) = prepared.start(conditions) {
            let len = match prepared.answer {
                Answer::Partial { start, end } => end - start + 1,
                _ => size - start,
            };
            prepared.source = Some(tar_source(reg, v, start, len)?);
        }
        return Ok(prepared);
    }
    let id = v.record.id.to_hex();
    let (etag, filename) = match export {
        None => (format!("\"{id}\""), v.manifest.source.to_string()),
        Some(fmt) => (
            format!("\"{id}.{}\"", export_tag(fmt)),
            reg_registry::export_file_name(&v.manifest, fmt),
        ),
    };
    match export {
        None => {
            let mut prepared = Prepared::new(conditions, etag, filename, v.manifest.size);
            if let Some(start) = prepared.start(conditions) {
                prepared.source = Some(Source::Version(Box::new(reg.version_reader(&v, start)?)));
            }
            Ok(prepared)
        }
        Some(fmt) => {
            // The export's size is known once it is written.
            let mut file = export_to_temp(reg, &v, fmt)?;
            let size = file.metadata().map_err(io_err(reg))?.len();
            let mut prepared = Prepared::new(conditions, etag, filename, size);
            if let Some(start) = prepared.start(conditions) {
                file.seek(SeekFrom::Start(start)).map_err(io_err(reg))?;
                prepared.source = Some(Source::File(file));
            }
            Ok(prepared)
        }
    }
}

fn io_err(reg: &Registry) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        action: "reading an export in",
        path: reg.config().root.clone(),
        source,
    }
}

fn first_byte(answer: Answer) -> Option<u64> {
    match answer {
        Answer::Full => Some(0),
        Answer::Partial { start, .. } => Some(start),
        Answer::Unsatisfiable => None,
    }
}

fn export_tag(fmt: ExportFormat) -> &'static str {
    match fmt {
        ExportFormat::WeightsOnly => "weights-only",
        ExportFormat::Safetensors => "safetensors",
        ExportFormat::SafetensorsWeights => "safetensors-weights",
    }
}

/// Write the export into a temp folder in the registry directory (the
/// disk that holds checkpoints; /tmp may be memory), open it and remove
/// the folder: the open file lives on until the download ends.
fn export_to_temp(reg: &Registry, v: &Resolved, fmt: ExportFormat) -> Result<std::fs::File, RegistryError> {
    let root = reg.config().root.clone();
    let dir = tempfile::Builder::new()
        .prefix(".serve-export-")
        .tempdir_in(&root)
        .map_err(|source| RegistryError::Io {
            action: "making a temp folder for an export in",
            path: root.clone(),
            source,
        })?;
    let out = dir.path().join("export");
    reg.export(v, fmt, &out, false)?;
    let file = std::fs::File::open(&out).map_err(|source| RegistryError::Io {
        action: "opening",
        path: out.clone(),
        source,
    })?;
    drop(dir);
    Ok(file)
}

fn respond(p: Prepared, permit: Option<OwnedSemaphorePermit>, stall: Duration) -> Result<Response, Failure> {
    let mut headers = HeaderMap::new();
    let value = |s: &str| HeaderValue::from_str(s).map_err(|e| Failure::internal(e.to_string()));
    headers.insert(header::ETAG, value(&p.etag)?);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Refs like `latest` move: clients revalidate with the ETag.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if p.not_modified {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    headers.insert(header::CONTENT_DISPOSITION, disposition(&p.filename));
    let (status, len) = match p.answer {
        Answer::Full => (StatusCode::OK, p.size),
        Answer::Partial { start, end } => {
            headers.insert(
                header::CONTENT_RANGE,
                value(&format!("bytes {start}-{end}/{}", p.size))?,
            );
            (StatusCode::PARTIAL_CONTENT, end - start + 1)
        }
        Answer::Unsatisfiable => {
            headers.insert(header::CONTENT_RANGE, value(&format!("bytes */{}", p.size))?);
            let mut f = Failure::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the range asked for is outside the file's {} bytes", p.size),
            )
            .into_response();
            f.headers_mut().extend(headers);
            return Ok(f);
        }
    };
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, value(&len.to_string())?);
    let body = match (p.source, permit) {
        (Some(Source::Version(r)), Some(permit)) => pump(r, len, permit, stall),
        (Some(Source::File(f)), Some(permit)) => pump(f, len, permit, stall),
        (Some(Source::Pipe(p)), Some(permit)) => pump(p, len, permit, stall),
        _ => Body::empty(),
    };
    Ok((status, headers, body).into_response())
}

/// `attachment` with the file name, as plain ASCII and as RFC 5987 UTF-8.
fn disposition(source: &str) -> HeaderValue {
    let name = std::path::Path::new(source)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "download".into());
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(&name, NON_ALPHANUMERIC);
    HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Stream `len` bytes of `reader` as the body, read on the blocking pool.
fn pump(reader: impl Read + Send + 'static, len: u64, permit: OwnedSemaphorePermit, stall: Duration) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_AHEAD);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _slot = permit;
        let mut reader = reader;
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            let mut buf = vec![0u8; n];
            let item = reader.read_exact(&mut buf).map(|()| Bytes::from(buf));
            let failed = item.as_ref().err().map(|e| e.to_string());
            // Err: the client went away or stopped reading; either way, stop.
            if handle.block_on(tx.send_timeout(item, stall)).is_err() {
                return;
            }
            if let Some(e) = failed {
                eprintln!("reg serve: download stopped: {e}");
                return;
            }
            left -= n as u64;
        }
    });
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}
