//! `/api/1/advisors`: Access Advisor data per principal, filtered and paginated, or combined
//! per service namespace, in exactly upstream 0.3.5's JSON shape.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use chrono::Utc;
use serde::Serialize;
use serde_json::value::RawValue;

use super::costly::{self, Costly};
use super::params::{schema, Paging, RequestParams};
use super::wire::{Digest, DigestEntry, ServiceEntry};
use super::{json_response, json_text_response, ApiError};
use crate::db::rendered::Kept;
use crate::db::vocabulary::AdvisorFilter;
use crate::db::vocabulary::PageTexts;
use crate::db::{DbError, Reader};

/// What "recently used" means in combined answers.
const RECENT_USE_DAYS: i64 = 90;

/// Parameters, when sent as a JSON body (an object; other keys are ignored), each read the way
/// upstream's parser read it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the body; the handler reads it field by field
pub struct AdvisorsBody {
    /// Page number, from 1 (default 1).
    #[schema(schema_with = page_in_json)]
    page: Option<i64>,
    /// Principals per page (default 30).
    #[schema(schema_with = count_in_json)]
    count: Option<i64>,
    /// Case-insensitive substring of the ARN, e.g. an account id.
    #[schema(schema_with = schema::json_string)]
    phrase: Option<String>,
    /// Regular expression matched at the start of the ARN.
    #[schema(schema_with = schema::json_string)]
    regex: Option<String>,
    /// Exact ARNs (case-insensitive), a list or one string.
    #[schema(schema_with = schema::json_arns)]
    arn: Option<Vec<String>>,
    /// `true` (any case) to combine all matched principals per service namespace.
    #[schema(schema_with = schema::json_string)]
    combine: Option<String>,
}

fn page_in_json() -> utoipa::openapi::schema::Schema {
    schema::json_integer(1)
}

fn count_in_json() -> utoipa::openapi::schema::Schema {
    schema::json_integer(0)
}

/// One namespace of a combined answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CombinedEntry<'a> {
    #[serde(rename = "USED_LAST_90_DAYS")]
    used_last_90_days: bool,
    #[serde(flatten)]
    entry: ServiceEntry<'a>,
}

/// A combined entry, from a rendering read whole or from a digest (the same keys in the same
/// order).
#[derive(Serialize)]
#[serde(untagged)]
enum Combined<'a> {
    Rendered(CombinedEntry<'a>),
    Digested(DigestedEntry<'a>),
}

/// A combined entry made from a digest, its texts copied as the digest holds them (JSON).
#[derive(Serialize)]
struct DigestedEntry<'a> {
    #[serde(rename = "USED_LAST_90_DAYS")]
    used_last_90_days: bool,
    #[serde(rename = "lastAuthenticated")]
    last_authenticated: Option<i64>,
    #[serde(rename = "lastAuthenticatedEntity")]
    last_authenticated_entity: &'a RawValue,
    #[serde(rename = "lastUpdated")]
    last_updated: &'a RawValue,
    #[serde(rename = "serviceName")]
    service_name: &'a RawValue,
    #[serde(rename = "serviceNamespace")]
    service_namespace: &'a RawValue,
    #[serde(rename = "totalAuthenticatedEntities")]
    total_authenticated_entities: Option<i64>,
}

