//! What every task of one run shares, below the run itself: the settings and clients, the
//! `-r` selection, the stop signal, and the write of one principal with its retries. The run (`mod.rs`) builds it; accounts and principals use it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::aws::{AwsContext, Failure};
use super::progress::Progress;
use crate::arn::Arn;
use crate::config::Settings;
use crate::db::vocabulary::PrincipalUsage;
use crate::db::write::WriteOptions;
use crate::db::Database;

/// Attempts at writing one principal before it counts as failed.
const WRITE_ATTEMPTS: u32 = 4;

/// The account of an IAM ARN (`arn:aws:iam::123456789012:role/x`).
pub(super) fn arn_account(arn: &str) -> Option<&str> {
    Arn::iam(arn).map(|arn| arn.account)
}

/// Asks a run to stop: no new account or principal starts, polling jobs are given up, writes
/// in flight finish, and the run is recorded `interrupted`.
#[derive(Debug, Clone)]
pub struct Stopper(Arc<tokio::sync::watch::Sender<bool>>);

/// A stopper and the signal it sets.
pub(super) fn stop_signal() -> (Stopper, Stop) {
    let (sender, receiver) = tokio::sync::watch::channel(false);
    (Stopper(Arc::new(sender)), Stop(receiver))
}

impl Stopper {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// Whether the run was asked to stop, and a way to wait for it.
#[derive(Debug, Clone)]
pub(crate) struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the run is asked to stop.
    pub async fn wait(&self) {
        let mut receiver = self.0.clone();
        let _ = receiver.wait_for(|stopped| *stopped).await;
    }
}

/// What every account task of a run shares.
pub(super) struct RunShared {
    pub(super) settings: Settings,
    pub(super) db: Database,
    pub(super) aws: AwsContext,
    pub(super) sts: aws_sdk_sts::Client,
    /// `-r` ARNs as given.
    pub(super) requested_arns: Vec<String>,
    /// Lower-cased `-r` ARNs.
    pub(super) only_arns: Option<HashSet<String>>,
    pub(super) failing_arns: HashSet<String>,
    pub(super) prune: bool,
    /// How every principal is written.
    pub(super) write: WriteOptions,
    pub(super) database_lost: AtomicBool,
    pub(super) progress: Progress,
    pub(super) stop: Stop,
}

/// Writes one principal, retrying transient database errors; a database that stays
/// unreachable marks the run as having lost it.
pub(super) async fn store(
    run: &RunShared,
    usage: PrincipalUsage,
    options: WriteOptions,
) -> Result<(), Failure> {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=WRITE_ATTEMPTS {
        match run
            .db
            .store_principals(std::slice::from_ref(&usage), options)
            .await
        {
            Ok(summary) => {
                for warning in &summary.warnings {
                    tracing::warn!("{warning}");
                }
                return Ok(());
            }
            Err(err) if err.is_transient() && attempt < WRITE_ATTEMPTS => {
                tracing::warn!(arn = %usage.arn, attempt, error = %err, "database write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            Err(err) => {
                if err.is_transient() {
                    run.database_lost.store(true, Ordering::SeqCst);
                }
                return Err(Failure::new("DatabaseError", err.to_string()));
            }
        }
    }
    unreachable!("the last attempt returns")
}
