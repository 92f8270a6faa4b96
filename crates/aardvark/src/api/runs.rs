//! The operator's view of collections: `/api/1/runs`, `/api/1/runs/{id}` (and `latest`) and
//! `/api/1/accounts`. Which accounts failed and why (AWS's error code and message as
//! collected), when each was last collected, and what each run did, live while it runs.
//! Struct fields are declared in sorted order: that is the JSON key order.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;

use super::params::RequestParams;
use super::{json_response, ApiError};
use crate::db::runs::{AccountOutcome, AccountRecord, AccountStatus, RunRecord};
use crate::db::Reader;
use crate::time::rfc3339_seconds;

/// An account's or a principal's failure, as AWS reported it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FailureBody {
    /// AWS's error code (`AccessDenied`, `Throttling`, ...) or ours (`JobTimeout`, ...).
    code: String,
    message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountCounts {
    failed: i64,
    /// Listed, but the run was stopped before every principal was collected.
    interrupted: i64,
    ok: i64,
    partial: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PrincipalCounts {
    collected: i64,
    failed: i64,
    /// Not collected because the run was stopped (not failures).
    interrupted: i64,
    vanished: i64,
}

/// A run, with its counts so far.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunEntry {
    accounts: AccountCounts,
    /// RFC 3339, UTC; `null` while it runs.
    finished: Option<String>,
    id: i64,
    principals: PrincipalCounts,
    started: String,
    /// `running`, `ok`, `partial`, `failed`, `aborted` or `interrupted`.
    status: &'static str,
}

