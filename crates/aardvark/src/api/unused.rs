//! Unused access and action-level data: `GET /api/1/unused` (each principal's used and unused
//! services in a window), `GET /api/1/unused/accounts` (the totals an auditor asks for, per
//! account) and `GET /api/1/actions` (tracked actions with their last access). The rules are
//! in `crate::unused`. Struct fields are declared in sorted order: that is the JSON key order.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;

use super::params::RequestParams;
use super::{json_response, ApiError};
use crate::db::usage::AccountUnused;
use crate::db::Reader;
use crate::unused::{self, PrincipalKind, PrincipalUnused, Selection, DEFAULT_DAYS, MAX_DAYS};

#[derive(Serialize, utoipa::ToSchema)]
pub struct UnusedPage {
    count: usize,
    /// The window, in days.
    days: i64,
    page: i64,
    /// In id order.
    principals: Vec<PrincipalUnused>,
    total: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UnusedAccountsPage {
    accounts: Vec<AccountUnused>,
    count: usize,
    days: i64,
    page: i64,
    total: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActionEntry {
    action: String,
    /// The entity (user or role) that last accessed it.
    entity: Option<String>,
    /// Epoch milliseconds; 0 when not accessed in AWS's tracking window.
    #[serde(rename = "lastAccessed")]
    last_accessed: i64,
    region: Option<String>,
    #[serde(rename = "serviceNamespace")]
    service_namespace: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PrincipalActions {
    /// By namespace, then action; empty for principals collected at service level.
    actions: Vec<ActionEntry>,
    arn: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActionsPage {
    count: usize,
    page: i64,
    principals: Vec<PrincipalActions>,
    total: i64,
}

/// The selection parameters: `account`, `phrase`, `arn` and (where `with_kind`) `kind`.
fn selection(params: &RequestParams, with_kind: bool) -> Result<Selection, ApiError> {
    let account = params.account()?;
    let kind = if with_kind {
        params.named::<PrincipalKind>("kind")?
    } else {
        None
    };
    Ok(Selection {
        account,
        phrase: params.string("phrase")?.filter(|phrase| !phrase.is_empty()),
        arn: params.string("arn")?,
        kind,
    })
}

fn days(params: &RequestParams) -> Result<i64, ApiError> {
    params.integer_in("days", DEFAULT_DAYS, 1, MAX_DAYS)
}

/// Each principal's used and unused services in the window.
#[utoipa::path(
    get,
    path = "/api/1/unused",
    tag = "unused access",
    params(
        ("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "The window: the last N days (default 90). A service is used when its last use is inside it"),
        ("account" = Option<String>, Query, pattern = "^[0-9]{12}$", description = "Only this account's principals"),
        ("phrase" = Option<String>, Query, description = "Case-insensitive substring of the ARN"),
        ("arn" = Option<String>, Query, description = "Only this principal (any case)"),
        ("kind" = Option<PrincipalKind>, Query, description = "Only principals of this kind"),
        ("status" = Option<UnusedStatus>, Query, description = "Only the principals one of `/api/1/unused/accounts`'s counts counts: `unused`, `with_unused_services` or `too_new`"),
        super::declared::ListPaging,
    ),
    responses(
        (status = 200, description = "A page of principals", body = UnusedPage),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn unused(State(reader): State<Reader>, uri: Uri) -> Result<Response, ApiError> {
    let params = RequestParams::of_query(&uri)?;
    let paging = params.list_paging()?;
    let days = days(&params)?;
    let selection = selection(&params, true)?;
    let status = params.named::<UnusedStatus>("status")?;
    let filter = selection.filter();
    let since = unused::window_start(chrono::Utc::now().timestamp_millis(), days);
    let (total, principals) = match status {
        None => {
            let (total, principals) = reader
                .unused_page(&filter, paging.page, paging.count)
                .await?;
            let principals: Vec<PrincipalUnused> = principals
                .into_iter()
                .map(|principal| unused::assess(principal, since))
                .collect();
            (total, principals)
        }
        // Counted as the totals count, over the whole account, then paged.
        Some(status) => {
            let (_, principals) = reader.unused_page(&filter, 1, i64::MAX).await?;
            let matching: Vec<PrincipalUnused> = principals
                .into_iter()
                .map(|principal| unused::assess(principal, since))
                .filter(|principal| status.counts(principal))
                .collect();
            (matching.len() as i64, paging.page_of(matching))
        }
    };
    let body = UnusedPage {
        count: principals.len(),
        days,
        page: paging.page,
        principals,
        total,
    };
    Ok(json_response(StatusCode::OK, &body, 2048 * body.count + 64))
}

/// Which of `/api/1/unused/accounts`'s counts a principal is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum UnusedStatus {
    Unused,
    WithUnusedServices,
    TooNew,
}

crate::named::named!(UnusedStatus {
    Unused => "unused",
    WithUnusedServices => "with_unused_services",
    TooNew => "too_new",
});

impl UnusedStatus {
    /// Whether the totals count `principal` under this status (too new ones only as such).
    fn counts(self, principal: &PrincipalUnused) -> bool {
        match self {
            Self::TooNew => principal.too_new,
            Self::Unused => !principal.too_new && principal.unused_principal,
            Self::WithUnusedServices => !principal.too_new && !principal.unused.is_empty(),
        }
    }
}

/// How `/api/1/unused/accounts` orders its accounts (a stable sort: ties stay in id order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum UnusedSort {
    Account,
    Unused,
    WithUnusedServices,
    Principals,
}

crate::named::named!(UnusedSort {
    Account => "account",
    Unused => "unused",
    WithUnusedServices => "with_unused_services",
    Principals => "principals",
});

/// Per account: principals unused and principals with unused services in the window.
#[utoipa::path(
    get,
    path = "/api/1/unused/accounts",
    tag = "unused access",
    params(
        ("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "The window: the last N days (default 90)"),
        ("account" = Option<String>, Query, pattern = "^[0-9]{12}$", description = "Only this account"),
        ("kind" = Option<PrincipalKind>, Query, description = "Count only principals of this kind"),
        ("sort" = Option<UnusedSort>, Query, description = "Order of the accounts: by id (default), or most first by `unused` principals, principals `with_unused_services`, or `principals`"),
        super::declared::ListPaging,
    ),
    responses(
        (status = 200, description = "A page of accounts, by id unless sorted otherwise", body = UnusedAccountsPage),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn unused_accounts(State(reader): State<Reader>, uri: Uri) -> Result<Response, ApiError> {
    let params = RequestParams::of_query(&uri)?;
    let paging = params.list_paging()?;
    let days = days(&params)?;
    let selection = selection(&params, true)?;
    let sort = params
        .named::<UnusedSort>("sort")?
        .unwrap_or(UnusedSort::Account);
    let since = unused::window_start(chrono::Utc::now().timestamp_millis(), days);
    let totals = reader.kept_uses().await?.totals(
        since,
        selection.account.as_deref(),
        selection.kind.map(|kind| kind.as_str()),
    );
    let mut totals = totals;
    match sort {
        UnusedSort::Account => {}
        UnusedSort::Unused => totals.sort_by_key(|t| std::cmp::Reverse(t.unused)),
        UnusedSort::WithUnusedServices => {
            totals.sort_by_key(|t| std::cmp::Reverse(t.with_unused_services))
        }
        UnusedSort::Principals => totals.sort_by_key(|t| std::cmp::Reverse(t.principals)),
    }
    let total = totals.len() as i64;
    let accounts = paging.page_of(totals);
    let body = UnusedAccountsPage {
        count: accounts.len(),
        accounts,
        days,
        page: paging.page,
        total,
    };
    Ok(json_response(StatusCode::OK, &body, 128 * body.count + 64))
}

/// Tracked actions with their last access, per principal.
#[utoipa::path(
    get,
    path = "/api/1/actions",
    tag = "unused access",
    params(
        ("arn" = Option<String>, Query, description = "Only this principal (any case)"),
        ("account" = Option<String>, Query, pattern = "^[0-9]{12}$", description = "Only this account's principals"),
        ("phrase" = Option<String>, Query, description = "Case-insensitive substring of the ARN"),
        super::declared::ListPaging,
    ),
    responses(
        (status = 200, description = "A page of principals, in id order", body = ActionsPage),
        (status = 400, description = "A parameter is invalid", body = super::ErrorBody),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn actions(State(reader): State<Reader>, uri: Uri) -> Result<Response, ApiError> {
    let params = RequestParams::of_query(&uri)?;
    let paging = params.list_paging()?;
    let filter = selection(&params, false)?.filter();
    let (total, principals) = reader
        .actions_page(&filter, paging.page, paging.count)
        .await?;
    let principals: Vec<PrincipalActions> = principals
        .into_iter()
        .map(|(arn, actions)| PrincipalActions {
            actions: actions
                .into_iter()
                .map(|action| ActionEntry {
                    action: action.action,
                    entity: action.entity,
                    last_accessed: action.last_accessed,
                    region: action.region,
                    service_namespace: action.namespace,
                })
                .collect(),
            arn,
        })
        .collect();
    let body = ActionsPage {
        count: principals.len(),
        page: paging.page,
        principals,
        total,
    };
    Ok(json_response(StatusCode::OK, &body, 1024 * body.count + 64))
}
