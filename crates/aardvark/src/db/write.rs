//! The write path the collector uses: store principals' Access Advisor results with upstream's
//! upsert rules (docs/behaviour.md, section 4), and prune principals an account no longer lists.
//! Each call is one transaction, so a failure leaves what was stored before untouched.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::Row;

use super::{now_timestamp, Database, DbError};

/// AWS's limits on what upstream's columns hold.
pub const SERVICE_NAME_MAX_CHARS: usize = 128;
pub const SERVICE_NAMESPACE_MAX_CHARS: usize = 64;

/// Parameters per multi-row statement. Far below both databases' limits, and small because
/// sqlx looks up each numbered SQLite parameter's name in a list, which costs time quadratic in
/// the number of parameters (measured: 54% of ingest time at 3,000 parameters a statement);
/// the statements that repeat per service row avoid numbering (`values_placeholders`).
pub(crate) const PARAMS_PER_STATEMENT: usize = 360;

/// One service's last use by a principal, as AWS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUsage {
    pub service_name: String,
    pub service_namespace: String,
    /// Epoch milliseconds; 0 when not used within AWS's tracking window.
    pub last_authenticated: i64,
    pub last_authenticated_entity: Option<String>,
    pub total_authenticated_entities: i64,
}

/// A principal (role, user, group or policy) and every service it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalUsage {
    pub arn: String,
    pub services: Vec<ServiceUsage>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Delete stored namespaces that the new result no longer lists.
    pub prune_namespaces: bool,
}

/// Something stored that the new data contradicted, worth a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteWarning {
    /// A stored last use is now reported as 0: it aged out of AWS's tracking window.
    AgedOut {
        arn: String,
        namespace: String,
        previous: i64,
    },
    /// AWS reported an older last use than the stored one; the stored one was kept.
    OlderIgnored {
        arn: String,
        namespace: String,
        stored: i64,
        received: i64,
    },
}

impl std::fmt::Display for WriteWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteWarning::AgedOut { arn, namespace, previous } => write!(
                f,
                "{arn} {namespace}: last use {previous} aged out of AWS's tracking window, stored as 0"
            ),
            WriteWarning::OlderIgnored { arn, namespace, stored, received } => write!(
                f,
                "{arn} {namespace}: AWS reported an older last use ({received}) than stored ({stored}); kept the stored one"
            ),
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    pub principals: usize,
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub namespaces_pruned: usize,
    pub warnings: Vec<WriteWarning>,
}

