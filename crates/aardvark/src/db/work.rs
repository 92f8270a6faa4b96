//! Shared runs (PostgreSQL): a run's accounts as rows of work that any process may claim.
//!
//! A worker claims pending rows with `FOR UPDATE SKIP LOCKED`, so that two workers never
//! claim one row, and holds each under a lease (`lease_until`, on the database's clock) that
//! it renews while it collects. A row whose lease expired is claimed again, its `attempts`
//! raised: the attempt number is the claim, so a worker that stalled past its lease can
//! neither renew nor record what another worker now holds. The account's outcome is recorded
//! in the same transaction that marks its row done, and the run ends when no row is left
//! undone, whoever recorded the last.

use std::time::Duration;

use super::runs::{AccountRecord, RunOwner, RunStatus};
use super::vocabulary::PARAMS_PER_STATEMENT;
use super::{Database, DbError};

const PENDING: &str = "pending";
const CLAIMED: &str = "claimed";
const DONE: &str = "done";

/// One account of a shared run, as it is published for workers to claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    pub account_id: String,
    pub name: Option<String>,
    pub aliases: Vec<String>,
}

/// A worker process: who it is, and a number of its own (hosts and pids repeat across
/// containers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    pub owner: RunOwner,
    pub key: i64,
}

impl Worker {
    pub fn this_process() -> Self {
        use std::hash::BuildHasher;
        // `RandomState` is seeded from the OS's randomness: a number no other process holds.
        let key = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        Self {
            owner: RunOwner::this_process(),
            key: i64::from_ne_bytes(key.to_ne_bytes()),
        }
    }
}

/// An account this worker claimed: which attempt at it the claim is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub item: WorkItem,
    pub attempt: i64,
}

/// What is left of a shared run's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkLeft {
    /// Rows no worker holds: pending, or claimed under a lease that expired.
    pub claimable: i64,
    /// Rows held under a live lease by another worker.
    pub held_elsewhere: i64,
    /// Whether the run is still `running`.
    pub running: bool,
}

/// A lease's length in SQL, bound as seconds.
fn seconds(lease: Duration) -> f64 {
    lease.as_secs_f64()
}

impl Database {
    /// Whether runs on this database may be shared by several processes (PostgreSQL).
    pub fn shares_runs(&self) -> bool {
        self.dialect() == super::Dialect::Postgres
    }

