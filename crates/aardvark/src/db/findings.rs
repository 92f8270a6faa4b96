//! Findings as stored: each with a stable id (its type and resource), a status (`active`,
//! `resolved`, `archived`) and every change of it kept in `aardvark_finding_history`.
//! `apply_evaluation` turns an account's evaluation into status changes in one transaction;
//! the rules that decide what holds live above storage, in `crate::findings`.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::error::DbError;
use super::Database;
use crate::named::named;

/// What a finding reports, as IAM Access Analyzer's unused-access analyzer names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum FindingType {
    UnusedRole,
    UnusedAccessKey,
    UnusedPassword,
    UnusedPermission,
}
named!(FindingType {
    UnusedRole => "unused_role",
    UnusedAccessKey => "unused_access_key",
    UnusedPassword => "unused_password",
    UnusedPermission => "unused_permission",
});

impl FindingType {
    pub const ALL: [FindingType; 4] = [
        Self::UnusedRole,
        Self::UnusedAccessKey,
        Self::UnusedPassword,
        Self::UnusedPermission,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum FindingStatus {
    Active,
    Resolved,
    Archived,
}
named!(FindingStatus { Active => "active", Resolved => "resolved", Archived => "archived" });

/// A finding's id: the first 128 bits of SHA-256 over its type and resource, in hex, so that
/// it is the same at every run and safe in a URL path.
pub fn finding_id(kind: FindingType, resource: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(resource.as_bytes());
    let digest = hasher.finalize();
    let first: [u8; 16] = digest[..16].try_into().expect("SHA-256 has 32 bytes");
    format!("{:032x}", u128::from_be_bytes(first))
}

/// A finding whose condition holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Holding {
    pub kind: FindingType,
    pub resource: String,
    pub principal: String,
    pub evidence: serde_json::Value,
    /// The `FINDINGS_EXCLUDE` rule that archives it, if one matches.
    pub excluded_by: Option<String>,
}

/// A resource evaluated whose condition does not hold, and why (used again, key
/// deactivated, password removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    pub kind: FindingType,
    pub resource: String,
    pub reason: String,
}

/// One account's evaluation: the types evaluated (those whose data was collected), what
/// holds, what does not. A stored finding of an evaluated type in neither list is gone
/// (its principal or key was deleted).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evaluation {
    pub account: String,
    pub types: Vec<FindingType>,
    pub holding: Vec<Holding>,
    pub cleared: Vec<Cleared>,
}

/// What applying an evaluation changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub opened: u64,
    pub resolved: u64,
    pub archived: u64,
    pub reopened: u64,
    /// Findings still holding whose evidence changed.
    pub updated: u64,
}

/// One change of a finding's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub at: String,
    pub run_id: Option<i64>,
    pub status: FindingStatus,
    pub reason: Option<String>,
    pub actor: Option<String>,
}

/// A finding as stored, with its history (oldest first).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFinding {
    pub id: String,
    pub kind: FindingType,
    pub status: FindingStatus,
    pub resource: String,
    pub principal: String,
    pub account: String,
    pub reason: Option<String>,
    pub archived_by: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub updated_at: String,
    pub evidence: serde_json::Value,
    pub stale: bool,
    pub history: Vec<StatusChange>,
}

/// Which findings a list asks for. Conditions combine with AND.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub kind: Option<FindingType>,
    pub status: Option<FindingStatus>,
    pub account: Option<String>,
    /// The principal's ARN, in any case.
    pub arn: Option<String>,
}

/// Per account and type, findings by status.
pub type FindingCounts = BTreeMap<(String, FindingType), BTreeMap<FindingStatus, i64>>;

/// What is kept of a stored finding while an evaluation is applied.
struct Current {
    status: FindingStatus,
    archived_by: Option<String>,
    reason: Option<String>,
    evidence: String,
    holds: bool,
}

/// The account's stored findings, by id (read as one JSON row: see `rows_as_json`).
async fn current_findings(
    tx: &mut Tx<'_>,
    dialect: super::Dialect,
    account: &str,
) -> Result<HashMap<String, (FindingType, Current)>, DbError> {
    type Row = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        i64,
    );
    let text: String = sqlx::query_scalar(&dialect.rows_as_json(
        "id, type, status, archived_by, reason, evidence, holds",
        "FROM aardvark_findings WHERE account_id = $1",
    ))
    .bind(account)
    .fetch_one(&mut **tx)
    .await?;
    let rows: Vec<Row> = serde_json::from_str(&text)
        .map_err(|err| DbError::undecodable(format!("stored findings: {err}")))?;
    rows.into_iter()
        .map(|(id, kind, status, archived_by, reason, evidence, holds)| {
            let current = Current {
                status: FindingStatus::try_from(status).map_err(DbError::undecodable)?,
                archived_by,
                reason,
                evidence,
                holds: holds != 0,
            };
            Ok((
                id,
                (
                    FindingType::try_from(kind).map_err(DbError::undecodable)?,
                    current,
                ),
            ))
        })
        .collect()
}