/// A stored `advisor_data` row, as far as the upsert rules need it.
struct StoredRow {
    id: i64,
    last_authenticated: i64,
    service_name: Option<String>,
    entity: Option<String>,
    total: Option<i64>,
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

impl Database {
    /// Stores the principals' results in one transaction: each principal's `lastUpdated` becomes
    /// now, and each namespace follows the upsert rules. Either all of it is stored or none.
    pub async fn store_principals(
        &self,
        principals: &[PrincipalUsage],
        options: WriteOptions,
    ) -> Result<WriteSummary, DbError> {
        let mut summary = WriteSummary::default();
        // The last result for an ARN wins; within a result, the newest use of a namespace.
        let mut by_arn: BTreeMap<&str, BTreeMap<String, ServiceUsage>> = BTreeMap::new();
        for principal in principals {
            let services = by_arn.entry(principal.arn.as_str()).or_default();
            services.clear();
            for service in &principal.services {
                let service = ServiceUsage {
                    service_name: truncate(&service.service_name, SERVICE_NAME_MAX_CHARS),
                    service_namespace: truncate(
                        &service.service_namespace,
                        SERVICE_NAMESPACE_MAX_CHARS,
                    ),
                    ..service.clone()
                };
                match services.get(&service.service_namespace) {
                    Some(seen) if seen.last_authenticated >= service.last_authenticated => {}
                    _ => {
                        services.insert(service.service_namespace.clone(), service);
                    }
                }
            }
        }
        if by_arn.is_empty() {
            return Ok(summary);
        }
        summary.principals = by_arn.len();

        let mut tx = self.pool().begin().await?;
        let now = now_timestamp();
        let mut ids: HashMap<String, i64> = HashMap::new();
        let arns: Vec<&str> = by_arn.keys().copied().collect();
        for chunk in arns.chunks(PARAMS_PER_STATEMENT - 1) {
            let timestamp = self.timestamp_param("$1");
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, {timestamp})", i + 2))
                .collect();
            let sql = format!(
                "INSERT INTO aws_iam_object (arn, \"lastUpdated\") VALUES {} \
                 ON CONFLICT (arn) DO UPDATE SET \"lastUpdated\" = excluded.\"lastUpdated\" \
                 RETURNING CAST(id AS BIGINT), arn",
                values.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(&now);
            for arn in chunk {
                query = query.bind(*arn);
            }
            for row in query.fetch_all(&mut *tx).await? {
                ids.insert(row.try_get(1)?, row.try_get(0)?);
            }
        }

        let item_ids: Vec<i64> = ids.values().copied().collect();
        let (matching, id_list) = self.among_ids("item_id", "$1", &item_ids);
        let sql = format!(
            "SELECT CAST(id AS BIGINT), CAST(item_id AS BIGINT), \"serviceNamespace\", \
             CAST(\"lastAuthenticated\" AS BIGINT), \"serviceName\", \"lastAuthenticatedEntity\", \
             CAST(\"totalAuthenticatedEntities\" AS BIGINT) \
             FROM advisor_data WHERE {matching}"
        );
        let mut stored: HashMap<i64, HashMap<Option<String>, StoredRow>> = HashMap::new();
        for row in sqlx::query(&sql).bind(&id_list).fetch_all(&mut *tx).await? {
            let item_id: i64 = row.try_get(1)?;
            stored.entry(item_id).or_default().insert(
                row.try_get(2)?,
                StoredRow {
                    id: row.try_get(0)?,
                    last_authenticated: row.try_get::<Option<i64>, _>(3)?.unwrap_or(0),
                    service_name: row.try_get(4)?,
                    entity: row.try_get(5)?,
                    total: row.try_get(6)?,
                },
            );
        }

        let mut writes: Vec<(i64, &ServiceUsage)> = Vec::new();
        let mut deletes: Vec<i64> = Vec::new();
        for (arn, services) in &by_arn {
            let item_id = ids[*arn];
            let mut existing = stored.remove(&item_id).unwrap_or_default();
            for (namespace, service) in services {
                let Some(row) = existing.remove(&Some(namespace.clone())) else {
                    summary.inserted += 1;
                    writes.push((item_id, service));
                    continue;
                };
                let received = service.last_authenticated;
                let newer = received > row.last_authenticated;
                let aged_out = received == 0 && row.last_authenticated != 0;
                let same_time = received == row.last_authenticated;
                if aged_out {
                    summary.warnings.push(WriteWarning::AgedOut {
                        arn: arn.to_string(),
                        namespace: namespace.clone(),
                        previous: row.last_authenticated,
                    });
                } else if !newer && !same_time {
                    summary.warnings.push(WriteWarning::OlderIgnored {
                        arn: arn.to_string(),
                        namespace: namespace.clone(),
                        stored: row.last_authenticated,
                        received,
                    });
                    summary.unchanged += 1;
                    continue;
                }
                let differs = newer
                    || aged_out
                    || row.service_name.as_deref() != Some(service.service_name.as_str())
                    || row.entity != service.last_authenticated_entity
                    || row.total != Some(service.total_authenticated_entities);
                if differs {
                    summary.updated += 1;
                    writes.push((item_id, service));
                } else {
                    summary.unchanged += 1;
                }
            }
            if options.prune_namespaces {
                deletes.extend(existing.values().map(|row| row.id));
            }
        }

        for chunk in writes.chunks(PARAMS_PER_STATEMENT / 6) {
            let sql = format!(
                "INSERT INTO advisor_data (item_id, \"serviceNamespace\", \"serviceName\", \
                 \"lastAuthenticated\", \"lastAuthenticatedEntity\", \"totalAuthenticatedEntities\") \
                 VALUES {} ON CONFLICT (item_id, \"serviceNamespace\") DO UPDATE SET \
                 \"serviceName\" = excluded.\"serviceName\", \
                 \"lastAuthenticated\" = excluded.\"lastAuthenticated\", \
                 \"lastAuthenticatedEntity\" = excluded.\"lastAuthenticatedEntity\", \
                 \"totalAuthenticatedEntities\" = excluded.\"totalAuthenticatedEntities\"",
                self.values_placeholders(chunk.len(), 6)
            );
            let mut query = sqlx::query(&sql);
            for (item_id, service) in chunk {
                query = query
                    .bind(i32::try_from(*item_id).unwrap_or(i32::MAX))
                    .bind(&service.service_namespace)
                    .bind(&service.service_name)
                    .bind(service.last_authenticated)
                    .bind(&service.last_authenticated_entity)
                    .bind(i32::try_from(service.total_authenticated_entities).unwrap_or(i32::MAX));
            }
            query.execute(&mut *tx).await?;
        }
        if !deletes.is_empty() {
            summary.namespaces_pruned = deletes.len();
            let (matching, list) = self.among_ids("id", "$1", &deletes);
            sqlx::query(&format!("DELETE FROM advisor_data WHERE {matching}"))
                .bind(list)
                .execute(&mut *tx)
                .await?;
        }
        // The principals' rows have been locked (PostgreSQL) or the database has been
        // (SQLite) since the first statement, so what is rendered is what commits.
        self.render_into(&mut tx, &item_ids).await?;
        tx.commit().await?;
        Ok(summary)
    }

    /// Removes the principals of `account_id` that are not in `listed` (a complete listing of
    /// the account), with their rows. Returns the removed ARNs.
    pub async fn prune_account(
        &self,
        account_id: &str,
        listed: &HashSet<String>,
    ) -> Result<Vec<String>, DbError> {
        if !crate::arn::is_account_id(account_id) {
            return Ok(Vec::new());
        }
        let mut tx = self.pool().begin().await?;
        let rows =
            sqlx::query("SELECT CAST(id AS BIGINT), arn FROM aws_iam_object WHERE arn LIKE $1")
                .bind(format!("arn:%:iam::{account_id}:%"))
                .fetch_all(&mut *tx)
                .await?;
        let mut ids = Vec::new();
        let mut removed = Vec::new();
        for row in rows {
            let arn: String = row.try_get(1)?;
            if !listed.contains(&arn) {
                ids.push(row.try_get::<i64, _>(0)?);
                removed.push(arn);
            }
        }
        if !ids.is_empty() {
            // Before their rows, like the write path, so that the two cannot deadlock.
            self.lock_principals(&mut tx, &ids).await?;
            let (rows_matching, list) = self.among_ids("item_id", "$1", &ids);
            sqlx::query(&format!("DELETE FROM advisor_data WHERE {rows_matching}"))
                .bind(&list)
                .execute(&mut *tx)
                .await?;
            let (principals_matching, list) = self.among_ids("id", "$1", &ids);
            sqlx::query(&format!(
                "DELETE FROM aws_iam_object WHERE {principals_matching}"
            ))
            .bind(&list)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        removed.sort();
        Ok(removed)
    }
}
