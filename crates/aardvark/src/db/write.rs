//! The write path the collector uses: store principals' Access Advisor results with upstream's
//! upsert rules (docs/behaviour.md, section 4), and prune principals an account no longer lists.
//! Each call is one transaction, so a failure leaves what was stored before untouched.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::Row;

use super::vocabulary::{
    HistoryChange, PrincipalUsage, ServiceUsage, WrittenPrincipal, PARAMS_PER_STATEMENT,
    ROW_PARAMS_PER_STATEMENT, SERVICE_NAMESPACE_MAX_CHARS, SERVICE_NAME_MAX_CHARS,
};
use super::{Database, DbError};
use crate::arn::AccountId;

#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Delete stored namespaces that the new result no longer lists.
    pub prune_namespaces: bool,
    /// Append each change of a `lastAuthenticated` to the history (off when
    /// `HISTORY_RETENTION_DAYS` is 0).
    pub keep_history: bool,
    /// The run the write belongs to, recorded with its history.
    pub run_id: Option<i64>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            prune_namespaces: false,
            keep_history: true,
            run_id: None,
        }
    }
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
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredRow {
    id: i64,
    last_authenticated: i64,
    service_name: Option<String>,
    entity: Option<String>,
    total: Option<i64>,
}

/// Stored rows per principal id, by namespace.
type StoredRows = HashMap<i64, HashMap<Option<String>, StoredRow>>;

/// Each principal's services as they will be compared with what is stored: the last result
/// for an ARN wins; within a result, the newest use of a namespace; names cut to upstream's
/// column sizes.
type Received<'a> = BTreeMap<&'a str, BTreeMap<String, ServiceUsage>>;

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

fn received(principals: &[PrincipalUsage]) -> Received<'_> {
    let mut by_arn: Received = BTreeMap::new();
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
    by_arn
}

/// The statements a write makes, and its summary.
#[derive(Debug, Default, PartialEq, Eq)]
struct WritePlan<'a> {
    /// Rows to insert or replace: (principal id, service).
    writes: Vec<(i64, &'a ServiceUsage)>,
    /// `advisor_data` ids to delete (namespaces AWS no longer returns, when pruning).
    deletes: Vec<i64>,
    /// Changes of a `lastAuthenticated`, for the history: every insert, and every write
    /// whose last use differs from the stored one, of principals that had rows before.
    changes: Vec<HistoryChange<'a>>,
    /// Principals that had no rows before: each of their rows is a first value seen, which
    /// the history copies from the rows written.
    first_seen: Vec<i64>,
    /// Per principal id, the newest and the oldest last use of its services as they stand
    /// after the write (`None` without services): what unused-access summaries read.
    uses: Vec<(i64, Option<(i64, i64)>)>,
    summary: WriteSummary,
}

/// The upsert rules (docs/behaviour.md, section 4), from what was received, the principals'
/// ids and what is stored: a new namespace is inserted; a newer last use replaces the stored
/// row; 0 where a use was stored means it aged out (written, with a warning); an older use
/// keeps the stored row (with a warning); an equal one is rewritten only if another field
/// changed. With `prune`, stored namespaces not received are deleted.
fn plan<'a>(
    received: &'a Received<'_>,
    ids: &HashMap<String, i64>,
    mut stored: StoredRows,
    prune: bool,
) -> WritePlan<'a> {
    let mut plan = WritePlan {
        summary: WriteSummary {
            principals: received.len(),
            ..WriteSummary::default()
        },
        ..WritePlan::default()
    };
    for (arn, services) in received {
        let item_id = ids[*arn];
        let mut existing = stored.remove(&item_id).unwrap_or_default();
        let first_seen = existing.is_empty();
        if first_seen && !services.is_empty() {
            plan.first_seen.push(item_id);
        }
        let mut finals = Vec::with_capacity(services.len() + existing.len());
        for (namespace, service) in services {
            let row = existing.remove(&Some(namespace.clone()));
            let received = ReceivedService {
                arn,
                item_id,
                first_seen,
                namespace,
                service,
            };
            finals.push(plan.service(received, row));
        }
        if prune {
            plan.deletes.extend(existing.values().map(|row| row.id));
        } else {
            finals.extend(existing.values().map(|row| row.last_authenticated));
        }
        let extremes = finals.iter().max().zip(finals.iter().min());
        plan.uses
            .push((item_id, extremes.map(|(max, min)| (*max, *min))));
    }
    plan.summary.namespaces_pruned = plan.deletes.len();
    plan
}

