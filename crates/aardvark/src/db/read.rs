//! The read path behind `/api/1/advisors`: principals filtered, paginated in `id` order, and
//! their services in `advisor_data.id` order, in one statement per request whatever the page
//! size (the page's principals with their services, and the principals' version).

use std::borrow::Cow;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use sqlx::Row;

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

/// One stored `advisor_data` row. Its text borrows from the principal's aggregated services
/// where it can: a page of 30 principals holds 600 of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredService<'a> {
    pub last_authenticated: Option<i64>,
    pub service_name: Option<Cow<'a, str>>,
    pub service_namespace: Option<Cow<'a, str>>,
    pub last_authenticated_entity: Option<Cow<'a, str>>,
    pub total_authenticated_entities: Option<i64>,
}

impl StoredService<'_> {
    /// The same row, owning its text.
    pub fn into_owned(self) -> StoredService<'static> {
        let owned = |text: Option<Cow<'_, str>>| text.map(|t| Cow::Owned(t.into_owned()));
        StoredService {
            last_authenticated: self.last_authenticated,
            service_name: owned(self.service_name),
            service_namespace: owned(self.service_namespace),
            last_authenticated_entity: owned(self.last_authenticated_entity),
            total_authenticated_entities: self.total_authenticated_entities,
        }
    }
}

/// A principal with its stored services, borrowing its text from the page it came in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StoredPrincipal<'a> {
    pub id: i64,
    /// Upstream's column allows NULL; such a row is listed under an empty ARN.
    #[serde(borrow, deserialize_with = "text_or_empty")]
    pub arn: Cow<'a, str>,
    /// `lastUpdated` as stored (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC).
    #[serde(borrow, deserialize_with = "borrowed_text")]
    pub last_updated: Option<Cow<'a, str>>,
    /// In `advisor_data.id` order.
    #[serde(borrow, deserialize_with = "services_by_id")]
    pub services: Vec<StoredService<'a>>,
}

/// The database aggregates services in no particular order, each as `[id, lastAuthenticated,
/// serviceName, serviceNamespace, lastAuthenticatedEntity, totalAuthenticatedEntities]`:
/// sorting 20 rows here is cheaper than an ordered aggregate, for which SQLite builds a
/// temporary b-tree per principal.
fn services_by_id<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<StoredService<'de>>, D::Error> {
    #[derive(Deserialize)]
    struct Aggregated<'a> {
        id: i64,
        last_authenticated: Option<i64>,
        #[serde(borrow, deserialize_with = "borrowed_text")]
        service_name: Option<Cow<'a, str>>,
        #[serde(borrow, deserialize_with = "borrowed_text")]
        service_namespace: Option<Cow<'a, str>>,
        #[serde(borrow, deserialize_with = "borrowed_text")]
        last_authenticated_entity: Option<Cow<'a, str>>,
        total_authenticated_entities: Option<i64>,
    }
    let mut services: Vec<Aggregated<'de>> = Option::deserialize(deserializer)?.unwrap_or_default();
    services.sort_unstable_by_key(|service| service.id);
    Ok(services
        .into_iter()
        .map(|service| StoredService {
            last_authenticated: service.last_authenticated,
            service_name: service.service_name,
            service_namespace: service.service_namespace,
            last_authenticated_entity: service.last_authenticated_entity,
            total_authenticated_entities: service.total_authenticated_entities,
        })
        .collect())
}

fn text_or_empty<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Cow<'de, str>, D::Error> {
    Ok(borrowed_text(deserializer)?.unwrap_or_default())
}

/// Text that borrows from the JSON when it has no escapes (nearly always), owned otherwise.
fn borrowed_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(text)))
        }
        fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text.to_owned())))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(
            self,
            inner: D,
        ) -> Result<Self::Value, D::Error> {
            inner.deserialize_str(self)
        }
    }
    deserializer.deserialize_option(Text)
}

