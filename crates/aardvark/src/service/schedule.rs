//! Collections on a schedule inside `serve` (`--collect-every`, `COLLECT_EVERY`). The schedule
//! lives in the database: the next run is due an interval after the start of the latest
//! scheduled run that ended, whichever server ran it, so that servers sharing a database
//! collect once per interval between them, and a run that overran its interval is followed at
//! once by the next, never by two. A run starts only under the collection lock
//! ([`crate::db::lock`]), and the schedule is read again once the lock is held.

use std::time::Duration;

use crate::collector::progress::Progress;
use crate::collector::{Collector, Stop, UpdateRequest};
use crate::db::lock::CollectionLock;
use crate::db::Database;

/// How often a server that is due asks again for a lock another server holds.
const LOCK_RETRY: Duration = Duration::from_secs(1);

/// What a server collects, and how often.
pub struct Schedule {
    pub collector: Collector,
    pub every: Duration,
    /// What each run collects (prune or not; `scheduled` is set by the schedule).
    pub request: UpdateRequest,
}

/// How long until the next scheduled run is due, as the database tells it.
async fn due_in(db: &Database, every: Duration) -> Result<Duration, crate::db::DbError> {
    let Some(started) = db.latest_scheduled_start().await? else {
        return Ok(Duration::ZERO);
    };
    let Some(started) = crate::time::parse_stored(&started) else {
        return Ok(Duration::ZERO);
    };
    // `every` is at most a year (`config::parse_interval`), so the sum cannot overflow.
    let due = chrono::Duration::from_std(every)
        .ok()
        .and_then(|every| started.checked_add_signed(every))
        .unwrap_or(started);
    Ok((due - chrono::Utc::now().naive_utc())
        .to_std()
        .unwrap_or(Duration::ZERO))
}

/// Waits `wait`, or less if the server is asked to stop; `true` when it was.
async fn stopped_while_waiting(stop: &Stop, wait: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => stop.is_set(),
        () = stop.wait() => true,
    }
}

/// Runs the schedule until the collector is asked to stop; a run in progress then starts no
/// new principal, finishes its writes and is recorded `interrupted`.
pub async fn run(schedule: Schedule, db: Database) {
    let Schedule {
        collector,
        every,
        mut request,
    } = schedule;
    request.scheduled = true;
    let stop = collector.stop_signal();
    let mut lock = CollectionLock::new(&db);
    // A run that could not start (no accounts, say) records nothing; this keeps the schedule
    // from trying again at once.
    let mut not_before = tokio::time::Instant::now();
    tracing::info!(every = %humantime::format_duration(every), "collecting on a schedule");
    loop {
        let wait = match due_in(&db, every).await {
            Ok(wait) => wait.max(not_before - tokio::time::Instant::now()),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the schedule from the database");
                LOCK_RETRY
            }
        };
        if stopped_while_waiting(&stop, wait).await {
            break;
        }
        match lock.try_acquire(&db).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!("another server holds the collection lock");
                if stopped_while_waiting(&stop, LOCK_RETRY).await {
                    break;
                }
                continue;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot take the collection lock");
                if stopped_while_waiting(&stop, LOCK_RETRY).await {
                    break;
                }
                continue;
            }
        }
        // Another server may have collected between the first reading and the lock.
        if !matches!(due_in(&db, every).await, Ok(wait) if wait.is_zero()) {
            lock.release().await;
            continue;
        }
        match db.mark_scheduled_runs_interrupted().await {
            Ok(marked) => {
                for run_id in marked {
                    tracing::warn!(run_id, "a scheduled run's server died: marked interrupted");
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot mark dead scheduled runs"),
        }
        not_before = tokio::time::Instant::now() + every;
        match collector.run(&request, Progress::logs()).await {
            Ok(report) => tracing::info!(
                exit_code = report.exit_code(),
                summary = %report.summary(),
                "scheduled collection done"
            ),
            Err(err) => tracing::error!(error = %err, "scheduled collection failed"),
        }
        lock.release().await;
        if stop.is_set() {
            break;
        }
    }
    lock.release().await;
}
