//! The work a push leaves to run after it: starting it, running it, and
//! telling the next push when it failed.
//!
//! A push with background deltas (the default) commits its version and
//! queues the re-encoding of the previous one as deltas (and the retention
//! it asked for) in the index's `pending` tree. Then it starts the job
//! ([`Registry::start_background`]) as the registry's [`BackgroundRunner`]
//! says, and returns: training goes on while the job runs.
//!
//! - When no job runs, the push takes `deltas.lock` and hands it to the
//!   job ([`crate::lock::DeltasHandOff`]: a child process inherits the
//!   locked descriptor, a thread takes the guard), so whoever waits for
//!   re-encodings (`reg deltas`, [`Registry::wait_background`]) waits for
//!   it. When one runs already, nothing is started: it takes the new
//!   request before it lets the lock go.
//! - The job ([`Registry::run_background_job`]) does its CPU work at the
//!   lowest priority (nice 19, SCHED_IDLE, idle I/O class on Linux): a
//!   pull started right after a push on 2 cores took 1.8-3.4x the settled
//!   pull with the re-encoding at normal priority, 0.79-1.24x with
//!   SCHED_IDLE workers (docs/performance.md). The thread that takes the
//!   index lock keeps its priority: a starved lock holder would make every
//!   command wait.
//! - A job has no terminal: when it fails its error goes to `deltas.failed`
//!   ([`Registry::background_failure`]), its work stays queued, and the next
//!   push (or [`Registry::wait_background`]) retries it.
//!
//! ```no_run
//! use reg_registry::{BackgroundRunner, Config, PushOptions, Registry};
//! # fn main() -> Result<(), reg_registry::RegistryError> {
//! // A program that embeds reg: the job runs in a thread of this process.
//! let reg = Registry::open(Config::at("/tmp/reg-example"))?.with_background(BackgroundRunner::Thread);
//! reg.push("epoch=3.ckpt".as_ref(), &PushOptions::default())?;
//! reg.wait_background()?; // before exiting: the re-encoding is done
//! # Ok(()) }
//! ```

use crate::deltas::DeltaReport;
use crate::error::RegistryError;
use crate::lock::DeltasHandOff;
use crate::registry::Registry;
use crate::runner::BackgroundRunner;
use crate::ModelName;

impl Registry {
    /// Choose how the work pushes leave runs (default: a thread).
    pub fn with_background(mut self, runner: BackgroundRunner) -> Registry {
        self.background = runner;
        self
    }

    /// Start the work the pushes left queued, as the registry's
    /// [`BackgroundRunner`] says; nothing when a job runs already (it
    /// takes the queue) or nothing is queued.
    pub fn start_background(&self) -> Result<(), RegistryError> {
        if self.background == BackgroundRunner::Queue {
            return Ok(());
        }
        let Some(hand_off) = self.hand_off_deltas()? else {
            return Ok(());
        };
        match &self.background {
            BackgroundRunner::Inline => self.run_inline(hand_off),
            BackgroundRunner::Queue => Ok(()),
            BackgroundRunner::Thread => self.start_thread(hand_off),
            BackgroundRunner::Process(program) => self.start_process(program, hand_off),
        }
    }

    fn run_inline(&self, hand_off: DeltasHandOff) -> Result<(), RegistryError> {
        drop(hand_off);
        self.wait_background().map(|_| ())
    }

    fn start_thread(&self, hand_off: DeltasHandOff) -> Result<(), RegistryError> {
        let config = self.config.clone();
        let started = std::thread::Builder::new().name("reg-deltas".into()).spawn(move || {
            let Ok(reg) = Registry::open_existing(config) else {
                return;
            };
            let pool = rayon::ThreadPoolBuilder::new()
                .thread_name(|i| format!("reg-deltas-{i}"))
                .start_handler(|_| lower_this_thread())
                .build();
            let run = || reg.finish_background(hand_off.into_guard());
            // A job that fails here says so to the next push.
            let _ = match pool {
                Ok(pool) => pool.install(run),
                Err(_) => run(),
            };
        });
        match started {
            Ok(_) => Ok(()),
            // No thread: the hand-off went with the closure; run it here.
            Err(_) => self.wait_background().map(|_| ()),
        }
    }