/// One page of principals, as the database sent it: one JSON document that
/// [`AdvisorPage::principals`] parses, borrowing from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisorPage {
    /// Principals matched by the filter, on every page.
    pub total: i64,
    /// `[[id, arn, lastUpdated, [[service id, lastAuthenticated, serviceName,
    /// serviceNamespace, lastAuthenticatedEntity, totalAuthenticatedEntities], ...]], ...]`
    /// in no particular order; `None` for an empty page.
    principals: Option<String>,
}

impl AdvisorPage {
    /// The page's principals in `id` order.
    pub fn principals(&self) -> Result<Vec<StoredPrincipal<'_>>, DbError> {
        let Some(text) = self.principals.as_deref() else {
            return Ok(Vec::new());
        };
        let mut principals: Vec<StoredPrincipal> = serde_json::from_str(text).map_err(|err| {
            DbError::Sql(sqlx::Error::Decode(
                format!("the page's principals as the database aggregated them: {err}").into(),
            ))
        })?;
        principals.sort_unstable_by_key(|principal| principal.id);
        Ok(principals)
    }

    /// Bytes of the page as the database sent it: what sizes a response.
    pub fn text_len(&self) -> usize {
        self.principals.as_ref().map_or(0, String::len)
    }
}

/// Every principal's id and ARN in id order, as of one version of the principals table.
#[derive(Debug)]
struct Directory {
    version: i64,
    ids: Vec<i64>,
    arns: Vec<String>,
    lowered: Vec<String>,
    /// Positions ordered by lower-cased ARN, for exact lookups by binary search (4 bytes a
    /// principal, where a map would hold a third copy of every ARN).
    by_lowered: Vec<u32>,
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

    /// The cached directory, or a new one if there is none or `stale` says so (read by one
    /// request at a time; the others wait for it).
    async fn directory(&self, stale: Option<i64>) -> Result<Arc<Directory>, DbError> {
        let fresh = |directory: &Option<Arc<Directory>>| {
            directory
                .as_ref()
                .filter(|d| stale.is_none_or(|version| d.version >= version))
                .cloned()
        };
        if let Some(directory) = fresh(&*self.directory.current.read().await) {
            return Ok(directory);
        }
        let _reloading = self.directory.reload.lock().await;
        if let Some(directory) = fresh(&*self.directory.current.read().await) {
            return Ok(directory);
        }
        // The version is read before the rows: a change in between makes the next request
        // read again, never serve rows older than the version it holds.
        let version = self.principal_version().await?;
        let mut rows =
            sqlx::query("SELECT CAST(id AS BIGINT), arn FROM aws_iam_object ORDER BY id")
                .fetch(self.pool());
        let (mut ids, mut arns, mut lowered) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(row) = rows.try_next().await? {
            // Upstream's column allows NULL; such a row is listed under an empty ARN.
            let arn: String = row.try_get::<Option<String>, _>(1)?.unwrap_or_default();
            let lower = arn.to_lowercase();
            ids.push(row.try_get(0)?);
            arns.push(arn);
            lowered.push(lower);
        }
        drop(rows);
        let mut by_lowered: Vec<u32> = (0..lowered.len() as u32).collect();
        by_lowered.sort_by(|&a, &b| lowered[a as usize].cmp(&lowered[b as usize]));
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
    ///
    /// One statement in the common case: the page's rows come with the principals' version,
    /// and only if that differs from the directory's is the directory read again and the page
    /// asked once more, so an answer is never older than its request.
    pub async fn advisors(
        &self,
        filter: &AdvisorFilter,
        page: i64,
        count: i64,
    ) -> Result<AdvisorPage, DbError> {
        let directory = self.directory(None).await?;
        let (total, page_ids) = directory.select(filter, page, count);
        let (version, principals) = self.principals_among(&page_ids).await?;
        if version == directory.version {
            return Ok(AdvisorPage { total, principals });
        }
        let directory = self.directory(Some(version)).await?;
        let (total, page_ids) = directory.select(filter, page, count);
        let (_, principals) = self.principals_among(&page_ids).await?;
        Ok(AdvisorPage { total, principals })
    }

    /// The principals' version and the principals `ids` with their services, aggregated into
    /// one JSON document: one row per request rather than per principal or service (rows are
    /// what the drivers pay for, each one handed between threads).
    async fn principals_among(&self, ids: &[i64]) -> Result<(i64, Option<String>), DbError> {
        let (matching, list) = self.among_ids("o.id", "$1", ids);
        let columns = [
            "a.id",
            "a.\"lastAuthenticated\"",
            "a.\"serviceName\"",
            "a.\"serviceNamespace\"",
            "a.\"lastAuthenticatedEntity\"",
            "a.\"totalAuthenticatedEntities\"",
        ];
        let last_updated = self.timestamp_text("o.\"lastUpdated\"");
        let page = match self.dialect() {
            // The outer levels put together as text: SQLite's JSON functions would parse
            // every nested array again, which costs more than the query itself.
            Dialect::Sqlite => format!(
                "SELECT '[' || group_concat('[' || o.id || ',' || json_quote(o.arn) || ',' \
                 || json_quote({last_updated}) || ',' || (SELECT json_group_array(json_array({})) \
                 FROM advisor_data a WHERE a.item_id = o.id) || ']', ',') || ']' \
                 FROM aws_iam_object o WHERE {matching}",
                columns.join(", ")
            ),
            Dialect::Postgres => format!(
                "SELECT CAST(json_agg(json_build_array(o.id, o.arn, {last_updated}, \
                 (SELECT json_agg(json_build_array({})) FROM advisor_data a \
                  WHERE a.item_id = o.id))) AS TEXT) FROM aws_iam_object o WHERE {matching}",
                columns.join(", ")
            ),
        };
        let sql = format!(
            "SELECT CAST(v.version AS BIGINT), ({page}) FROM aardvark_principal_version v WHERE v.id = 1"
        );
        let row = sqlx::query(&sql).bind(list).fetch_one(self.pool()).await?;
        let principals: Option<String> = row.try_get(1)?;
        Ok((row.try_get(0)?, principals.filter(|text| text != "[]")))
    }
}

impl Directory {
    /// Positions of the principals whose lower-cased ARN is `lowered`.
    fn positions_of(&self, lowered: &str) -> &[u32] {
        let key = |at: &u32| self.lowered[*at as usize].as_str();
        let first = self.by_lowered.partition_point(|at| key(at) < lowered);
        let end = self.by_lowered.partition_point(|at| key(at) <= lowered);
        &self.by_lowered[first..end]
    }

