//! Progress bars on stderr for push and pull.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Only files at least this large get a bar.
const MIN_BAR_BYTES: u64 = 64 << 20;

/// A progress bar that shows itself only on a terminal, only when not
/// quiet, and only for large files.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar for an operation over a file of `file_len` bytes.
    pub fn new(quiet: bool, file_len: u64) -> Bar {
        let visible = !quiet && std::io::stderr().is_terminal() && file_len >= MIN_BAR_BYTES;
        let bar = if visible {
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(10))
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar { bar }
    }
}

impl reg_registry::Progress for Bar {
    fn phase(&self, name: &'static str, total: u64) {
        self.bar.set_prefix(name);
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.reset_eta();
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn grow(&self, bytes: u64) {
        self.bar.inc_length(bytes);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
