//! What unused-access and action-level answers read, in tables of our own (migration 0011):
//! each principal's kind, path, `CreateDate` and the newest and oldest last use of its
//! services (`aardvark_principals`), each service's `LastAuthenticatedRegion`
//! (`aardvark_service_regions`) and each tracked action's last access (`aardvark_actions`).
//! The write path keeps them in step with upstream's tables in its transaction; the reads
//! here serve `/api/1/unused`, `/api/1/unused/accounts`, `/api/1/actions` and `aardvark
//! report unused`.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::vocabulary::{
    PrincipalListing, ServiceUsage, StoredService, WrittenPrincipal, PARAMS_PER_STATEMENT,
    ROW_PARAMS_PER_STATEMENT,
};
use super::{Database, DbError};
use crate::arn::Arn;

/// A principal's kind (`role`, `user`, `group`, `policy`) and path, from its ARN.
pub fn kind_and_path(arn: &str) -> (String, String) {
    let resource = Arn::parse(arn).map_or("", |arn| arn.resource);
    let (kind, rest) = resource.split_once('/').unwrap_or((resource, ""));
    let path = match rest.rfind('/') {
        Some(end) => format!("/{}", &rest[..=end]),
        None => "/".to_owned(),
    };
    (kind.to_owned(), path)
}

fn account_of(arn: &str) -> String {
    Arn::parse(arn).map_or_else(String::new, |arn| arn.account.to_owned())
}

/// What unused-access answers read of a principal's stored details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalDetails {
    pub kind: String,
    pub created_ms: Option<i64>,
}

/// One stored action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAction {
    pub namespace: String,
    pub action: String,
    pub last_accessed: i64,
    pub entity: Option<String>,
    pub region: Option<String>,
}

/// Unused-access totals of one account for one window, as `/api/1/unused/accounts` and
/// `report unused` answer them (fields in sorted order: the JSON key order).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AccountUnused {
    pub account: String,
    /// Principals stored.
    pub principals: i64,
    /// Principals younger than the window: listed, never counted as unused.
    pub too_new: i64,
    /// Principals that used no service in the window (too new ones excluded).
    pub unused: i64,
    /// Principals with at least one service unused in the window (too new ones excluded).
    pub with_unused_services: i64,
}

/// A principal of an unused-access page: its services as stored and its details.
#[derive(Debug, Clone)]
pub struct DetailedPrincipal {
    pub arn: String,
    pub details: PrincipalDetails,
    pub services: Vec<StoredService<'static>>,
}

impl Database {
    /// Writes the details of principals just stored, inside the write's transaction: their
    /// row in `aardvark_principals`, and, for principals whose result carries regions or
    /// actions, their regions and actions replaced. A few statements for the whole group, not
    /// some per principal: each statement is a hand-off to SQLite's thread and back, and while
    /// a collection keeps the cores busy every hand-off waits its turn (four statements per
    /// principal made most of a group's 1,000 or so).
    pub(crate) async fn write_usage_details(
        &self,
        conn: &mut sqlx::AnyConnection,
        stored: &[WrittenPrincipal<'_>],
    ) -> Result<(), DbError> {
        self.write_principal_rows(conn, stored).await?;
        let carrying = |wanted: fn(&ServiceUsage) -> bool| -> Vec<&WrittenPrincipal<'_>> {
            stored
                .iter()
                .filter(|row| row.principal.services.iter().any(wanted))
                .collect()
        };
        let with_regions = carrying(|s| s.region.is_some() || s.actions.is_some());
        self.replace_regions(conn, &with_regions).await?;
        let with_actions = carrying(|s| s.actions.is_some());
        self.replace_actions(conn, &with_actions).await
    }