    fn start_process(&self, program: &std::path::Path, hand_off: DeltasHandOff) -> Result<(), RegistryError> {
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            if let Ok(fd) = hand_off.inheritable_fd() {
                let started = std::process::Command::new(program)
                    .arg("--registry")
                    .arg(&self.config.root)
                    .arg("--quiet")
                    .arg("deltas")
                    .arg("--background")
                    .env(crate::lock::DELTAS_LOCK_FD_ENV, fd.to_string())
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    // Its own process group: a Ctrl-C meant for the training
                    // script does not stop it half way (that would be safe,
                    // but the work would wait for the next job).
                    .process_group(0)
                    .spawn();
                if started.is_ok() {
                    hand_off.release_to_child();
                    return Ok(());
                }
            }
        }
        let _ = program;
        self.run_inline(hand_off)
    }

    /// The body of a background job process (`reg deltas --background`):
    /// take over the `deltas.lock` descriptor a push handed down
    /// (`inherited_fd`, else take the lock), do everything queued with the
    /// worker threads at the lowest priority, and record a failure for
    /// the next push (or clear an old one).
    pub fn run_background_job(
        &self,
        inherited_fd: Option<i32>,
    ) -> Result<Vec<(ModelName, DeltaReport)>, RegistryError> {
        lower_worker_priority();
        let result = self.finish_pending_deltas(inherited_fd, &crate::Silent);
        match &result {
            Ok(_) => self.clear_background_failure(),
            Err(e) => self.record_background_failure(e),
        }
        result
    }

    /// A thread job's run, holding the handed-over lock.
    fn finish_background(&self, held: crate::lock::LockGuard) -> Result<Vec<(ModelName, DeltaReport)>, RegistryError> {
        let result = self.finish_pending_deltas_holding(held, &crate::Silent);
        match &result {
            Ok(_) => self.clear_background_failure(),
            Err(e) => self.record_background_failure(e),
        }
        result
    }

    /// Wait for a running job, then do whatever is still queued (a failed
    /// job's work included) here, at normal priority; clears a recorded
    /// failure when it succeeds. What `reg deltas --queued` runs, and what
    /// a program that embeds reg calls before it exits.
    pub fn wait_background(&self) -> Result<Vec<(ModelName, DeltaReport)>, RegistryError> {
        let done = self.finish_pending_deltas(None, &crate::Silent)?;
        self.clear_background_failure();
        Ok(done)
    }
}

/// Make the global rayon pool's threads, which do this process's CPU
/// work, yield to everything else (a background job process); the calling
/// thread keeps its priority. Linux only: elsewhere the nice value is per
/// process, and lowering it would starve the holder of the index lock.
pub fn lower_worker_priority() {
    #[cfg(target_os = "linux")]
    {
        // An error means the pool exists already: the work then runs at
        // normal priority, which is only less polite.
        let _ = rayon::ThreadPoolBuilder::new()
            .start_handler(|_| lower_this_thread())
            .build_global();
    }
}

/// Lower the calling thread's CPU and I/O priority as far as they go:
/// nice 19, the SCHED_IDLE policy, idle I/O class (failures are ignored:
/// the work is the same, only less polite).
fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        // SAFETY: plain system calls on the calling thread, with integer
        // arguments or a pointer to a live local (on Linux, nice,
        // scheduling policy and I/O priority are per thread).
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid);
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
            // SCHED_IDLE: a woken foreground thread takes the core at once,
            // where a nice-19 one may first finish its slice.
            let idle = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(tid as libc::pid_t, libc::SCHED_IDLE, &idle);
            // ioprio_set(IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_IDLE << 13).
            libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_IDLE << 13);
        }
    }
}
