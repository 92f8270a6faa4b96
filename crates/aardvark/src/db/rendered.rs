//! Each principal's services as `/api/1/advisors` writes them, kept rendered in
//! `aardvark_rendered_services` (migration 0006) so that a page is a read of 30 stored texts
//! rather than an aggregation and a rendering of 600 service rows.
//!
//! The write path renders the principals it stored, in the same transaction; the migration's
//! triggers remove a principal's rendering whenever anything it was made from changes, so a
//! stored rendering is always current. Principals without one (written by another program,
//! changed by hand, or stored before the migration) are rendered here on every read, by the same
//! function, until the next collection renders them again ([`Database::render_missing`]).

use std::borrow::Cow;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::read::{AdvisorFilter, PageShape, StoredService};
use super::{Database, DbError, Dialect};

/// Principals rendered per statement when catching up.
const RENDER_BATCH: usize = 500;

/// Separates the principals' services in a rendered page: JSON escapes every control character,
/// so it cannot occur in a rendering. ARNs come with their length and may hold anything.
const RECORD_SEPARATOR: u8 = 0x1e;

/// One service of one principal. Fields are declared in sorted order: that is the JSON order.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ServiceEntry<'a> {
    /// Epoch milliseconds of the last use; 0 when not used in AWS's tracking window.
    #[serde(rename = "lastAuthenticated")]
    pub last_authenticated: Option<i64>,
    #[serde(rename = "lastAuthenticatedEntity")]
    pub last_authenticated_entity: Option<&'a str>,
    /// When this principal was last collected (RFC 1123, GMT).
    #[serde(rename = "lastUpdated")]
    pub last_updated: Option<&'a str>,
    #[serde(rename = "serviceName")]
    pub service_name: Option<&'a str>,
    #[serde(rename = "serviceNamespace")]
    pub service_namespace: Option<&'a str>,
    #[serde(rename = "totalAuthenticatedEntities")]
    pub total_authenticated_entities: Option<i64>,
}

impl<'a> ServiceEntry<'a> {
    /// `last_updated` already in RFC 1123 (see [`rfc1123`]).
    pub fn new(service: &'a StoredService<'a>, last_updated: Option<&'a str>) -> Self {
        ServiceEntry {
            last_authenticated: service.last_authenticated,
            last_authenticated_entity: service.last_authenticated_entity.as_deref(),
            last_updated,
            service_name: service.service_name.as_deref(),
            service_namespace: service.service_namespace.as_deref(),
            total_authenticated_entities: service.total_authenticated_entities,
        }
    }
}

/// A principal's services as the API writes them: a JSON array of [`ServiceEntry`], in the
/// order given, each with the principal's `lastUpdated` (as stored) in RFC 1123.
pub fn render_services(last_updated: Option<&str>, services: &[StoredService<'_>]) -> String {
    let last_updated = last_updated.map(rfc1123);
    let entries: Vec<ServiceEntry> = services
        .iter()
        .map(|service| ServiceEntry::new(service, last_updated.as_deref()))
        .collect();
    serde_json::to_string(&entries).expect("service entries always serialize")
}

/// `lastUpdated` as upstream sent it: RFC 1123 in GMT, seconds precision. Text that is not a
/// timestamp is passed through rather than hidden.
pub fn rfc1123(stored: &str) -> String {
    let trimmed = stored
        .trim()
        .trim_end_matches("+00:00")
        .trim_end_matches('Z');
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(trimmed, format).ok())
    .map(|time| time.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    .unwrap_or_else(|| stored.to_owned())
}

/// A principal of a rendered page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPrincipal<'a> {
    pub id: i64,
    /// Upstream's column allows NULL; such a row is listed under an empty ARN.
    pub arn: &'a str,
    /// The JSON array of [`render_services`].
    pub services: Cow<'a, str>,
}

/// One page of principals with their services rendered, as the database sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPage {
    /// Principals matched by the filter, on every page.
    pub total: i64,
    /// Per principal `ID ARN_BYTES ARN` then `R` (its services are stored rendered) or `L`
    /// (they come as `[lastUpdated, services as aggregated for read.rs]`, to render here), in
    /// no particular order; `None` for an empty page.
    headers: Option<String>,
    /// The principals' services, in the order of `headers`, separated by
    /// [`RECORD_SEPARATOR`]. Apart from the headers so that the database copies them once.
    services: Option<String>,
}

impl RenderedPage {
    fn from_row(total: i64, row: &AnyRow) -> Result<Self, DbError> {
        Ok(RenderedPage {
            total,
            headers: row.try_get(1)?,
            services: row.try_get(2)?,
        })
    }

