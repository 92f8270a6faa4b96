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
mod stop;
mod work;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::task::AbortOnDropHandle;

use crate::config::Settings;
use crate::db::runs::{AccountStatus, RunOwner, RunStatus};
use crate::db::work::{WorkItem, Worker};
use crate::db::write::WriteOptions;
use crate::db::{Database, DbError};
use aws::{AwsContext, Failure};
use progress::Progress;
use report::{AccountReport, RunReport};
use run::{arn_account, RunShared};
pub(crate) use stop::Stop;
pub use stop::Stopper;
use work::{Claimed, Recorded, Work};

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
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct UpdateRequest {
    /// `-a` values: account ids, SWAG names or aliases, `all`; empty for the configured source.
    pub accounts: Vec<String>,
    /// `-r` ARNs: collect only these.
    pub arns: Vec<String>,
    /// Delete principals and namespaces AWS no longer lists.
    pub prune: bool,
    /// Started by `serve --collect-every` (recorded in the run's request, which is how the
    /// schedule finds its last run).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scheduled: bool,
}

/// A run recorded and ready to collect ([`Collector::start`]).
pub struct StartedRun {
    pub run_id: i64,
    request: UpdateRequest,
    work: Work,
    accounts: usize,
    started: Instant,
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
        let (stopper, stop) = stop::stop_signal();
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
        let run = self.start(request).await?;
        self.collect(run, progress).await
    }

    /// Starts a run of what `request` asks for: its accounts worked out, the run recorded
    /// and, when runs are shared, its accounts published for every worker to claim.
    pub async fn start(&self, request: &UpdateRequest) -> Result<StartedRun, CollectorError> {
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
        let accounts = targets.len();
        let work = if self.shares_runs() {
            let items: Vec<WorkItem> = targets
                .into_iter()
                .map(|target| WorkItem {
                    account_id: target.id,
                    name: target.name,
                    aliases: target.aliases,
                })
                .collect();
            self.db.publish_work(run_id, &items).await?;
            self.shared_work(run_id)
        } else {
            Work::local(targets)
        };
        tracing::info!(
            run_id,
            accounts,
            shared = self.shares_runs(),
            "collection started"
        );
        Ok(StartedRun {
            run_id,
            request: request.clone(),
            work,
            accounts,
            started,
        })
    }

    /// Collects a started run: its accounts, or this process's part of them when it is
    /// shared. Failures of accounts and principals are in the report; an error means the run
    /// lost its database.
    pub async fn collect(
        &self,
        run: StartedRun,
        progress: Progress,
    ) -> Result<RunReport, CollectorError> {
        let StartedRun {
            run_id,
            request,
            work,
            accounts,
            started,
        } = run;
        self.work_on(run_id, &request, work, accounts, progress, started)
            .await
    }

    /// Whether this collector's runs are shared with other processes (PostgreSQL, unless
    /// `COLLECT_SHARED: false`).
    pub fn shares_runs(&self) -> bool {
        self.db.shares_runs() && self.settings.collect_shared
    }

    /// Takes part in the shared run in progress, if there is one: `None` when there is none.
    /// The report is the whole run's once it ended, whoever collected its accounts.
    pub async fn join(&self, progress: Progress) -> Result<Option<RunReport>, CollectorError> {
        let Some((run_id, request)) = self.db.open_shared_run().await? else {
            return Ok(None);
        };
        let started = Instant::now();
        let request: UpdateRequest = serde_json::from_str(&request).map_err(|err| {
            CollectorError::Database(DbError::undecodable(format!(
                "run {run_id}'s request: {err}"
            )))
        })?;
        let hub = self
            .aws
            .hub_identity()
            .await
            .map_err(CollectorError::HubIdentity)?;
        let work = self.shared_work(run_id);
        let left = self
            .db
            .work_left(run_id, work.as_shared().expect("shared").worker())
            .await?;
        tracing::info!(run_id, identity = %hub, accounts_left = left.claimable, "joined the shared run");
        let accounts = usize::try_from(left.claimable).unwrap_or(0);
        self.work_on(run_id, &request, work, accounts, progress, started)
            .await
            .map(Some)
    }

    fn shared_work(&self, run_id: i64) -> Work {
        Work::shared(
            self.db.clone(),
            run_id,
            Worker::this_process(),
            self.settings.collect_lease,
        )
    }

    /// Collects `work`'s accounts as part of run `run_id`, then ends the run if they were its
    /// last.
    async fn work_on(
        &self,
        run_id: i64,
        request: &UpdateRequest,
        work: Work,
        accounts: usize,
        progress: Progress,
        started: Instant,
    ) -> Result<RunReport, CollectorError> {
        let _freed_memory_back_sooner = crate::allocator::collecting();
        crate::findings::keep_rules_current(&self.db, &self.settings.finding_rules()).await;
        let heartbeat = tokio::spawn(heartbeat(self.db.clone(), run_id));
        let _stop_beating = AbortOnDropHandle::new(heartbeat);
        progress.start(accounts);
        let shared = Arc::new(self.shared(request, run_id, work, progress));
        let _stop_logging = AbortOnDropHandle::new(tokio::spawn(log_progress(shared.clone())));
        let _stop_renewing = shared.work.as_shared().map(|_| {
            let shared = shared.clone();
            AbortOnDropHandle::new(tokio::spawn(async move {
                if let Some(leases) = shared.work.as_shared() {
                    leases.keep_leases().await;
                }
            }))
        });
        let reports = collect_accounts(&shared, run_id).await;
        shared.progress.finish();
        let report = RunReport {
            run_id,
            accounts: reports,
            interrupted: shared.stop.is_set(),
            duration: started.elapsed(),
        };
        self.end(&shared, report).await
    }

    /// After this process's part of run `run_id`: ends the run when its work is done (or
    /// this process stopped or lost the database, and no other worker is at work), and
    /// reports it. A shared run's report is the whole run's, whoever collected its accounts.
    async fn end(
        &self,
        shared: &RunShared,
        mut report: RunReport,
    ) -> Result<RunReport, CollectorError> {
        let (run_id, interrupted) = (report.run_id, report.interrupted);
        let lost = shared.database_lost.load(Ordering::SeqCst);
        let is_shared = shared.work.as_shared().is_some();
        if let Some(leases) = shared.work.as_shared() {
            let others_at_work = self
                .db
                .work_left(run_id, leases.worker())
                .await
                .is_ok_and(|left| left.held_elsewhere > 0);
            if (lost || interrupted) && others_at_work {
                // The others go on with the run; what this worker held is theirs to take.
                return self.left_to_others(report, lost);
            }
            if !lost {
                // One run, one report: every account, whoever collected it.
                report.accounts = self.recorded_accounts(run_id).await?;
                if !interrupted && !self.db.work_done(run_id).await? {
                    // The run ended without this worker, before its work was done: it was
                    // stopped, or marked interrupted.
                    let run = self.db.run(Some(run_id)).await?;
                    report.interrupted = run.is_some_and(|run| {
                        matches!(run.status, RunStatus::Interrupted | RunStatus::Aborted)
                    });
                    report.duration = self.run_duration(run_id).await.unwrap_or(report.duration);
                    return Ok(report);
                }
            }
        }
        if lost {
            let _ = self
                .db
                .finish_run(run_id, RunStatus::Aborted, &report.totals())
                .await;
            return self.left_to_others(report, true);
        }
        if self
            .db
            .finish_run(run_id, report.status(), &report.totals())
            .await?
        {
            if is_shared {
                self.db.forget_work(run_id).await?;
            }
            self.tidy_up().await;
            tracing::info!(run_id, status = %report.status(), seconds = report.duration.as_secs_f64(), "collection finished");
        }
        if is_shared {
            report.duration = self.run_duration(run_id).await.unwrap_or(report.duration);
        }
        Ok(report)
    }

    /// How long run `run_id` took, from its start to its end as recorded.
    async fn run_duration(&self, run_id: i64) -> Option<Duration> {
        let run = self.db.run(Some(run_id)).await.ok()??;
        let started = crate::time::parse_stored(&run.started_at)?;
        let finished = crate::time::parse_stored(run.finished_at.as_deref()?)?;
        (finished - started).to_std().ok()
    }

    /// A worker that leaves a run others finish: an error when it lost the database, else
    /// its own accounts' report.
    fn left_to_others(&self, report: RunReport, lost: bool) -> Result<RunReport, CollectorError> {
        if lost {
            return Err(CollectorError::DatabaseLost(format!(
                "{} principals were collected before writes started failing",
                report.principals_collected()
            )));
        }
        tracing::info!(
            run_id = report.run_id,
            "left the shared run to the other workers"
        );
        Ok(report)
    }

    /// Every account recorded in run `run_id`, as reports.
    async fn recorded_accounts(&self, run_id: i64) -> Result<Vec<AccountReport>, CollectorError> {
        Ok(self
            .db
            .run_accounts(run_id)
            .await?
            .into_iter()
            .map(AccountReport::from_record)
            .collect())
    }

    fn shared(
        &self,
        request: &UpdateRequest,
        run_id: i64,
        work: Work,
        progress: Progress,
    ) -> RunShared {
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
            principal_places: Arc::new(tokio::sync::Semaphore::new(
                self.settings.updater_principals_in_flight,
            )),
            details_turns: tokio::sync::Semaphore::new(run::DETAILS_AT_ONCE),
            evaluation_turns: tokio::sync::Semaphore::new(crate::findings::EVALUATIONS_AT_ONCE),
            work,
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

/// Collects the run's accounts, `UPDATER_NUM_THREADS` at a time, claiming more as accounts
/// end and recording each account's outcome as it ends. Returns the reports of the accounts
/// this process recorded, in the order they finished.
async fn collect_accounts(shared: &Arc<RunShared>, run_id: i64) -> Vec<AccountReport> {
    let most = shared.settings.updater_num_threads;
    let mut tasks = tokio::task::JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, Claimed> = HashMap::new();
    let mut reports = Vec::new();
    // Who records each account: the same process for the whole run, read once.
    let worker = RunOwner::this_process();
    loop {
        let claiming = !shared.stop.is_set() && !shared.database_lost.load(Ordering::SeqCst);
        if claiming && tasks.len() < most {
            match shared.work.claim(most - tasks.len()).await {
                Ok(claimed) => {
                    for claimed in claimed {
                        let (task_shared, target) = (shared.clone(), claimed.target.clone());
                        let handle = tasks
                            .spawn(async move { account::collect(&task_shared, target).await });
                        in_flight.insert(handle.id(), claimed);
                    }
                }
                Err(err) => {
                    tracing::warn!(run_id, error = %err, "cannot claim accounts to collect; trying again")
                }
            }
        }
        if tasks.is_empty() {
            if !claiming {
                break;
            }
            match shared.work.next(&shared.stop).await {
                work::Next::Claim => continue,
                work::Next::Done => break,
            }
        }
        let joined = tokio::select! {
            joined = tasks.join_next_with_id() => joined,
            () = shared.work.look_again(), if claiming && tasks.len() < most => continue,
        };
        let Some(joined) = joined else { continue };
        let (id, report) = match joined {
            Ok((id, report)) => (id, report),
            Err(err) => {
                // A bug in one account's task must not end the run: record it and go on.
                let id = err.id();
                let account = in_flight
                    .get(&id)
                    .map(|c| c.target.id.clone())
                    .unwrap_or_default();
                tracing::error!(account = %account, error = %err, "account task ended abnormally");
                let report = AccountReport::failed_account(
                    &account,
                    None,
                    Failure::new("InternalError", err.to_string()),
                    crate::time::stored_now(),
                    Duration::ZERO,
                );
                (id, report)
            }
        };
        let Some(claimed) = in_flight.remove(&id) else {
            continue;
        };
        if let Some(report) = record(shared, run_id, &worker, &claimed, report).await {
            shared.progress.account_done(&report);
            reports.push(report);
        }
    }
    reports
}

/// Records one account's outcome, as this process's attempt at it; `None` when it was not
/// recorded (its lease was lost, or it was given back to the other workers of a shared run).
async fn record(
    shared: &RunShared,
    run_id: i64,
    worker: &RunOwner,
    claimed: &Claimed,
    mut report: AccountReport,
) -> Option<AccountReport> {
    report.worker = Some(worker.clone());
    report.attempts = claimed.claim.as_ref().map_or(1, |claim| claim.attempt);
    // A worker that stops hands what it did not finish to the others, if any is at work.
    let give_back = shared.stop.is_set()
        && report.status == AccountStatus::Interrupted
        && !shared.work.is_lost(&report.id)
        && match shared.work.as_shared() {
            Some(leases) => shared
                .db
                .work_left(run_id, leases.worker())
                .await
                .is_ok_and(|left| left.held_elsewhere > 0),
            None => false,
        };
    let record = report.record();
    let mut delay = Duration::from_millis(100);
    loop {
        match shared
            .work
            .record(&shared.db, run_id, claimed, &record, give_back)
            .await
        {
            Ok(Recorded::Yes) => return Some(report),
            Ok(Recorded::Released) => {
                tracing::info!(account = %report.id, "given back to the other workers of the run");
                return None;
            }
            Ok(Recorded::LeaseLost) => {
                tracing::warn!(account = %report.id, "not recorded: this worker's lease on the account expired, and another worker collects it");
                return None;
            }
            // A shared run's record waits out a database restart while the lease lasts: the
            // run cannot end without it.
            Err(err)
                if err.is_transient()
                    && claimed.claim.is_some()
                    && !shared.work.is_lost(&report.id) =>
            {
                tracing::warn!(account = %report.id, error = %err, "cannot record the account's outcome yet; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(err) => {
                tracing::error!(account = %report.id, error = %err, "cannot record the account's outcome");
                return Some(report);
            }
        }
    }
}
