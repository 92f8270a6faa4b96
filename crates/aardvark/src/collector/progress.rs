//! Progress of a run: a bar on a terminal (accounts done and failed, ARNs per second), or,
//! otherwise, one structured log line per finished account and one every few seconds with the
//! totals so far (accounts often finish together, late in a run: without it, a log would say
//! nothing for most of the run).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::{AccountReport, AccountStatus};

/// How often a run without a bar logs its totals so far.
pub(crate) const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Progress {
    bar: Option<ProgressBar>,
    accounts_total: AtomicUsize,
    accounts_done: AtomicUsize,
    accounts_failed: AtomicUsize,
    principals: AtomicUsize,
    started: Mutex<Instant>,
}

impl Progress {
    /// Log lines only.
    pub fn logs() -> Self {
        Self {
            bar: None,
            accounts_total: AtomicUsize::new(0),
            accounts_done: AtomicUsize::new(0),
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
        self.accounts_total.store(accounts, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(accounts as u64);
        }
    }

    /// Principals done so far, and how many per second since the start.
    fn rate(&self) -> (usize, f64) {
        let principals = self.principals.load(Ordering::Relaxed);
        let seconds = self
            .started
            .lock()
            .expect("never poisoned")
            .elapsed()
            .as_secs_f64()
            .max(0.001);
        (principals, principals as f64 / seconds)
    }

    fn message(&self) -> String {
        let (principals, per_second) = self.rate();
        format!(
            "({} failed) {principals} ARNs, {per_second:.0} ARNs/s",
            self.accounts_failed.load(Ordering::Relaxed),
        )
    }

    /// Logs the totals so far, where there is no bar to show them.
    pub(crate) fn log_totals(&self) {
        if self.bar.is_some() {
            return;
        }
        let (principals, per_second) = self.rate();
        tracing::info!(
            accounts_done = self.accounts_done.load(Ordering::Relaxed),
            accounts = self.accounts_total.load(Ordering::Relaxed),
            accounts_failed = self.accounts_failed.load(Ordering::Relaxed),
            principals,
            principals_per_second = (per_second * 10.0).round() / 10.0,
            "collection in progress"
        );
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
        self.accounts_done.fetch_add(1, Ordering::Relaxed);
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
                interrupted = report.interrupted,
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
