//! The read path behind `/api/1/advisors`: principals filtered, paginated in `id` order, and
//! their services in `advisor_data.id` order, in a fixed number of statements per request.

use regex::Regex;
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

impl Database {
    /// Principals matching `filter`, `count` per page, page `page` (1-based).
    pub async fn advisors(
        &self,
        filter: &AdvisorFilter,
        page: i64,
        count: i64,
    ) -> Result<AdvisorPage, DbError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<String> = Vec::new();
        if let Some(phrase) = filter.phrase.as_deref().filter(|p| !p.is_empty()) {
            let phrase = phrase.to_lowercase();
            let placeholder = format!("${}", params.len() + 1);
            match self.dialect() {
                // instr() is a plain substring test: no wildcards to escape, and far cheaper
                // than LIKE '%…%' … ESCAPE, which SQLite cannot index anyway.
                Dialect::Sqlite => {
                    conditions.push(format!("instr(lower(arn), {placeholder}) > 0"));
                    params.push(phrase);
                }
                // LIKE can use the trigram index; the phrase's wildcards are escaped.
                Dialect::Postgres => {
                    let escaped: String = phrase
                        .chars()
                        .flat_map(|c| match c {
                            '%' | '_' | '\\' => vec!['\\', c],
                            c => vec![c],
                        })
                        .collect();
                    conditions.push(format!("lower(arn) LIKE {placeholder} ESCAPE '\\'"));
                    params.push(format!("%{escaped}%"));
                }
            }
        }
        if let Some(arns) = &filter.arns {
            let lowered: Vec<String> = arns.iter().map(|arn| arn.to_lowercase()).collect();
            let (condition, param) =
                self.among_texts("lower(arn)", &format!("${}", params.len() + 1), &lowered);
            params.push(param);
            conditions.push(condition);
        }
        let columns = format!(
            "CAST(id AS BIGINT), arn, {}",
            self.timestamp_text("\"lastUpdated\"")
        );
        let offset = (page - 1).saturating_mul(count);

        let (total, mut principals) = if conditions.is_empty() && filter.regex.is_none() {
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM aws_iam_object")
                .fetch_one(self.pool())
                .await?;
            let page = if count == 0 || offset >= total {
                Vec::new()
            } else {
                sqlx::query(&format!(
                    "SELECT {columns} FROM aws_iam_object ORDER BY id LIMIT $1 OFFSET $2"
                ))
                .bind(count)
                .bind(offset)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(principal_from_row)
                .collect::<Result<_, _>>()?
            };
            (total, page)
        } else {
            // One pass over the matching ids and ARNs, streamed so that memory holds only the
            // matches; the regex is applied here, the same on both databases.
            let where_clause = if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            };
            let sql = format!(
                "SELECT CAST(id AS BIGINT), arn FROM aws_iam_object {where_clause} ORDER BY id"
            );
            let mut query = sqlx::query(&sql);
            for param in &params {
                query = query.bind(param);
            }
            let mut rows = query.fetch(self.pool());
            let mut matched: Vec<i64> = Vec::new();
            while let Some(row) = rows.try_next().await? {
                let arn: Option<String> = row.try_get(1)?;
                if filter
                    .regex
                    .as_ref()
                    .is_none_or(|regex| arn.is_some_and(|arn| regex.is_match(&arn)))
                {
                    matched.push(row.try_get(0)?);
                }
            }
            drop(rows);
            let total = matched.len() as i64;
            let page_ids: Vec<i64> = matched
                .into_iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(usize::try_from(count).unwrap_or(usize::MAX))
                .collect();
            let page = if page_ids.is_empty() {
                Vec::new()
            } else {
                let (matching, list) = self.among_ids("id", "$1", &page_ids);
                sqlx::query(&format!(
                    "SELECT {columns} FROM aws_iam_object WHERE {matching} ORDER BY id"
                ))
                .bind(list)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(principal_from_row)
                .collect::<Result<_, _>>()?
            };
            (total, page)
        };

        if !principals.is_empty() {
            let ids: Vec<i64> = principals.iter().map(|p| p.id).collect();
            let (matching, list) = self.among_ids("item_id", "$1", &ids);
            let sql = format!(
                "SELECT CAST(item_id AS BIGINT), CAST(\"lastAuthenticated\" AS BIGINT), \"serviceName\", \
                 \"serviceNamespace\", \"lastAuthenticatedEntity\", \
                 CAST(\"totalAuthenticatedEntities\" AS BIGINT) \
                 FROM advisor_data WHERE {matching} ORDER BY item_id, id"
            );
            let rows = sqlx::query(&sql).bind(list).fetch_all(self.pool()).await?;
            let position: std::collections::HashMap<i64, usize> =
                ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
            for row in rows {
                let item_id: i64 = row.try_get(0)?;
                let Some(&at) = position.get(&item_id) else {
                    continue;
                };
                principals[at].services.push(StoredService {
                    last_authenticated: row.try_get(1)?,
                    service_name: row.try_get(2)?,
                    service_namespace: row.try_get(3)?,
                    last_authenticated_entity: row.try_get(4)?,
                    total_authenticated_entities: row.try_get(5)?,
                });
            }
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