/// Access Advisor data per principal.
///
/// Parameters come from the query string, a form body or a JSON body (which wins for single
/// values; `arn` values from all of them are merged).
#[utoipa::path(
    method(get, post),
    path = "/api/1/advisors",
    tag = "advisors",
    params(
        ("page" = Option<i64>, Query, minimum = 1, maximum = 9223372036854775807_i64, description = "Page number, from 1 (default 1)"),
        ("count" = Option<i64>, Query, minimum = 0, maximum = 9223372036854775807_i64, description = "Principals per page (default 30)"),
        ("phrase" = Option<String>, Query, description = "Case-insensitive substring of the ARN"),
        ("regex" = Option<String>, Query, description = "Regular expression matched at the start of the ARN (at most 1024 bytes; a JSON body's `regex`, even null, takes its place)"),
        ("arn" = Option<Vec<String>>, Query, description = "Exact ARN, case-insensitive; repeatable"),
        ("combine" = Option<String>, Query, description = "`true` to combine matched principals per service namespace"),
    ),
    request_body(content = AdvisorsBody, content_type = "application/json", description = "Optional: the parameters as a JSON object (which wins over the query string for single values)"),
    responses(
        (status = 200, description = "`count`, `page`, `total`, and each principal's ARN mapped to its services; with combine=true, each namespace mapped to a CombinedEntry"),
        (status = 400, description = "A parameter is invalid, the page is past the last one, or combine=true with a count below the matches", body = super::ErrorBody),
        (status = 503, description = "The database cannot be reached, or too many costly queries (regex, combine, count over 1000) are waiting", body = super::ErrorBody),
    )
)]
pub async fn advisors(
    State(db): State<Reader>,
    Extension(costly): Extension<Arc<Costly>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let params = RequestParams::parse(uri.query(), content_type, &body)?;
    let Paging { page, count } = params.paging(None)?;
    let regex = match params.string("regex")? {
        Some(pattern) => Some(costly.pattern(&pattern).await?),
        None => None,
    };
    let filter = AdvisorFilter {
        phrase: params.string("phrase")?,
        arns: params.arns()?,
        regex,
    };
    let combine = params
        .string("combine")?
        .is_some_and(|value| value.eq_ignore_ascii_case("true"));
    // Held until the answer is written.
    let _turn = match filter.regex.is_some() || combine || count > costly::LARGE_COUNT {
        true => Some(costly.turn().await?),
        false => None,
    };

    if combine {
        return combined_answer(&db, &filter, page, count).await;
    }
    let result = db
        .rendered_advisors(&filter, page, count, PageTexts::Renderings)
        .await?;
    let principals = result.principals()?;
    check_page_exists(page, count, result.total, principals.len())?;
    let numbers = [
        ("count", principals.len() as i64),
        ("page", page),
        ("total", result.total),
    ];
    // Keys in sorted order, as upstream's JSON has them; a later principal under the same
    // key (only the empty ARN can repeat) replaces an earlier one, as in a dict.
    let mut keys: BTreeMap<&str, PageValue> = BTreeMap::new();
    keys.extend(numbers.map(|(key, number)| (key, PageValue::Number(number))));
    keys.extend(principals.iter().map(|principal| {
        let services = PageValue::Json(principal.services.as_ref());
        (principal.arn, services)
    }));
    let mut text = Vec::with_capacity(64 + result.text_len());
    text.push(b'{');
    for (at, (key, value)) in keys.into_iter().enumerate() {
        if at > 0 {
            text.push(b',');
        }
        serde_json::to_writer(&mut text, key).expect("a string always serializes");
        text.push(b':');
        match value {
            PageValue::Number(number) => text.extend_from_slice(number.to_string().as_bytes()),
            PageValue::Json(json) => text.extend_from_slice(json.as_bytes()),
        }
    }
    text.extend_from_slice(b"}\n");
    Ok(json_text_response(StatusCode::OK, text))
}

/// A value at the top level of a page: `count`, `page` or `total`, or a principal's services
/// as JSON already written.
enum PageValue<'a> {
    Number(i64),
    Json(&'a str),
}

/// An empty page is an error unless it is the first one.
fn check_page_exists(page: i64, count: i64, total: i64, found: usize) -> Result<(), ApiError> {
    if found > 0 || page == 1 {
        return Ok(());
    }
    let last_page = if count == 0 {
        1
    } else {
        ((total + count - 1) / count).max(1)
    };
    Err(ApiError::bad_request(format!(
        "invalid value for 'page': {page} is past the last page ({last_page}) of {total} principals at count={count}"
    )))
}

