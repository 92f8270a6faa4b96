//! Run records: what each `aardvark update` did, per run, per account and per failed principal.

use sqlx::Row;

use super::{Database, DbError};
use crate::named::{named, Named};

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
}
named!(RunStatus { Running => "running", Ok => "ok", Partial => "partial", Failed => "failed", Aborted => "aborted" });

/// One account's outcome in a run (`aardvark_run_accounts.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// Every listed principal collected (or vanished).
    Ok,
    /// Listed, but some principals failed.
    Partial,
    /// Nothing collected: AssumeRole, a listing or the account itself failed.
    Failed,
}
named!(AccountStatus { Ok => "ok", Partial => "partial", Failed => "failed" });

/// Reads a named status column; another program's value is a decoding error naming it.
fn status<T: Named>(row: &sqlx::any::AnyRow, column: usize) -> Result<T, sqlx::Error> {
    let text: String = row.try_get(column)?;
    T::from_name(&text).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: format!("unknown status {text:?}").into(),
    })
}

/// One account's outcome in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub account_id: String,
    pub account_name: Option<String>,
    pub status: AccountStatus,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub principals_listed: i64,
    pub principals_collected: i64,
    pub principals_failed: i64,
    pub principals_vanished: i64,
    pub principals_pruned: i64,
    pub started_at: String,
    pub duration_ms: i64,
    /// (ARN, error code, error message) of each principal that failed.
    pub failures: Vec<(String, String, String)>,
}

/// A run's totals, written when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub accounts_total: i64,
    pub accounts_ok: i64,
    pub accounts_partial: i64,
    pub accounts_failed: i64,
    pub principals_collected: i64,
    pub principals_failed: i64,
    pub principals_vanished: i64,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
    pub request: String,
    pub totals: RunTotals,
}

impl Database {
    /// Records the start of a run; `request` describes what was asked (JSON).
    pub async fn start_run(&self, request: &str) -> Result<i64, DbError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO aardvark_runs (started_at, status, request) VALUES ($1, $2, $3) RETURNING CAST(id AS BIGINT)",
        )
        .bind(super::now_timestamp())
        .bind(RunStatus::Running.as_str())
        .bind(request)
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    /// Records one account's outcome and its failed principals, in one transaction.
    pub async fn record_account(&self, run_id: i64, record: &AccountRecord) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO aardvark_run_accounts (run_id, account_id, account_name, status, error_code, error_message, \
             principals_listed, principals_collected, principals_failed, principals_vanished, principals_pruned, started_at, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
        .bind(&record.started_at)
        .bind(record.duration_ms)
        .execute(&mut *tx)
        .await?;
        for (arn, code, message) in &record.failures {
            sqlx::query("INSERT INTO aardvark_run_failures (run_id, account_id, arn, error_code, error_message) VALUES ($1, $2, $3, $4, $5)")
                .bind(run_id)
                .bind(&record.account_id)
                .bind(arn)
                .bind(code)
                .bind(message)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the end of a run.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        totals: &RunTotals,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE aardvark_runs SET finished_at = $1, status = $2, accounts_total = $3, accounts_ok = $4, accounts_partial = $5, \
             accounts_failed = $6, principals_collected = $7, principals_failed = $8, principals_vanished = $9 WHERE id = $10",
        )
        .bind(super::now_timestamp())
        .bind(status.as_str())
        .bind(totals.accounts_total)
        .bind(totals.accounts_ok)
        .bind(totals.accounts_partial)
        .bind(totals.accounts_failed)
        .bind(totals.principals_collected)
        .bind(totals.principals_failed)
        .bind(totals.principals_vanished)
        .bind(run_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The most recent runs, newest first.
    pub async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRecord>, DbError> {
        let rows = sqlx::query(
            "SELECT CAST(id AS BIGINT), started_at, finished_at, status, request, CAST(accounts_total AS BIGINT), \
             CAST(accounts_ok AS BIGINT), CAST(accounts_partial AS BIGINT), CAST(accounts_failed AS BIGINT), \
             CAST(principals_collected AS BIGINT), CAST(principals_failed AS BIGINT), CAST(principals_vanished AS BIGINT) \
             FROM aardvark_runs ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RunRecord {
                    id: row.try_get(0)?,
                    started_at: row.try_get(1)?,
                    finished_at: row.try_get(2)?,
                    status: status(row, 3)?,
                    request: row.try_get(4)?,
                    totals: RunTotals {
                        accounts_total: row.try_get(5)?,
                        accounts_ok: row.try_get(6)?,
                        accounts_partial: row.try_get(7)?,
                        accounts_failed: row.try_get(8)?,
                        principals_collected: row.try_get(9)?,
                        principals_failed: row.try_get(10)?,
                        principals_vanished: row.try_get(11)?,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// A run's account outcomes, in the order they were recorded.
    pub async fn run_accounts(&self, run_id: i64) -> Result<Vec<AccountRecord>, DbError> {
        let rows = sqlx::query(
            "SELECT account_id, account_name, status, error_code, error_message, CAST(principals_listed AS BIGINT), \
             CAST(principals_collected AS BIGINT), CAST(principals_failed AS BIGINT), CAST(principals_vanished AS BIGINT), \
             CAST(principals_pruned AS BIGINT), started_at, CAST(duration_ms AS BIGINT) \
             FROM aardvark_run_accounts WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        let failures = sqlx::query("SELECT account_id, arn, error_code, error_message FROM aardvark_run_failures WHERE run_id = $1 ORDER BY id")
            .bind(run_id)
            .fetch_all(self.pool())
            .await?;
        let mut records = Vec::new();
        for row in &rows {
            let account_id: String = row.try_get(0)?;
            let mut account_failures = Vec::new();
            for failure in &failures {
                if failure.try_get::<String, _>(0)? == account_id {
                    account_failures.push((
                        failure.try_get(1)?,
                        failure.try_get(2)?,
                        failure.try_get(3)?,
                    ));
                }
            }
            records.push(AccountRecord {
                account_id,
                account_name: row.try_get(1)?,
                status: status(row, 2)?,
                error_code: row.try_get(3)?,
                error_message: row.try_get(4)?,
                principals_listed: row.try_get(5)?,
                principals_collected: row.try_get(6)?,
                principals_failed: row.try_get(7)?,
                principals_vanished: row.try_get(8)?,
                principals_pruned: row.try_get(9)?,
                started_at: row.try_get(10)?,
                duration_ms: row.try_get(11)?,
                failures: account_failures,
            });
        }
        Ok(records)
    }
}
