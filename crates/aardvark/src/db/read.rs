//! The read path behind `/api/1/advisors`: principals filtered, paginated in `id` order, and
//! their services in `advisor_data.id` order, in one statement per request whatever the page
//! size (the page's principals with their services, and the principals' version).

use std::sync::Arc;

use sqlx::Row;

use futures::TryStreamExt;

use super::directory::{Directory, DirectoryCache};
use super::rendered::RenderedPage;
use super::usage::{kind_and_path, DetailedPrincipal, PrincipalDetails, StoredAction};
use super::vocabulary::{AdvisorFilter, AdvisorPage, PageShape, PageTexts, StoredService};
use super::{Database, DbError};

/// The read path as a server runs it: a database and the directory of its principals kept in
/// memory, shared by every clone and read again whenever the principals' version moves.
#[derive(Debug, Clone)]
pub struct Reader {
    db: Database,
    directory: Arc<DirectoryCache>,
    /// Each account's latest outcome, with the newest run record it was read up to: records
    /// are only ever added, so a newer one says when to read them again.
    outcomes: Arc<tokio::sync::Mutex<Option<KeptOutcomes>>>,
    /// What per-account unused-access totals read of every principal, as of a principals'
    /// version (the write path changes it in the transaction that changes them).
    uses: Arc<tokio::sync::Mutex<Option<Arc<super::usage::KeptUses>>>>,
}

/// Accounts' latest outcomes as read up to the run record with this id.
type KeptOutcomes = (i64, Arc<Vec<super::runs::AccountOutcome>>);

impl Reader {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            directory: Arc::default(),
            outcomes: Arc::default(),
            uses: Arc::default(),
        }
    }

    /// Every principal's last uses for the per-account totals, read again only when the
    /// principals' version has moved since.
    pub(crate) async fn kept_uses(&self) -> Result<Arc<super::usage::KeptUses>, DbError> {
        let version = self.db.principals_version().await?;
        let mut kept = self.uses.lock().await;
        if let Some(uses) = kept.as_ref().filter(|uses| uses.version == version) {
            return Ok(uses.clone());
        }
        let uses = Arc::new(self.db.read_uses(version).await?);
        *kept = Some(uses.clone());
        Ok(uses)
    }

    /// Every account's latest outcome ([`Database::account_outcomes`]), read again only when
    /// a run has recorded an account since the last read.
    pub async fn account_outcomes(&self) -> Result<Arc<Vec<super::runs::AccountOutcome>>, DbError> {
        let newest = self.db.newest_account_record().await?;
        let mut cached = self.outcomes.lock().await;
        if let Some((read_up_to, outcomes)) = cached.as_ref() {
            if *read_up_to == newest {
                return Ok(outcomes.clone());
            }
        }
        let outcomes = Arc::new(self.db.account_outcomes().await?);
        *cached = Some((newest, outcomes.clone()));
        Ok(outcomes)
    }

    pub fn database(&self) -> &Database {
        &self.db
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
        let directory = Arc::new(self.db.read_directory().await?);
        *self.directory.current.write().await = Some(directory.clone());
        Ok(directory)
    }

    /// How many principals are stored per account (the account field of their ARNs).
    pub async fn principals_per_account(
        &self,
    ) -> Result<std::collections::BTreeMap<String, usize>, DbError> {
        let version = self.db.principals_version().await?;
        let directory = self.directory(Some(version)).await?;
        Ok(directory
            .accounts
            .iter()
            .filter(|(account, _)| !account.is_empty())
            .map(|(account, positions)| (account.clone(), positions.len()))
            .collect())
    }

    /// Reads the directory of principals ahead of the first request that needs it (about a
    /// second at 1,000,000 principals).
    pub async fn load_directory(&self) -> Result<(), DbError> {
        self.directory(None).await.map(drop)
    }

    /// How many principals `filter` matches, and the ids and ARNs of page `page` (1-based,
    /// `count` per page) of them, never older than the request.
    pub async fn matching(
        &self,
        filter: &AdvisorFilter,
        page: i64,
        count: i64,
    ) -> Result<(i64, Vec<(i64, String)>), DbError> {
        let version = self.db.principals_version().await?;
        let directory = self.directory(Some(version)).await?;
        let (total, ids) = select(&directory, filter, page, count).await;
        let principals = ids
            .into_iter()
            .filter_map(|id| {
                let at = directory.ids.binary_search(&id).ok()?;
                Some((id, directory.arns[at].clone()))
            })
            .collect();
        Ok((total, principals))
    }

    /// Principals matching `filter`, `count` per page, page `page` (1-based), with their
    /// services as stored.
    pub async fn advisors(
        &self,
        filter: &AdvisorFilter,
        page: i64,
        count: i64,
    ) -> Result<AdvisorPage, DbError> {
        let (total, read) = self
            .filtered_page(filter, page, count, PageShape::Stored)
            .await?;
        let [principals, _] = read.texts;
        Ok(AdvisorPage { total, principals })
    }

    /// The number of principals matching `filter`, and page `page` of them in `shape`.
    ///
    /// One statement in the common case: the page's rows come with the principals' version,
    /// and only if that differs from the directory's is the directory read again and the page
    /// asked once more, so an answer is never older than its request.
    pub(crate) async fn filtered_page(
        &self,
        filter: &AdvisorFilter,
        page: i64,
        count: i64,
        shape: PageShape,
    ) -> Result<(i64, PageRead), DbError> {
        let directory = self.directory(None).await?;
        let (total, page_ids) = select(&directory, filter, page, count).await;
        let read = self.db.principals_among(&page_ids, shape).await?;
        if read.version == directory.version {
            return Ok((total, read));
        }
        let directory = self.directory(Some(read.version)).await?;
        let (total, page_ids) = select(&directory, filter, page, count).await;
        Ok((total, self.db.principals_among(&page_ids, shape).await?))
    }
}

