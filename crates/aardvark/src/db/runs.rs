//! Run records: what each `aardvark update` did, per run, per account and per failed principal.

use super::{Database, DbError};
use crate::arn::AccountId;
use crate::named::named;

/// A run's state (`aardvark_runs.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    /// Every account collected completely.
    Ok,
    /// Some accounts or principals failed.
    Partial,
    /// Every account failed.
    Failed,
    /// The run lost its database and stopped.
    Aborted,
    /// The run was stopped (SIGTERM, SIGINT), or its process died.
    Interrupted,
}
named!(RunStatus {
    Running => "running",
    Ok => "ok",
    Partial => "partial",
    Failed => "failed",
    Aborted => "aborted",
    Interrupted => "interrupted",
});

/// Who runs a run: this process on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOwner {
    /// The kernel's host name; `None` where it cannot be read (then only heartbeats count).
    pub host: Option<String>,
    pub pid: u32,
}

impl RunOwner {
    pub fn this_process() -> Self {
        Self {
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|host| host.trim().to_owned())
                .filter(|host| !host.is_empty()),
            pid: std::process::id(),
        }
    }

    /// Whether process `pid` of this host is gone (Linux: no `/proc/PID`).
    fn is_gone(&self, host: Option<&str>, pid: Option<i64>) -> bool {
        let (Some(host), Some(mine), Some(pid)) = (host, self.host.as_deref(), pid) else {
            return false;
        };
        host == mine
            && pid != i64::from(self.pid)
            && std::path::Path::new("/proc/self").exists()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }
}

/// One account's outcome in a run (`aardvark_run_accounts.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// Every listed principal collected (or vanished).
    Ok,
    /// Listed, but some principals failed.
    Partial,
    /// Nothing collected: AssumeRole, a listing or the account itself failed.
    Failed,
    /// Listed, no principal failed, but the run was stopped before every one was collected.
    Interrupted,
}
named!(AccountStatus {
    Ok => "ok",
    Partial => "partial",
    Failed => "failed",
    Interrupted => "interrupted",
});

/// A part of an account's collection besides Access Advisor, collected best effort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityPart {
    AuthorizationDetails,
    CredentialReport,
    AccessKeys,
}
named!(IdentityPart {
    AuthorizationDetails => "authorization_details",
    CredentialReport => "credential_report",
    AccessKeys => "access_keys",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartStatus {
    Collected,
    Failed,
    /// Not asked for (`UPDATER_IDENTITY_DETAILS: false`).
    Off,
}
named!(PartStatus { Collected => "collected", Failed => "failed", Off => "off" });

/// What became of one part of an account's collection, with AWS's error when it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPart {
    pub part: IdentityPart,
    pub status: PartStatus,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// One account's outcome in a run.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRecord {
    pub account_id: String,
    pub account_name: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: AccountStatus,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub principals_listed: i64,
    pub principals_collected: i64,
    pub principals_failed: i64,
    pub principals_vanished: i64,
    pub principals_pruned: i64,
    /// Principals left uncollected because the run was stopped.
    pub principals_interrupted: i64,
    pub started_at: String,
    pub duration_ms: i64,
    /// Each principal that failed.
    #[sqlx(skip)]
    pub failures: Vec<RecordedFailure>,
    /// Principals deleted between listing and collection.
    #[sqlx(skip)]
    pub vanished: Vec<String>,
    /// Principals `--prune` deleted.
    #[sqlx(skip)]
    pub pruned: Vec<String>,
    /// `-r` ARNs the account's listing did not hold.
    #[sqlx(skip)]
    pub not_found: Vec<String>,
    /// The identity parts, collected or not.
    #[sqlx(skip)]
    pub parts: Vec<RecordedPart>,
    /// The host and pid of the process that collected the account (none in records from
    /// before they were kept, and no host where it could not be read).
    pub worker_host: Option<String>,
    pub worker_pid: Option<i64>,
    /// Attempts at the account in its run: more than one when a worker's lease expired
    /// (it died or stalled) and another collected the account again.
    pub attempts: i64,
}

/// A principal that failed in a run, as recorded: AWS's error code and message, or ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFailure {
    pub arn: String,
    pub code: String,
    pub message: String,
}

/// What `aardvark_run_principals.outcome` says of a principal.
const PRUNED: &str = "pruned";
const NOT_FOUND: &str = "not_found";

