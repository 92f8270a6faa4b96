//! The read path behind `/api/1/advisors`: principals filtered, paginated in `id` order, and
//! their services in `advisor_data.id` order, in two statements per request whatever the page
//! size (the directory's version; the page's principals with their services).

use regex::Regex;
use sqlx::Row;

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;

use super::{Database, DbError, Dialect};

/// Filters and page of an advisors query. Filters combine with AND.
#[derive(Debug, Clone, Default)]
pub struct AdvisorFilter {
    /// Case-insensitive substring of the ARN, matched literally.
    pub phrase: Option<String>,
    /// Exact ARNs, case-insensitive.
    pub arns: Option<Vec<String>>,
    /// Matched at the start of the ARN (Python's `re.match`), evaluated here in Rust so that
    /// SQLite and PostgreSQL agree.
    pub regex: Option<Regex>,
}

/// One stored `advisor_data` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredService {
    pub last_authenticated: Option<i64>,
    pub service_name: Option<String>,
    pub service_namespace: Option<String>,
    pub last_authenticated_entity: Option<String>,
    pub total_authenticated_entities: Option<i64>,
}

/// A principal with its stored services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrincipal {
    pub id: i64,
    pub arn: String,
    /// `lastUpdated` as stored (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC).
    pub last_updated: Option<String>,
    pub services: Vec<StoredService>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisorPage {
    /// Principals matched by the filter, on every page.
    pub total: i64,
    pub principals: Vec<StoredPrincipal>,
}

/// Every principal's id and ARN in id order, as of one version of the principals table.
#[derive(Debug)]
struct Directory {
    version: i64,
    ids: Vec<i64>,
    arns: Vec<String>,
    lowered: Vec<String>,
    /// Positions by lower-cased ARN.
    by_lowered: HashMap<String, Vec<usize>>,
}

/// The read path's in-memory directory of principals. Filters (phrase, exact ARNs, regex) and
/// paging run over it; SQL fetches only the page's rows. A trigger-maintained version number
/// says when it must be read again, so it is never stale.
#[derive(Debug, Default)]
pub(crate) struct DirectoryCache {
    current: tokio::sync::RwLock<Option<Arc<Directory>>>,
    reload: tokio::sync::Mutex<()>,
}