/// [`Directory::select`], in the slow lane when `filter` has a pattern: matching every ARN
/// against one takes long enough to stall the other requests of an async worker.
async fn select(
    directory: &Arc<Directory>,
    filter: &AdvisorFilter,
    page: i64,
    count: i64,
) -> (i64, Vec<i64>) {
    if filter.regex.is_none() {
        return directory.select(filter, page, count);
    }
    let (directory, filter) = (directory.clone(), filter.clone());
    crate::slow_lane::run(move || directory.select(&filter, page, count)).await
}

impl Database {
    /// The principals' version: it moves in every transaction that changes a principal.
    pub(crate) async fn principals_version(&self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(version AS BIGINT) FROM aardvark_principal_version WHERE id = 1",
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// Every principal's id and ARN, with the principals' version read before them: a change
    /// in between makes the next request read again, never serve rows older than the version
    /// it holds.
    async fn read_directory(&self) -> Result<Directory, DbError> {
        let version: i64 = sqlx::query_scalar(
            "SELECT CAST(version AS BIGINT) FROM aardvark_principal_version WHERE id = 1",
        )
        .fetch_one(self.pool())
        .await?;
        let mut rows =
            sqlx::query("SELECT CAST(id AS BIGINT), arn FROM aws_iam_object ORDER BY id")
                .fetch(self.pool());
        let (mut ids, mut arns) = (Vec::new(), Vec::new());
        while let Some(row) = rows.try_next().await? {
            ids.push(row.try_get(0)?);
            // Upstream's column allows NULL; such a row is listed under an empty ARN.
            arns.push(row.try_get::<Option<String>, _>(1)?.unwrap_or_default());
        }
        Ok(Directory::new(version, ids, arns))
    }

    /// The principals `ids` in `shape`, with the principals' version they were read at: one
    /// statement per request, and one row rather than one per principal or service where rows
    /// are what the driver pays for (SQLite hands each one between threads).
    async fn principals_among(&self, ids: &[i64], shape: PageShape) -> Result<PageRead, DbError> {
        let (matching, list) = self.dialect().among_ids("o.id", "$1", ids);
        let version = "(SELECT CAST(v.version AS BIGINT) FROM aardvark_principal_version v \
                       WHERE v.id = 1)";
        match shape {
            PageShape::Rendered(texts) => {
                let sql = self.rendered_page_sql(version, &matching, texts);
                let (version, headers, texts) =
                    Self::fetch_rendered(self.pool(), &sql, list).await?;
                Ok(PageRead {
                    version,
                    texts: [headers, texts],
                })
            }
            PageShape::Stored => {
                let sql = self.dialect().stored_page(version, &matching);
                let row = sqlx::query(&sql).bind(list).fetch_one(self.pool()).await?;
                Ok(PageRead {
                    version: row.try_get(0)?,
                    texts: [row.try_get(1)?, None],
                })
            }
        }
    }
}

/// What a page's statement brought: the principals' version it was read at, then the page's
/// texts (for [`PageShape::Stored`] the [`AdvisorPage`]'s, for [`PageShape::Rendered`] the
/// headers and texts of a `RenderedPage`).
pub(crate) struct PageRead {
    version: i64,
    texts: [Option<String>; 2],
}

impl Reader {
    /// Principals matching `filter`, `count` per page, page `page` (1-based), with their
    /// services rendered (`texts` says whether kept digests come instead): one statement per
    /// request, as [`Reader::advisors`].
    pub async fn rendered_advisors(
        &self,
        filter: &AdvisorFilter,
        page: i64,
        count: i64,
        texts: PageTexts,
    ) -> Result<RenderedPage, DbError> {
        let (total, read) = self
            .filtered_page(filter, page, count, PageShape::Rendered(texts))
            .await?;
        let [headers, texts] = read.texts;
        Ok(RenderedPage::new(
            total,
            headers,
            texts,
            self.database().rendering(),
        ))
    }
}

impl Reader {
    /// A page of the principals `filter` matches, with their stored services and details,
    /// and how many match.
    pub async fn unused_page(
        &self,
        filter: &AdvisorFilter,
        page: i64,
        count: i64,
    ) -> Result<(i64, Vec<DetailedPrincipal>), DbError> {
        let result = self.advisors(filter, page, count).await?;
        let principals = result.principals()?;
        let ids: Vec<i64> = principals.iter().map(|p| p.id).collect();
        let mut details = self.database().principal_details(&ids).await?;
        let page = principals
            .into_iter()
            .map(|principal| {
                // Every write and every migration gives a principal its row; one written
                // in between by another program still gets its kind.
                let details = details
                    .remove(&principal.id)
                    .unwrap_or_else(|| PrincipalDetails {
                        kind: kind_and_path(&principal.arn).0,
                        created_ms: None,
                    });
                DetailedPrincipal {
                    arn: principal.arn.into_owned(),
                    details,
                    services: principal
                        .services
                        .into_iter()
                        .map(StoredService::into_owned)
                        .collect(),
                }
            })
            .collect();
        Ok((result.total, page))
    }

    /// A page of the principals `filter` matches with their tracked actions, and how many
    /// match.
    pub async fn actions_page(
        &self,
        filter: &AdvisorFilter,
        page: i64,
        count: i64,
    ) -> Result<(i64, Vec<(String, Vec<StoredAction>)>), DbError> {
        let (total, principals) = self.matching(filter, page, count).await?;
        let ids: Vec<i64> = principals.iter().map(|(id, _)| *id).collect();
        let mut actions = self.database().actions_of(&ids).await?;
        Ok((
            total,
            principals
                .into_iter()
                .map(|(id, arn)| (arn, actions.remove(&id).unwrap_or_default()))
                .collect(),
        ))
    }
}