/// The combined answer for the principals `filter` matches, who must all be on page `page` of
/// `count`: from their kept digests, or their renderings for principals without one.
async fn combined_answer(
    db: &Reader,
    filter: &AdvisorFilter,
    page: i64,
    count: i64,
) -> Result<Response, ApiError> {
    let recent_since = (Utc::now() - chrono::Duration::days(RECENT_USE_DAYS)).timestamp_millis();
    let result = db
        .rendered_advisors(filter, page, count, PageTexts::Digests)
        .await?;
    let principals = result.entries()?;
    check_page_exists(page, count, result.total, principals.len())?;
    if result.total > principals.len() as i64 {
        return Err(ApiError::bad_request(format!(
            "Error: Please specify a count of at least {}.",
            result.total
        )));
    }
    let mut newest = Newest::default();
    for (id, _, kept) in &principals {
        newest.offer_kept(*id, kept)?;
    }
    let answer: BTreeMap<_, _> = newest
        .0
        .into_iter()
        .map(|(namespace, held)| {
            let used = held.last_authenticated.is_some_and(|ms| ms > recent_since);
            let entry = match held.source {
                Source::Entry(mut entry) => {
                    entry.total_authenticated_entities = held.total;
                    Combined::Rendered(CombinedEntry {
                        used_last_90_days: used,
                        entry,
                    })
                }
                Source::Digest(last_updated, entry) => Combined::Digested(DigestedEntry {
                    used_last_90_days: used,
                    last_authenticated: entry.last_authenticated,
                    last_authenticated_entity: entry.last_authenticated_entity,
                    last_updated,
                    service_name: entry.service_name,
                    service_namespace: entry.service_namespace,
                    total_authenticated_entities: held.total,
                }),
            };
            (namespace, entry)
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &answer,
        320 * answer.len() + 2,
    ))
}

/// Where a candidate's entry comes from: a rendering read whole, or a digest.
enum Source<'a> {
    Entry(ServiceEntry<'a>),
    Digest(&'a RawValue, DigestEntry<'a>),
}

/// One service of one principal, as combining sees it.
struct Candidate<'a> {
    last_authenticated: Option<i64>,
    total: Option<i64>,
    source: Source<'a>,
}

/// Per namespace, the candidate with the newest use (offered in principal order; the first on
/// ties), holding the entity counts of all of them summed (a lone candidate keeps its own).
#[derive(Default)]
struct Newest<'a>(HashMap<Cow<'a, str>, Candidate<'a>, foldhash::fast::RandomState>);

impl<'a> Newest<'a> {
    /// Offers each service of one principal's kept digest or rendering.
    fn offer_kept(&mut self, id: i64, kept: &'a Kept<'a>) -> Result<(), DbError> {
        match kept {
            Kept::Digest(text) => {
                let undecodable =
                    |err| DbError::undecodable(format!("principal {id}'s kept digest: {err}"));
                let digest: Digest = serde_json::from_str(text).map_err(undecodable)?;
                for entry in digest.entries {
                    self.offer(
                        entry.namespace().map_err(undecodable)?,
                        Candidate {
                            last_authenticated: entry.last_authenticated,
                            total: entry.total_authenticated_entities,
                            source: Source::Digest(digest.last_updated, entry),
                        },
                    );
                }
            }
            Kept::Rendering(services) => {
                let entries: Vec<ServiceEntry> = serde_json::from_str(services).map_err(|err| {
                    DbError::undecodable(format!("principal {id}'s kept rendering: {err}"))
                })?;
                for entry in entries {
                    let Some(namespace) = entry.service_namespace.clone() else {
                        continue;
                    };
                    self.offer(
                        namespace,
                        Candidate {
                            last_authenticated: entry.last_authenticated,
                            total: entry.total_authenticated_entities,
                            source: Source::Entry(entry),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    fn offer(&mut self, namespace: Cow<'a, str>, candidate: Candidate<'a>) {
        match self.0.entry(namespace) {
            Entry::Vacant(vacant) => {
                vacant.insert(candidate);
            }
            Entry::Occupied(mut occupied) => {
                let held = occupied.get_mut();
                let total = held
                    .total
                    .unwrap_or(0)
                    .saturating_add(candidate.total.unwrap_or(0));
                if candidate.last_authenticated.unwrap_or(0) > held.last_authenticated.unwrap_or(0)
                {
                    *held = candidate;
                }
                held.total = Some(total);
            }
        }
    }
}
