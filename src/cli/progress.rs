//! Progress of a sweep (a bar with an ETA on a terminal, a periodic line otherwise) and
//! Ctrl-C (the sweep ends between seeds and reports what it found).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)] // host time, not simulated time

use super::out::note;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Set by Ctrl-C while a sweep runs.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Whether a sweep is running (Ctrl-C then ends it between seeds instead of at once).
static SWEEPING: AtomicBool = AtomicBool::new(false);

/// Handle Ctrl-C: during a sweep, the first one ends it between seeds; otherwise, or the
/// second time, the command ends at once with status 130.
pub fn install_interrupt() {
    let _ = ctrlc::set_handler(|| {
        if !SWEEPING.load(Ordering::SeqCst) || INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
}

/// Marks a sweep as running while it lives.
pub struct Sweeping;

impl Sweeping {
    pub fn start() -> Sweeping {
        SWEEPING.store(true, Ordering::SeqCst);
        Sweeping
    }
}

impl Drop for Sweeping {
    fn drop(&mut self) {
        SWEEPING.store(false, Ordering::SeqCst);
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// How often the plain progress line is printed when stderr is not a terminal.
const EVERY: Duration = Duration::from_secs(5);

/// Progress of one design's sweep.
pub struct Progress {
    name: String,
    total: u64,
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last: Mutex<Instant>,
    done: AtomicU64,
    failing: AtomicU64,
}

impl Progress {
    pub fn new(name: &str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {human_pos}/{human_len} seeds {per_sec} · {eta} left {msg}",
            )
            .expect("a valid progress template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(name.to_string());
            bar
        });
        Progress {
            name: name.to_string(),
            total,
            bar,
            started: Instant::now(),
            last: Mutex::new(Instant::now()),
            done: AtomicU64::new(0),
            failing: AtomicU64::new(0),
        }
    }

    /// One run finished.
    pub fn tick(&self, failed: bool) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let failing = self.failing.load(Ordering::Relaxed) + u64::from(failed);
        if failed {
            self.failing.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if failed {
                bar.set_message(format!("{failing} failing"));
            }
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= EVERY {
            *last = Instant::now();
            note!("{}", self.line(done, failing));
        }
    }

    fn line(&self, done: u64, failing: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        let left = (self.total - done.min(self.total)) as f64 / rate.max(1e-9);
        let eta = if left < 1e7 {
            format!("about {}s left", left.round())
        } else {
            "a very long time left".to_string()
        };
        format!(
            "  {}: {done}/{} seeds, {failing} failing, {rate:.0} runs/s, {eta}",
            self.name, self.total
        )
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Seconds since the sweep started.
    pub fn elapsed_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64().max(1e-9)
    }
}