    /// The principals' `LastAuthenticatedRegion` per service, replaced.
    async fn replace_regions(
        &self,
        conn: &mut sqlx::AnyConnection,
        principals: &[&WrittenPrincipal<'_>],
    ) -> Result<(), DbError> {
        self.delete_of(conn, "aardvark_service_regions", principals)
            .await?;
        let regions: Vec<(i32, &str, &str)> = principals
            .iter()
            .flat_map(|row| {
                row.principal.services.iter().filter_map(move |s| {
                    Some((
                        bound_id(row),
                        s.service_namespace.as_str(),
                        s.region.as_deref()?,
                    ))
                })
            })
            .collect();
        for chunk in regions.chunks(ROW_PARAMS_PER_STATEMENT / 3) {
            let sql = format!(
                "INSERT INTO aardvark_service_regions (item_id, \"serviceNamespace\", region) \
                 VALUES {} ON CONFLICT (item_id, \"serviceNamespace\") DO UPDATE SET \
                 region = excluded.region",
                self.dialect().values_placeholders(chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql).persistent(false);
            for (item_id, namespace, region) in chunk {
                query = query.bind(*item_id).bind(*namespace).bind(*region);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The principals' tracked actions, replaced; the last report of an action wins, as for
    /// services.
    async fn replace_actions(
        &self,
        conn: &mut sqlx::AnyConnection,
        principals: &[&WrittenPrincipal<'_>],
    ) -> Result<(), DbError> {
        self.delete_of(conn, "aardvark_actions", principals).await?;
        let mut actions = BTreeMap::new();
        for row in principals {
            for service in &row.principal.services {
                for action in service.actions.iter().flatten() {
                    let key = (
                        bound_id(row),
                        service.service_namespace.as_str(),
                        action.action.as_str(),
                    );
                    actions.insert(key, action);
                }
            }
        }
        let actions: Vec<_> = actions.into_iter().collect();
        for chunk in actions.chunks(ROW_PARAMS_PER_STATEMENT / 6) {
            let sql = format!(
                "INSERT INTO aardvark_actions (item_id, \"serviceNamespace\", action, \
                 \"lastAccessed\", entity, region) VALUES {}",
                self.dialect().values_placeholders(chunk.len(), 6)
            );
            let mut query = sqlx::query(&sql).persistent(false);
            for ((item_id, namespace, name), action) in chunk {
                query = query
                    .bind(*item_id)
                    .bind(*namespace)
                    .bind(*name)
                    .bind(action.last_accessed)
                    .bind(&action.entity)
                    .bind(&action.region);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Deletes the rows of `table` that belong to the principals `of`, in one statement.
    async fn delete_of(
        &self,
        conn: &mut sqlx::AnyConnection,
        table: &str,
        of: &[&WrittenPrincipal<'_>],
    ) -> Result<(), DbError> {
        if of.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = of.iter().map(|row| row.item_id).collect();
        let (matching, list) = self.dialect().among_ids("item_id", "$1", &ids);
        sqlx::query(&format!("DELETE FROM {table} WHERE {matching}"))
            .bind(list)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Each principal's row in `aardvark_principals`: account, kind, path, `CreateDate` and
    /// the newest and oldest last use of its services.
    async fn write_principal_rows(
        &self,
        conn: &mut sqlx::AnyConnection,
        stored: &[WrittenPrincipal<'_>],
    ) -> Result<(), DbError> {
        const COLUMNS: usize = 7;
        for chunk in stored.chunks(ROW_PARAMS_PER_STATEMENT / COLUMNS) {
            let sql = format!(
                "INSERT INTO aardvark_principals (item_id, account, kind, path, created_ms, \
                 last_used_ms, least_used_ms) VALUES {} ON CONFLICT (item_id) DO UPDATE SET \
                 account = excluded.account, kind = excluded.kind, \
                 path = COALESCE(excluded.path, aardvark_principals.path), \
                 created_ms = COALESCE(excluded.created_ms, aardvark_principals.created_ms), \
                 last_used_ms = excluded.last_used_ms, least_used_ms = excluded.least_used_ms",
                self.dialect().values_placeholders(chunk.len(), COLUMNS)
            );
            let mut query = sqlx::query(&sql).persistent(false);
            for row in chunk {
                let arn = &row.principal.arn;
                let (kind, _) = kind_and_path(arn);
                let listing = row.principal.listing.as_ref();
                query = query
                    .bind(bound_id(row))
                    .bind(account_of(arn))
                    .bind(kind)
                    .bind(listing.map(|l: &PrincipalListing| l.path.clone()))
                    .bind(listing.and_then(|l| l.created_ms))
                    .bind(row.uses.map(|(newest, _)| newest))
                    .bind(row.uses.map(|(_, oldest)| oldest));
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Gives every stored principal without one its `aardvark_principals` row, from its ARN
    /// and stored services (principals upstream or an older build stored). Returns how many.
    pub(crate) async fn fill_principal_details(&self) -> Result<u64, DbError> {
        // Which are missing first (a scan of two keys, milliseconds at 100,000 principals),
        // so that a database with none missing, the usual start, reads no services.
        let missing: Vec<i64> = sqlx::query_scalar(
            "SELECT CAST(o.id AS BIGINT) FROM aws_iam_object o \
             LEFT JOIN aardvark_principals p ON p.item_id = o.id WHERE p.item_id IS NULL",
        )
        .fetch_all(self.pool())
        .await?;
        if missing.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool().begin().await?;
        let (matching, list) = self.dialect().among_ids("o.id", "$1", &missing);
        let rows = sqlx::query(&format!(
            "SELECT CAST(o.id AS BIGINT), o.arn, \
             CAST(MAX(COALESCE(a.\"lastAuthenticated\", 0)) AS BIGINT), \
             CAST(MIN(COALESCE(a.\"lastAuthenticated\", 0)) AS BIGINT), \
             CAST(COUNT(a.id) AS BIGINT) \
             FROM aws_iam_object o LEFT JOIN advisor_data a ON a.item_id = o.id \
             WHERE {matching} GROUP BY o.id, o.arn"
        ))
        .bind(list)
        .fetch_all(&mut *tx)
        .await?;
        let mut filled = 0;
        for chunk in rows.chunks(PARAMS_PER_STATEMENT / 7) {
            let sql = format!(
                "INSERT INTO aardvark_principals (item_id, account, kind, path, created_ms, \
                 last_used_ms, least_used_ms) VALUES {} ON CONFLICT (item_id) DO NOTHING",
                self.dialect().values_placeholders(chunk.len(), 7)
            );
            let mut query = sqlx::query(&sql);
            for row in chunk {
                let id: i64 = row.try_get(0)?;
                let arn: String = row.try_get::<Option<String>, _>(1)?.unwrap_or_default();
                let services: i64 = row.try_get(4)?;
                let uses =
                    (services > 0).then(|| (row.try_get::<i64, _>(2), row.try_get::<i64, _>(3)));
                let (newest, oldest) = match uses {
                    Some((newest, oldest)) => (Some(newest?), Some(oldest?)),
                    None => (None, None),
                };
                let (kind, path) = kind_and_path(&arn);
                query = query
                    .bind(i32::try_from(id).unwrap_or(i32::MAX))
                    .bind(account_of(&arn))
                    .bind(kind)
                    .bind(path)
                    .bind(None::<i64>)
                    .bind(newest)
                    .bind(oldest);
            }
            filled += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(filled)
    }

    /// Details of the principals `ids`.
    pub async fn principal_details(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, PrincipalDetails>, DbError> {
        let (matching, list) = self.dialect().among_ids("item_id", "$1", ids);
        let rows = sqlx::query(&format!(
            "SELECT CAST(item_id AS BIGINT), kind, CAST(created_ms AS BIGINT) \
             FROM aardvark_principals WHERE {matching}"
        ))
        .bind(list)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    PrincipalDetails {
                        kind: row.try_get(1)?,
                        created_ms: row.try_get(2)?,
                    },
                ))
            })
            .collect()
    }

    /// The tracked actions of the principals `ids`, by namespace and action.
    pub async fn actions_of(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, Vec<StoredAction>>, DbError> {
        let (matching, list) = self.dialect().among_ids("item_id", "$1", ids);
        let rows = sqlx::query(&format!(
            "SELECT CAST(item_id AS BIGINT), \"serviceNamespace\", action, \
             CAST(\"lastAccessed\" AS BIGINT), entity, region FROM aardvark_actions \
             WHERE {matching} ORDER BY item_id, \"serviceNamespace\", action"
        ))
        .bind(list)
        .fetch_all(self.pool())
        .await?;
        let mut actions: HashMap<i64, Vec<StoredAction>> = HashMap::new();
        for row in rows {
            actions
                .entry(row.try_get(0)?)
                .or_default()
                .push(StoredAction {
                    namespace: row.try_get(1)?,
                    action: row.try_get(2)?,
                    last_accessed: row.try_get(3)?,
                    entity: row.try_get(4)?,
                    region: row.try_get(5)?,
                });
        }
        Ok(actions)
    }
}

/// What the per-account totals read of one principal.
#[derive(Debug, Clone)]
struct PrincipalUses {
    kind: String,
    created_ms: Option<i64>,
    last_used_ms: Option<i64>,
    least_used_ms: Option<i64>,
}

/// Every principal's [`PrincipalUses`] by account, as of one principals' version: a read
/// of one row per principal, kept by the `Reader` until the version moves, so that totals
/// over every account are counted in memory.
#[derive(Debug)]
pub struct KeptUses {
    pub(crate) version: i64,
    accounts: BTreeMap<String, Vec<PrincipalUses>>,
}

impl KeptUses {
    /// Per account (of `account` only, if given; of principals of `kind`, if given), the
    /// unused-access totals for the window that starts at `since_ms`, by account id.
    pub fn totals(
        &self,
        since_ms: i64,
        account: Option<&str>,
        kind: Option<&str>,
    ) -> Vec<AccountUnused> {
        self.accounts
            .iter()
            .filter(|(id, _)| account.is_none_or(|wanted| wanted == id.as_str()))
            .filter_map(|(id, principals)| {
                let mut totals = AccountUnused {
                    account: id.clone(),
                    ..AccountUnused::default()
                };
                for p in principals
                    .iter()
                    .filter(|p| kind.is_none_or(|kind| kind == p.kind))
                {
                    totals.principals += 1;
                    if p.created_ms.is_some_and(|created| created > since_ms) {
                        totals.too_new += 1;
                        continue;
                    }
                    if p.last_used_ms.unwrap_or(0) <= since_ms {
                        totals.unused += 1;
                    }
                    if p.least_used_ms.is_some_and(|oldest| oldest <= since_ms) {
                        totals.with_unused_services += 1;
                    }
                }
                (totals.principals > 0).then_some(totals)
            })
            .collect()
    }
}

impl Database {
    /// Every principal's row of `aardvark_principals`, by account, as of `version`.
    pub(crate) async fn read_uses(&self, version: i64) -> Result<KeptUses, DbError> {
        let rows = sqlx::query(
            "SELECT account, kind, CAST(created_ms AS BIGINT), CAST(last_used_ms AS BIGINT), \
             CAST(least_used_ms AS BIGINT) FROM aardvark_principals",
        )
        .fetch_all(self.pool())
        .await?;
        let mut accounts: BTreeMap<String, Vec<PrincipalUses>> = BTreeMap::new();
        for row in rows {
            accounts
                .entry(row.try_get(0)?)
                .or_default()
                .push(PrincipalUses {
                    kind: row.try_get(1)?,
                    created_ms: row.try_get(2)?,
                    last_used_ms: row.try_get(3)?,
                    least_used_ms: row.try_get(4)?,
                });
        }
        Ok(KeptUses { version, accounts })
    }
}

/// A principal's id as its detail tables' `INTEGER` columns bind it.
fn bound_id(row: &WrittenPrincipal<'_>) -> i32 {
    i32::try_from(row.item_id).unwrap_or(i32::MAX)
}
