//! The read path behind `/api/1/advisors`: principals filtered, paginated in `id` order, and
//! their services in `advisor_data.id` order, in one statement per request whatever the page
//! size (the page's principals with their services, and the principals' version).

use std::borrow::Cow;
use std::sync::Arc;

use regex::Regex;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use serde::Deserialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use futures::TryStreamExt;

use super::{Database, DbError};

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
pub(crate) fn services_by_id<'de, D: serde::Deserializer<'de>>(
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
pub(crate) fn borrowed_text<'de, D: serde::Deserializer<'de>>(
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
            DbError::undecodable(format!(
                "the page's principals as the database aggregated them: {err}"
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

/// What a page holds for each principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageShape {
    /// Its services as stored: [`AdvisorPage`].
    Stored,
    /// Its services as the API writes them, or their digests: [`super::rendered::RenderedPage`].
    Rendered(super::rendered::PageTexts),
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
    /// Positions ordered by ARN, for regexes whose matches begin with known literals.
    by_arn: Vec<u32>,
    /// Each account field (`arn:partition:service:region:ACCOUNT:...`) with the positions of
    /// its principals, ordered by account.
    accounts: Vec<(String, Vec<u32>)>,
    /// Per principal, the longest run of digits outside its account field (at most 255).
    /// With `accounts`, a phrase of digits (an account id, what Repokid sends) is answered
    /// without reading every ARN.
    outside_digits: Vec<u8>,
    /// The positions of principals with digits outside their account field, longest run first:
    /// those a phrase of N digits may match there are a prefix, found without a scan.
    by_outside_digits: Vec<u32>,
}

/// The read path's in-memory directory of principals. Filters (phrase, exact ARNs, regex) and
/// paging run over it; SQL fetches only the page's rows. A trigger-maintained version number
/// says when it must be read again, so it is never stale.
#[derive(Debug, Default)]
struct DirectoryCache {
    current: tokio::sync::RwLock<Option<Arc<Directory>>>,
    reload: tokio::sync::Mutex<()>,
}

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
        let (total, row) = self
            .filtered_page(filter, page, count, PageShape::Stored)
            .await?;
        Ok(AdvisorPage {
            total,
            principals: row.try_get(1)?,
        })
    }

    /// The number of principals matching `filter`, and the row that holds page `page` of them
    /// in `shape` (column 0 the principals' version, then the page's text columns).
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
    ) -> Result<(i64, AnyRow), DbError> {
        let directory = self.directory(None).await?;
        let (total, page_ids) = select(&directory, filter, page, count).await;
        let row = self.db.principals_among(&page_ids, shape).await?;
        let version: i64 = row.try_get(0)?;
        if version == directory.version {
            return Ok((total, row));
        }
        let directory = self.directory(Some(version)).await?;
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

    /// The principals' version and the principals `ids` in `shape`, in one row: one row per
    /// request rather than per principal or service (rows are what the drivers pay for, each
    /// one handed between threads).
    async fn principals_among(&self, ids: &[i64], shape: PageShape) -> Result<AnyRow, DbError> {
        let (matching, list) = self.dialect().among_ids("o.id", "$1", ids);
        let version = "(SELECT CAST(v.version AS BIGINT) FROM aardvark_principal_version v \
                       WHERE v.id = 1)";
        let sql = match shape {
            PageShape::Rendered(texts) => self.rendered_page_sql(version, &matching, texts),
            PageShape::Stored => self.dialect().stored_page(version, &matching),
        };
        Ok(sqlx::query(&sql).bind(list).fetch_one(self.pool()).await?)
    }
}

fn longest_digit_run(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

impl Directory {
    fn new(version: i64, ids: Vec<i64>, arns: Vec<String>) -> Self {
        let lowered: Vec<String> = arns.iter().map(|arn| arn.to_lowercase()).collect();
        let mut by_lowered: Vec<u32> = (0..lowered.len() as u32).collect();
        by_lowered.sort_by(|&a, &b| lowered[a as usize].cmp(&lowered[b as usize]));
        let mut by_arn: Vec<u32> = (0..arns.len() as u32).collect();
        by_arn.sort_by(|&a, &b| arns[a as usize].cmp(&arns[b as usize]));
        let mut accounts: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
        let outside_digits: Vec<u8> = lowered
            .iter()
            .enumerate()
            .map(|(at, arn)| {
                let outside = match crate::arn::Arn::account_range(arn) {
                    Some(field) => {
                        accounts
                            .entry(&arn[field.clone()])
                            .or_default()
                            .push(at as u32);
                        longest_digit_run(&arn[..field.start])
                            .max(longest_digit_run(&arn[field.end..]))
                    }
                    None => longest_digit_run(arn),
                };
                outside.min(255) as u8
            })
            .collect();
        let mut by_outside_digits: Vec<u32> = (0..lowered.len() as u32)
            .filter(|&at| outside_digits[at as usize] > 0)
            .collect();
        by_outside_digits.sort_by_key(|&at| std::cmp::Reverse(outside_digits[at as usize]));
        let accounts = accounts
            .into_iter()
            .map(|(account, positions)| (account.to_owned(), positions))
            .collect();
        Directory {
            version,
            ids,
            arns,
            lowered,
            by_lowered,
            by_arn,
            accounts,
            outside_digits,
            by_outside_digits,
        }
    }

    /// Positions, in order, of the principals whose ARN starts with one of the literals that
    /// every match of `regex` (anchored at the start) starts with; `None` when the regex has
    /// no such literals (e.g. `.*role`) and every ARN must be tried.
    fn starting_like(&self, regex: &Regex) -> Option<Vec<usize>> {
        let hir = regex_syntax::Parser::new().parse(regex.as_str()).ok()?;
        let prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
        let literals = prefixes.literals()?;
        if literals.iter().any(|literal| literal.as_bytes().is_empty()) {
            return None;
        }
        let arn = |at: &u32| self.arns[*at as usize].as_bytes();
        let mut found: Vec<usize> = Vec::new();
        for literal in literals {
            let prefix = literal.as_bytes();
            let first = self.by_arn.partition_point(|at| arn(at) < prefix);
            found.extend(
                self.by_arn[first..]
                    .iter()
                    .take_while(|at| arn(at).starts_with(prefix))
                    .map(|&at| at as usize),
            );
        }
        found.sort_unstable();
        found.dedup();
        Some(found)
    }

    /// Positions, in order, of the principals (`among` these, if given) whose lower-cased ARN
    /// contains `phrase`.
    fn containing(&self, phrase: &str, among: Option<Vec<usize>>) -> Vec<usize> {
        let finder = memchr::memmem::Finder::new(phrase.as_bytes());
        let contains = |at: usize| finder.find(self.lowered[at].as_bytes()).is_some();
        if let Some(mut among) = among {
            among.retain(|&at| contains(at));
            return among;
        }
        if !phrase.bytes().all(|b| b.is_ascii_digit()) {
            return (0..self.lowered.len()).filter(|&at| contains(at)).collect();
        }
        // Digits cannot span the colons around the account field: they match inside it (look
        // in the distinct accounts) or outside it (only where a long enough run of digits is).
        let mut found: Vec<usize> = self
            .accounts
            .iter()
            .filter(|(account, _)| finder.find(account.as_bytes()).is_some())
            .flat_map(|(_, positions)| positions.iter().map(|&at| at as usize))
            .collect();
        let run = phrase.len().min(255);
        let long_enough = self
            .by_outside_digits
            .partition_point(|&at| usize::from(self.outside_digits[at as usize]) >= run);
        found.extend(
            self.by_outside_digits[..long_enough]
                .iter()
                .map(|&at| at as usize)
                .filter(|&at| contains(at)),
        );
        found.sort_unstable();
        found.dedup();
        found
    }

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
        // The narrowest way in first; the filters it did not apply after it.
        let starting_like = match (&filter.arns, &phrase, &filter.regex) {
            (None, None, Some(regex)) => self.starting_like(regex),
            _ => None,
        };
        let with_arns = filter.arns.as_ref().map(|arns| {
            let mut found: Vec<usize> = arns
                .iter()
                .flat_map(|arn| self.positions_of(&arn.to_lowercase()))
                .map(|&at| at as usize)
                .collect();
            found.sort_unstable();
            found.dedup();
            found
        });
        let matches = |at: &usize| {
            filter
                .regex
                .as_ref()
                .is_none_or(|regex| regex.is_match(&self.arns[*at]))
        };
        let positions: Vec<usize> = match (with_arns, &phrase, starting_like) {
            (among, Some(phrase), _) => self
                .containing(phrase, among)
                .into_iter()
                .filter(matches)
                .collect(),
            (Some(found), None, _) | (None, None, Some(found)) => {
                found.into_iter().filter(matches).collect()
            }
            // Only the matches are listed, never every principal.
            (None, None, None) => (0..self.ids.len()).filter(matches).collect(),
        };
        let page_ids = positions
            .iter()
            .skip(offset)
            .take(count)
            .map(|&at| self.ids[at])
            .collect();
        (positions.len() as i64, page_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The account index answers digit phrases exactly as reading every ARN would.
    #[test]
    fn phrases_match_as_a_scan_of_every_arn_would() {
        let long_run = "7".repeat(300);
        let arns: Vec<String> = [
            "arn:aws:iam::111111111111:role/App",
            "arn:aws:iam::111111111111:role/cross-222222222222",
            "arn:aws:iam::222222222222:user/Alice",
            "arn:aws:iam::333333333333:role/p-00042",
            "arn:aws-cn:iam::444444444444:policy/Pol",
            "arn:aws:iam::123:role/Short",
            "not an arn 111111111111",
            "arn:aws:iam:",
            "",
            "ARN:AWS:IAM::555555555555:ROLE/UPPER",
            &format!("arn:aws:iam::666666666666:role/{long_run}"),
        ]
        .iter()
        .map(|arn| arn.to_string())
        .collect();
        let ids = (1..=arns.len() as i64).collect();
        let directory = Directory::new(1, ids, arns);
        let phrases = [
            "111111111111".to_owned(),
            "222222222222".to_owned(),
            "1111".to_owned(),
            "2".to_owned(),
            "00042".to_owned(),
            "123".to_owned(),
            "555555555555".to_owned(),
            "role/".to_owned(),
            "7".repeat(256),
            "7".repeat(301),
            "999".to_owned(),
        ];
        for phrase in &phrases {
            let scanned: Vec<usize> = (0..directory.lowered.len())
                .filter(|&at| directory.lowered[at].contains(phrase.as_str()))
                .collect();
            assert_eq!(
                directory.containing(phrase, None),
                scanned,
                "phrase {phrase:?}"
            );
        }
        assert_eq!(directory.containing("111111111111", None), vec![0, 1, 6]);
    }

    /// Narrowing by a regex's literal prefixes finds exactly what trying every ARN finds.
    #[test]
    fn regexes_match_as_trying_every_arn_would() {
        let arns: Vec<String> = [
            "arn:aws:iam::111111111111:role/App",
            "arn:aws:iam::111111111111:role/app",
            "arn:aws:iam::111111111111:user/Alice",
            "arn:aws:iam::222222222222:role/App",
            "arn:aws-cn:iam::111111111111:role/App",
            "ARN:AWS:IAM::111111111111:ROLE/APP",
            "",
        ]
        .iter()
        .map(|arn| arn.to_string())
        .collect();
        let directory = Directory::new(1, (1..=arns.len() as i64).collect(), arns);
        let patterns = [
            ("arn:aws:iam::111111111111:role/", true),
            ("arn:aws:iam::(111111111111|222222222222):role/App", true),
            ("arn:aws(-cn)?:iam::111111111111:", true),
            ("(?i)arn:aws:iam::111111111111:role/app", true),
            ("arn:aws:iam::\\d+:user/", true),
            (".*role/App", false),
            ("", false),
            ("[a-z]+:aws", false),
        ];
        for (pattern, narrows) in patterns {
            let regex = Regex::new(&format!(r"\A(?:{pattern})")).unwrap();
            let tried: Vec<usize> = (0..directory.arns.len())
                .filter(|&at| regex.is_match(&directory.arns[at]))
                .collect();
            let filter = AdvisorFilter {
                regex: Some(regex.clone()),
                ..Default::default()
            };
            let (total, ids) = directory.select(&filter, 1, 100);
            let expected: Vec<i64> = tried.iter().map(|&at| directory.ids[at]).collect();
            assert_eq!((total, ids), (tried.len() as i64, expected), "{pattern}");
            assert_eq!(
                directory.starting_like(&regex).is_some(),
                narrows,
                "{pattern} narrows"
            );
        }
    }
}