    /// How many principals match `filter`, and the ids of those on the page.
    fn select(&self, filter: &AdvisorFilter, page: i64, count: i64) -> (i64, Vec<i64>) {
        let offset = usize::try_from((page - 1).saturating_mul(count)).unwrap_or(usize::MAX);
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let phrase = filter
            .phrase
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(str::to_lowercase);
        if filter.arns.is_none() && phrase.is_none() && filter.regex.is_none() {
            // Unfiltered: a slice of the directory, whatever its size.
            let page_ids = self.ids.iter().skip(offset).take(count).copied().collect();
            return (self.ids.len() as i64, page_ids);
        }
        let mut positions: Vec<usize> = match &filter.arns {
            Some(arns) => {
                let mut found: Vec<usize> = arns
                    .iter()
                    .flat_map(|arn| self.positions_of(&arn.to_lowercase()))
                    .map(|&at| at as usize)
                    .collect();
                found.sort_unstable();
                found.dedup();
                found
            }
            None => (0..self.ids.len()).collect(),
        };
        if let Some(phrase) = &phrase {
            // One searcher for all ARNs: `str::contains` would build one per ARN.
            let finder = memchr::memmem::Finder::new(phrase.as_bytes());
            positions.retain(|&at| finder.find(self.lowered[at].as_bytes()).is_some());
        }
        if let Some(regex) = &filter.regex {
            positions.retain(|&at| regex.is_match(&self.arns[at]));
        }
        let page_ids = positions
            .iter()
            .skip(offset)
            .take(count)
            .map(|&at| self.ids[at])
            .collect();
        (positions.len() as i64, page_ids)
    }
}