    /// The page's principals in `id` order.
    pub fn principals(&self) -> Result<Vec<RenderedPrincipal<'_>>, DbError> {
        let mut principals = parse_page(
            self.headers.as_deref().unwrap_or_default(),
            self.services.as_deref().unwrap_or_default(),
        )
        .map_err(|problem| {
            DbError::Sql(sqlx::Error::Decode(
                format!("the page's rendered principals as the database sent them: {problem}")
                    .into(),
            ))
        })?;
        principals.sort_unstable_by_key(|principal| principal.id);
        Ok(principals)
    }

    /// Bytes of the page as the database sent it: what sizes a response.
    pub fn text_len(&self) -> usize {
        self.headers.as_ref().map_or(0, String::len) + self.services.as_ref().map_or(0, String::len)
    }
}

/// `[lastUpdated, services]` of a principal without a stored rendering.
#[derive(Deserialize)]
struct Unrendered<'a>(
    #[serde(borrow, deserialize_with = "super::read::borrowed_text")] Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "super::read::services_by_id")] Vec<StoredService<'a>>,
);

fn parse_page<'a>(
    mut headers: &'a str,
    services: &'a str,
) -> Result<Vec<RenderedPrincipal<'a>>, String> {
    let mut principals = Vec::new();
    let mut each_services = services.split(char::from(RECORD_SEPARATOR));
    while !headers.is_empty() {
        let malformed = || {
            let at = headers.get(..40).unwrap_or(headers);
            format!("malformed principal at {at:?}")
        };
        let (id, after) = headers.split_once(' ').ok_or_else(malformed)?;
        let (arn_len, after) = after.split_once(' ').ok_or_else(malformed)?;
        let id: i64 = id.parse().map_err(|_| malformed())?;
        let arn_len: usize = arn_len.parse().map_err(|_| malformed())?;
        let arn = after.get(..arn_len).ok_or_else(malformed)?;
        let (kind, after) = after[arn_len..].split_at_checked(1).ok_or_else(malformed)?;
        let stored = each_services
            .next()
            .ok_or_else(|| format!("no services for principal {id}"))?;
        let services = match kind {
            "R" => Cow::Borrowed(stored),
            "L" => {
                let Unrendered(last_updated, services) = serde_json::from_str(stored)
                    .map_err(|err| format!("principal {id}'s services: {err}"))?;
                Cow::Owned(render_services(last_updated.as_deref(), &services))
            }
            _ => return Err(malformed()),
        };
        principals.push(RenderedPrincipal { id, arn, services });
        headers = after;
    }
    let left_over = match principals.is_empty() {
        true => !services.is_empty(),
        false => each_services.next().is_some(),
    };
    if !left_over {
        Ok(principals)
    } else {
        Err("more services than principals".to_owned())
    }
}

impl Database {
    /// Principals matching `filter`, `count` per page, page `page` (1-based), with their
    /// services rendered: one statement per request, as [`Database::advisors`].
    pub async fn rendered_advisors(
        &self,
        filter: &AdvisorFilter,
        page: i64,
        count: i64,
    ) -> Result<RenderedPage, DbError> {
        let (total, row) = self
            .filtered_page(filter, page, count, PageShape::Rendered)
            .await?;
        RenderedPage::from_row(total, &row)
    }

    /// SQL for one row: `version`, then the `headers` and `services` of [`RenderedPage`] for
    /// the principals `o` matching `matching`.
    pub(crate) fn rendered_page_sql(&self, version: &str, matching: &str) -> String {
        let last_updated = self.timestamp_text("o.\"lastUpdated\"");
        let services = self.aggregated_services_sql();
        let (unrendered, concat, separator) = match self.dialect() {
            // The outer levels as text: SQLite's JSON functions would parse the aggregate again.
            Dialect::Sqlite => (
                format!("'[' || json_quote({last_updated}) || ',' || {services} || ']'"),
                "group_concat",
                format!("char({RECORD_SEPARATOR})"),
            ),
            Dialect::Postgres => (
                format!("CAST(json_build_array({last_updated}, {services}) AS TEXT)"),
                "string_agg",
                format!("chr({RECORD_SEPARATOR})"),
            ),
        };
        format!(
            "SELECT {version}, {concat}(o.id || ' ' || octet_length(COALESCE(o.arn, '')) || ' ' \
             || COALESCE(o.arn, '') || CASE WHEN r.services IS NULL THEN 'L' ELSE 'R' END, ''), \
             {concat}(COALESCE(r.services, {unrendered}), {separator}) \
             FROM aws_iam_object o LEFT JOIN aardvark_rendered_services r ON r.item_id = o.id \
             WHERE {matching}"
        )
    }