/// Records the account's evaluation of each type, first in the transaction (a write first:
/// SQLite then takes its write lock now, waiting for it, where a read first would make the
/// later writes fail at once when another writer came between; PostgreSQL locks the
/// account's evaluations against a concurrent one). An evaluated type's evaluation moves on,
/// the one before kept as `previous_at`, which is returned by type; a type not evaluated
/// keeps its last evaluation and turns stale.
async fn record_evaluations(
    tx: &mut Tx<'_>,
    dialect: super::Dialect,
    evaluation: &Evaluation,
    now: &str,
) -> Result<HashMap<FindingType, Option<String>>, DbError> {
    let sql = format!(
        "INSERT INTO aardvark_finding_evaluations (account_id, type, evaluated_at, stale) \
         VALUES {} ON CONFLICT (account_id, type) DO UPDATE SET \
         previous_at = CASE WHEN excluded.stale = 0 THEN aardvark_finding_evaluations.evaluated_at \
             ELSE aardvark_finding_evaluations.previous_at END, \
         evaluated_at = CASE WHEN excluded.stale = 0 THEN excluded.evaluated_at \
             ELSE aardvark_finding_evaluations.evaluated_at END, \
         stale = excluded.stale RETURNING type, previous_at",
        dialect.values_placeholders(FindingType::ALL.len(), 4)
    );
    let mut upsert = sqlx::query_as::<_, (String, Option<String>)>(&sql);
    for kind in FindingType::ALL {
        upsert = upsert
            .bind(&evaluation.account)
            .bind(kind.as_str())
            .bind(now)
            .bind(i64::from(!evaluation.types.contains(&kind)));
    }
    let mut previous = HashMap::new();
    for (kind, before) in upsert.fetch_all(&mut **tx).await? {
        previous.insert(
            FindingType::try_from(kind).map_err(DbError::undecodable)?,
            before,
        );
    }
    Ok(previous)
}

/// What an evaluation's findings are known by, worked out before the write begins (hashing
/// ids and writing evidence is most of an account's planning; on SQLite writes take turns).
struct Prepared<'a> {
    /// Each holding finding's id and evidence text.
    holding: Vec<(String, String, &'a Holding)>,
    /// Why each evaluated resource does not hold, by finding id.
    cleared: HashMap<String, &'a str>,
}

impl Prepared<'_> {
    /// A digest of everything `plan` reads of the evaluation: two evaluations of equal
    /// digests applied one after the other, with no other write between them, leave the
    /// second nothing to change.
    fn digest(&self, evaluation: &Evaluation) -> String {
        let mut digest = super::identity::FieldsDigest::default();
        digest.put(
            &evaluation
                .types
                .iter()
                .map(|kind| kind.as_str())
                .collect::<Vec<_>>(),
        );
        for (id, evidence, holding) in &self.holding {
            let (status, reason) = wanted(holding);
            digest.put(&[
                id,
                evidence,
                &holding.principal,
                &holding.resource,
                status.as_str(),
                &reason,
            ]);
        }
        let mut cleared: Vec<(&String, &&str)> = self.cleared.iter().collect();
        cleared.sort_unstable();
        for (id, reason) in cleared {
            digest.put(&[id, reason]);
        }
        digest.finish()
    }
}

fn prepare(evaluation: &Evaluation) -> Prepared<'_> {
    Prepared {
        holding: evaluation
            .holding
            .iter()
            .map(|h| (finding_id(h.kind, &h.resource), h.evidence.to_string(), h))
            .collect(),
        cleared: evaluation
            .cleared
            .iter()
            .map(|c| (finding_id(c.kind, &c.resource), c.reason.as_str()))
            .collect(),
    }
}

/// The status a holding finding should have: archived by the exclusion that matches it, or
/// active.
fn wanted(holding: &Holding) -> (FindingStatus, String) {
    match &holding.excluded_by {
        Some(rule) => (FindingStatus::Archived, excluded_reason(rule)),
        None => (FindingStatus::Active, "found".to_owned()),
    }
}

