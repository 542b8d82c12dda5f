//! Progress bars for long jobs, drawn on stderr only when it is a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use pulse_runtime::replay::{ProgressObserver, ProgressUnit, ProgressUpdate};

/// A bar fed from a counter that a worker thread bumps.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    counter: Arc<AtomicU64>,
}

impl Progress {
    /// A byte-counting bar over `total` bytes.
    pub fn bytes(enabled: bool, label: &str, total: u64, counter: Arc<AtomicU64>) -> Progress {
        let template = "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})";
        Progress::new(enabled, label, total, counter, template)
    }

    /// A bar counting items (records, customers) up to `total`.
    pub fn items(enabled: bool, label: &str, total: u64, counter: Arc<AtomicU64>) -> Progress {
        let template = "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec:0}, eta {eta})";
        Progress::new(enabled, label, total, counter, template)
    }

    fn new(enabled: bool, label: &str, total: u64, counter: Arc<AtomicU64>, template: &str) -> Progress {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            // No size known (standard input, a pipe): what has gone by and how fast.
            let template = match total {
                0 if template.contains("{bytes}") => "{prefix} [{elapsed_precise}] {spinner} {bytes} ({bytes_per_sec})",
                0 => "{prefix} [{elapsed_precise}] {spinner} {human_pos} ({per_sec:0})",
                _ => template,
            };
            let bar = if total == 0 { ProgressBar::new_spinner() } else { ProgressBar::new(total) };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_prefix(label.to_owned());
            bar
        });
        Progress { bar, counter }
    }

    /// Redraws from the counter every `every` until aborted.
    pub fn spawn_ticker(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                this.update();
            }
        })
    }

    fn update(&self) {
        if let Some(bar) = &self.bar {
            bar.set_position(self.counter.load(Relaxed));
        }
    }

    /// Draws the final state and leaves the bar on screen: the count
    /// reached, not the estimate the bar was made with (`finish` alone
    /// moved it to its length: "138,000/138,000" for 136,164 records).
    pub fn finish(&self) {
        self.update();
        if let Some(bar) = &self.bar {
            bar.set_length(self.counter.load(Relaxed));
            bar.abandon();
            // The bar's line is left open: what is printed next began on it.
            if !bar.is_hidden() {
                crate::tell!();
            }
        }
    }
}

impl Progress {
    /// A bar for a replay's progress updates (bytes of a file, or records
    /// generated), made at the first update; `None` when disabled.
    pub fn observer(enabled: bool, label: &str) -> Option<ProgressObserver> {
        if !enabled {
            return None;
        }
        let label = label.to_owned();
        let bar = std::sync::OnceLock::<Progress>::new();
        Some(ProgressObserver(Arc::new(move |u: ProgressUpdate| {
            let progress = bar.get_or_init(|| {
                let counter = Arc::new(AtomicU64::new(0));
                match u.unit {
                    ProgressUnit::Bytes => Progress::bytes(true, &label, u.total, counter),
                    ProgressUnit::Records => Progress::items(true, &label, u.total, counter),
                }
            });
            progress.counter.store(u.count, Relaxed);
            if u.finished {
                progress.finish();
            } else {
                progress.update();
            }
        })))
    }
}
