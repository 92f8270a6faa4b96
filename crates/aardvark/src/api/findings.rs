//! `/api/1/findings`: unused roles, access keys, passwords and permissions with their status
//! and history (`crate::findings` has the rules), one finding with its evidence (and, for
//! `unused_permission`, its recommendations), counts per account and type, and archiving by
//! hand. Writes need a token: a server without `API_TOKENS` answers them 403, so a read-only
//! deployment stays read-only. Struct fields are declared in sorted order: that is the JSON
//! key order.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use serde::{Deserialize, Serialize};

use super::params::RequestParams;
use super::{json_response, ApiError};
use crate::db::findings::{FindingFilter, FindingStatus, FindingType, StatusChange, StoredFinding};
use crate::db::Reader;
use crate::time::rfc3339_seconds;

/// Whether this server takes writes (it has tokens).
#[derive(Debug, Clone, Copy)]
pub struct Writes {
    pub enabled: bool,
}

/// The longest reason and name a write takes (as the document says).
const MAX_REASON_CHARS: usize = 1000;
const MAX_BY_CHARS: usize = 200;

/// One change of a finding's status.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// Who changed it by hand; `null` for an evaluation.
    actor: Option<String>,
    /// RFC 3339, UTC.
    at: String,
    reason: Option<String>,
    /// The run whose evaluation changed it.
    run_id: Option<i64>,
    status: &'static str,
}

/// A finding.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FindingEntry {
    account: String,
    /// Who archived it by hand.
    archived_by: Option<String>,
    /// What shows the condition: last uses, creation, the key, the window.
    #[schema(value_type = Object)]
    evidence: serde_json::Value,
    /// RFC 3339, UTC.
    first_seen: String,
    /// Every status change, oldest first.
    history: Vec<HistoryEntry>,
    /// Stable across runs: its type and resource.
    id: String,
    last_seen: String,
    /// The role or user.
    principal: String,
    /// Why it has its status (a resolution's cause, an exclusion's rule, a person's reason).
    reason: Option<String>,
    /// The role or user ARN, or the access key id.
    resource: String,
    /// Its data was not collected at the account's latest collection: shown as it was.
    stale: bool,
    /// `active`, `resolved` or `archived`.
    status: &'static str,
    /// `unused_role`, `unused_access_key`, `unused_password` or `unused_permission`.
    #[serde(rename = "type")]
    kind: &'static str,
    updated_at: String,
}

impl From<StoredFinding> for FindingEntry {
    fn from(finding: StoredFinding) -> Self {
        Self {
            account: finding.account,
            archived_by: finding.archived_by,
            evidence: finding.evidence,
            first_seen: rfc3339_seconds(&finding.first_seen),
            history: finding.history.into_iter().map(history_entry).collect(),
            id: finding.id,
            last_seen: rfc3339_seconds(&finding.last_seen),
            principal: finding.principal,
            reason: finding.reason,
            resource: finding.resource,
            stale: finding.stale,
            status: finding.status.as_str(),
            kind: finding.kind.as_str(),
            updated_at: rfc3339_seconds(&finding.updated_at),
        }
    }
}

