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

use futures::TryStreamExt;
use serde::Deserialize;
use sqlx::Row;

use super::vocabulary::{
    borrowed_text, services_by_id, PageTexts, StoredService, ROW_PARAMS_PER_STATEMENT,
};
use super::{Database, DbError};

/// Principals rendered per statement when catching up.
const RENDER_BATCH: usize = 500;

/// Separates the principals' services in a rendered page: JSON escapes every control character,
/// so it cannot occur in a rendering. ARNs come with their length and may hold anything.
const RECORD_SEPARATOR: u8 = 0x1e;

/// How a principal's services are written for the API. Storage keeps and serves that text
/// without reading it; the API owns the format (`api::wire::RENDERING`) and hands it to
/// [`Database::connect`].
#[derive(Debug, Clone, Copy)]
pub struct Rendering {
    /// The format's number, kept with each rendering (`aardvark_rendered_services.format`):
    /// renderings of any other number are never served, only rendered again.
    pub format: u32,
    /// A principal's services as one JSON text, from its `lastUpdated` as stored and its
    /// rows in `advisor_data.id` order.
    pub render: fn(last_updated: Option<&str>, services: &[StoredService<'_>]) -> String,
    /// What combining principals reads of a rendering instead of the rendering, kept beside
    /// it (`aardvark_rendered_digests`, migration 0012); `None` keeps none.
    pub digest: fn(rendering: &str) -> Option<String>,
}

/// What a page brings of one principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept<'a> {
    /// Its services as [`Rendering`] wrote them: borrowed from the page when kept, owned when
    /// rendered now because none was.
    Rendering(Cow<'a, str>),
    /// Its kept rendering's digest, as [`Rendering::digest`] wrote it.
    Digest(&'a str),
}

/// A principal of a rendered page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPrincipal<'a> {
    pub id: i64,
    /// Upstream's column allows NULL; such a row is listed under an empty ARN.
    pub arn: &'a str,
    /// Its services as [`Rendering`] wrote them.
    pub services: Cow<'a, str>,
}

/// One page of principals with their services rendered, or digested, as the database sent it.
#[derive(Debug, Clone)]
pub struct RenderedPage {
    /// Principals matched by the filter, on every page.
    pub total: i64,
    /// Per principal `ID ARN_BYTES ARN` then `D` (its digest is kept), `R` (its services are
    /// kept rendered) or `L` (they come as `[lastUpdated, services as aggregated for read.rs]`,
    /// to render here), in no particular order; `None` for an empty page.
    headers: Option<String>,
    /// The principals' texts, in the order of `headers`, separated by [`RECORD_SEPARATOR`].
    /// Apart from the headers so that the database copies them once.
    texts: Option<String>,
    /// What renders the `L` principals.
    rendering: Rendering,
}

impl RenderedPage {
    pub(super) fn new(
        total: i64,
        headers: Option<String>,
        texts: Option<String>,
        rendering: Rendering,
    ) -> Self {
        RenderedPage {
            total,
            headers,
            texts,
            rendering,
        }
    }

    /// The page's principals in `id` order, each with its services rendered.
    pub fn principals(&self) -> Result<Vec<RenderedPrincipal<'_>>, DbError> {
        self.entries()?
            .into_iter()
            .map(|(id, arn, kept)| match kept {
                Kept::Rendering(services) => Ok(RenderedPrincipal { id, arn, services }),
                Kept::Digest(_) => Err(DbError::undecodable(format!(
                    "principal {id} came as a digest in a page of renderings"
                ))),
            })
            .collect()
    }

    /// The page's principals in `id` order, each with what the page brought of it.
    pub fn entries(&self) -> Result<Vec<(i64, &str, Kept<'_>)>, DbError> {
        let mut entries = parse_page(
            self.headers.as_deref().unwrap_or_default(),
            self.texts.as_deref().unwrap_or_default(),
            self.rendering,
        )
        .map_err(|problem| {
            DbError::undecodable(format!(
                "the page's rendered principals as the database sent them: {problem}"
            ))
        })?;
        entries.sort_unstable_by_key(|(id, _, _)| *id);
        Ok(entries)
    }

    /// Bytes of the page as the database sent it: what sizes a response.
    pub fn text_len(&self) -> usize {
        self.headers.as_ref().map_or(0, String::len) + self.texts.as_ref().map_or(0, String::len)
    }
}

/// `[lastUpdated, services]` of a principal without a stored rendering.
#[derive(Deserialize)]
struct Unrendered<'a>(
    #[serde(borrow, deserialize_with = "borrowed_text")] Option<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "services_by_id")] Vec<StoredService<'a>>,
);

