//! `/api/1/advisors`: Access Advisor data per principal, filtered and paginated, or combined
//! per service namespace, in exactly upstream 0.3.5's JSON shape.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::params::{schema, Paging, RequestParams};
use super::wire::ServiceEntry;
use super::{json_response, json_text_response, ApiError};
use crate::db::read::AdvisorFilter;
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
        ("regex" = Option<String>, Query, description = "Regular expression matched at the start of the ARN"),
        ("arn" = Option<Vec<String>>, Query, description = "Exact ARN, case-insensitive; repeatable"),
        ("combine" = Option<String>, Query, description = "`true` to combine matched principals per service namespace"),
    ),
    request_body(content = AdvisorsBody, content_type = "application/json", description = "Optional: the parameters as a JSON object (which wins over the query string for single values)"),
    responses(
        (status = 200, description = "`count`, `page`, `total`, and each principal's ARN mapped to its services; with combine=true, each namespace mapped to a CombinedEntry"),
        (status = 400, description = "A parameter is invalid, the page is past the last one, or combine=true with a count below the matches", body = super::ErrorBody),
        (status = 503, description = "The database cannot be reached", body = super::ErrorBody),
    )
)]
pub async fn advisors(
    State(db): State<Reader>,
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
        Some(pattern) => {
            let invalid = |err: regex::Error| {
                ApiError::bad_request(format!(
                    "invalid value for 'regex': {pattern:?} is not a supported regular expression: {}",
                    regex_error_text(&err)
                ))
            };
            // Checked alone first, so that the anchoring group cannot change its meaning;
            // anchored at the start only, like Python's re.match.
            regex::Regex::new(&pattern).map_err(invalid)?;
            Some(regex::Regex::new(&format!(r"\A(?:{pattern})")).map_err(invalid)?)
        }
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

    let result = db.rendered_advisors(&filter, page, count).await?;
    let principals = result.principals()?;
    check_page_exists(page, count, result.total, principals.len())?;
    if combine {
        if result.total > principals.len() as i64 {
            return Err(ApiError::bad_request(format!(
                "Error: Please specify a count of at least {}.",
                result.total
            )));
        }
        // Combined from the renderings, which hold every field of the answer (lastUpdated
        // already in RFC 1123), borrowing from the page as the database sent it.
        let services = principals
            .iter()
            .map(|principal| serde_json::from_str::<Vec<ServiceEntry>>(&principal.services))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| {
                DbError::Sql(sqlx::Error::Decode(
                    format!("a principal's kept rendering: {err}").into(),
                ))
            })?;
        return Ok(json_response(
            StatusCode::OK,
            &combined(services.into_iter().flatten(), Utc::now()),
            result.text_len(),
        ));
    }
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

/// Per namespace, the entry with the newest use among the principals' `services` (given in
/// principal order; the first on ties), with the principals' entity counts summed.
fn combined<'a>(
    services: impl Iterator<Item = ServiceEntry<'a>>,
    now: DateTime<Utc>,
) -> BTreeMap<Cow<'a, str>, CombinedEntry<'a>> {
    let recent_since = (now - chrono::Duration::days(RECENT_USE_DAYS)).timestamp_millis();
    let mut usage: BTreeMap<Cow<'a, str>, CombinedEntry> = BTreeMap::new();
    for candidate in services {
        let Some(namespace) = candidate.service_namespace.clone() else {
            continue;
        };
        match usage.get_mut(&namespace) {
            None => {
                usage.insert(
                    namespace,
                    CombinedEntry {
                        used_last_90_days: false,
                        entry: candidate,
                    },
                );
            }
            Some(best) => {
                let total = best.entry.total_authenticated_entities.unwrap_or(0)
                    + candidate.total_authenticated_entities.unwrap_or(0);
                if candidate.last_authenticated.unwrap_or(0)
                    > best.entry.last_authenticated.unwrap_or(0)
                {
                    best.entry = candidate;
                }
                best.entry.total_authenticated_entities = Some(total);
            }
        }
    }
    for entry in usage.values_mut() {
        entry.used_last_90_days = entry
            .entry
            .last_authenticated
            .is_some_and(|ms| ms > recent_since);
    }
    usage
}

/// The regex crate's message without its multi-line pattern excerpt.
fn regex_error_text(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .rev()
        .find(|line| line.starts_with("error:"))
        .map(|line| line.trim_start_matches("error:").trim().to_owned())
        .unwrap_or(text)
}