fn history_entry(change: StatusChange) -> HistoryEntry {
    HistoryEntry {
        actor: change.actor,
        at: rfc3339_seconds(&change.at),
        reason: change.reason,
        run_id: change.run_id,
        status: change.status.as_str(),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FindingsPage {
    count: usize,
    findings: Vec<FindingEntry>,
    page: i64,
    total: i64,
}

/// The filter parameters of `/api/1/findings` (and `report findings`).
pub(crate) fn filter(params: &RequestParams) -> Result<FindingFilter, ApiError> {
    Ok(FindingFilter {
        kind: params.named::<FindingType>("type")?,
        status: params.named::<FindingStatus>("status")?,
        account: params.account()?.map(|id| id.to_string()),
        arn: params.string("arn")?,
    })
}

/// Findings by account, type and resource.
#[utoipa::path(
    get,
    path = "/api/1/findings",
    tag = "findings",
    params(
        ("type" = Option<FindingType>, Query, description = "Only findings of this type"),
        ("status" = Option<FindingStatus>, Query, description = "Only findings with this status"),
        ("account" = Option<String>, Query, pattern = "^[0-9]{12}$", description = "Only this account's findings"),
        ("arn" = Option<String>, Query, description = "Only this principal's findings (any case)"),
        super::declared::ListPaging,
    ),
    responses(
        (status = 200, description = "A page of findings", body = FindingsPage),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn findings(State(reader): State<Reader>, uri: Uri) -> Result<Response, ApiError> {
    let params = RequestParams::of_query(&uri)?;
    let paging = params.list_paging()?;
    let filter = filter(&params)?;
    let (total, findings) = reader
        .database()
        .findings_page(&filter, paging.offset(), paging.count)
        .await?;
    let body = FindingsPage {
        count: findings.len(),
        findings: findings.into_iter().map(FindingEntry::from).collect(),
        page: paging.page,
        total,
    };
    Ok(json_response(StatusCode::OK, &body, 1024 * body.count + 64))
}

fn not_found(id: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no finding has the id {}", super::quoted(id)),
    }
}

/// A finding with, for `unused_permission`, its least-privilege recommendations.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FindingDetail {
    #[serde(flatten)]
    finding: FindingEntry,
    /// The recommendation in force; `null` when there is none (another type, a finding that
    /// no longer holds, policies not collected).
    recommendation: Option<super::recommendations::RecommendationEntry>,
    /// Every recommendation it had, oldest first: what was recommended when.
    recommendation_history: Vec<super::recommendations::RecommendationEntry>,
}

/// One finding with its evidence and history.
#[utoipa::path(
    get,
    path = "/api/1/findings/{id}",
    tag = "findings",
    params(("id" = String, Path, description = "The finding's id")),
    responses(
        (status = 200, description = "The finding", body = FindingDetail),
        (status = 404, description = "No finding has this id", body = super::ErrorBody),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn finding(
    State(reader): State<Reader>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let db = reader.database();
    let finding = db.finding(&id).await?.ok_or_else(|| not_found(&id))?;
    let recommendation_history = db
        .recommendations_of(&finding.account, &finding.principal, &id)
        .await?
        .into_iter()
        .map(super::recommendations::RecommendationEntry::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let detail = FindingDetail {
        finding: FindingEntry::from(finding),
        recommendation: recommendation_history
            .iter()
            .rfind(|entry| entry.current)
            .cloned(),
        recommendation_history,
    };
    Ok(json_response(StatusCode::OK, &detail, 4096))
}

/// One account's findings of one type, by status.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SummaryEntry {
    account: String,
    active: i64,
    archived: i64,
    resolved: i64,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FindingsSummary {
    /// Per account and type, by account then type.
    accounts: Vec<SummaryEntry>,
    /// Per type over every account: `{type: {status: count}}`.
    #[schema(value_type = Object)]
    totals: BTreeMap<&'static str, BTreeMap<&'static str, i64>>,
}

/// Findings per account and type, counted by status.
#[utoipa::path(
    get,
    path = "/api/1/findings/summary",
    tag = "findings",
    responses(
        (status = 200, description = "Counts per account and type", body = FindingsSummary),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn summary(State(reader): State<Reader>) -> Result<Response, ApiError> {
    let counts = reader.database().finding_counts().await?;
    let mut totals: BTreeMap<&'static str, BTreeMap<&'static str, i64>> = FindingType::ALL
        .iter()
        .map(|kind| {
            let by_status = [
                FindingStatus::Active,
                FindingStatus::Resolved,
                FindingStatus::Archived,
            ]
            .iter()
            .map(|status| (status.as_str(), 0))
            .collect();
            (kind.as_str(), by_status)
        })
        .collect();
    let accounts: Vec<SummaryEntry> = counts
        .into_iter()
        .map(|((account, kind), by_status)| {
            let of = |status: FindingStatus| by_status.get(&status).copied().unwrap_or(0);
            for (status, count) in &by_status {
                *totals
                    .entry(kind.as_str())
                    .or_default()
                    .entry(status.as_str())
                    .or_default() += count;
            }
            SummaryEntry {
                account,
                active: of(FindingStatus::Active),
                archived: of(FindingStatus::Archived),
                resolved: of(FindingStatus::Resolved),
                kind: kind.as_str(),
            }
        })
        .collect();
    let body = FindingsSummary { accounts, totals };
    Ok(json_response(
        StatusCode::OK,
        &body,
        128 * body.accounts.len() + 256,
    ))
}

/// What archiving or unarchiving by hand takes.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ArchiveRequest {
    /// Why (kept in the finding's history).
    #[schema(min_length = 1, max_length = 1000)]
    reason: String,
    /// Who (kept as the finding's `archived_by`); default `api`.
    #[serde(default)]
    #[schema(max_length = 200)]
    by: Option<String>,
}

async fn set_archived(
    reader: Reader,
    writes: Writes,
    id: String,
    body: Bytes,
    archive: bool,
) -> Result<Response, ApiError> {
    if !writes.enabled {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: "this server takes no writes: it has no API_TOKENS (set API_TOKENS to archive findings)".into(),
        });
    }
    let request: ArchiveRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"reason\": \"...\", \"by\": \"...\"}}: {err}"
        ))
    })?;
    let reason = request.reason.as_str();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::bad_request(format!(
            "'reason' must be 1 to {MAX_REASON_CHARS} characters"
        )));
    }
    let by = request
        .by
        .as_deref()
        .filter(|by| !by.is_empty())
        .unwrap_or("api");
    if by.chars().count() > MAX_BY_CHARS {
        return Err(ApiError::bad_request(format!(
            "'by' must be at most {MAX_BY_CHARS} characters"
        )));
    }
    let finding = reader
        .database()
        .set_finding_archived(&id, archive, reason, by)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(json_response(
        StatusCode::OK,
        &FindingEntry::from(finding),
        2048,
    ))
}

