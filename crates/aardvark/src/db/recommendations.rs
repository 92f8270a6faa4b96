//! Stored least-privilege recommendations: one row per change of a finding's recommendation
//! (its JSON as `crate::recommend` made it, opaque here), the latest marked current; and the
//! policy documents recommendations are computed from, read per account.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::Row;

use super::error::DbError;
use super::identity::{text_digest, ManagedPolicy};
use super::Database;

/// One recommendation as an evaluation computed it.
#[derive(Debug, Clone)]
pub struct FreshRecommendation {
    pub finding_id: String,
    pub principal: String,
    pub offered: bool,
    pub steps: i64,
    /// The recommendation's JSON text.
    pub body: String,
}

/// One stored recommendation.
#[derive(Debug, Clone)]
pub struct StoredRecommendation {
    pub finding_id: String,
    pub principal: String,
    pub account: String,
    /// Stored time (`crate::time`).
    pub computed_at: String,
    pub run_id: Option<i64>,
    pub current: bool,
    pub body: serde_json::Value,
}

/// What storing an account's recommendations changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecommendationChanges {
    pub written: u64,
    pub unchanged: u64,
    pub withdrawn: u64,
}

/// Current recommendations by state, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecommendationCounts {
    pub offered: i64,
    pub rejected: i64,
}

/// An account's policies: inline documents by owner ARN (name, document), and its managed
/// policies with their default versions.
#[derive(Debug, Clone, Default)]
pub struct AccountPolicies {
    pub inline: HashMap<String, Vec<(String, serde_json::Value)>>,
    pub managed: Vec<ManagedPolicy>,
}

const COLUMNS: &str =
    "finding_id, principal, account_id, computed_at, run_id, current, recommendation";

fn stored_of(row: &sqlx::any::AnyRow) -> Result<StoredRecommendation, DbError> {
    let body: String = row.try_get(6)?;
    Ok(StoredRecommendation {
        finding_id: row.try_get(0)?,
        principal: row.try_get(1)?,
        account: row.try_get(2)?,
        computed_at: row.try_get(3)?,
        run_id: row.try_get(4)?,
        current: row.try_get::<i64, _>(5)? != 0,
        body: serde_json::from_str(&body)
            .map_err(|err| DbError::undecodable(format!("a stored recommendation: {err}")))?,
    })
}

/// The account's current recommendations: finding id -> (row id, digest).
async fn current_recommendations<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    account_id: &str,
) -> Result<HashMap<String, (i64, String)>, DbError> {
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT finding_id, id, digest FROM aardvark_recommendations \
         WHERE account_id = $1 AND current = 1",
    )
    .bind(account_id)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(finding, id, digest)| (finding, (id, digest)))
        .collect())
}

/// What storing `fresh` (with their `digests`) over `current` changes: the counts, the row
/// ids to withdraw, and the recommendations to write with their digests.
fn plan<'a>(
    fresh: &'a [FreshRecommendation],
    digests: &'a [String],
    current: &HashMap<String, (i64, String)>,
) -> (
    RecommendationChanges,
    Vec<i64>,
    Vec<(&'a FreshRecommendation, &'a String)>,
) {
    let mut changes = RecommendationChanges::default();
    let mut kept = HashSet::new();
    let (mut retire, mut insert) = (Vec::new(), Vec::new());
    for (recommendation, digest) in fresh.iter().zip(digests) {
        kept.insert(recommendation.finding_id.as_str());
        match current.get(&recommendation.finding_id) {
            Some((_, stored)) if stored == digest => changes.unchanged += 1,
            stored => {
                retire.extend(stored.map(|(id, _)| *id));
                insert.push((recommendation, digest));
            }
        }
    }
    for (finding, (id, _)) in current {
        if !kept.contains(finding.as_str()) {
            retire.push(*id);
            changes.withdrawn += 1;
        }
    }
    changes.written = insert.len() as u64;
    (changes, retire, insert)
}

fn undecodable(what: &str, err: serde_json::Error) -> DbError {
    DbError::undecodable(format!("stored {what}: {err}"))
}