fn parse_page<'a>(
    mut headers: &'a str,
    texts: &'a str,
    rendering: Rendering,
) -> Result<Vec<(i64, &'a str, Kept<'a>)>, String> {
    let mut entries = Vec::new();
    let mut each_text = texts.split(char::from(RECORD_SEPARATOR));
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
        let stored = each_text
            .next()
            .ok_or_else(|| format!("no services for principal {id}"))?;
        let kept = match kind {
            "D" => Kept::Digest(stored),
            "R" => Kept::Rendering(Cow::Borrowed(stored)),
            "L" => {
                let Unrendered(last_updated, services) = serde_json::from_str(stored)
                    .map_err(|err| format!("principal {id}'s services: {err}"))?;
                Kept::Rendering(Cow::Owned((rendering.render)(
                    last_updated.as_deref(),
                    &services,
                )))
            }
            _ => return Err(malformed()),
        };
        entries.push((id, arn, kept));
        headers = after;
    }
    let left_over = match entries.is_empty() {
        true => !texts.is_empty(),
        false => each_text.next().is_some(),
    };
    if !left_over {
        Ok(entries)
    } else {
        Err("more services than principals".to_owned())
    }
}

impl Database {
    /// SQL for the principals `o` matching `matching`, with `version` (a `BIGINT`): the
    /// headers and texts of [`RenderedPage`] in the rows [`Dialect::rendered_page`] says, to be
    /// joined by [`Database::fetch_rendered`].
    pub(crate) fn rendered_page_sql(
        &self,
        version: &str,
        matching: &str,
        texts: PageTexts,
    ) -> String {
        let unrendered = self.dialect().unrendered();
        let format = self.rendering().format;
        // Principals with a digest never touch their rendering's row (which spans pages).
        let (kind, text, digests, rendering_wanted) = match texts {
            PageTexts::Renderings => (
                "CASE WHEN r.services IS NULL THEN 'L' ELSE 'R' END",
                "r.services",
                String::new(),
                "",
            ),
            PageTexts::Digests => (
                "CASE WHEN d.digest IS NOT NULL THEN 'D' WHEN r.services IS NOT NULL THEN 'R' \
                 ELSE 'L' END",
                "COALESCE(d.digest, r.services)",
                format!(
                    "LEFT JOIN aardvark_rendered_digests d ON d.item_id = o.id \
                     AND d.format = {format} "
                ),
                "d.item_id IS NULL AND ",
            ),
        };
        let header = format!(
            "o.id || ' ' || octet_length(COALESCE(o.arn, '')) || ' ' || COALESCE(o.arn, '') \
             || {kind}"
        );
        let text = format!("COALESCE({text}, {unrendered})");
        let principals = format!(
            "FROM aws_iam_object o {digests}LEFT JOIN aardvark_rendered_services r \
             ON {rendering_wanted}r.item_id = o.id AND r.format = {format} WHERE {matching}"
        );
        self.dialect()
            .rendered_page(version, &header, &text, &principals, RECORD_SEPARATOR)
    }