impl Database {
    async fn principal_version(&self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(version AS BIGINT) FROM aardvark_principal_version WHERE id = 1",
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// The directory as of now: the cached one if the version still matches, else read again
    /// (by one request at a time; the others wait for it).
    async fn directory(&self) -> Result<Arc<Directory>, DbError> {
        let version = self.principal_version().await?;
        if let Some(directory) = self.directory.current.read().await.as_ref() {
            if directory.version == version {
                return Ok(directory.clone());
            }
        }
        let _reloading = self.directory.reload.lock().await;
        if let Some(directory) = self.directory.current.read().await.as_ref() {
            if directory.version >= version {
                return Ok(directory.clone());
            }
        }
        // The version is read before the rows: a change in between makes the next request
        // read again, never serve rows older than the version it holds.
        let version = self.principal_version().await?;
        let mut rows =
            sqlx::query("SELECT CAST(id AS BIGINT), arn FROM aws_iam_object ORDER BY id")
                .fetch(self.pool());
        let (mut ids, mut arns, mut lowered) = (Vec::new(), Vec::new(), Vec::new());
        let mut by_lowered: HashMap<String, Vec<usize>> = HashMap::new();
        while let Some(row) = rows.try_next().await? {
            // Upstream's column allows NULL; such a row is listed under an empty ARN.
            let arn: String = row.try_get::<Option<String>, _>(1)?.unwrap_or_default();
            let lower = arn.to_lowercase();
            by_lowered.entry(lower.clone()).or_default().push(ids.len());
            ids.push(row.try_get(0)?);
            arns.push(arn);
            lowered.push(lower);
        }
        drop(rows);
        let directory = Arc::new(Directory {
            version,
            ids,
            arns,
            lowered,
            by_lowered,
        });
        *self.directory.current.write().await = Some(directory.clone());
        Ok(directory)
    }

    /// Principals matching `filter`, `count` per page, page `page` (1-based).
    pub async fn advisors(
        &self,
        filter: &AdvisorFilter,
        page: i64,
        count: i64,
    ) -> Result<AdvisorPage, DbError> {
        let directory = self.directory().await?;
        let phrase = filter
            .phrase
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(str::to_lowercase);
        let mut positions: Vec<usize> = match &filter.arns {
            Some(arns) => {
                let mut found: Vec<usize> = arns
                    .iter()
                    .filter_map(|arn| directory.by_lowered.get(&arn.to_lowercase()))
                    .flatten()
                    .copied()
                    .collect();
                found.sort_unstable();
                found.dedup();
                found
            }
            None => (0..directory.ids.len()).collect(),
        };
        if let Some(phrase) = &phrase {
            positions.retain(|&at| directory.lowered[at].contains(phrase.as_str()));
        }
        if let Some(regex) = &filter.regex {
            positions.retain(|&at| regex.is_match(&directory.arns[at]));
        }
        let total = positions.len() as i64;
        let offset = usize::try_from((page - 1).saturating_mul(count)).unwrap_or(usize::MAX);
        let page_ids: Vec<i64> = positions
            .iter()
            .skip(offset)
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .map(|&at| directory.ids[at])
            .collect();
        if page_ids.is_empty() {
            return Ok(AdvisorPage {
                total,
                principals: Vec::new(),
            });
        }

        // The page's principals with their services aggregated into one JSON array each: one
        // row per principal rather than per service (rows are what the drivers pay for).
        let (matching, list) = self.among_ids("o.id", "$1", &page_ids);
        let columns = "a.\"lastAuthenticated\", a.\"serviceName\", a.\"serviceNamespace\", \
                       a.\"lastAuthenticatedEntity\", a.\"totalAuthenticatedEntities\"";
        let services = match self.dialect() {
            Dialect::Sqlite => format!(
                "(SELECT json_group_array(json_array({columns}) ORDER BY a.id) FROM advisor_data a WHERE a.item_id = o.id)"
            ),
            Dialect::Postgres => format!(
                "(SELECT CAST(json_agg(json_build_array({columns}) ORDER BY a.id) AS TEXT) FROM advisor_data a WHERE a.item_id = o.id)"
            ),
        };
        let sql = format!(
            "SELECT CAST(o.id AS BIGINT), o.arn, {}, {services} FROM aws_iam_object o WHERE {matching} ORDER BY o.id",
            self.timestamp_text("o.\"lastUpdated\"")
        );
        let rows = sqlx::query(&sql).bind(list).fetch_all(self.pool()).await?;
        let mut principals = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut principal = principal_from_row(row)?;
            let services: Option<String> = row.try_get(3)?;
            type Entry = (
                Option<i64>,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<i64>,
            );
            let entries: Vec<Entry> = match services.as_deref() {
                None | Some("") => Vec::new(),
                Some(text) => serde_json::from_str(text).map_err(|err| {
                    DbError::Sql(sqlx::Error::Decode(
                        format!("services of principal {}: {err}", principal.id).into(),
                    ))
                })?,
            };
            principal.services = entries
                .into_iter()
                .map(|(last, name, namespace, entity, total)| StoredService {
                    last_authenticated: last,
                    service_name: name,
                    service_namespace: namespace,
                    last_authenticated_entity: entity,
                    total_authenticated_entities: total,
                })
                .collect();
            principals.push(principal);
        }
        Ok(AdvisorPage { total, principals })
    }
}

fn principal_from_row(row: &sqlx::any::AnyRow) -> Result<StoredPrincipal, sqlx::Error> {
    Ok(StoredPrincipal {
        id: row.try_get(0)?,
        // Upstream's column allows NULL; such a row is listed under an empty ARN.
        arn: row.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
        last_updated: row.try_get(2)?,
        services: Vec::new(),
    })
}