impl Database {
    /// The account's inline and managed policy documents, decoded.
    pub async fn account_policies(&self, account_id: &str) -> Result<AccountPolicies, DbError> {
        let rows: Vec<(String, String)> = self
            .json_rows(
                "arn, inline_policies",
                "FROM aardvark_identities WHERE account_id = $1",
                account_id,
            )
            .await?;
        let mut owners = Vec::with_capacity(rows.len());
        let mut digests = HashSet::new();
        for (arn, inline) in rows {
            let inline: BTreeMap<String, String> =
                serde_json::from_str(&inline).map_err(|err| undecodable("inline policies", err))?;
            digests.extend(inline.values().cloned());
            owners.push((arn, inline));
        }
        let documents = self.documents(digests.into_iter().collect()).await?;
        let mut policies = AccountPolicies::default();
        for (arn, inline) in owners {
            let mut named = Vec::with_capacity(inline.len());
            for (name, digest) in inline {
                let document = documents.get(&digest).ok_or_else(|| {
                    DbError::undecodable(format!("policy document {digest} is missing"))
                })?;
                named.push((name, document.clone()));
            }
            policies.inline.insert(arn, named);
        }
        let managed: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT m.arn, m.name, m.default_version, d.document FROM aardvark_managed_policies m \
             JOIN aardvark_policy_documents d ON d.digest = m.digest WHERE m.account_id = $1",
        )
        .bind(account_id)
        .fetch_all(self.pool())
        .await?;
        for (arn, name, default_version, document) in managed {
            policies.managed.push(ManagedPolicy {
                arn,
                name,
                default_version,
                document: serde_json::from_str(&document)
                    .map_err(|err| undecodable("policy document", err))?,
            });
        }
        Ok(policies)
    }

    /// The documents of `digests`, decoded, many to a statement.
    async fn documents(
        &self,
        digests: Vec<String>,
    ) -> Result<HashMap<String, serde_json::Value>, DbError> {
        let mut documents = HashMap::with_capacity(digests.len());
        for chunk in digests.chunks(super::vocabulary::PARAMS_PER_STATEMENT) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT digest, document FROM aardvark_policy_documents WHERE digest IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query_as::<_, (String, String)>(&sql);
            for digest in chunk {
                query = query.bind(digest);
            }
            for (digest, document) in query.fetch_all(self.pool()).await? {
                let document = serde_json::from_str(&document)
                    .map_err(|err| undecodable("policy document", err))?;
                documents.insert(digest, document);
            }
        }
        Ok(documents)
    }

    /// What the account's current recommendations were computed from (`store_recommendations`'
    /// `inputs`) and how many there are; `None` before the first.
    pub async fn recommendation_inputs(
        &self,
        account_id: &str,
    ) -> Result<Option<(String, u64)>, DbError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT digest, current FROM aardvark_recommendation_inputs WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(digest, current)| (digest, current.max(0) as u64)))
    }

    /// What the account's policies are, without their documents: each role's, user's and
    /// group's inline policies (name -> document digest, as JSON) and each managed policy's
    /// name, default version and document digest, by ARN, sorted. A change of any document
    /// changes them.
    pub async fn policy_references(
        &self,
        account_id: &str,
    ) -> Result<Vec<(String, String)>, DbError> {
        let mut references: Vec<(String, String)> = self
            .json_rows(
                "arn, reference",
                "FROM (SELECT arn, inline_policies AS reference FROM aardvark_identities \
                 WHERE account_id = $1 UNION ALL SELECT arn, name || ' ' || default_version || ' ' || digest \
                 FROM aardvark_managed_policies WHERE account_id = $1) AS policy",
                account_id,
            )
            .await?;
        references.sort_unstable();
        Ok(references)
    }

    /// Makes `fresh`, computed from `inputs` (a digest of what the rules read), the account's
    /// current recommendations in one transaction: a row is written for each that differs from
    /// its finding's current one, current ones not in `fresh` are withdrawn, and `inputs` is
    /// recorded.
    pub async fn store_recommendations(
        &self,
        account_id: &str,
        fresh: &[FreshRecommendation],
        inputs: &str,
        run_id: Option<i64>,
        now: &str,
    ) -> Result<RecommendationChanges, DbError> {
        let digests: Vec<String> = fresh.iter().map(|r| text_digest(&r.body)).collect();
        let (_turn, mut tx) = self.begin_write().await?;
        let current = current_recommendations(&mut *tx, account_id).await?;
        let (changes, retire, insert) = plan(fresh, &digests, &current);
        sqlx::query(
            "INSERT INTO aardvark_recommendation_inputs (account_id, digest, current) \
             VALUES ($1, $2, $3) ON CONFLICT (account_id) \
             DO UPDATE SET digest = excluded.digest, current = excluded.current",
        )
        .bind(account_id)
        .bind(inputs)
        .bind(fresh.len() as i64)
        .execute(&mut *tx)
        .await?;
        if !retire.is_empty() {
            // By row id, the table's key.
            let (matching, list) = self.dialect().among_ids("id", "$1", &retire);
            sqlx::query(&format!(
                "UPDATE aardvark_recommendations SET current = 0 WHERE {matching}"
            ))
            .bind(list)
            .execute(&mut *tx)
            .await?;
        }
        for chunk in insert.chunks(super::vocabulary::PARAMS_PER_STATEMENT / 10) {
            let sql = format!(
                "INSERT INTO aardvark_recommendations (finding_id, principal, account_id, computed_at, \
                 run_id, digest, offered, steps, current, recommendation) VALUES {}",
                self.dialect().values_placeholders(chunk.len(), 10)
            );
            let mut query = sqlx::query(&sql);
            for (recommendation, digest) in chunk {
                query = query
                    .bind(&recommendation.finding_id)
                    .bind(&recommendation.principal)
                    .bind(account_id)
                    .bind(now)
                    .bind(run_id)
                    .bind(*digest)
                    .bind(i64::from(recommendation.offered))
                    .bind(recommendation.steps)
                    .bind(1_i64)
                    .bind(&recommendation.body);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(changes)
    }

    /// A page of current recommendations (by account, then principal), of one account or one
    /// principal (any case) when given, and how many match.
    pub async fn recommendations_page(
        &self,
        account: Option<&str>,
        arn: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<StoredRecommendation>), DbError> {
        let mut conditions = vec!["current = 1".to_owned()];
        let mut binds = Vec::new();
        if let Some(account) = account {
            binds.push(account.to_owned());
            conditions.push(format!("account_id = ${}", binds.len()));
        }
        if let Some(arn) = arn {
            binds.push(arn.to_lowercase());
            conditions.push(format!("LOWER(principal) = ${}", binds.len()));
        }
        let filter = conditions.join(" AND ");
        let count_sql =
            format!("SELECT CAST(COUNT(*) AS BIGINT) FROM aardvark_recommendations WHERE {filter}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for value in &binds {
            count = count.bind(value);
        }
        let total = count.fetch_one(self.pool()).await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM aardvark_recommendations WHERE {filter} \
             ORDER BY account_id, principal LIMIT {limit} OFFSET {offset}"
        );
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let page = rows.iter().map(stored_of).collect::<Result<_, _>>()?;
        Ok((total, page))
    }

    /// Every recommendation a finding (of `principal` in `account_id`) had, oldest first.
    pub async fn recommendations_of(
        &self,
        account_id: &str,
        principal: &str,
        finding_id: &str,
    ) -> Result<Vec<StoredRecommendation>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM aardvark_recommendations \
             WHERE account_id = $1 AND principal = $2 AND finding_id = $3 ORDER BY id"
        ))
        .bind(account_id)
        .bind(principal)
        .bind(finding_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(stored_of).collect()
    }

    /// Current recommendations, offered and rejected.
    pub async fn recommendation_counts(&self) -> Result<RecommendationCounts, DbError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT offered, CAST(COUNT(*) AS BIGINT) FROM aardvark_recommendations \
             WHERE current = 1 GROUP BY offered",
        )
        .fetch_all(self.pool())
        .await?;
        let count = |state: i64| {
            rows.iter()
                .find(|(o, _)| *o == state)
                .map_or(0, |(_, n)| *n)
        };
        let (offered, rejected) = (count(1), count(0));
        Ok(RecommendationCounts { offered, rejected })
    }
}
