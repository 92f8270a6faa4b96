//! `/api/1/recommendations`: the least-privilege recommendations in force (`crate::recommend`
//! makes them at each evaluation of findings), of one principal or account, paged. Struct
//! fields are declared in sorted order: that is the JSON key order.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;

use super::params::RequestParams;
use super::{json_response, ApiError};
use crate::db::recommendations::StoredRecommendation;
use crate::db::{DbError, Reader};
use crate::recommend::Recommendation;
use crate::time::rfc3339_seconds;

/// A recommendation as an evaluation made it.
#[derive(Serialize, Clone, utoipa::ToSchema)]
pub struct RecommendationEntry {
    account: String,
    /// RFC 3339, UTC: the evaluation that made it.
    computed_at: String,
    /// In force: the latest of a finding that holds.
    pub(super) current: bool,
    /// The `unused_permission` finding it answers.
    finding_id: String,
    #[serde(flatten)]
    recommendation: Recommendation,
    /// The run whose evaluation made it.
    run_id: Option<i64>,
}

impl TryFrom<StoredRecommendation> for RecommendationEntry {
    type Error = DbError;

    fn try_from(stored: StoredRecommendation) -> Result<Self, DbError> {
        Ok(Self {
            account: stored.account,
            computed_at: rfc3339_seconds(&stored.computed_at),
            current: stored.current,
            finding_id: stored.finding_id,
            recommendation: serde_json::from_value(stored.body)
                .map_err(|err| DbError::undecodable(format!("a stored recommendation: {err}")))?,
            run_id: stored.run_id,
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RecommendationsPage {
    count: usize,
    page: i64,
    recommendations: Vec<RecommendationEntry>,
    total: i64,
}

/// Least-privilege recommendations in force, by account and principal.
#[utoipa::path(
    get,
    path = "/api/1/recommendations",
    tag = "findings",
    params(
        ("arn" = Option<String>, Query, description = "Only this role's or user's (any case)"),
        ("account" = Option<String>, Query, pattern = "^[0-9]{12}$", description = "Only this account's"),
        super::declared::ListPaging,
    ),
    responses(
        (status = 200, description = "A page of recommendations", body = RecommendationsPage),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn recommendations(State(reader): State<Reader>, uri: Uri) -> Result<Response, ApiError> {
    let params = RequestParams::of_query(&uri)?;
    let paging = params.list_paging()?;
    let account = params.account()?.map(|id| id.to_string());
    let arn = params.string("arn")?;
    let (total, page) = reader
        .database()
        .recommendations_page(
            account.as_deref(),
            arn.as_deref(),
            paging.offset(),
            paging.count,
        )
        .await?;
    let recommendations = page
        .into_iter()
        .map(RecommendationEntry::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let body = RecommendationsPage {
        count: recommendations.len(),
        page: paging.page,
        recommendations,
        total,
    };
    Ok(json_response(StatusCode::OK, &body, 4096 * body.count + 64))
}
