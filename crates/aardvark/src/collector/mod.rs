//! `aardvark update`: collects Access Advisor data for every principal of every account, with
//! failures isolated per account and per principal, bounded concurrency (global, per run and per
//! account), per-account request pacing, and a record of the run in the database.

mod account;
pub mod accounts;
pub mod aws;
pub mod calls;
pub mod credential_report;
mod identity;
mod pacer;
mod polling;
mod principal;
pub mod progress;
pub mod report;
mod run;
mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::task::AbortOnDropHandle;

use crate::config::Settings;
use crate::db::runs::{RunOwner, RunStatus};
use crate::db::write::WriteOptions;
use crate::db::{Database, DbError};
use accounts::TargetAccount;
use aws::{AwsContext, Failure};
use progress::Progress;
use report::{AccountReport, RunReport};
pub(crate) use run::Stop;
pub use run::Stopper;
use run::{arn_account, RunShared};

/// How often a run says it is alive (`aardvark_runs.heartbeat_at`).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// How long a run may be silent before another process takes it for dead.
pub const SILENT_RUN_IS_DEAD_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("cannot work out the accounts to collect: {0}")]
    Accounts(String),
    /// The hub's credentials are missing or refused, or STS cannot be reached.
    #[error("{0}")]
    HubIdentity(String),
    #[error("{0:?} is not an IAM ARN (arn:PARTITION:iam::ACCOUNT:role/NAME, ...)")]
    InvalidArn(String),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("the database was lost during the run: {0}")]
    DatabaseLost(String),
}

/// What `update` was asked to do.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UpdateRequest {
    /// `-a` values: account ids, SWAG names or aliases, `all`; empty for the configured source.
    pub accounts: Vec<String>,
    /// `-r` ARNs: collect only these.
    pub arns: Vec<String>,
    /// Delete principals and namespaces AWS no longer lists.
    pub prune: bool,
    /// Started by `serve --collect-every` (recorded in the run's request, which is how the
    /// schedule finds its last run).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub scheduled: bool,
}

/// Runs collections against one database and one AWS environment.
pub struct Collector {
    settings: Settings,
    db: Database,
    aws: AwsContext,
    stopper: Stopper,
    stop: Stop,
}

impl Collector {
    pub async fn new(settings: Settings, db: Database, overrides: aws::AwsOverrides) -> Self {
        let aws = AwsContext::new(&settings, overrides).await;
        let (stopper, stop) = run::stop_signal();
        Self {
            settings,
            db,
            aws,
            stopper,
            stop,
        }
    }

    /// The counts of this collector's AWS calls.
    pub fn aws_metrics(&self) -> &calls::AwsMetrics {
        self.aws.metrics()
    }

    /// Whether this collector was asked to stop.
    pub(crate) fn stop_signal(&self) -> Stop {
        self.stop.clone()
    }

    /// What stops this collector's runs (for SIGTERM and SIGINT).
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Collects what `request` asks for. Failures of accounts and principals are in the
    /// report; an error means the run could not start or lost its database.
    pub async fn run(
        &self,
        request: &UpdateRequest,
        progress: Progress,
    ) -> Result<RunReport, CollectorError> {
        let started = Instant::now();
        let arn_accounts = accounts_of_arns(&request.arns)?;
        let hub = self
            .aws
            .hub_identity()
            .await
            .map_err(CollectorError::HubIdentity)?;
        tracing::info!(identity = %hub, "the hub's AWS credentials are valid");
        let targets =
            accounts::resolve(&self.settings, &self.aws, &request.accounts, &arn_accounts).await?;
        let owner = RunOwner::this_process();
        for run_id in self
            .db
            .mark_interrupted_runs(&owner, SILENT_RUN_IS_DEAD_AFTER)
            .await?
        {
            tracing::warn!(run_id, "an earlier run's process died: marked interrupted");
        }
        let run_id = self
            .db
            .start_run(
                &serde_json::to_string(request).expect("requests serialize"),
                &owner,
            )
            .await?;
        tracing::info!(run_id, accounts = targets.len(), "collection started");
        crate::findings::keep_rules_current(&self.db, &self.settings.finding_rules()).await;
        let heartbeat = tokio::spawn(heartbeat(self.db.clone(), run_id));
        let _stop_beating = AbortOnDropHandle::new(heartbeat);
        progress.start(targets.len());
        let shared = Arc::new(self.shared(request, run_id, progress));
        let _stop_logging = AbortOnDropHandle::new(tokio::spawn(log_progress(shared.clone())));
        let reports = collect_accounts(&shared, run_id, targets).await;
        shared.progress.finish();

        let interrupted = shared.stop.is_set();
        let report = RunReport {
            run_id,
            accounts: reports,
            interrupted,
            duration: started.elapsed(),
        };
        if shared.database_lost.load(Ordering::SeqCst) {
            let _ = self
                .db
                .finish_run(run_id, RunStatus::Aborted, &report.totals())
                .await;
            return Err(CollectorError::DatabaseLost(format!(
                "{} principals were collected before writes started failing",
                report.principals_collected()
            )));
        }
        self.db
            .finish_run(run_id, report.status(), &report.totals())
            .await?;
        self.tidy_up().await;
        tracing::info!(run_id, status = %report.status(), seconds = report.duration.as_secs_f64(), "collection finished");
        Ok(report)
    }