impl From<&RunRecord> for RunEntry {
    fn from(run: &RunRecord) -> Self {
        let counts = &run.totals;
        Self {
            accounts: AccountCounts {
                failed: counts.accounts_failed,
                interrupted: counts.accounts_interrupted,
                ok: counts.accounts_ok,
                partial: counts.accounts_partial,
            },
            finished: run.finished_at.as_deref().map(rfc3339_seconds),
            id: run.id,
            principals: PrincipalCounts {
                collected: counts.principals_collected,
                failed: counts.principals_failed,
                interrupted: counts.principals_interrupted,
                vanished: counts.principals_vanished,
            },
            started: rfc3339_seconds(&run.started_at),
            status: run.status.as_str(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunsPage {
    count: usize,
    page: i64,
    runs: Vec<RunEntry>,
    total: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FailedPrincipal {
    arn: String,
    code: String,
    message: String,
}

/// One account's outcome in a run.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunAccount {
    /// Attempts at the account in the run: more than 1 when the worker collecting it died or
    /// stalled past its lease and another collected it again (shared runs).
    attempts: i64,
    collected: i64,
    duration_ms: i64,
    failed: Vec<FailedPrincipal>,
    /// Why the whole account failed.
    failure: Option<FailureBody>,
    id: String,
    /// Principals not collected because the run was stopped (not failures).
    interrupted: i64,
    name: Option<String>,
    /// `-r` ARNs of this account that its listing did not hold.
    not_found: Vec<String>,
    /// Identity details beside Access Advisor, collected or not.
    parts: Vec<PartEntry>,
    /// Principals `--prune` deleted because AWS no longer listed them.
    pruned: Vec<String>,
    /// `ok`, `partial`, `failed` or `interrupted`.
    status: &'static str,
    /// Principals deleted between listing and collection.
    vanished: Vec<String>,
    /// The process that collected the account (none in records made before it was kept).
    worker: Option<WorkerBody>,
}

/// A process that collected an account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkerBody {
    /// Its host's name, where it could be read.
    host: Option<String>,
    pid: i64,
}

/// One identity part of an account's collection (best effort: its failure never fails the
/// account).
#[derive(Serialize, utoipa::ToSchema)]
pub struct PartEntry {
    /// AWS's error, when it was not collected.
    failure: Option<FailureBody>,
    /// `authorization_details`, `credential_report` or `access_keys`.
    part: &'static str,
    /// `collected`, `failed` or `off`.
    status: &'static str,
}

fn parts_of(record: &AccountRecord) -> Vec<PartEntry> {
    record
        .parts
        .iter()
        .map(|part| PartEntry {
            failure: part.code.as_ref().map(|code| FailureBody {
                code: code.clone(),
                message: part.message.clone().unwrap_or_default(),
            }),
            part: part.part.as_str(),
            status: part.status.as_str(),
        })
        .collect()
}

fn failure_of(record: &AccountRecord) -> Option<FailureBody> {
    record.error_code.as_ref().map(|code| FailureBody {
        code: code.clone(),
        message: record.error_message.clone().unwrap_or_default(),
    })
}

impl From<AccountRecord> for RunAccount {
    fn from(record: AccountRecord) -> Self {
        let parts = parts_of(&record);
        Self {
            attempts: record.attempts,
            collected: record.principals_collected,
            duration_ms: record.duration_ms,
            failure: failure_of(&record),
            failed: record
                .failures
                .into_iter()
                .map(|f| FailedPrincipal {
                    arn: f.arn,
                    code: f.code,
                    message: f.message,
                })
                .collect(),
            id: record.account_id,
            interrupted: record.principals_interrupted,
            name: record.account_name,
            parts,
            not_found: record.not_found,
            pruned: record.pruned,
            status: record.status.as_str(),
            vanished: record.vanished,
            worker: record.worker_pid.map(|pid| WorkerBody {
                host: record.worker_host,
                pid,
            }),
        }
    }
}

/// A run and what it did in each account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    /// This page of the run's accounts, in the order they were recorded.
    accounts: Vec<RunAccount>,
    /// Accounts on this page.
    count: usize,
    finished: Option<String>,
    id: i64,
    /// The page of accounts (1 when every account is given).
    page: i64,
    principals: PrincipalCounts,
    started: String,
    status: &'static str,
    /// Accounts recorded in the run.
    total: i64,
}

/// Runs, newest first.
#[utoipa::path(
    get,
    path = "/api/1/runs",
    tag = "operations",
    params(
        super::declared::ListPaging,
    ),
    responses(
        (status = 200, description = "A page of runs", body = RunsPage),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn runs(State(reader): State<Reader>, uri: Uri) -> Result<Response, ApiError> {
    let paging = RequestParams::of_query(&uri)?.list_paging()?;
    let (total, runs) = reader
        .database()
        .runs_page(paging.offset(), paging.count)
        .await?;
    let body = RunsPage {
        count: runs.len(),
        page: paging.page,
        runs: runs.iter().map(RunEntry::from).collect(),
        total,
    };
    Ok(json_response(StatusCode::OK, &body, 256 * body.count + 64))
}

/// One run (`latest` for the newest) with each account's outcome.
#[utoipa::path(
    get,
    path = "/api/1/runs/{id}",
    tag = "operations",
    params(
        ("id" = String, Path, pattern = "^(latest|[0-9]{1,18})$", description = "A run's id, or `latest`"),
        ("page" = Option<i64>, Query, minimum = 1, maximum = 9223372036854775807_i64, description = "Page of accounts, from 1; with neither `page` nor `count`, every account"),
        ("count" = Option<i64>, Query, minimum = 0, maximum = 1000, description = "Accounts per page (default 30, at most 1000)"),
    ),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        (status = 400, description = "The id is neither a number nor `latest`", body = super::ErrorBody),
        (status = 404, description = "No such run", body = super::ErrorBody),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn run(
    State(reader): State<Reader>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let params = RequestParams::of_query(&uri)?;
    // Without `page` or `count`, every account, as before paging was offered.
    let paging = (params.has("page") || params.has("count"))
        .then(|| params.list_paging())
        .transpose()?;
    // Digits only (no sign, no spaces), as the document says.
    let wanted = match id.as_str() {
        "latest" => None,
        text if (1..=18).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) => {
            Some(text.parse::<i64>().expect("up to 18 digits fit"))
        }
        text => {
            return Err(ApiError::bad_request(format!(
                "invalid run id {}: a run's number, or latest",
                super::quoted(text)
            )))
        }
    };
    let db = reader.database();
    let Some(run) = db.run(wanted).await? else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: match wanted {
                Some(id) => format!("there is no run {id}"),
                None => "there is no run yet".into(),
            },
        });
    };
    let entry = RunEntry::from(&run);
    let (offset, limit) = paging.map_or((0, i64::MAX), |p| (p.offset(), p.count));
    let accounts: Vec<RunAccount> = db
        .run_accounts_page(run.id, offset, limit)
        .await?
        .into_iter()
        .map(RunAccount::from)
        .collect();
    let body = RunDetail {
        count: accounts.len(),
        accounts,
        finished: entry.finished,
        id: entry.id,
        page: paging.map_or(1, |p| p.page),
        principals: entry.principals,
        started: entry.started,
        status: entry.status,
        total: run.totals.accounts_total,
    };
    Ok(json_response(StatusCode::OK, &body, 4096))
}

/// An account's latest status in `/api/1/accounts`: its latest run's [`AccountStatus`], or
/// `never` for an account with principals stored and no run recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase", as = AccountState)]
pub enum LatestStatus {
    Ok,
    Partial,
    Failed,
    /// Its latest collection was stopped before every principal was collected.
    Interrupted,
    /// Principals stored, no collection recorded (another program, or before run records).
    Never,
}
crate::named::named!(LatestStatus {
    Ok => "ok",
    Partial => "partial",
    Failed => "failed",
    Interrupted => "interrupted",
    Never => "never",
});

