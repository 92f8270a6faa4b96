//! Progress of a run: a bar on a terminal (accounts done and failed, ARNs per second), or one
//! structured log line per finished account otherwise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::{AccountReport, AccountStatus};

pub struct Progress {
    bar: Option<ProgressBar>,
    accounts_failed: AtomicUsize,
    principals: AtomicUsize,
    started: Mutex<Instant>,
}

impl Progress {
    /// Log lines only.
    pub fn logs() -> Self {
        Self {
            bar: None,
            accounts_failed: AtomicUsize::new(0),
            principals: AtomicUsize::new(0),
            started: Mutex::new(Instant::now()),
        }
    }

    /// A progress bar on standard error.
    pub fn bar() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} accounts {msg}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        Self {
            bar: Some(bar),
            ..Self::logs()
        }
    }

    pub(crate) fn start(&self, accounts: usize) {
        *self.started.lock().expect("never poisoned") = Instant::now();
        if let Some(bar) = &self.bar {
            bar.set_length(accounts as u64);
        }
    }

    fn message(&self) -> String {
        let principals = self.principals.load(Ordering::Relaxed);
        let seconds = self
            .started
            .lock()
            .expect("never poisoned")
            .elapsed()
            .as_secs_f64()
            .max(0.001);
        format!(
            "({} failed) {principals} ARNs, {:.0} ARNs/s",
            self.accounts_failed.load(Ordering::Relaxed),
            principals as f64 / seconds
        )
    }

    pub(crate) fn principal_done(&self) {
        let done = self.principals.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            if done.is_multiple_of(16) {
                bar.set_message(self.message());
            }
        }
    }

    pub(crate) fn account_done(&self, report: &AccountReport) {
        if report.status == AccountStatus::Failed {
            self.accounts_failed.fetch_add(1, Ordering::Relaxed);
        }
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(self.message());
            }
            None => tracing::info!(
                account = %report.id,
                status = report.status.as_str(),
                collected = report.collected,
                failed = report.failed.len(),
                vanished = report.vanished.len(),
                reason = report.failure.as_ref().map(ToString::to_string).unwrap_or_default(),
                duration_ms = report.duration.as_millis() as u64,
                "account done"
            ),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(self.message());
        }
    }
}