/// Why a write by hand is refused, as the document says it for both writes.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // read by the document only: `set_archived` answers them
pub enum WriteRefused {
    #[response(status = 400, description = "The body is not a reason")]
    BadBody(super::ErrorBody),
    #[response(
        status = 403,
        description = "The server has no API_TOKENS: it takes no writes"
    )]
    ReadOnly(super::ErrorBody),
    #[response(status = 404, description = "No finding has this id")]
    Unknown(super::ErrorBody),
}

/// Archives a finding by hand, with why (and who); it stays archived until unarchived.
#[utoipa::path(
    post,
    path = "/api/1/findings/{id}/archive",
    tag = "findings",
    params(("id" = String, Path, description = "The finding's id")),
    request_body = ArchiveRequest,
    responses(
        (status = 200, description = "The finding, archived", body = FindingEntry),
        WriteRefused,
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn archive(
    State(reader): State<Reader>,
    Extension(writes): Extension<Writes>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    set_archived(reader, writes, id, body, true).await
}

/// Makes an archived finding active again (the next evaluation resolves it if its condition
/// no longer holds).
#[utoipa::path(
    post,
    path = "/api/1/findings/{id}/unarchive",
    tag = "findings",
    params(("id" = String, Path, description = "The finding's id")),
    request_body = ArchiveRequest,
    responses(
        (status = 200, description = "The finding, active", body = FindingEntry),
        WriteRefused,
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn unarchive(
    State(reader): State<Reader>,
    Extension(writes): Extension<Writes>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    set_archived(reader, writes, id, body, false).await
}
