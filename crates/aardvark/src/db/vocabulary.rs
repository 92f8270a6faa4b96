//! Storage's vocabulary: the values that cross between its files and its callers (the
//! collector's input, filters, stored rows and pages, what the write path tells the history
//! and unused-access tables) and the limits they share. Imports nothing of the crate but
//! storage's error, so every other file of storage can build on it.

use std::borrow::Cow;

use regex::Regex;
use serde::Deserialize;

use super::error::DbError;

/// AWS's limits on what upstream's columns hold.
pub const SERVICE_NAME_MAX_CHARS: usize = 128;
pub const SERVICE_NAMESPACE_MAX_CHARS: usize = 64;

/// Parameters per multi-row statement. Far below both databases' limits, and small because
/// sqlx looks up each numbered SQLite parameter's name in a list, which costs time quadratic in
/// the number of parameters (measured: 54% of ingest time at 3,000 parameters a statement);
/// the statements that repeat per service row avoid numbering (`values_placeholders`).
pub(crate) const PARAMS_PER_STATEMENT: usize = 360;

/// Parameters per multi-row statement whose placeholders are anonymous in SQLite
/// ([`Dialect::values_placeholders`](super::Dialect::values_placeholders)): nothing is looked
/// up by name, so the cost per parameter stays flat, and what counts is the statements. Each
/// is a hand-off to SQLite's thread and back, which waits for its turn while a collection keeps
/// the cores busy: at 60 rows a statement, a group of 256 principals of 20 services took about
/// 90 statements for its services alone. Below SQLite's limit of 32,766 variables and
/// PostgreSQL's of 65,535. Such statements are sent unprepared (`persistent(false)`): their
/// sizes vary with every group, and each size kept prepared would hold its compiled program.
/// Used by the principals' write path (services, history, principal rows, renderings, regions,
/// actions), where it was measured; the other statements with anonymous placeholders (identity
/// details, findings, recommendations, a shared run's work) still carry `PARAMS_PER_STATEMENT`.
pub(crate) const ROW_PARAMS_PER_STATEMENT: usize = 30_000;

/// One service's last use by a principal, as AWS reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceUsage {
    pub service_name: String,
    pub service_namespace: String,
    /// Epoch milliseconds; 0 when not used within AWS's tracking window.
    pub last_authenticated: i64,
    pub last_authenticated_entity: Option<String>,
    pub total_authenticated_entities: i64,
    /// `LastAuthenticatedRegion`.
    pub region: Option<String>,
    /// `TrackedActionsLastAccessed`, when collected at action level (`None` at service level,
    /// which leaves the stored actions as they are).
    pub actions: Option<Vec<ActionUsage>>,
}

/// One tracked action's last access, as AWS reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionUsage {
    pub action: String,
    /// Epoch milliseconds; 0 when not accessed within AWS's tracking window.
    pub last_accessed: i64,
    pub entity: Option<String>,
    pub region: Option<String>,
}

/// What an account's listing says of a principal besides its ARN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalListing {
    pub path: String,
    /// `CreateDate`, epoch milliseconds.
    pub created_ms: Option<i64>,
}

/// A principal (role, user, group or policy) and every service it may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalUsage {
    pub arn: String,
    pub services: Vec<ServiceUsage>,
    /// From the listing; `None` keeps what is stored.
    pub listing: Option<PrincipalListing>,
}

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
    pub(super) principals: Option<String>,
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
    /// Its services as the API writes them, or their digests: `RenderedPage`.
    Rendered(PageTexts),
}

/// Which text a page brings of principals whose rendering is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageTexts {
    Renderings,
    /// Their digest where one is kept, else their rendering.
    Digests,
}

/// A change of a last use the write path saw, for the history: `previous` is `None` for the first value seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HistoryChange<'a> {
    pub item_id: i64,
    pub namespace: &'a str,
    pub last_authenticated: i64,
    pub previous: Option<i64>,
}

/// One principal the write path stored, for the unused-access tables.
pub(crate) struct WrittenPrincipal<'a> {
    pub item_id: i64,
    pub principal: &'a PrincipalUsage,
    /// The newest and oldest last use of its services after the write.
    pub uses: Option<(i64, i64)>,
}
