//! What every task of one run shares, below the run itself: the settings and clients, the
//! `-r` selection, the stop signal, the run's work, and the writes of principals (grouped,
//! with retries). The
//! run (`mod.rs`) builds it; accounts and principals use it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::aws::{AwsContext, Failure};
use super::progress::Progress;
use super::stop::Stop;
use crate::arn::Arn;
use crate::config::Settings;
use crate::db::vocabulary::PrincipalUsage;
use crate::db::write::WriteOptions;
use crate::db::{Database, DbError};

/// How long a write is tried again while the database answers with errors that may pass
/// (contention, a lost connection, a PostgreSQL restart) before it counts as failed.
const WRITE_PATIENCE: Duration = Duration::from_secs(30);

/// The account of an IAM ARN (`arn:aws:iam::123456789012:role/x`).
pub(super) fn arn_account(arn: &str) -> Option<&str> {
    Arn::iam(arn).map(|arn| arn.account)
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
    /// Principals waiting to be written.
    pub(super) writes: WriteQueue,
    /// Places for principals, from before their job is generated until they are written
    /// (`UPDATER_PRINCIPALS_IN_FLIGHT`, over every account). A thousand accounts' principals
    /// finish their jobs in waves faster than one writer stores them: without a bound, 25,000
    /// of them waited with their data at 1,000 x 100; with 8,192, peak RSS there fell by a
    /// quarter at no cost in wall time, where 4,096 made the run slower (BENCHMARKS.md).
    /// Shared, so that an account's stream of principals can wait for one.
    pub(super) principal_places: Arc<tokio::sync::Semaphore>,
    /// Turns for an account's authorization details, from their first page until they are
    /// stored (`DETAILS_AT_ONCE`).
    pub(super) details_turns: tokio::sync::Semaphore,
    /// Turns for an account's findings evaluation (`findings::EVALUATIONS_AT_ONCE`).
    pub(super) evaluation_turns: tokio::sync::Semaphore,
    /// The run's accounts: this process's own, or a shared run's.
    pub(super) work: super::work::Work,
    pub(super) progress: Progress,
    pub(super) stop: Stop,
}

/// Principals waiting to be written, and the turn to write them: whoever takes the turn
/// writes every principal waiting then, in one transaction (a group commit), so that
/// thousands of principals finishing at once cost a few transactions instead of one each.
#[derive(Default)]
pub(super) struct WriteQueue {
    waiting: std::sync::Mutex<Vec<(PrincipalUsage, Written)>>,
    turn: tokio::sync::Mutex<()>,
}

/// Where a waiting principal's outcome is sent.
type Written = tokio::sync::oneshot::Sender<Result<(), Failure>>;

/// How many accounts' authorization details may be in memory at once. Each account's are
/// read whole and stored in one transaction, and a thousand accounts starting together held
/// 300 MB of them while they waited for the database; their calls take well under a second,
/// so a few dozen at once keep pace with accounts whose principals take tens of seconds.
pub(super) const DETAILS_AT_ONCE: usize = 64;

/// The most principals one transaction writes. When the collector's CPU is the brake, a
/// group spends most of its time waiting between statements and principals pile up while it
/// is written; 1,024 per transaction instead of 256 collected 1,000 x 100 about a tenth
/// sooner (BENCHMARKS.md).
const MOST_AT_ONCE: usize = 1024;

/// Writes one principal, with those waiting beside it; transient database errors are retried,
/// and a database that stays unreachable marks the run as having lost it.
pub(super) async fn store(run: &RunShared, usage: PrincipalUsage) -> Result<(), Failure> {
    let (written, mut outcome) = tokio::sync::oneshot::channel();
    lock(&run.writes.waiting).push((usage, written));
    loop {
        // Written in an earlier turn, by whoever held it (or given up: its writer was
        // dropped before it could say). A principal written while it waits leaves the queue
        // for the turn at once: otherwise the turn passes through each principal of the last
        // group, one task wake-up after another, before the next group can be written. The
        // outcome is looked at first, so a turn that comes with it is passed on unused (a
        // holder answers its group before it lets the turn go).
        let _turn = tokio::select! {
            biased;
            result = &mut outcome => {
                return result.unwrap_or_else(|_| Err(Failure::new(
                    "DatabaseError",
                    "the write of this principal was abandoned",
                )))
            }
            turn = run.writes.turn.lock() => turn,
        };
        let batch: Vec<_> = {
            let mut waiting = lock(&run.writes.waiting);
            let oldest = waiting.len().min(MOST_AT_ONCE);
            waiting.drain(..oldest).collect()
        };
        let (usages, senders): (Vec<_>, Vec<_>) = still_held(run, batch).await.into_iter().unzip();
        for (sender, result) in senders.into_iter().zip(write_batch(run, &usages).await) {
            let _ = sender.send(result);
        }
    }
}

/// The principals of `batch` whose accounts this process still holds; the others are
/// answered `LeaseLost` unwritten (another worker collects their accounts now).
async fn still_held(
    run: &RunShared,
    batch: Vec<(PrincipalUsage, Written)>,
) -> Vec<(PrincipalUsage, Written)> {
    if batch.is_empty() {
        return batch;
    }
    run.work.before_writing().await;
    let (held, lost): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(usage, _)| {
        !arn_account(&usage.arn).is_some_and(|account| run.work.is_lost(account))
    });
    for (_, written) in lost {
        let _ = written.send(Err(lease_lost()));
    }
    held
}

/// Why a principal of an account whose lease this process lost was not written.
pub(super) fn lease_lost() -> Failure {
    Failure::new(
        "LeaseLost",
        "not written: this worker's lease on the account expired, and another worker collects it",
    )
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Pushing to and draining a Vec completes before it could panic.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes `usages` in one transaction, retrying transient errors; when the transaction fails
/// otherwise, each principal is written alone, so that one bad principal fails only itself.
async fn write_batch(run: &RunShared, usages: &[PrincipalUsage]) -> Vec<Result<(), Failure>> {
    match write_with_retries(run, usages).await {
        Ok(()) => vec![Ok(()); usages.len()],
        Err(failure) if usages.len() > 1 && !run.database_lost.load(Ordering::SeqCst) => {
            let mut results = Vec::with_capacity(usages.len());
            for usage in usages {
                results.push(write_with_retries(run, std::slice::from_ref(usage)).await);
            }
            tracing::debug!(%failure, "a batch of principals failed; written one by one");
            results
        }
        Err(failure) => vec![Err(failure); usages.len()],
    }
}

async fn write_with_retries(run: &RunShared, usages: &[PrincipalUsage]) -> Result<(), Failure> {
    let mut delay = Duration::from_millis(100);
    let first = std::time::Instant::now();
    for attempt in 1.. {
        match run.db.store_principals(usages, run.write).await {
            Ok(summary) => {
                for warning in &summary.warnings {
                    tracing::warn!("{warning}");
                }
                return Ok(());
            }
            Err(err)
                if err.is_transient()
                    && !matches!(err, DbError::Sql(sqlx::Error::PoolClosed))
                    && first.elapsed() < WRITE_PATIENCE =>
            {
                tracing::warn!(principals = usages.len(), attempt, error = %err, "database write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(err) => {
                if err.is_transient() {
                    run.database_lost.store(true, Ordering::SeqCst);
                }
                return Err(Failure::new("DatabaseError", err.to_string()));
            }
        }
    }
    unreachable!("attempts are counted without end")
}