/// What an evaluation changes, from the findings stored (`current`) and the evaluation each
/// type had before this one (`previous`).
fn plan<'a>(
    evaluation: &'a Evaluation,
    prepared: &Prepared<'a>,
    current: &HashMap<String, (FindingType, Current)>,
    previous: &HashMap<FindingType, Option<String>>,
    run_id: Option<i64>,
    now: &str,
) -> (Writes<'a>, Changes) {
    let change = |status, reason: String| StatusChange {
        at: now.to_owned(),
        run_id,
        status,
        reason: Some(reason),
        actor: None,
    };
    let mut writes = Writes::default();
    let mut changes = Changes::default();
    let mut seen = std::collections::HashSet::new();
    for (id, evidence, holding) in &prepared.holding {
        let (id, evidence, holding) = (id.clone(), evidence.clone(), *holding);
        seen.insert(id.clone());
        let (status, reason) = wanted(holding);
        let Some((_, was)) = current.get(&id) else {
            writes
                .opened
                .push((id.clone(), holding, status, reason.clone(), evidence));
            writes.history.push((id, change(status, reason)));
            changes.opened += 1;
            continue;
        };
        if !was.holds {
            writes.holds.push((id.clone(), true, None));
        }
        if was.evidence != evidence {
            writes.evidence.push((id.clone(), evidence));
            changes.updated += 1;
        }
        let by_hand = was.status == FindingStatus::Archived && was.archived_by.is_some();
        let unchanged = match status {
            FindingStatus::Active => was.status == FindingStatus::Active,
            _ => was.status == FindingStatus::Archived && was.reason.as_ref() == Some(&reason),
        };
        if by_hand || unchanged {
            continue;
        }
        let reason = match (status, was.status) {
            (FindingStatus::Active, FindingStatus::Resolved) => "found again".to_owned(),
            (FindingStatus::Active, _) => "no FINDINGS_EXCLUDE rule matches any more".to_owned(),
            _ => reason,
        };
        if status == FindingStatus::Archived {
            changes.archived += 1;
        } else {
            changes.reopened += 1;
        }
        writes.status.push((id, change(status, reason)));
    }
    let gone = Gone {
        evaluation,
        cleared: &prepared.cleared,
        previous,
        seen: &seen,
    };
    gone.plan(current, &change, &mut writes, &mut changes);
    (writes, changes)
}

/// What is known of the findings an evaluation did not find holding.
struct Gone<'a> {
    evaluation: &'a Evaluation,
    /// Why each evaluated resource does not hold, by finding id.
    cleared: &'a HashMap<String, &'a str>,
    previous: &'a HashMap<FindingType, Option<String>>,
    /// The ids of the findings that hold.
    seen: &'a std::collections::HashSet<String>,
}

impl Gone<'_> {
    /// Stored findings of the evaluated types that no longer hold: they stop holding, last
    /// seen at the evaluation before this one, and active ones (or those an exclusion
    /// archived) resolve with their reason.
    fn plan(
        &self,
        current: &HashMap<String, (FindingType, Current)>,
        change: &dyn Fn(FindingStatus, String) -> StatusChange,
        writes: &mut Writes<'_>,
        changes: &mut Changes,
    ) {
        let (evaluation, cleared, previous, seen) =
            (self.evaluation, self.cleared, self.previous, self.seen);
        for (id, (kind, was)) in current {
            if seen.contains(id) || !evaluation.types.contains(kind) {
                continue;
            }
            if was.holds {
                // Last seen holding at the evaluation before this one.
                let last = previous.get(kind).cloned().flatten();
                writes.holds.push((id.clone(), false, last));
            }
            let by_rule = was.status == FindingStatus::Archived && was.archived_by.is_none();
            if was.status == FindingStatus::Active || by_rule {
                let reason = cleared.get(id).copied().unwrap_or(match kind {
                    FindingType::UnusedAccessKey => "the access key was deleted",
                    _ => "the principal was deleted",
                });
                writes.status.push((
                    id.clone(),
                    change(FindingStatus::Resolved, reason.to_owned()),
                ));
                changes.resolved += 1;
            }
        }
    }
}

