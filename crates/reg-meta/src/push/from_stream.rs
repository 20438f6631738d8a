//! `reg push -`: a checkpoint read from a stream (standard input, a pipe
//! from `torch.save`), stored as a version exactly as the same bytes
//! pushed as a file would be.
//!
//! The stream is cut by [`reg_ckpt::stream_in::split`] as it arrives, so
//! a stream that is not a checkpoint, ends early or has a record torch
//! does not write is refused at once, before the rest is read. Every byte
//! read goes to a private temp file in the registry's `tmp/` (never
//! fsynced, removed when the push ends, whatever its outcome; gc removes
//! one a crash left), and the push then reads that file as any pushed
//! file: one code path for what is stored and checked. Memory is bounded
//! by the read buffer and the largest non-storage record (docs/cli.md,
//! "reg push -"); storages stream through.
//!
//! Legacy torch files cannot be cut in one pass (their storages' sizes
//! are in a pickle that follows other pickles, see
//! [`reg_ckpt::stream_in`]): they are read to the end into the same temp
//! file and pushed from it.

use super::{PushOptions, PushReport};
use crate::error::RegistryError;
use crate::progress::Progress;
use crate::registry::Registry;
use reg_ckpt::stream_in::{self, StreamError, StreamLimits, StreamSink};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

/// The name a stream's errors use when no `--source` was given.
const STDIN: &str = "<stdin>";

/// Reads the stream and writes every byte it reads to the spool file.
struct Spooling<'a> {
    input: &'a mut dyn Read,
    spool: BufWriter<&'a File>,
    read: u64,
    progress: &'a dyn Progress,
}

impl Read for Spooling<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        self.spool.write_all(&buf[..n])?;
        self.read += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// The cut's pieces are already spooled by [`Spooling`]: the sink only
/// drains each payload through it.
struct Drain;

impl StreamSink for Drain {
    fn skeleton(&mut self, _at: u64, _bytes: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn payload(&mut self, _at: u64, key: &str, len: u64, body: &mut dyn Read) -> io::Result<()> {
        let got = io::copy(body, &mut io::sink())?;
        if got != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the stream ended inside storage {key}, after {got} of its {len} bytes"),
            ));
        }
        Ok(())
    }
}

impl Registry {
    /// Push the checkpoint `input` streams (a torch zip as `torch.save`
    /// writes it, a legacy torch file, or safetensors) as a new version.
    /// `opts.source` names the file the version records (what `reg pull`
    /// writes by default); the model name defaults to its stem. A stream
    /// that ends early, is not a checkpoint, is followed by other bytes or
    /// carries an unsafe pickle is refused and nothing is stored.
    pub fn push_stream(
        &self,
        input: &mut dyn Read,
        opts: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<PushReport, RegistryError> {
        let shown = opts.source.clone().unwrap_or_else(|| STDIN.to_string());
        if opts.name.is_none() && opts.source.is_none() && self.config.default_name.is_none() {
            return Err(RegistryError::Invalid(format!(
                "a checkpoint read from {STDIN} needs a model name or a source file name"
            )));
        }
        // The writer guard (gc.lock shared) from the first byte: gc, which
        // cleans blobs/tmp/, waits until the spool is pushed or gone.
        let guard = self.writer()?;
        let tmp_dir = self.layout.tmp_dir();
        std::fs::create_dir_all(&tmp_dir).map_err(RegistryError::io("creating", &tmp_dir))?;
        let spool = tempfile::Builder::new()
            .prefix("stream-")
            .suffix(".spool")
            .tempfile_in(&tmp_dir)
            .map_err(RegistryError::io("creating a temp file in", &tmp_dir))?;
        progress.phase("reading", 0);
        spool_stream(input, spool.as_file(), &shown, progress)?;
        let path = spool.path().to_path_buf();
        let mut opts = opts.clone();
        opts.source = Some(shown);
        let result = self.push_inner(&guard, &path, &opts, progress, None);
        progress.finish();
        drop(spool);
        drop(guard);
        self.after_push(result?, &opts)
    }
}

/// Read the whole stream into `spool`, checking as it goes that it is one
/// checkpoint and nothing else.
fn spool_stream(input: &mut dyn Read, spool: &File, shown: &str, progress: &dyn Progress) -> Result<(), RegistryError> {
    let stream_err = |e: StreamError| RegistryError::Stream {
        source_name: shown.to_string(),
        reason: e.to_string(),
    };
    let io_err = |e: io::Error| RegistryError::Stream {
        source_name: shown.to_string(),
        reason: match e.kind() {
            io::ErrorKind::UnexpectedEof => e.to_string(),
            _ => format!("reading the stream: {e}"),
        },
    };
    let mut reader = Spooling {
        input,
        spool: BufWriter::with_capacity(1 << 20, spool),
        read: 0,
        progress,
    };
    let cut = stream_in::split(&mut reader, &mut Drain, StreamLimits::default());
    match cut {
        Ok((_, len)) => {
            // What the read buffer took beyond the checkpoint, and what
            // is still to come, must be nothing.
            io::copy(&mut reader, &mut io::sink()).map_err(io_err)?;
            if reader.read != len {
                return Err(RegistryError::Stream {
                    source_name: shown.to_string(),
                    reason: format!(
                        "{} more bytes follow the end of the checkpoint at byte {len}",
                        reader.read - len
                    ),
                });
            }
        }
        Err(StreamError::NotOnePass) => {
            io::copy(&mut reader, &mut io::sink()).map_err(io_err)?;
        }
        Err(StreamError::Io(e)) => return Err(io_err(e)),
        Err(e) => return Err(stream_err(e)),
    }
    reader.spool.flush().map_err(io_err)
}
