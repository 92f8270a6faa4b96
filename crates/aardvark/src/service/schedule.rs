//! Collections on a schedule inside `serve` (`--collect-every`, `COLLECT_EVERY`). The schedule
//! lives in the database: the next run is due an interval after the start of the latest
//! scheduled run that ended, whichever server ran it, so that servers sharing a database
//! collect once per interval between them, and a run that overran its interval is followed at
//! once by the next, never by two. A run starts only under the collection lock
//! ([`crate::db::lock`]), and the schedule is read again once the lock is held. Where runs
//! are shared (PostgreSQL), the lock is held only while a run starts, and every server takes
//! part in the run in progress, whoever started it.

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
/// new principal, finishes its writes and is recorded `interrupted` (or, when others share
/// it, leaves its accounts to them).
pub async fn run(schedule: Schedule, db: Database) {
    let Schedule {
        collector,
        every,
        mut request,
    } = schedule;
    request.scheduled = true;
    let stop = collector.stop_signal();
    let shared = collector.shares_runs();
    let mut lock = CollectionLock::new(&db);
    // A run that could not start (no accounts, say) records nothing; this keeps the schedule
    // from trying again at once.
    let mut not_before = tokio::time::Instant::now();
    tracing::info!(every = %humantime::format_duration(every), shared, "collecting on a schedule");
    loop {
        if shared {
            match collector.join(Progress::logs()).await {
                Ok(Some(report)) => log_done(&report),
                Ok(None) => {}
                Err(err) => tracing::error!(error = %err, "taking part in the shared run failed"),
            }
            if stop.is_set() {
                break;
            }
        }
        let wait = match due_in(&db, every).await {
            Ok(wait) => wait.max(not_before - tokio::time::Instant::now()),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the schedule from the database");
                LOCK_RETRY
            }
        };
        // A server that shares runs looks for one to take part in meanwhile.
        let look = if shared { wait.min(LOCK_RETRY) } else { wait };
        if stopped_while_waiting(&stop, look).await {
            break;
        }
        if look < wait {
            continue;
        }
        if !still_due_under_the_lock(&db, &mut lock, every, shared).await {
            if stopped_while_waiting(&stop, LOCK_RETRY).await {
                break;
            }
            continue;
        }
        not_before = tokio::time::Instant::now() + every;
        let started = collector.start(&request).await;
        if shared {
            // The run is in the database now: the others see it and join rather than start.
            lock.release().await;
        }
        match started {
            Ok(started) => match collector.collect(started, Progress::logs()).await {
                Ok(report) => log_done(&report),
                Err(err) => tracing::error!(error = %err, "scheduled collection failed"),
            },
            Err(err) => tracing::error!(error = %err, "scheduled collection failed"),
        }
        lock.release().await;
        if stop.is_set() {
            break;
        }
    }
    lock.release().await;
}

/// Takes the collection lock and reads the schedule again under it: `true` (the lock held)
/// when a run is still to be started, `false` (the lock not held) when another server holds
/// it, collected meanwhile, or started a shared run.
async fn still_due_under_the_lock(
    db: &Database,
    lock: &mut CollectionLock,
    every: Duration,
    shared: bool,
) -> bool {
    match lock.try_acquire(db).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!("another server holds the collection lock");
            return false;
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot take the collection lock");
            return false;
        }
    }
    let due = matches!(due_in(db, every).await, Ok(wait) if wait.is_zero());
    let running = shared && !matches!(db.open_shared_run().await, Ok(None));
    if !due || running {
        lock.release().await;
        return false;
    }
    if !shared {
        // Unshared scheduled runs run under the lock: one still running lost its server.
        match db.mark_scheduled_runs_interrupted().await {
            Ok(marked) => {
                for run_id in marked {
                    tracing::warn!(run_id, "a scheduled run's server died: marked interrupted");
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot mark dead scheduled runs"),
        }
    }
    true
}

fn log_done(report: &crate::collector::report::RunReport) {
    tracing::info!(
        exit_code = report.exit_code(),
        summary = %report.summary(),
        "scheduled collection done"
    );
}
