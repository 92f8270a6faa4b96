//! `aardvark update`: collects Access Advisor data for every principal of every account, with
//! failures isolated per account and per principal, bounded concurrency (global, per run and per
//! account), per-account request pacing, and a record of the run in the database.

pub mod accounts;
pub mod aws;
mod principal;
pub mod progress;
pub mod report;

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::config::Settings;
use crate::db::write::{PrincipalUsage, WriteOptions};
use crate::db::{Database, DbError};
use accounts::TargetAccount;
use aws::{AwsContext, Failure};
use principal::{Polling, PrincipalError};
use progress::Progress;
use report::{AccountReport, AccountStatus, PrincipalFailure, RunReport};

/// Attempts at writing one principal before it counts as failed.
const WRITE_ATTEMPTS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("cannot work out the accounts to collect: {0}")]
    Accounts(String),
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
}

/// Paces one account's requests (a token bucket); `None` when unpaced.
pub struct Pacer(Option<DefaultDirectRateLimiter>);

impl Pacer {
    pub fn new(per_second: f64, burst: u32) -> Self {
        if per_second <= 0.0 {
            return Self(None);
        }
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / per_second))
            .expect("a positive rate has a positive period")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least 1"));
        Self(Some(RateLimiter::direct(quota)))
    }

    pub async fn wait(&self) {
        if let Some(limiter) = &self.0 {
            limiter.until_ready().await;
        }
    }
}

/// The account of an IAM ARN (`arn:aws:iam::123456789012:role/x`).
fn arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("arn"), Some(_), Some("iam"), Some(""), Some(account), Some(resource))
            if accounts::is_account_id(account) && !resource.is_empty() =>
        {
            Some(account)
        }
        _ => None,
    }
}

/// What every account task of a run shares.
struct RunShared {
    settings: Settings,
    db: Database,
    aws: AwsContext,
    sts: aws_sdk_sts::Client,
    principals: Semaphore,
    /// Lower-cased `-r` ARNs.
    only_arns: Option<HashSet<String>>,
    failing_arns: HashSet<String>,
    prune: bool,
    database_lost: AtomicBool,
    progress: Progress,
}

/// Runs collections against one database and one AWS environment.
pub struct Collector {
    settings: Settings,
    db: Database,
    aws: AwsContext,
}

impl Collector {
    pub async fn new(settings: Settings, db: Database, overrides: aws::AwsOverrides) -> Self {
        let aws = AwsContext::new(&settings, overrides).await;
        Self { settings, db, aws }
    }