    /// Runs [`Database::rendered_page_sql`]'s `sql` with `list` bound as `$1`: the principals'
    /// version, then the page's headers and texts joined as [`RenderedPage`] holds them
    /// (`None` for an empty page).
    pub(crate) async fn fetch_rendered<'e>(
        executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
        sql: &'e str,
        list: String,
    ) -> Result<(i64, Option<String>, Option<String>), DbError> {
        let mut rows = sqlx::query(sql).bind(list).fetch(executor);
        let (mut version, mut headers, mut texts) = (None, None::<String>, None::<String>);
        while let Some(row) = rows.try_next().await? {
            version = Some(row.try_get::<i64, _>(0)?);
            let header: Option<String> = row.try_get(1)?;
            let text: Option<String> = row.try_get(2)?;
            let (Some(header), Some(text)) = (header, text) else {
                continue;
            };
            match (&mut headers, &mut texts) {
                (Some(headers), Some(texts)) => {
                    headers.push_str(&header);
                    texts.push(char::from(RECORD_SEPARATOR));
                    texts.push_str(&text);
                }
                _ => (headers, texts) = (Some(header), Some(text)),
            }
        }
        let version = version.ok_or_else(|| {
            DbError::undecodable("a page came without the principals' version".to_owned())
        })?;
        Ok((version, headers, texts))
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
        let (matching, list) = self.dialect().among_ids("o.id", "$1", ids);
        let sql = self.rendered_page_sql("CAST(0 AS BIGINT)", &matching, PageTexts::Renderings);
        let (_, headers, texts) = Self::fetch_rendered(&mut *conn, &sql, list).await?;
        let page = RenderedPage::new(0, headers, texts, self.rendering());
        let principals = page.principals()?;
        // Renderings already kept in this format (they come borrowed from the page) stand:
        // only their digests are missing.
        let rendered_now: Vec<(i64, &str)> = principals
            .iter()
            .filter(|principal| matches!(principal.services, Cow::Owned(_)))
            .map(|principal| (principal.id, principal.services.as_ref()))
            .collect();
        self.keep_texts(
            conn,
            "aardvark_rendered_services",
            "services",
            &rendered_now,
        )
        .await?;
        // After the renderings: replacing one removes its digest.
        let digests: Vec<(i64, String)> = principals
            .iter()
            .filter_map(|principal| {
                let digest = (self.rendering().digest)(&principal.services)?;
                Some((principal.id, digest))
            })
            .collect();
        let digests: Vec<(i64, &str)> = digests.iter().map(|(id, d)| (*id, d.as_str())).collect();
        self.keep_texts(conn, "aardvark_rendered_digests", "digest", &digests)
            .await
    }

    /// Upserts `(principal id, text)` into `table`'s `column`, of this build's format.
    async fn keep_texts(
        &self,
        conn: &mut sqlx::AnyConnection,
        table: &str,
        column: &str,
        texts: &[(i64, &str)],
    ) -> Result<(), DbError> {
        let format = i64::from(self.rendering().format);
        for chunk in texts.chunks(ROW_PARAMS_PER_STATEMENT / 3) {
            let sql = format!(
                "INSERT INTO {table} (item_id, {column}, format) VALUES {} \
                 ON CONFLICT (item_id) DO UPDATE SET {column} = excluded.{column}, \
                 format = excluded.format",
                self.dialect().values_placeholders(chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql).persistent(false);
            for &(id, text) in chunk {
                query = query
                    .bind(i32::try_from(id).unwrap_or(i32::MAX))
                    .bind(text)
                    .bind(format);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Renders every principal that has no stored rendering of this build's format, or no
    /// digest of it (renderings kept before migration 0012), run after each collection, by
    /// `create-db` and by `serve` when it migrated the schema. Returns how many it rendered.
    pub async fn render_missing(&self) -> Result<usize, DbError> {
        let mut rendered = 0;
        let mut after = i64::MIN;
        loop {
            // A digest exists only beside a rendering of its format (migration 0012), so the
            // digests alone say what is missing, without reading the renderings' long rows.
            let ids: Vec<i64> = sqlx::query_scalar(&format!(
                "SELECT CAST(o.id AS BIGINT) FROM aws_iam_object o WHERE o.id > $1 AND NOT EXISTS \
                 (SELECT 1 FROM aardvark_rendered_digests d \
                 WHERE d.item_id = o.id AND d.format = {format}) \
                 ORDER BY o.id LIMIT {RENDER_BATCH}",
                format = self.rendering().format
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
        let (matching, list) = self.dialect().among_ids("id", "$1", ids);
        if let Some(lock) = self
            .dialect()
            .lock_principals(&matching)
            .filter(|_| !ids.is_empty())
        {
            sqlx::query(&lock).bind(list).fetch_all(&mut *conn).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_parse_whatever_the_arn_holds() {
        let odd_arn = "arn:aws:iam::1:role/a \u{1e}R b";
        let page = |headers: &str, texts: &str| RenderedPage {
            total: 2,
            headers: Some(headers.to_owned()),
            texts: Some(texts.to_owned()),
            rendering: crate::api::wire::RENDERING,
        };
        let digested = page("9 0 D", "[null,[]]");
        assert_eq!(
            digested.entries().unwrap(),
            [(9, "", Kept::Digest("[null,[]]"))]
        );
        assert!(
            digested.principals().is_err(),
            "a digest is not a rendering"
        );
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