/// An account's latest recorded outcome, and when it last had a complete collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountOutcome {
    pub latest: AccountRecord,
    pub run_id: i64,
    /// When the latest `ok` collection of the account ended (UTC, as stored).
    pub last_success: Option<String>,
}

/// A run's totals, written when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct RunTotals {
    pub accounts_total: i64,
    pub accounts_ok: i64,
    pub accounts_partial: i64,
    pub accounts_failed: i64,
    pub accounts_interrupted: i64,
    pub principals_collected: i64,
    pub principals_failed: i64,
    pub principals_vanished: i64,
    pub principals_interrupted: i64,
}

/// A run as stored, with its counts summed from its accounts' records, so that a run in
/// progress shows what it has done so far.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunRecord {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    pub request: String,
    #[sqlx(flatten)]
    pub totals: RunTotals,
}

/// The columns of an [`AccountRecord`] in `aardvark_run_accounts`.
const ACCOUNT_COLUMNS: &str = "account_id, account_name, status, error_code, error_message, \
     CAST(principals_listed AS BIGINT) AS principals_listed, \
     CAST(principals_collected AS BIGINT) AS principals_collected, \
     CAST(principals_failed AS BIGINT) AS principals_failed, \
     CAST(principals_vanished AS BIGINT) AS principals_vanished, \
     CAST(principals_pruned AS BIGINT) AS principals_pruned, \
     CAST(principals_interrupted AS BIGINT) AS principals_interrupted, started_at, \
     CAST(duration_ms AS BIGINT) AS duration_ms, CAST(attempts AS BIGINT) AS attempts, \
     worker_host, CAST(worker_pid AS BIGINT) AS worker_pid";

/// A [`RunRecord`] per run `r`, its counts summed over its accounts' records.
const RUN_RECORD: &str = "SELECT CAST(r.id AS BIGINT) AS id, r.status, r.started_at, r.finished_at, r.request, \
     CAST((SELECT COUNT(*) FROM aardvark_run_accounts a WHERE a.run_id = r.id) AS BIGINT) AS accounts_total, \
     CAST((SELECT COUNT(*) FROM aardvark_run_accounts a WHERE a.run_id = r.id AND a.status = 'ok') AS BIGINT) AS accounts_ok, \
     CAST((SELECT COUNT(*) FROM aardvark_run_accounts a WHERE a.run_id = r.id AND a.status = 'partial') AS BIGINT) AS accounts_partial, \
     CAST((SELECT COUNT(*) FROM aardvark_run_accounts a WHERE a.run_id = r.id AND a.status = 'failed') AS BIGINT) AS accounts_failed, \
     CAST((SELECT COUNT(*) FROM aardvark_run_accounts a WHERE a.run_id = r.id AND a.status = 'interrupted') AS BIGINT) AS accounts_interrupted, \
     CAST((SELECT COALESCE(SUM(a.principals_collected), 0) FROM aardvark_run_accounts a WHERE a.run_id = r.id) AS BIGINT) AS principals_collected, \
     CAST((SELECT COALESCE(SUM(a.principals_failed), 0) FROM aardvark_run_accounts a WHERE a.run_id = r.id) AS BIGINT) AS principals_failed, \
     CAST((SELECT COALESCE(SUM(a.principals_vanished), 0) FROM aardvark_run_accounts a WHERE a.run_id = r.id) AS BIGINT) AS principals_vanished, \
     CAST((SELECT COALESCE(SUM(a.principals_interrupted), 0) FROM aardvark_run_accounts a WHERE a.run_id = r.id) AS BIGINT) AS principals_interrupted \
     FROM aardvark_runs r";

/// What the request of a scheduled run contains (`UpdateRequest::scheduled`).
const SCHEDULED_REQUEST: &str = "%\"scheduled\":true%";

/// When a collection that started at `started` (stored form) and took `duration_ms` ended.
fn ended(started: &str, duration_ms: i64) -> String {
    crate::time::parse_stored(started)
        .map(|start| {
            crate::time::format_stored(start + chrono::Duration::milliseconds(duration_ms))
        })
        .unwrap_or_else(|| started.to_owned())
}