    /// Collects what `request` asks for. Failures of accounts and principals are in the
    /// report; an error means the run could not start or lost its database.
    pub async fn run(
        &self,
        request: &UpdateRequest,
        progress: Progress,
    ) -> Result<RunReport, CollectorError> {
        let started = Instant::now();
        let mut arn_accounts = Vec::new();
        for arn in &request.arns {
            let account =
                arn_account(arn).ok_or_else(|| CollectorError::InvalidArn(arn.clone()))?;
            if !arn_accounts.iter().any(|a| a == account) {
                arn_accounts.push(account.to_owned());
            }
        }
        let targets =
            accounts::resolve(&self.settings, &self.aws, &request.accounts, &arn_accounts).await?;
        let run_id = self
            .db
            .start_run(&serde_json::to_string(request).expect("requests serialize"))
            .await?;
        tracing::info!(run_id, accounts = targets.len(), "collection started");
        progress.start(targets.len());
        let shared = Arc::new(RunShared {
            settings: self.settings.clone(),
            db: self.db.clone(),
            aws: self.aws.clone(),
            sts: self.aws.sts(),
            principals: Semaphore::new(self.settings.updater_num_threads),
            only_arns: (!request.arns.is_empty())
                .then(|| request.arns.iter().map(|a| a.to_lowercase()).collect()),
            failing_arns: self.settings.updater_failing_arns.iter().cloned().collect(),
            prune: request.prune || self.settings.updater_prune,
            database_lost: AtomicBool::new(false),
            progress,
        });

        let account_slots = Arc::new(Semaphore::new(self.settings.updater_account_concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        let mut task_accounts = std::collections::HashMap::new();
        for target in targets {
            let shared = shared.clone();
            let slots = account_slots.clone();
            let id = target.id.clone();
            let handle = tasks.spawn(async move {
                let _slot = slots
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                collect_account(&shared, target).await
            });
            task_accounts.insert(handle.id(), id);
        }
        let mut reports = Vec::new();
        while let Some(joined) = tasks.join_next_with_id().await {
            let report = match joined {
                Ok((_, report)) => report,
                Err(err) => {
                    // A bug in one account's task must not end the run: record it and go on.
                    let id = task_accounts.get(&err.id()).cloned().unwrap_or_default();
                    tracing::error!(account = %id, error = %err, "account task ended abnormally");
                    AccountReport::failed_account(
                        &id,
                        None,
                        Failure::new("InternalError", err.to_string()),
                        crate::db::now_timestamp(),
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
        shared.progress.finish();

        let mut arns_not_found = Vec::new();
        if let Some(only) = &shared.only_arns {
            let listed: HashSet<String> = reports
                .iter()
                .flat_map(|a| &a.listed)
                .map(|arn| arn.to_lowercase())
                .collect();
            let failed_accounts: HashSet<&str> = reports
                .iter()
                .filter(|a| a.status == AccountStatus::Failed)
                .map(|a| a.id.as_str())
                .collect();
            for arn in &request.arns {
                let in_failed_account =
                    arn_account(arn).is_some_and(|account| failed_accounts.contains(account));
                if !listed.contains(&arn.to_lowercase())
                    && !in_failed_account
                    && only.contains(&arn.to_lowercase())
                {
                    arns_not_found.push(arn.clone());
                }
            }
        }
        let report = RunReport {
            run_id,
            accounts: reports,
            arns_not_found,
            duration: started.elapsed(),
        };
        let mut totals = report.totals();
        if shared.database_lost.load(Ordering::SeqCst) {
            totals.status = "aborted".into();
            let _ = self.db.finish_run(run_id, &totals).await;
            return Err(CollectorError::DatabaseLost(format!(
                "{} principals were collected before writes started failing",
                report.principals_collected()
            )));
        }
        self.db.finish_run(run_id, &totals).await?;
        if let Err(err) = self.db.optimize().await {
            tracing::warn!(error = %err, "cannot refresh the database's statistics");
        }
        // Principals another writer changed since they were stored are rendered again here;
        // until then the API renders them on every read, so a failure costs only speed.
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
        tracing::info!(run_id, status = %totals.status, seconds = report.duration.as_secs_f64(), "collection finished");
        Ok(report)
    }
}

/// One account from AssumeRole to its last principal; never fails, only reports.
async fn collect_account(run: &RunShared, target: TargetAccount) -> AccountReport {
    let started = Instant::now();
    let started_at = crate::db::now_timestamp();
    let settings = &run.settings;
    let account = target.id.as_str();
    let fail = |failure: Failure| {
        tracing::warn!(account, code = %failure.code, message = %failure.message, "account failed");
        AccountReport::failed_account(
            account,
            target.name.clone(),
            failure,
            started_at.clone(),
            started.elapsed(),
        )
    };

    let role_arn = format!(
        "arn:{}:iam::{account}:role/{}",
        settings.aws_arn_partition.as_str(),
        settings.aws_rolename
    );
    let assumed = match run
        .sts
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("aardvark")
        .send()
        .await
    {
        Ok(assumed) => assumed,
        Err(err) => return fail(Failure::from_sdk(&err).during(&format!("AssumeRole {role_arn}"))),
    };
    let Some(credentials) = assumed.credentials() else {
        return fail(Failure::new(
            "MalformedResponse",
            "AssumeRole returned no credentials",
        ));
    };
    let credentials = aws_sdk_sts::config::Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_owned()),
        None,
        "aardvark-assume-role",
    );
    let iam = run.aws.iam_for(account, credentials);
    let pacer = Pacer::new(
        settings.updater_account_rate_limit,
        settings.updater_account_burst,
    );

    let listed = match list_principals(&iam, &pacer).await {
        Ok(listed) => listed,
        Err(failure) => return fail(failure),
    };
    let wanted: Vec<String> = match &run.only_arns {
        Some(only) => listed
            .iter()
            .filter(|arn| only.contains(&arn.to_lowercase()))
            .cloned()
            .collect(),
        None => listed.clone(),
    };
    let polling = Polling {
        first_interval: settings.updater_poll_interval,
        max_interval: settings.updater_poll_max_interval,
        deadline: settings.updater_job_timeout,
    };
    let write_options = WriteOptions {
        prune_namespaces: run.prune,
    };
    let outcomes: Vec<(String, Result<(), PrincipalError>)> = futures::stream::iter(wanted)
        .map(|arn: String| {
            let (iam, pacer) = (&iam, &pacer);
            async move {
                let _permit = run
                    .principals
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                if run.database_lost.load(Ordering::SeqCst) {
                    return (
                        arn,
                        Err(PrincipalError::Failed(Failure::new(
                            "DatabaseLost",
                            "not collected: the database was lost",
                        ))),
                    );
                }
                let result = match principal::fetch_usage(iam, pacer, &arn, polling).await {
                    Ok(services) => store(
                        run,
                        PrincipalUsage {
                            arn: arn.clone(),
                            services,
                        },
                        write_options,
                    )
                    .await
                    .map_err(PrincipalError::Failed),
                    Err(err) => Err(err),
                };
                run.progress.principal_done();
                (arn, result)
            }
        })
        .buffer_unordered(settings.updater_principal_concurrency)
        .collect()
        .await;

    let mut report = AccountReport {
        id: account.to_owned(),
        name: target.name.clone(),
        status: AccountStatus::Ok,
        failure: None,
        listed: Vec::new(),
        collected: 0,
        failed: Vec::new(),
        vanished: Vec::new(),
        pruned: 0,
        started_at: started_at.clone(),
        duration: Duration::ZERO,
    };
    for (arn, outcome) in outcomes {
        match outcome {
            Ok(()) => report.collected += 1,
            Err(PrincipalError::Vanished(failure)) => {
                tracing::info!(account, arn = %arn, reason = %failure, "principal vanished since it was listed; stored data untouched");
                report.vanished.push(arn);
            }
            Err(PrincipalError::Failed(failure)) => {
                if run.failing_arns.contains(&arn) {
                    tracing::info!(account, arn = %arn, code = %failure.code, message = %failure.message, "principal failed (a known failing ARN)");
                } else {
                    tracing::warn!(account, arn = %arn, code = %failure.code, message = %failure.message, "principal failed");
                }
                report.failed.push(PrincipalFailure { arn, failure });
            }
        }
    }
    if run.prune && !run.database_lost.load(Ordering::SeqCst) {
        let complete: HashSet<String> = listed.iter().cloned().collect();
        match run.db.prune_account(account, &complete).await {
            Ok(removed) => {
                for arn in &removed {
                    tracing::info!(account, arn = %arn, "pruned: no longer listed by AWS");
                }
                report.pruned = removed.len();
            }
            Err(err) => {
                tracing::error!(account, error = %err, "pruning failed; nothing was removed")
            }
        }
    }
    report.failed.sort_by(|a, b| a.arn.cmp(&b.arn));
    report.vanished.sort();
    report.status = if report.failed.is_empty() {
        AccountStatus::Ok
    } else {
        AccountStatus::Partial
    };
    report.listed = listed;
    report.duration = started.elapsed();
    report
}

/// Every role, user, group and customer-managed policy of the account, all pages, paced.
async fn list_principals(iam: &aws_sdk_iam::Client, pacer: &Pacer) -> Result<Vec<String>, Failure> {
    let mut arns = Vec::new();
    // The four paginators have four types; one loop shape for all of them.
    macro_rules! every_page {
        ($request:expr, $operation:literal, |$page:ident| $arns:expr) => {
            let mut pages = $request.max_items(1000).into_paginator().send();
            while let Some(page) = {
                pacer.wait().await;
                pages.next().await
            } {
                let $page = page.map_err(|err| Failure::from_sdk(&err).during($operation))?;
                arns.extend($arns);
            }
        };
    }
    every_page!(iam.list_roles(), "ListRoles", |page| page
        .roles()
        .iter()
        .map(|r| r.arn().to_owned()));
    every_page!(iam.list_users(), "ListUsers", |page| page
        .users()
        .iter()
        .map(|u| u.arn().to_owned()));
    every_page!(iam.list_groups(), "ListGroups", |page| page
        .groups()
        .iter()
        .map(|g| g.arn().to_owned()));
    every_page!(
        iam.list_policies()
            .scope(aws_sdk_iam::types::PolicyScopeType::Local),
        "ListPolicies",
        |page| page
            .policies()
            .iter()
            .filter_map(|p| p.arn().map(str::to_owned))
    );
    Ok(arns)
}

/// Writes one principal, retrying transient database errors; a database that stays
/// unreachable marks the run as having lost it.
async fn store(
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
