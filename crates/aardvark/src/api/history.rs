//! `GET /api/1/history`: how a principal's last uses changed, collection by collection, oldest
//! first, so that "since when has this role not used S3" has an answer after AWS's own
//! window has moved on. Struct fields are declared in sorted order: that is the JSON key order.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;

use super::params::RequestParams;
use super::{json_response, ApiError};
use crate::db::history::HistoryEntry;
use crate::db::Reader;
use crate::time::rfc3339_seconds_from_millis;

/// One change of a service's last use, as a collection saw it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Change {
    /// The new last use: epoch milliseconds, 0 once it aged out of AWS's window.
    #[serde(rename = "lastAuthenticated")]
    last_authenticated: i64,
    /// When the collection saw it (RFC 3339, UTC).
    observed: String,
    /// The last use stored before; `null` for the first value seen.
    previous: Option<i64>,
    /// The run that saw it; `null` for values stored before history was kept, or written
    /// outside a run.
    run: Option<i64>,
    #[serde(rename = "serviceNamespace")]
    service_namespace: String,
}

impl From<HistoryEntry> for Change {
    fn from(entry: HistoryEntry) -> Self {
        Self {
            last_authenticated: entry.last_authenticated,
            observed: rfc3339_seconds_from_millis(entry.observed_ms).unwrap_or_default(),
            previous: entry.previous,
            run: entry.run_id,
            service_namespace: entry.namespace,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    changes: Vec<Change>,
    count: usize,
    page: i64,
    total: i64,
}

/// A principal's changes of last use, oldest first.
#[utoipa::path(
    get,
    path = "/api/1/history",
    tag = "operations",
    params(
        ("arn" = String, Query, min_length = 1, description = "The principal's ARN (any case)"),
        ("namespace" = Option<String>, Query, description = "Only this service namespace (`s3`, `ec2`, ...)"),
        super::declared::ListPaging,
    ),
    responses(
        (status = 200, description = "A page of changes", body = HistoryPage),
        (status = 400, description = "A parameter is missing or invalid", body = super::ErrorBody),
        (status = 404, description = "No principal with this ARN is stored", body = super::ErrorBody),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn history(State(reader): State<Reader>, uri: Uri) -> Result<Response, ApiError> {
    let params = RequestParams::of_query(&uri)?;
    let paging = params.list_paging()?;
    let arn = params
        .string("arn")?
        .filter(|arn| !arn.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing parameter 'arn': the principal's ARN"))?;
    let namespace = params.string("namespace")?;
    let Some(page) = reader
        .database()
        .history(&arn, namespace.as_deref(), paging.offset(), paging.count)
        .await?
    else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no principal with ARN {} is stored", super::quoted(&arn)),
        });
    };
    let body = HistoryPage {
        count: page.changes.len(),
        changes: page.changes.into_iter().map(Change::from).collect(),
        page: paging.page,
        total: page.total,
    };
    Ok(json_response(StatusCode::OK, &body, 128 * body.count + 64))
}