/// One service a principal's result holds, where the plan meets it.
struct ReceivedService<'a> {
    arn: &'a str,
    item_id: i64,
    /// The principal had no rows before.
    first_seen: bool,
    namespace: &'a str,
    service: &'a ServiceUsage,
}

impl<'a> WritePlan<'a> {
    /// One received service against its stored row (if any): what to write, what changed
    /// for the history, what to warn about. Returns the last use the principal keeps for it.
    fn service(&mut self, received: ReceivedService<'a>, row: Option<StoredRow>) -> i64 {
        let ReceivedService {
            arn,
            item_id,
            first_seen,
            namespace,
            service,
        } = received;
        let last = service.last_authenticated;
        let Some(row) = row else {
            self.summary.inserted += 1;
            self.writes.push((item_id, service));
            if !first_seen {
                self.changes.push(HistoryChange {
                    item_id,
                    namespace,
                    last_authenticated: last,
                    previous: None,
                });
            }
            return last;
        };
        let aged_out = last == 0 && row.last_authenticated != 0;
        if aged_out {
            self.summary.warnings.push(WriteWarning::AgedOut {
                arn: arn.to_owned(),
                namespace: namespace.to_owned(),
                previous: row.last_authenticated,
            });
        }
        if !aged_out && last < row.last_authenticated {
            self.summary.warnings.push(WriteWarning::OlderIgnored {
                arn: arn.to_owned(),
                namespace: namespace.to_owned(),
                stored: row.last_authenticated,
                received: last,
            });
            self.summary.unchanged += 1;
            return row.last_authenticated;
        }
        let differs = last > row.last_authenticated
            || aged_out
            || row.service_name.as_deref() != Some(service.service_name.as_str())
            || row.entity != service.last_authenticated_entity
            || row.total != Some(service.total_authenticated_entities);
        if !differs {
            self.summary.unchanged += 1;
            return last;
        }
        self.summary.updated += 1;
        self.writes.push((item_id, service));
        if last != row.last_authenticated {
            self.changes.push(HistoryChange {
                item_id,
                namespace,
                last_authenticated: last,
                previous: Some(row.last_authenticated),
            });
        }
        last
    }
}

impl Database {
    /// Stores the principals' results in one transaction: each principal's `lastUpdated` becomes
    /// now, and each namespace follows the upsert rules ([`plan`]). Either all of it is stored
    /// or none.
    pub async fn store_principals(
        &self,
        principals: &[PrincipalUsage],
        options: WriteOptions,
    ) -> Result<WriteSummary, DbError> {
        let received = received(principals);
        if received.is_empty() {
            return Ok(WriteSummary::default());
        }
        // Thousands of principals finishing at once wait for their turn here, without a
        // deadline: they once waited for one of the pool's connections instead, and past its
        // 30 s the collection took the database for lost.
        let (_turn, mut tx) = self.begin_write().await?;
        let ids = self
            .upsert_principals(&mut tx, received.keys().copied())
            .await?;
        let item_ids: Vec<i64> = ids.values().copied().collect();
        let stored = self.stored_rows(&mut tx, &item_ids).await?;
        let plan = plan(&received, &ids, stored, options.prune_namespaces);
        self.write_rows(&mut tx, &plan.writes).await?;
        if options.keep_history {
            let observed_ms = chrono::Utc::now().timestamp_millis();
            self.append_history(
                &mut tx,
                &plan.first_seen,
                &plan.changes,
                observed_ms,
                options.run_id,
            )
            .await?;
        }
        let latest: HashMap<&str, &PrincipalUsage> = principals
            .iter()
            .map(|principal| (principal.arn.as_str(), principal))
            .collect();
        let by_id: HashMap<i64, &str> = ids.iter().map(|(arn, id)| (*id, arn.as_str())).collect();
        let details: Vec<WrittenPrincipal> = plan
            .uses
            .iter()
            .map(|(item_id, uses)| WrittenPrincipal {
                item_id: *item_id,
                principal: latest[by_id[item_id]],
                uses: *uses,
            })
            .collect();
        self.write_usage_details(&mut tx, &details).await?;
        if !plan.deletes.is_empty() {
            let (matching, list) = self.dialect().among_ids("id", "$1", &plan.deletes);
            sqlx::query(&format!("DELETE FROM advisor_data WHERE {matching}"))
                .bind(list)
                .execute(&mut *tx)
                .await?;
        }
        // The principals' rows have been locked (PostgreSQL) or the database has been
        // (SQLite) since the first statement, so what is rendered is what commits.
        self.render_into(&mut tx, &item_ids).await?;
        tx.commit().await?;
        Ok(plan.summary)
    }