    /// Publishes `items` as the work of shared run `run_id`, in order, in one transaction.
    pub async fn publish_work(&self, run_id: i64, items: &[WorkItem]) -> Result<(), DbError> {
        const COLUMNS: usize = 5;
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE aardvark_runs SET shared = 1 WHERE id = $1")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        for (chunk_at, chunk) in items.chunks(PARAMS_PER_STATEMENT / COLUMNS).enumerate() {
            let sql = format!(
                "INSERT INTO aardvark_run_work (run_id, account_id, position, account_name, aliases, state) VALUES {}",
                self.dialect()
                    .values_placeholders_then(chunk.len(), COLUMNS, &format!(", '{PENDING}'"))
            );
            let mut query = sqlx::query(&sql);
            for (at, item) in chunk.iter().enumerate() {
                let position = (chunk_at * (PARAMS_PER_STATEMENT / COLUMNS) + at) as i64;
                query = query
                    .bind(run_id)
                    .bind(&item.account_id)
                    .bind(position)
                    .bind(&item.name)
                    .bind(serde_json::to_string(&item.aliases).expect("strings serialize"));
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The oldest shared run still `running`, and its request: what a joining worker takes part in.
    pub async fn open_shared_run(&self) -> Result<Option<(i64, String)>, DbError> {
        Ok(sqlx::query_as(
            "SELECT CAST(id AS BIGINT), request FROM aardvark_runs \
             WHERE status = $1 AND shared = 1 ORDER BY id LIMIT 1",
        )
        .bind(RunStatus::Running.as_str())
        .fetch_optional(self.pool())
        .await?)
    }

    /// Claims up to `most` accounts of run `run_id` that no worker holds (pending, or whose
    /// lease expired), in the run's order, under a lease of `lease`; none once the run ended.
    pub async fn claim_work(
        &self,
        run_id: i64,
        worker: &Worker,
        most: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, DbError> {
        type Row = (String, Option<String>, String, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "UPDATE aardvark_run_work w SET state = $2, attempts = w.attempts + 1, \
             worker_host = $3, worker_pid = $4, worker_key = $5, \
             lease_until = now() + make_interval(secs => $6) \
             FROM (SELECT account_id FROM aardvark_run_work \
                   WHERE run_id = $1 AND (state = $7 OR (state = $2 AND lease_until < now())) \
                   AND EXISTS (SELECT 1 FROM aardvark_runs r WHERE r.id = $1 AND r.status = $8) \
                   ORDER BY position LIMIT $9 FOR UPDATE SKIP LOCKED) c \
             WHERE w.run_id = $1 AND w.account_id = c.account_id \
             RETURNING w.account_id, w.account_name, w.aliases, CAST(w.attempts AS BIGINT)",
        )
        .bind(run_id)
        .bind(CLAIMED)
        .bind(&worker.owner.host)
        .bind(i64::from(worker.owner.pid))
        .bind(worker.key)
        .bind(seconds(lease))
        .bind(PENDING)
        .bind(RunStatus::Running.as_str())
        .bind(most as i64)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(account_id, name, aliases, attempt)| {
                Ok(Claim {
                    item: WorkItem {
                        account_id,
                        name,
                        aliases: serde_json::from_str(&aliases)
                            .map_err(|err| DbError::undecodable(err.to_string()))?,
                    },
                    attempt,
                })
            })
            .collect()
    }

    /// Renews, by `lease` from now, every lease `worker` still holds on run `run_id`; returns
    /// the claims renewed (account, attempt). A lease that expired is not renewed: the account
    /// may be another worker's already.
    pub async fn renew_leases(
        &self,
        run_id: i64,
        worker: &Worker,
        lease: Duration,
    ) -> Result<Vec<(String, i64)>, DbError> {
        Ok(sqlx::query_as(
            "UPDATE aardvark_run_work SET lease_until = now() + make_interval(secs => $1) \
             WHERE run_id = $2 AND state = $3 AND worker_key = $4 AND lease_until > now() \
             RETURNING account_id, CAST(attempts AS BIGINT)",
        )
        .bind(seconds(lease))
        .bind(run_id)
        .bind(CLAIMED)
        .bind(worker.key)
        .fetch_all(self.pool())
        .await?)
    }

    /// Gives `claims` back, pending again, for other workers to claim (a worker that stops
    /// while others go on).
    pub async fn release_claims(&self, run_id: i64, claims: &[Claim]) -> Result<(), DbError> {
        for claim in claims {
            sqlx::query(
                "UPDATE aardvark_run_work SET state = $1, lease_until = NULL \
                 WHERE run_id = $2 AND account_id = $3 AND attempts = $4 AND state = $5",
            )
            .bind(PENDING)
            .bind(run_id)
            .bind(&claim.item.account_id)
            .bind(claim.attempt)
            .bind(CLAIMED)
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    /// What is left of run `run_id`'s work, as `worker` sees it.
    pub async fn work_left(&self, run_id: i64, worker: &Worker) -> Result<WorkLeft, DbError> {
        let (claimable, held_elsewhere): (i64, i64) = sqlx::query_as(
            "SELECT \
             CAST(COUNT(*) FILTER (WHERE state = $2 OR (state = $3 AND lease_until < now())) AS BIGINT), \
             CAST(COUNT(*) FILTER (WHERE state = $3 AND lease_until >= now() AND worker_key <> $4) AS BIGINT) \
             FROM aardvark_run_work WHERE run_id = $1",
        )
        .bind(run_id)
        .bind(PENDING)
        .bind(CLAIMED)
        .bind(worker.key)
        .fetch_one(self.pool())
        .await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM aardvark_runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(WorkLeft {
            claimable,
            held_elsewhere,
            running: status.as_deref() == Some(RunStatus::Running.as_str()),
        })
    }

    /// Records the outcome of `claim` and marks its work done, in one transaction, if the
    /// claim still holds a live lease; `false` (nothing written) when it does not.
    pub async fn record_claimed_account(
        &self,
        run_id: i64,
        claim: &Claim,
        record: &AccountRecord,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool().begin().await?;
        let held = sqlx::query(
            "UPDATE aardvark_run_work SET state = $1 WHERE run_id = $2 AND account_id = $3 \
             AND attempts = $4 AND state = $5 AND lease_until > now()",
        )
        .bind(DONE)
        .bind(run_id)
        .bind(&claim.item.account_id)
        .bind(claim.attempt)
        .bind(CLAIMED)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !held {
            return Ok(false);
        }
        Self::insert_account_record(&mut tx, run_id, record).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Whether every account of shared run `run_id` is recorded.
    pub async fn work_done(&self, run_id: i64) -> Result<bool, DbError> {
        let undone: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM aardvark_run_work WHERE run_id = $1 AND state <> $2",
        )
        .bind(run_id)
        .bind(DONE)
        .fetch_one(self.pool())
        .await?;
        Ok(undone == 0)
    }

    /// Removes shared run `run_id`'s work once it ended: its outcomes are in its records.
    pub async fn forget_work(&self, run_id: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM aardvark_run_work WHERE run_id = $1")
            .bind(run_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