/// What applying an evaluation writes, gathered so that most of it goes many rows to a
/// statement.
#[derive(Default)]
struct Writes<'a> {
    /// New findings: id, what holds, status, reason, evidence.
    opened: Vec<(String, &'a Holding, FindingStatus, String, String)>,
    /// Status changes of stored findings (each kept in the history too).
    status: Vec<(String, StatusChange)>,
    /// History rows of new findings.
    history: Vec<(String, StatusChange)>,
    /// Stored findings that hold again (`true`) or stopped holding, with when they were
    /// last seen holding.
    holds: Vec<(String, bool, Option<String>)>,
    /// Stored findings whose evidence changed.
    evidence: Vec<(String, String)>,
}

/// History rows, many to a statement.
async fn insert_history(
    tx: &mut Tx<'_>,
    dialect: super::Dialect,
    history: &[&(String, StatusChange)],
) -> Result<(), DbError> {
    for chunk in history.chunks(rows_per_statement(6)) {
        let sql = format!(
            "INSERT INTO aardvark_finding_history (finding_id, at, run_id, status, reason, actor) VALUES {}",
            dialect.values_placeholders(chunk.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for (id, change) in chunk {
            query = query
                .bind(id)
                .bind(&change.at)
                .bind(change.run_id)
                .bind(change.status.as_str())
                .bind(&change.reason)
                .bind(&change.actor);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Rows per multi-row statement: the statement's parameters within the shared limit.
fn rows_per_statement(columns: usize) -> usize {
    (super::vocabulary::PARAMS_PER_STATEMENT / columns).max(1)
}

impl Writes<'_> {
    async fn apply(
        self,
        tx: &mut Tx<'_>,
        dialect: super::Dialect,
        account: &str,
        now: &str,
    ) -> Result<(), DbError> {
        self.insert_opened(tx, dialect, account, now).await?;
        self.update_each(tx).await?;
        let history: Vec<&(String, StatusChange)> =
            self.history.iter().chain(&self.status).collect();
        insert_history(tx, dialect, &history).await
    }

    /// New findings, many to a statement.
    async fn insert_opened(
        &self,
        tx: &mut Tx<'_>,
        dialect: super::Dialect,
        account: &str,
        now: &str,
    ) -> Result<(), DbError> {
        for chunk in self.opened.chunks(rows_per_statement(11)) {
            let sql = format!(
                "INSERT INTO aardvark_findings (id, type, status, resource, principal, account_id, \
                 reason, evidence, first_seen, last_seen, updated_at, holds) VALUES {}",
                dialect.values_placeholders_then(chunk.len(), 11, ", 1")
            );
            let mut query = sqlx::query(&sql);
            for (id, holding, status, reason, evidence) in chunk {
                query = query
                    .bind(id)
                    .bind(holding.kind.as_str())
                    .bind(status.as_str())
                    .bind(&holding.resource)
                    .bind(&holding.principal)
                    .bind(account)
                    .bind(reason)
                    .bind(evidence)
                    .bind(now)
                    .bind(now)
                    .bind(now);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Stored findings whose status, evidence or holding changed, one statement each.
    async fn update_each(&self, tx: &mut Tx<'_>) -> Result<(), DbError> {
        for (id, change) in &self.status {
            // Who archived it stays beside it while it is archived; the history keeps who
            // changed it whatever the change.
            let archived_by = change
                .actor
                .as_ref()
                .filter(|_| change.status == FindingStatus::Archived);
            sqlx::query(
                "UPDATE aardvark_findings SET status = $1, reason = $2, archived_by = $3, updated_at = $4 \
                 WHERE id = $5",
            )
            .bind(change.status.as_str())
            .bind(&change.reason)
            .bind(archived_by)
            .bind(&change.at)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
        for (id, evidence) in &self.evidence {
            sqlx::query("UPDATE aardvark_findings SET evidence = $1 WHERE id = $2")
                .bind(evidence)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        for (id, holds, last_seen) in &self.holds {
            sqlx::query(
                "UPDATE aardvark_findings SET holds = $1, last_seen = COALESCE($2, last_seen) WHERE id = $3",
            )
            .bind(i64::from(*holds))
            .bind(last_seen)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

/// The reason an exclusion archives with.
fn excluded_reason(rule: &str) -> String {
    format!("excluded by FINDINGS_EXCLUDE rule {rule}")
}

const FINDING_COLUMNS: &str = "f.id, f.type, f.status, f.resource, f.principal, f.account_id, \
     f.reason, f.archived_by, f.first_seen, \
     CASE WHEN f.holds = 1 AND e.evaluated_at IS NOT NULL THEN e.evaluated_at ELSE f.last_seen END, \
     f.updated_at, f.evidence, CAST(COALESCE(e.stale, 0) AS BIGINT)";

/// Findings with their type's latest evaluation in their account (their last sighting while
/// they hold, and whether they are stale).
const FINDINGS_FROM: &str = "aardvark_findings f LEFT JOIN aardvark_finding_evaluations e \
     ON e.account_id = f.account_id AND e.type = f.type";

fn finding_of(row: &sqlx::any::AnyRow) -> Result<StoredFinding, DbError> {
    let kind: String = row.try_get(1)?;
    let status: String = row.try_get(2)?;
    let evidence: String = row.try_get(11)?;
    Ok(StoredFinding {
        id: row.try_get(0)?,
        kind: FindingType::try_from(kind).map_err(DbError::undecodable)?,
        status: FindingStatus::try_from(status).map_err(DbError::undecodable)?,
        resource: row.try_get(3)?,
        principal: row.try_get(4)?,
        account: row.try_get(5)?,
        reason: row.try_get(6)?,
        archived_by: row.try_get(7)?,
        first_seen: row.try_get(8)?,
        last_seen: row.try_get(9)?,
        updated_at: row.try_get(10)?,
        evidence: serde_json::from_str(&evidence)
            .map_err(|err| DbError::undecodable(format!("stored evidence: {err}")))?,
        stale: row.try_get::<i64, _>(12)? != 0,
        history: Vec::new(),
    })
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

impl Database {
    /// Applies one account's evaluation in one transaction: new findings open (active, or
    /// archived by an exclusion), holding ones are seen again (resolved ones reopen; those an
    /// exclusion archived follow the rules as they are now; those archived by hand stay so),
    /// and active ones that no longer hold resolve with their reason. Findings of types not
    /// evaluated are kept as they are, marked stale. A finding's last sighting while it holds
    /// is its type's latest evaluation, so an evaluation that changes nothing writes one row
    /// per type; new findings and history rows go many to a statement, and a stored finding
    /// is written only when its status, evidence or holding changes.
    pub async fn apply_evaluation(
        &self,
        evaluation: &Evaluation,
        run_id: Option<i64>,
        now: &str,
    ) -> Result<Changes, DbError> {
        let prepared = prepare(evaluation);
        let digest = prepared.digest(evaluation);
        let account = evaluation.account.as_str();
        let (_turn, mut tx) = self.begin_write().await?;
        let previous = record_evaluations(&mut tx, self.dialect(), evaluation, now).await?;
        let applied: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM aardvark_findings_applied WHERE account_id = $1",
        )
        .bind(account)
        .fetch_optional(&mut *tx)
        .await?;
        if applied.as_deref() == Some(digest.as_str()) {
            tx.commit().await?;
            return Ok(Changes::default());
        }
        let current = current_findings(&mut tx, self.dialect(), account).await?;
        let (writes, changes) = plan(evaluation, &prepared, &current, &previous, run_id, now);
        writes.apply(&mut tx, self.dialect(), account, now).await?;
        sqlx::query(
            "INSERT INTO aardvark_findings_applied (account_id, digest) VALUES ($1, $2) \
             ON CONFLICT (account_id) DO UPDATE SET digest = excluded.digest",
        )
        .bind(account)
        .bind(&digest)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(changes)
    }

    /// Archives (`archive`) or makes active again a finding by hand; `None` when there is no
    /// such finding. Kept in its history with who and why.
    pub async fn set_finding_archived(
        &self,
        id: &str,
        archive: bool,
        reason: &str,
        actor: &str,
    ) -> Result<Option<StoredFinding>, DbError> {
        let mut tx = self.pool().begin().await?;
        // A write first (see `apply_evaluation`), which also says whether it exists.
        let exists = sqlx::query("UPDATE aardvark_findings SET holds = holds WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if exists == 0 {
            return Ok(None);
        }
        // The account's next evaluation plans from what is stored, as this changes it.
        sqlx::query(
            "DELETE FROM aardvark_findings_applied WHERE account_id = \
             (SELECT account_id FROM aardvark_findings WHERE id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let status = if archive {
            FindingStatus::Archived
        } else {
            FindingStatus::Active
        };
        let change = StatusChange {
            at: crate::time::stored_now(),
            run_id: None,
            status,
            reason: Some(reason.to_owned()),
            actor: Some(actor.to_owned()),
        };
        let writes = Writes {
            status: vec![(id.to_owned(), change)],
            ..Default::default()
        };
        writes.update_each(&mut tx).await?;
        insert_history(
            &mut tx,
            self.dialect(),
            &writes.status.iter().collect::<Vec<_>>(),
        )
        .await?;
        tx.commit().await?;
        self.finding(id).await
    }

    /// One finding with its history.
    pub async fn finding(&self, id: &str) -> Result<Option<StoredFinding>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {FINDING_COLUMNS} FROM {FINDINGS_FROM} WHERE f.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut finding = finding_of(&row)?;
        finding.history = self
            .finding_histories(std::slice::from_ref(&finding.id))
            .await?
            .remove(&finding.id)
            .unwrap_or_default();
        Ok(Some(finding))
    }

    /// A page of findings (by account, type, resource) and how many match.
    pub async fn findings_page(
        &self,
        filter: &FindingFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<StoredFinding>), DbError> {
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        let mut condition = |sql: &str, value: String| {
            binds.push(value);
            conditions.push(sql.replace('?', &format!("${}", binds.len())));
        };
        if let Some(kind) = filter.kind {
            condition("f.type = ?", kind.as_str().to_owned());
        }
        if let Some(status) = filter.status {
            condition("f.status = ?", status.as_str().to_owned());
        }
        if let Some(account) = &filter.account {
            condition("f.account_id = ?", account.clone());
        }
        if let Some(arn) = &filter.arn {
            condition("LOWER(f.principal) = ?", arn.to_lowercase());
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let count_sql =
            format!("SELECT CAST(COUNT(*) AS BIGINT) FROM aardvark_findings f {filter_sql}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for value in &binds {
            count = count.bind(value);
        }
        let total = count.fetch_one(self.pool()).await?;
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM {FINDINGS_FROM} {filter_sql} \
             ORDER BY f.account_id, f.type, f.resource LIMIT {limit} OFFSET {offset}"
        );
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut findings: Vec<StoredFinding> =
            rows.iter().map(finding_of).collect::<Result<_, _>>()?;
        let ids: Vec<String> = findings.iter().map(|f| f.id.clone()).collect();
        let mut histories = self.finding_histories(&ids).await?;
        for finding in &mut findings {
            finding.history = histories.remove(&finding.id).unwrap_or_default();
        }
        Ok((total, findings))
    }

    async fn finding_histories(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<StatusChange>>, DbError> {
        let mut histories: HashMap<String, Vec<StatusChange>> = HashMap::new();
        for chunk in ids.chunks(super::vocabulary::PARAMS_PER_STATEMENT) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT finding_id, at, CAST(run_id AS BIGINT), status, reason, actor \
                 FROM aardvark_finding_history WHERE finding_id IN ({}) ORDER BY id",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(self.pool()).await? {
                let status: String = row.try_get(3)?;
                histories
                    .entry(row.try_get(0)?)
                    .or_default()
                    .push(StatusChange {
                        at: row.try_get(1)?,
                        run_id: row.try_get(2)?,
                        status: FindingStatus::try_from(status).map_err(DbError::undecodable)?,
                        reason: row.try_get(4)?,
                        actor: row.try_get(5)?,
                    });
            }
        }
        Ok(histories)
    }

    /// Findings per account and type, by status.
    pub async fn finding_counts(&self) -> Result<FindingCounts, DbError> {
        let rows = sqlx::query(
            "SELECT account_id, type, status, CAST(COUNT(*) AS BIGINT) FROM aardvark_findings \
             GROUP BY account_id, type, status",
        )
        .fetch_all(self.pool())
        .await?;
        let mut counts = FindingCounts::new();
        for row in rows {
            let kind: String = row.try_get(1)?;
            let status: String = row.try_get(2)?;
            counts
                .entry((
                    row.try_get(0)?,
                    FindingType::try_from(kind).map_err(DbError::undecodable)?,
                ))
                .or_default()
                .insert(
                    FindingStatus::try_from(status).map_err(DbError::undecodable)?,
                    row.try_get(3)?,
                );
        }
        Ok(counts)
    }

    /// The rules (window and exclusions, as text) findings were last evaluated with.
    pub async fn findings_rules(&self) -> Result<Option<String>, DbError> {
        Ok(
            sqlx::query_scalar("SELECT rules FROM aardvark_findings_rules WHERE id = 1")
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn set_findings_rules(&self, rules: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO aardvark_findings_rules (id, rules) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET rules = excluded.rules",
        )
        .bind(rules)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