impl From<AccountStatus> for LatestStatus {
    fn from(status: AccountStatus) -> Self {
        match status {
            AccountStatus::Ok => Self::Ok,
            AccountStatus::Partial => Self::Partial,
            AccountStatus::Failed => Self::Failed,
            AccountStatus::Interrupted => Self::Interrupted,
        }
    }
}

/// An account as collections left it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountEntry {
    /// Why its latest collection failed, as AWS said it.
    failure: Option<FailureBody>,
    id: String,
    /// When its latest collection started (RFC 3339, UTC).
    last_attempt: Option<String>,
    /// The run of its latest collection.
    last_run: Option<i64>,
    /// When its latest complete collection ended; `null` if it never had one.
    last_success: Option<String>,
    name: Option<String>,
    /// The latest record of each identity part (collected, failed or off).
    parts: Vec<PartEntry>,
    /// Principals stored for it.
    principals: usize,
    /// Its latest outcome: `ok`, `partial`, `failed`, `interrupted`, or `never`.
    status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountsPage {
    accounts: Vec<AccountEntry>,
    count: usize,
    page: i64,
    total: usize,
}

/// Every account collected or stored, by id: its latest outcome and when it last succeeded.
#[utoipa::path(
    get,
    path = "/api/1/accounts",
    tag = "operations",
    params(
        ("status" = Option<LatestStatus>, Query, description = "Only accounts whose latest outcome is this"),
        ("phrase" = Option<String>, Query, description = "Case-insensitive substring of the account's id or name"),
        ("stale_days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "Only accounts without a complete collection in the last N days (or ever)"),
        super::declared::ListPaging,
    ),
    responses(
        (status = 200, description = "A page of accounts", body = AccountsPage),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn accounts(State(reader): State<Reader>, uri: Uri) -> Result<Response, ApiError> {
    let params = RequestParams::of_query(&uri)?;
    let paging = params.list_paging()?;
    let status = params.named::<LatestStatus>("status")?;
    let phrase = params.string("phrase")?.map(|p| p.to_lowercase());
    // Written as `last_success` is, so that the two compare as text.
    let stale_before = match params.string("stale_days")? {
        None => None,
        Some(_) => {
            let days = params.integer_in("stale_days", 1, 1, crate::unused::MAX_DAYS)?;
            crate::time::rfc3339_seconds_from_millis(
                chrono::Utc::now().timestamp_millis() - days * 86_400_000,
            )
        }
    };
    let stored = reader.principals_per_account().await?;
    let outcomes = reader.account_outcomes().await?;
    let mut entries: BTreeMap<String, AccountEntry> = outcomes
        .iter()
        .map(|outcome| {
            let entry = account_entry(outcome, stored.get(&outcome.latest.account_id));
            (outcome.latest.account_id.clone(), entry)
        })
        .collect();
    for (account, principals) in &stored {
        entries.entry(account.clone()).or_insert(AccountEntry {
            failure: None,
            id: account.clone(),
            last_attempt: None,
            last_run: None,
            last_success: None,
            name: None,
            parts: Vec::new(),
            principals: *principals,
            status: LatestStatus::Never.as_str(),
        });
    }
    let matching: Vec<AccountEntry> = entries
        .into_values()
        .filter(|entry| status.is_none_or(|status| entry.status == status.as_str()))
        .filter(|entry| {
            stale_before.as_deref().is_none_or(|before| {
                entry
                    .last_success
                    .as_deref()
                    .is_none_or(|success| success < before)
            })
        })
        .filter(|entry| {
            phrase.as_deref().is_none_or(|phrase| {
                entry.id.to_lowercase().contains(phrase)
                    || entry
                        .name
                        .as_deref()
                        .is_some_and(|name| name.to_lowercase().contains(phrase))
            })
        })
        .collect();
    let total = matching.len();
    let accounts = paging.page_of(matching);
    let body = AccountsPage {
        count: accounts.len(),
        accounts,
        page: paging.page,
        total,
    };
    Ok(json_response(StatusCode::OK, &body, 256 * body.count + 64))
}

fn account_entry(outcome: &AccountOutcome, principals: Option<&usize>) -> AccountEntry {
    let latest = &outcome.latest;
    AccountEntry {
        failure: failure_of(latest),
        id: latest.account_id.clone(),
        last_attempt: Some(rfc3339_seconds(&latest.started_at)),
        last_run: Some(outcome.run_id),
        last_success: outcome.last_success.as_deref().map(rfc3339_seconds),
        name: latest.account_name.clone(),
        parts: parts_of(latest),
        principals: principals.copied().unwrap_or(0),
        status: LatestStatus::from(latest.status).as_str(),
    }
}