    /// Inserts the principals that are new, sets every one's `lastUpdated` to now, and
    /// returns their ids by ARN.
    async fn upsert_principals<'a>(
        &self,
        conn: &mut sqlx::AnyConnection,
        arns: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, i64>, DbError> {
        let now = crate::time::stored_now();
        let arns: Vec<&str> = arns.collect();
        let mut ids = HashMap::new();
        for chunk in arns.chunks(PARAMS_PER_STATEMENT - 1) {
            let timestamp = self.dialect().timestamp_param("$1");
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
            for row in query.fetch_all(&mut *conn).await? {
                ids.insert(row.try_get(1)?, row.try_get(0)?);
            }
        }
        Ok(ids)
    }

    /// The `advisor_data` rows of principals `item_ids`.
    async fn stored_rows(
        &self,
        conn: &mut sqlx::AnyConnection,
        item_ids: &[i64],
    ) -> Result<StoredRows, DbError> {
        let (matching, id_list) = self.dialect().among_ids("item_id", "$1", item_ids);
        let sql = format!(
            "SELECT CAST(id AS BIGINT), CAST(item_id AS BIGINT), \"serviceNamespace\", \
             CAST(\"lastAuthenticated\" AS BIGINT), \"serviceName\", \"lastAuthenticatedEntity\", \
             CAST(\"totalAuthenticatedEntities\" AS BIGINT) \
             FROM advisor_data WHERE {matching}"
        );
        let mut stored = StoredRows::new();
        for row in sqlx::query(&sql)
            .bind(&id_list)
            .fetch_all(&mut *conn)
            .await?
        {
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
        Ok(stored)
    }

    /// Inserts or replaces `advisor_data` rows, many per statement.
    async fn write_rows(
        &self,
        conn: &mut sqlx::AnyConnection,
        writes: &[(i64, &ServiceUsage)],
    ) -> Result<(), DbError> {
        for chunk in writes.chunks(ROW_PARAMS_PER_STATEMENT / 6) {
            let sql = format!(
                "INSERT INTO advisor_data (item_id, \"serviceNamespace\", \"serviceName\", \
                 \"lastAuthenticated\", \"lastAuthenticatedEntity\", \"totalAuthenticatedEntities\") \
                 VALUES {} ON CONFLICT (item_id, \"serviceNamespace\") DO UPDATE SET \
                 \"serviceName\" = excluded.\"serviceName\", \
                 \"lastAuthenticated\" = excluded.\"lastAuthenticated\", \
                 \"lastAuthenticatedEntity\" = excluded.\"lastAuthenticatedEntity\", \
                 \"totalAuthenticatedEntities\" = excluded.\"totalAuthenticatedEntities\"",
                self.dialect().values_placeholders(chunk.len(), 6)
            );
            let mut query = sqlx::query(&sql).persistent(false);
            for (item_id, service) in chunk {
                query = query
                    .bind(i32::try_from(*item_id).unwrap_or(i32::MAX))
                    .bind(&service.service_namespace)
                    .bind(&service.service_name)
                    .bind(service.last_authenticated)
                    .bind(&service.last_authenticated_entity)
                    .bind(i32::try_from(service.total_authenticated_entities).unwrap_or(i32::MAX));
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Removes the principals of `account_id` that are not in `listed` (a complete listing of
    /// the account), with their rows. Returns the removed ARNs.
    pub async fn prune_account(
        &self,
        account_id: &AccountId,
        listed: &HashSet<String>,
    ) -> Result<Vec<String>, DbError> {
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
            let (rows_matching, list) = self.dialect().among_ids("item_id", "$1", &ids);
            for table in [
                "advisor_data",
                "aardvark_history",
                "aardvark_principals",
                "aardvark_service_regions",
                "aardvark_actions",
            ] {
                sqlx::query(&format!("DELETE FROM {table} WHERE {rows_matching}"))
                    .bind(&list)
                    .execute(&mut *tx)
                    .await?;
            }
            let (principals_matching, list) = self.dialect().among_ids("id", "$1", &ids);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn service(namespace: &str, last: i64) -> ServiceUsage {
        ServiceUsage {
            service_name: format!("Service {namespace}"),
            service_namespace: namespace.to_owned(),
            last_authenticated: last,
            last_authenticated_entity: None,
            total_authenticated_entities: 1,
            ..ServiceUsage::default()
        }
    }

    fn stored(id: i64, namespace: &str, last: i64) -> (Option<String>, StoredRow) {
        (
            Some(namespace.to_owned()),
            StoredRow {
                id,
                last_authenticated: last,
                service_name: Some(format!("Service {namespace}")),
                entity: None,
                total: Some(1),
            },
        )
    }

    #[test]
    fn the_upsert_rules_as_a_plan() {
        let arn = "arn:aws:iam::123456789012:role/a";
        let principals = [PrincipalUsage {
            arn: arn.into(),
            listing: None,
            services: vec![
                service("new", 5),
                service("newer", 20),
                service("aged", 0),
                service("older", 3),
                service("same", 7),
                service("renamed", 7),
            ],
        }];
        let received = received(&principals);
        let ids = HashMap::from([(arn.to_owned(), 1)]);
        let mut renamed = stored(15, "renamed", 7);
        renamed.1.service_name = Some("Old name".into());
        let rows = StoredRows::from([(
            1,
            HashMap::from([
                stored(11, "newer", 10),
                stored(12, "aged", 9),
                stored(13, "older", 4),
                stored(14, "same", 7),
                renamed,
                stored(16, "gone", 1),
            ]),
        )]);
        let pruned = plan(&received, &ids, rows.clone(), true);
        let written: Vec<(i64, &str, i64)> = pruned
            .writes
            .iter()
            .map(|(id, s)| (*id, s.service_namespace.as_str(), s.last_authenticated))
            .collect();
        assert_eq!(
            written,
            [
                (1, "aged", 0),
                (1, "new", 5),
                (1, "newer", 20),
                (1, "renamed", 7)
            ]
        );
        assert_eq!(pruned.deletes, [16]);
        // The history: the first value of "new", and the two changed last uses; neither an
        // older report nor a rename is a change of last use.
        let changes: Vec<(&str, i64, Option<i64>)> = pruned
            .changes
            .iter()
            .map(|c| (c.namespace, c.last_authenticated, c.previous))
            .collect();
        assert_eq!(
            changes,
            [
                ("aged", 0, Some(9)),
                ("new", 5, None),
                ("newer", 20, Some(10))
            ]
        );
        assert_eq!(
            (
                pruned.summary.principals,
                pruned.summary.inserted,
                pruned.summary.updated,
                pruned.summary.unchanged,
                pruned.summary.namespaces_pruned
            ),
            (1, 1, 3, 2, 1)
        );
        assert_eq!(
            pruned.summary.warnings,
            [
                WriteWarning::AgedOut {
                    arn: arn.into(),
                    namespace: "aged".into(),
                    previous: 9
                },
                WriteWarning::OlderIgnored {
                    arn: arn.into(),
                    namespace: "older".into(),
                    stored: 4,
                    received: 3
                },
            ]
        );
        let kept = plan(&received, &ids, rows, false);
        assert!(kept.deletes.is_empty());
        assert_eq!(kept.summary.namespaces_pruned, 0);
        assert_eq!(kept.writes, pruned.writes);
    }

    #[test]
    fn the_last_result_of_an_arn_and_the_newest_use_of_a_namespace_win() {
        let arn = "arn:aws:iam::123456789012:role/a";
        let long = "x".repeat(SERVICE_NAMESPACE_MAX_CHARS + 5);
        let principals = [
            PrincipalUsage {
                arn: arn.into(),
                services: vec![service("dropped", 1)],
                listing: None,
            },
            PrincipalUsage {
                arn: arn.into(),
                listing: None,
                services: vec![
                    service("s3", 2),
                    service("s3", 9),
                    service("s3", 4),
                    service(&long, 1),
                ],
            },
        ];
        let received = received(&principals);
        let services = &received[arn];
        assert_eq!(services.len(), 2);
        assert_eq!(services["s3"].last_authenticated, 9);
        assert!(services.contains_key(&long[..SERVICE_NAMESPACE_MAX_CHARS]));
    }
}