    /// Renders principals `ids` as they stand in `conn`'s transaction and stores the result.
    /// The caller must hold what keeps them from changing until it commits: in SQLite the
    /// write lock, in PostgreSQL the principals' rows (see [`Database::lock_principals`]).
    pub(crate) async fn render_into(
        &self,
        conn: &mut sqlx::AnyConnection,
        ids: &[i64],
    ) -> Result<(), DbError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (matching, list) = self.among_ids("o.id", "$1", ids);
        let row = sqlx::query(&self.rendered_page_sql("0", &matching))
            .bind(list)
            .fetch_one(&mut *conn)
            .await?;
        let page = RenderedPage::from_row(0, &row)?;
        let principals = page.principals()?;
        for chunk in principals.chunks(super::write::PARAMS_PER_STATEMENT / 2) {
            let sql = format!(
                "INSERT INTO aardvark_rendered_services (item_id, services) VALUES {} \
                 ON CONFLICT (item_id) DO UPDATE SET services = excluded.services",
                self.values_placeholders(chunk.len(), 2)
            );
            let mut query = sqlx::query(&sql);
            for principal in chunk {
                query = query
                    .bind(i32::try_from(principal.id).unwrap_or(i32::MAX))
                    .bind(principal.services.as_ref());
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Renders every principal that has no stored rendering (run after each collection and by
    /// `create-db`). Returns how many it rendered.
    pub async fn render_missing(&self) -> Result<usize, DbError> {
        let mut rendered = 0;
        let mut after = i64::MIN;
        loop {
            let ids: Vec<i64> = sqlx::query_scalar(&format!(
                "SELECT CAST(o.id AS BIGINT) FROM aws_iam_object o WHERE o.id > $1 AND NOT EXISTS \
                 (SELECT 1 FROM aardvark_rendered_services r WHERE r.item_id = o.id) \
                 ORDER BY o.id LIMIT {RENDER_BATCH}"
            ))
            .bind(after)
            .fetch_all(self.pool())
            .await?;
            let Some(&last) = ids.last() else {
                return Ok(rendered);
            };
            let mut tx = self.pool().begin().await?;
            self.lock_principals(&mut tx, &ids).await?;
            self.render_into(&mut tx, &ids).await?;
            tx.commit().await?;
            rendered += ids.len();
            after = last;
        }
    }

    /// In PostgreSQL, locks principals `ids` until the transaction ends, in id order (the
    /// order the migration's triggers use). SQLite needs nothing: its writers take turns.
    pub(crate) async fn lock_principals(
        &self,
        conn: &mut sqlx::AnyConnection,
        ids: &[i64],
    ) -> Result<(), DbError> {
        if self.dialect() == Dialect::Postgres && !ids.is_empty() {
            let (matching, list) = self.among_ids("id", "$1", ids);
            sqlx::query(&format!(
                "SELECT 1 FROM aws_iam_object WHERE {matching} ORDER BY id FOR NO KEY UPDATE"
            ))
            .bind(list)
            .fetch_all(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_like_flask() {
        assert_eq!(
            rfc1123("2026-11-24 08:33:58.107145"),
            "Tue, 24 Nov 2026 08:33:58 GMT"
        );
        assert_eq!(
            rfc1123("2026-11-22 19:54:58"),
            "Sun, 22 Nov 2026 19:54:58 GMT"
        );
        assert_eq!(
            rfc1123("2026-11-22T19:54:58Z"),
            "Sun, 22 Nov 2026 19:54:58 GMT"
        );
        assert_eq!(rfc1123("garbage"), "garbage");
    }

    #[test]
    fn pages_parse_whatever_the_arn_holds() {
        let odd_arn = "arn:aws:iam::1:role/a \u{1e}R b";
        let page = |headers: &str, services: &str| RenderedPage {
            total: 2,
            headers: Some(headers.to_owned()),
            services: Some(services.to_owned()),
        };
        let good = page(
            &format!("7 {} {odd_arn}R3 0 L", odd_arn.len()),
            "[{\"x\":1}]\u{1e}[null,[[2,5,\"n\",\"s\",null,1],[1,0,null,null,null,0]]]",
        );
        let principals = good.principals().unwrap();
        assert_eq!(principals.len(), 2);
        assert_eq!((principals[0].id, principals[0].arn), (3, ""));
        assert_eq!(
            principals[0].services,
            "[{\"lastAuthenticated\":0,\"lastAuthenticatedEntity\":null,\"lastUpdated\":null,\
             \"serviceName\":null,\"serviceNamespace\":null,\"totalAuthenticatedEntities\":0},\
             {\"lastAuthenticated\":5,\"lastAuthenticatedEntity\":null,\"lastUpdated\":null,\
             \"serviceName\":\"n\",\"serviceNamespace\":\"s\",\"totalAuthenticatedEntities\":1}]"
        );
        assert_eq!((principals[1].id, principals[1].arn), (7, odd_arn));
        assert_eq!(principals[1].services, "[{\"x\":1}]");
        for (headers, services) in [
            ("7 99 short", "[]"),
            ("x 0 R", "[]"),
            ("7 0 Q", "[]"),
            ("7 0 L", "[nul"),
            ("7 0 R", "[]\u{1e}[]"),
            ("7 0 R8 0 R", "[]"),
            ("", "[]"),
        ] {
            assert!(
                page(headers, services).principals().is_err(),
                "{headers:?} with {services:?} parsed"
            );
        }
    }
}