impl Database {
    /// Records the start of a run by `owner`; `request` describes what was asked (JSON).
    pub async fn start_run(&self, request: &str, owner: &RunOwner) -> Result<i64, DbError> {
        let now = crate::time::stored_now();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO aardvark_runs (started_at, status, request, heartbeat_at, host, pid) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING CAST(id AS BIGINT)",
        )
        .bind(&now)
        .bind(RunStatus::Running.as_str())
        .bind(request)
        .bind(&now)
        .bind(&owner.host)
        .bind(i64::from(owner.pid))
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    /// Records one account's outcome and its failed principals, in one transaction.
    pub async fn record_account(&self, run_id: i64, record: &AccountRecord) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        Self::insert_account_record(&mut tx, run_id, record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Inserts one account's outcome and what it names (vanished, pruned, not-found and
    /// failed principals, identity parts) in `tx`.
    pub(super) async fn insert_account_record(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run_id: i64,
        record: &AccountRecord,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO aardvark_run_accounts (run_id, account_id, account_name, status, error_code, error_message, \
             principals_listed, principals_collected, principals_failed, principals_vanished, principals_pruned, \
             principals_interrupted, started_at, duration_ms, worker_host, worker_pid, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(run_id)
        .bind(&record.account_id)
        .bind(&record.account_name)
        .bind(record.status.as_str())
        .bind(&record.error_code)
        .bind(&record.error_message)
        .bind(record.principals_listed)
        .bind(record.principals_collected)
        .bind(record.principals_failed)
        .bind(record.principals_vanished)
        .bind(record.principals_pruned)
        .bind(record.principals_interrupted)
        .bind(&record.started_at)
        .bind(record.duration_ms)
        .bind(&record.worker_host)
        .bind(record.worker_pid)
        .bind(record.attempts)
        .execute(&mut **tx)
        .await?;
        for arn in &record.vanished {
            sqlx::query(
                "INSERT INTO aardvark_run_vanished (run_id, account_id, arn) VALUES ($1, $2, $3)",
            )
            .bind(run_id)
            .bind(&record.account_id)
            .bind(arn)
            .execute(&mut **tx)
            .await?;
        }
        let named = (record.pruned.iter().map(|arn| (arn, PRUNED)))
            .chain(record.not_found.iter().map(|arn| (arn, NOT_FOUND)));
        for (arn, outcome) in named {
            sqlx::query(
                "INSERT INTO aardvark_run_principals (run_id, account_id, arn, outcome) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(run_id)
            .bind(&record.account_id)
            .bind(arn)
            .bind(outcome)
            .execute(&mut **tx)
            .await?;
        }
        for part in &record.parts {
            sqlx::query(
                "INSERT INTO aardvark_run_account_parts (run_id, account_id, part, status, error_code, error_message) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(run_id)
            .bind(&record.account_id)
            .bind(part.part.as_str())
            .bind(part.status.as_str())
            .bind(&part.code)
            .bind(&part.message)
            .execute(&mut **tx)
            .await?;
        }
        for RecordedFailure { arn, code, message } in &record.failures {
            sqlx::query("INSERT INTO aardvark_run_failures (run_id, account_id, arn, error_code, error_message) VALUES ($1, $2, $3, $4, $5)")
                .bind(run_id)
                .bind(&record.account_id)
                .bind(arn)
                .bind(code)
                .bind(message)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Records the end of a run that is still `running`; `false` when it was not (another
    /// worker of a shared run ended it, or it was marked interrupted).
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        totals: &RunTotals,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE aardvark_runs SET finished_at = $1, status = $2, accounts_total = $3, accounts_ok = $4, accounts_partial = $5, \
             accounts_failed = $6, principals_collected = $7, principals_failed = $8, principals_vanished = $9 \
             WHERE id = $10 AND status = $11",
        )
        .bind(crate::time::stored_now())
        .bind(status.as_str())
        .bind(totals.accounts_total)
        .bind(totals.accounts_ok)
        .bind(totals.accounts_partial)
        .bind(totals.accounts_failed)
        .bind(totals.principals_collected)
        .bind(totals.principals_failed)
        .bind(totals.principals_vanished)
        .bind(run_id)
        .bind(RunStatus::Running.as_str())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Says that run `run_id` is still alive.
    pub async fn heartbeat(&self, run_id: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE aardvark_runs SET heartbeat_at = $1 WHERE id = $2")
            .bind(crate::time::stored_now())
            .bind(run_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks `interrupted` every run left `running` by a process that died: one of this host
    /// whose process is gone (unless the run is shared: others may go on with it), or any
    /// whose heartbeat is older than `silent_for`. A run that is
    /// alive elsewhere keeps beating and is left alone. Returns the runs marked.
    pub async fn mark_interrupted_runs(
        &self,
        me: &RunOwner,
        silent_for: std::time::Duration,
    ) -> Result<Vec<i64>, DbError> {
        /// A running run: id, heartbeat, host, pid, shared.
        type Running = (i64, Option<String>, Option<String>, Option<i64>, i64);
        let running: Vec<Running> = sqlx::query_as(
            "SELECT CAST(id AS BIGINT), heartbeat_at, host, CAST(pid AS BIGINT), CAST(shared AS BIGINT) \
             FROM aardvark_runs WHERE status = $1",
        )
        .bind(RunStatus::Running.as_str())
        .fetch_all(self.pool())
        .await?;
        let silent_since = crate::time::format_stored(
            (chrono::Utc::now()
                - chrono::Duration::from_std(silent_for).unwrap_or(chrono::Duration::MAX))
            .naive_utc(),
        );
        let mut marked = Vec::new();
        for (id, heartbeat, host, pid, shared) in running {
            // Runs from before heartbeats were kept have none: they are as silent as can be.
            let silent = heartbeat
                .as_deref()
                .is_none_or(|at| at < silent_since.as_str());
            // A shared run outlives the process that started it while others hold its work.
            let dead = silent
                || (me.is_gone(host.as_deref(), pid)
                    && (shared == 0 || self.workers_gone(id, me).await?));
            if !dead {
                continue;
            }
            let done = sqlx::query(
                "UPDATE aardvark_runs SET status = $1, finished_at = COALESCE(heartbeat_at, started_at) \
                 WHERE id = $2 AND status = $3",
            )
            .bind(RunStatus::Interrupted.as_str())
            .bind(id)
            .bind(RunStatus::Running.as_str())
            .execute(self.pool())
            .await?;
            if done.rows_affected() > 0 {
                marked.push(id);
            }
        }
        Ok(marked)
    }

    /// Whether every process that holds a live lease on shared run `run_id` is a process of
    /// this host that is gone (also when none holds one).
    async fn workers_gone(&self, run_id: i64, me: &RunOwner) -> Result<bool, DbError> {
        let holders: Vec<(Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT DISTINCT worker_host, CAST(worker_pid AS BIGINT) FROM aardvark_run_work \
             WHERE run_id = $1 AND state = 'claimed' AND lease_until > now()",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        Ok(holders
            .iter()
            .all(|(host, pid)| me.is_gone(host.as_deref(), *pid)))
    }

    /// When the latest scheduled run that ended started (UTC, as stored): what the schedule
    /// counts its next run from. Runs that were interrupted do not count, so that a schedule
    /// whose run was stopped collects again as soon as it can.
    pub async fn latest_scheduled_start(&self) -> Result<Option<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(started_at) FROM aardvark_runs WHERE request LIKE $1 \
             AND status <> $2 AND status <> $3",
        )
        .bind(SCHEDULED_REQUEST)
        .bind(RunStatus::Running.as_str())
        .bind(RunStatus::Interrupted.as_str())
        .fetch_one(self.pool())
        .await?)
    }

    /// Marks `interrupted` every scheduled run still `running`. Only for the holder of the
    /// collection lock: a scheduled run runs under the lock, so one still running while
    /// another process holds the lock lost its process. Returns the runs marked.
    pub async fn mark_scheduled_runs_interrupted(&self) -> Result<Vec<i64>, DbError> {
        let marked: Vec<i64> = sqlx::query_scalar(
            "UPDATE aardvark_runs SET status = $1, finished_at = COALESCE(heartbeat_at, started_at) \
             WHERE status = $2 AND request LIKE $3 RETURNING CAST(id AS BIGINT)",
        )
        .bind(RunStatus::Interrupted.as_str())
        .bind(RunStatus::Running.as_str())
        .bind(SCHEDULED_REQUEST)
        .fetch_all(self.pool())
        .await?;
        Ok(marked)
    }

    /// The most recent runs, newest first.
    pub async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRecord>, DbError> {
        Ok(self.runs_page(0, limit).await?.1)
    }

    /// A run's account outcomes, in the order they were recorded.
    pub async fn run_accounts(&self, run_id: i64) -> Result<Vec<AccountRecord>, DbError> {
        self.run_accounts_page(run_id, 0, i64::MAX).await
    }

    /// `limit` of a run's account outcomes from `offset`, in the order they were recorded;
    /// what they name is read for those accounts only.
    pub async fn run_accounts_page(
        &self,
        run_id: i64,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<AccountRecord>, DbError> {
        let mut records: Vec<AccountRecord> = self
            .rows_of_page(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM aardvark_run_accounts WHERE run_id = $1 ORDER BY id LIMIT $2 OFFSET $3"
                ),
                (run_id, limit, offset),
            )
            .await?;
        // The page's accounts, as the tables they name are filtered.
        let on_page =
            "run_id = $1 AND account_id IN (SELECT account_id FROM aardvark_run_accounts \
             WHERE run_id = $1 ORDER BY id LIMIT $2 OFFSET $3)";
        // Each account's record by id: a run of thousands of accounts names thousands of ARNs.
        let position: std::collections::HashMap<String, usize> = records
            .iter()
            .enumerate()
            .map(|(at, record)| (record.account_id.clone(), at))
            .collect();
        let record_of = |account_id: &str| position.get(account_id).copied();
        // What the page's accounts name, each table read for them only.
        let named_on_page = |columns: &str, table: &str| {
            format!("SELECT account_id, {columns} FROM {table} WHERE {on_page} ORDER BY id")
        };
        let failures: Vec<(String, String, String, String)> = self
            .rows_of_page(
                &named_on_page("arn, error_code, error_message", "aardvark_run_failures"),
                (run_id, limit, offset),
            )
            .await?;
        for (account_id, arn, code, message) in failures {
            if let Some(at) = record_of(&account_id) {
                records[at]
                    .failures
                    .push(RecordedFailure { arn, code, message });
            }
        }
        let vanished: Vec<(String, String)> = self
            .rows_of_page(
                &named_on_page("arn", "aardvark_run_vanished"),
                (run_id, limit, offset),
            )
            .await?;
        for (account_id, arn) in vanished {
            if let Some(at) = record_of(&account_id) {
                records[at].vanished.push(arn);
            }
        }
        let named: Vec<(String, String, String)> = self
            .rows_of_page(
                &named_on_page("arn, outcome", "aardvark_run_principals"),
                (run_id, limit, offset),
            )
            .await?;
        for (account_id, arn, outcome) in named {
            if let Some(at) = record_of(&account_id) {
                match outcome.as_str() {
                    PRUNED => records[at].pruned.push(arn),
                    NOT_FOUND => records[at].not_found.push(arn),
                    _ => {}
                }
            }
        }
        for (account_id, part) in self
            .recorded_parts(Some((run_id, on_page, limit, offset)))
            .await?
        {
            if let Some(at) = record_of(&account_id) {
                records[at].parts.push(part);
            }
        }
        Ok(records)
    }

    /// The rows of `sql`, whose `$1`, `$2` and `$3` are a run, a page's length and its offset.
    async fn rows_of_page<T>(&self, sql: &str, page: (i64, i64, i64)) -> Result<Vec<T>, DbError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let (run_id, limit, offset) = page;
        Ok(sqlx::query_as(sql)
            .bind(run_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?)
    }

    /// The parts recorded in a run (`Some((run_id, condition, limit, offset))`: the rows
    /// `condition` keeps, `$1` to `$3` bound to the three numbers), or (`None`) the latest
    /// record of each part of each account, by account.
    async fn recorded_parts(
        &self,
        in_run: Option<(i64, &str, i64, i64)>,
    ) -> Result<Vec<(String, RecordedPart)>, DbError> {
        let columns = "SELECT account_id, part, status, error_code, error_message FROM aardvark_run_account_parts";
        let sql = match in_run {
            Some((_, condition, _, _)) => format!("{columns} WHERE {condition} ORDER BY id"),
            None => format!(
                "{columns} WHERE id IN (SELECT MAX(id) FROM aardvark_run_account_parts GROUP BY account_id, part) ORDER BY id"
            ),
        };
        let mut query = sqlx::query_as(&sql);
        if let Some((run_id, _, limit, offset)) = in_run {
            query = query.bind(run_id).bind(limit).bind(offset);
        }
        #[derive(sqlx::FromRow)]
        struct PartRow {
            account_id: String,
            part: String,
            status: String,
            error_code: Option<String>,
            error_message: Option<String>,
        }
        let rows: Vec<PartRow> = query.fetch_all(self.pool()).await?;
        rows.into_iter()
            .map(|row| {
                Ok((
                    row.account_id,
                    RecordedPart {
                        part: IdentityPart::try_from(row.part).map_err(DbError::undecodable)?,
                        status: PartStatus::try_from(row.status).map_err(DbError::undecodable)?,
                        code: row.error_code,
                        message: row.error_message,
                    },
                ))
            })
            .collect()
    }

    /// Runs newest first, `limit` from `offset`; and how many runs there are.
    pub async fn runs_page(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<RunRecord>), DbError> {
        let total: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM aardvark_runs")
            .fetch_one(self.pool())
            .await?;
        let runs = sqlx::query_as(&format!(
            "{RUN_RECORD} ORDER BY r.id DESC LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        Ok((total, runs))
    }

    /// Run `id`, or the newest with `None`; `None` when there is no such run.
    pub async fn run(&self, id: Option<i64>) -> Result<Option<RunRecord>, DbError> {
        let (sql, bound) = match id {
            Some(id) => (format!("{RUN_RECORD} WHERE r.id = $1"), id),
            None => (format!("{RUN_RECORD} ORDER BY r.id DESC LIMIT $1"), 1),
        };
        Ok(sqlx::query_as(&sql)
            .bind(bound)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The id of the newest account record (0 when there is none).
    pub async fn newest_account_record(&self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM aardvark_run_accounts",
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// How many run records account `account_id` has, and how many principals are stored
    /// for it: what `aardvark accounts forget` would remove.
    pub async fn account_footprint(&self, account_id: &AccountId) -> Result<(i64, i64), DbError> {
        let records: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM aardvark_run_accounts WHERE account_id = $1",
        )
        .bind(account_id.as_str())
        .fetch_one(self.pool())
        .await?;
        let principals: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM aws_iam_object WHERE arn LIKE $1",
        )
        .bind(format!("arn:%:iam::{account_id}:%"))
        .fetch_one(self.pool())
        .await?;
        Ok((records, principals))
    }

    /// Removes every run record of account `account_id` (its outcomes, failed, vanished,
    /// pruned and not-found principals), in one transaction; the runs themselves stay.
    /// Returns how many outcomes went.
    pub async fn forget_account_records(&self, account_id: &AccountId) -> Result<u64, DbError> {
        let mut tx = self.pool().begin().await?;
        for table in [
            "aardvark_run_failures",
            "aardvark_run_vanished",
            "aardvark_run_principals",
            "aardvark_run_account_parts",
            "aardvark_run_work",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
                .bind(account_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let outcomes = sqlx::query("DELETE FROM aardvark_run_accounts WHERE account_id = $1")
            .bind(account_id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Every account that has a recorded outcome: its latest one, and its latest success.
    pub async fn account_outcomes(&self) -> Result<Vec<AccountOutcome>, DbError> {
        #[derive(sqlx::FromRow)]
        struct Latest {
            #[sqlx(flatten)]
            record: AccountRecord,
            run_id: i64,
        }
        let latest: Vec<Latest> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS}, CAST(run_id AS BIGINT) AS run_id FROM aardvark_run_accounts \
             WHERE id IN (SELECT MAX(id) FROM aardvark_run_accounts GROUP BY account_id) \
             ORDER BY account_id"
        ))
        .fetch_all(self.pool())
        .await?;
        let succeeded: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT account_id, started_at, CAST(duration_ms AS BIGINT) FROM aardvark_run_accounts \
             WHERE id IN (SELECT MAX(id) FROM aardvark_run_accounts WHERE status = $1 \
             GROUP BY account_id)",
        )
        .bind(AccountStatus::Ok.as_str())
        .fetch_all(self.pool())
        .await?;
        let succeeded: std::collections::HashMap<String, String> = succeeded
            .into_iter()
            .map(|(account, started, duration_ms)| (account, ended(&started, duration_ms)))
            .collect();
        let mut parts: std::collections::HashMap<String, Vec<RecordedPart>> =
            std::collections::HashMap::new();
        for (account_id, part) in self.recorded_parts(None).await? {
            parts.entry(account_id).or_default().push(part);
        }
        Ok(latest
            .into_iter()
            .map(|Latest { mut record, run_id }| {
                record.parts = parts.remove(&record.account_id).unwrap_or_default();
                AccountOutcome {
                    last_success: succeeded.get(&record.account_id).cloned(),
                    latest: record,
                    run_id,
                }
            })
            .collect())
    }
}
