//! The history of last uses (`aardvark_history`): every change of a (principal, namespace)
//! `lastAuthenticated` a collection saw, appended by the write path in its own transaction,
//! trimmed to `HISTORY_RETENTION_DAYS` at a collection's end, and read by `/api/1/history`.

use std::time::Duration;

use sqlx::Row;

use super::vocabulary::{HistoryChange, ROW_PARAMS_PER_STATEMENT};
use super::{Database, DbError};

/// One stored change, as `/api/1/history` answers it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HistoryEntry {
    pub namespace: String,
    pub last_authenticated: i64,
    pub previous: Option<i64>,
    /// Epoch milliseconds.
    pub observed_ms: i64,
    pub run_id: Option<i64>,
}

/// A page of one principal's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub total: i64,
    pub changes: Vec<HistoryEntry>,
}

/// Bound columns per change: item, namespace, last use, previous.
const COLUMNS: usize = 4;

impl Database {
    /// Appends, within the write's transaction and observed at `observed_ms`: every row of
    /// the principals `first_seen` (just written, all of them first values) copied from
    /// `advisor_data`, then `changes`. The time and run are the same for every row, so they
    /// are written into the statements rather than bound per row.
    pub(crate) async fn append_history(
        &self,
        conn: &mut sqlx::AnyConnection,
        first_seen: &[i64],
        changes: &[HistoryChange<'_>],
        observed_ms: i64,
        run_id: Option<i64>,
    ) -> Result<(), DbError> {
        let run = run_id.map_or("NULL".to_owned(), |id| id.to_string());
        if !first_seen.is_empty() {
            let (matching, list) = self.dialect().among_ids("item_id", "$1", first_seen);
            sqlx::query(&format!(
                "INSERT INTO aardvark_history (item_id, \"serviceNamespace\", \
                 \"lastAuthenticated\", previous, observed_ms, run_id) \
                 SELECT item_id, \"serviceNamespace\", COALESCE(\"lastAuthenticated\", 0), NULL, \
                 {observed_ms}, {run} FROM advisor_data \
                 WHERE {matching} AND \"serviceNamespace\" IS NOT NULL \
                 ORDER BY item_id, \"serviceNamespace\""
            ))
            .bind(list)
            .execute(&mut *conn)
            .await?;
        }
        for chunk in changes.chunks(ROW_PARAMS_PER_STATEMENT / COLUMNS) {
            let sql = format!(
                "INSERT INTO aardvark_history (item_id, \"serviceNamespace\", \
                 \"lastAuthenticated\", previous, observed_ms, run_id) VALUES {}",
                self.dialect().values_placeholders_then(
                    chunk.len(),
                    COLUMNS,
                    &format!(", {observed_ms}, {run}")
                )
            );
            let mut query = sqlx::query(&sql).persistent(false);
            for change in chunk {
                query = query
                    .bind(i32::try_from(change.item_id).unwrap_or(i32::MAX))
                    .bind(change.namespace)
                    .bind(change.last_authenticated)
                    .bind(change.previous);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Removes changes observed more than `retention` ago, except each (principal,
    /// namespace)'s latest, which dates the value stored now. A retention of zero keeps
    /// nothing. Returns how many went.
    pub async fn trim_history(&self, retention: Duration) -> Result<u64, DbError> {
        let result = if retention.is_zero() {
            sqlx::query("DELETE FROM aardvark_history")
                .execute(self.pool())
                .await?
        } else {
            let cutoff = chrono::Utc::now().timestamp_millis()
                - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
            sqlx::query(
                "DELETE FROM aardvark_history WHERE observed_ms < $1 AND EXISTS (\
                 SELECT 1 FROM aardvark_history later \
                 WHERE later.item_id = aardvark_history.item_id \
                 AND later.\"serviceNamespace\" = aardvark_history.\"serviceNamespace\" \
                 AND later.id > aardvark_history.id)",
            )
            .bind(cutoff)
            .execute(self.pool())
            .await?
        };
        Ok(result.rows_affected())
    }

    /// A page of the history of the principal `arn` (of one namespace, if given), oldest
    /// first; `None` if no such principal is stored. The ARN matches in any case, as
    /// `/api/1/advisors`' `arn` does; an exact match is looked up first, by index.
    pub async fn history(
        &self,
        arn: &str,
        namespace: Option<&str>,
        offset: i64,
        count: i64,
    ) -> Result<Option<HistoryPage>, DbError> {
        let Some(item_id) = sqlx::query(
            "SELECT CAST(id AS BIGINT) FROM aws_iam_object WHERE arn = $1 UNION ALL \
                 SELECT CAST(id AS BIGINT) FROM aws_iam_object WHERE LOWER(arn) = LOWER($1) \
                 LIMIT 1",
        )
        .bind(arn)
        .fetch_optional(self.pool())
        .await?
        .map(|row| row.try_get::<i64, _>(0))
        .transpose()?
        else {
            return Ok(None);
        };
        let matching = "item_id = $1 AND ($2 IS NULL OR \"serviceNamespace\" = $2)";
        let total: i64 = sqlx::query(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM aardvark_history WHERE {matching}"
        ))
        .bind(item_id)
        .bind(namespace)
        .fetch_one(self.pool())
        .await?
        .try_get(0)?;
        let changes = sqlx::query_as::<_, HistoryEntry>(&format!(
            "SELECT \"serviceNamespace\" AS namespace, \
             CAST(\"lastAuthenticated\" AS BIGINT) AS last_authenticated, \
             CAST(previous AS BIGINT) AS previous, CAST(observed_ms AS BIGINT) AS observed_ms, \
             CAST(run_id AS BIGINT) AS run_id \
             FROM aardvark_history WHERE {matching} ORDER BY id LIMIT $3 OFFSET $4"
        ))
        .bind(item_id)
        .bind(namespace)
        .bind(count)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        Ok(Some(HistoryPage { total, changes }))
    }
}