    fn shared(&self, request: &UpdateRequest, run_id: i64, progress: Progress) -> RunShared {
        let prune = request.prune || self.settings.updater_prune;
        RunShared {
            settings: self.settings.clone(),
            db: self.db.clone(),
            aws: self.aws.clone(),
            sts: self.aws.sts(),
            requested_arns: request.arns.clone(),
            only_arns: (!request.arns.is_empty())
                .then(|| request.arns.iter().map(|a| a.to_lowercase()).collect()),
            failing_arns: self.settings.updater_failing_arns.iter().cloned().collect(),
            prune,
            write: WriteOptions {
                prune_namespaces: prune,
                keep_history: self.settings.history_retention_days > 0,
                run_id: Some(run_id),
            },
            database_lost: AtomicBool::new(false),
            writes: Default::default(),
            details_turns: tokio::sync::Semaphore::new(run::DETAILS_AT_ONCE),
            evaluation_turns: tokio::sync::Semaphore::new(crate::findings::EVALUATIONS_AT_ONCE),
            progress,
            stop: self.stop.clone(),
        }
    }

    /// After a run: the history trimmed to its retention, fresh planner statistics, and
    /// renderings of principals another writer changed. None of them loses data if it fails,
    /// so failures are warnings.
    async fn tidy_up(&self) {
        let retention =
            Duration::from_secs(u64::from(self.settings.history_retention_days) * 86_400);
        match self.db.trim_history(retention).await {
            Ok(0) => {}
            Ok(changes) => {
                tracing::info!(changes, "removed history older than HISTORY_RETENTION_DAYS")
            }
            Err(err) => tracing::warn!(error = %err, "cannot trim the history of last uses"),
        }
        if let Err(err) = self.db.optimize().await {
            tracing::warn!(error = %err, "cannot refresh the database's statistics");
        }
        // Until they are rendered again, the API renders such principals on every read.
        match self.db.render_missing().await {
            Ok(0) => {}
            Ok(principals) => tracing::info!(
                principals,
                "rendered the API's answers of principals changed elsewhere"
            ),
            Err(err) => {
                tracing::warn!(error = %err, "cannot render the API's answers ahead of reads")
            }
        }
    }
}

/// Keeps `aardvark_runs.heartbeat_at` fresh until aborted. A missed beat only makes the run
/// look silent a little sooner; it is logged, not fatal.
async fn heartbeat(db: Database, run_id: i64) {
    let mut beats = tokio::time::interval(HEARTBEAT_EVERY);
    beats.tick().await;
    loop {
        beats.tick().await;
        if let Err(err) = db.heartbeat(run_id).await {
            tracing::warn!(run_id, error = %err, "cannot record that the run is alive");
        }
    }
}

/// Logs the run's totals every few seconds (where there is no progress bar) until aborted.
async fn log_progress(shared: Arc<RunShared>) {
    let mut ticks = tokio::time::interval(progress::LOG_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        shared.progress.log_totals();
    }
}

/// The accounts of `-r` ARNs, each once, in order.
fn accounts_of_arns(arns: &[String]) -> Result<Vec<String>, CollectorError> {
    let mut accounts: Vec<String> = Vec::new();
    for arn in arns {
        let account = arn_account(arn).ok_or_else(|| CollectorError::InvalidArn(arn.clone()))?;
        if !accounts.iter().any(|a| a == account) {
            accounts.push(account.to_owned());
        }
    }
    Ok(accounts)
}

/// Collects every target, `UPDATER_NUM_THREADS` at a time, recording each account's
/// outcome as it ends. Returns the reports in the order accounts finished.
async fn collect_accounts(
    shared: &Arc<RunShared>,
    run_id: i64,
    targets: Vec<TargetAccount>,
) -> Vec<AccountReport> {
    let account_slots = Arc::new(Semaphore::new(shared.settings.updater_num_threads));
    let mut tasks = tokio::task::JoinSet::new();
    let mut task_accounts = HashMap::new();
    for target in targets {
        let shared = shared.clone();
        let slots = account_slots.clone();
        let id = target.id.clone();
        let handle = tasks.spawn(async move {
            let _slot = slots
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            if shared.stop.is_set() {
                return None;
            }
            Some(account::collect(&shared, target).await)
        });
        task_accounts.insert(handle.id(), id);
    }
    let mut reports = Vec::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        let report = match joined {
            Ok((_, Some(report))) => report,
            // Not started: the run was asked to stop first.
            Ok((_, None)) => continue,
            Err(err) => {
                // A bug in one account's task must not end the run: record it and go on.
                let id = task_accounts.get(&err.id()).cloned().unwrap_or_default();
                tracing::error!(account = %id, error = %err, "account task ended abnormally");
                AccountReport::failed_account(
                    &id,
                    None,
                    Failure::new("InternalError", err.to_string()),
                    crate::time::stored_now(),
                    Duration::ZERO,
                )
            }
        };
        if let Err(err) = shared.db.record_account(run_id, &report.record()).await {
            tracing::error!(account = %report.id, error = %err, "cannot record the account's outcome");
        }
        shared.progress.account_done(&report);
        reports.push(report);
    }
    reports
}
