//! Every fault the scenario can inject, decided in one place: the transport faults an IAM
//! call meets before it is answered (latency, throttling by token bucket, dropped connections,
//! 5xx bursts), AssumeRole denials, denied listings, and how a principal's jobs end. The
//! services ask here and shape the answer.

use std::time::Duration;

use axum::http::StatusCode;

use crate::identity::IdentityCall;
use crate::reply::Reply;
use crate::scenario::{AssumeRoleFault, PrincipalKind, ResolvedPrincipal};
use crate::state::{AccountState, ReportState, SimState};
use crate::xml;

/// Marker payload of the unwind that drops a connection without an answer.
struct DroppedConnection;

/// The faults an IAM call in `account` meets, in a fixed order: latency, the token bucket,
/// a dropped connection, a 5xx. `Err` is the answer instead of the call's; a dropped
/// connection unwinds and never returns.
pub(crate) async fn before_iam_call(
    state: &SimState,
    account: &AccountState,
    request_id: &str,
) -> Result<(), Reply> {
    let faults = &account.account.faults;
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if let (Some(bucket), Some(limit)) = (&account.bucket, faults.rate_limit) {
        if !bucket.lock().unwrap().take(limit) {
            return Err(throttled(state, account, request_id));
        }
    }
    let n = account
        .counters
        .iam_calls
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    if faults.throttles.is_some_and(|burst| burst.hits(n)) {
        return Err(throttled(state, account, request_id));
    }
    if faults
        .dropped_connections
        .is_some_and(|burst| burst.hits(n))
    {
        // Unwinding without the panic hook ends this connection's task: the socket closes with
        // no answer, as a dropped connection would.
        std::panic::resume_unwind(Box::new(DroppedConnection));
    }
    if let Some(burst) = faults.server_errors.filter(|burst| burst.hits(n)) {
        let (status, code, message) = match burst.status {
            Some(503) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Service Unavailable",
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                "An internal error has occurred",
            ),
        };
        return Err(Reply::query_error(
            status,
            xml::IAM_NAMESPACE,
            code,
            message,
            request_id,
        ));
    }
    Ok(())
}

/// Why AssumeRole into `account` is denied by a fault: the end of AWS's message (empty when
/// AWS says no more than "not authorized"), or `None` when no fault denies it.
pub(crate) fn assume_role_denial(account: &AccountState) -> Option<&'static str> {
    match account.account.faults.assume_role? {
        AssumeRoleFault::ScpDeny => Some(" with an explicit deny in a service control policy"),
        AssumeRoleFault::RoleMissing | AssumeRoleFault::TrustDenied => Some(""),
    }
}

/// IAM's answer to a throttled call, counted.
fn throttled(state: &SimState, account: &AccountState, request_id: &str) -> Reply {
    state.counters.throttled(&account.account.id);
    Reply::query_error(
        StatusCode::BAD_REQUEST,
        xml::IAM_NAMESPACE,
        "Throttling",
        "Rate exceeded",
        request_id,
    )
}

/// How long a session `AssumeRole` issues into `account` lasts, for `asked` seconds.
pub(crate) fn session_lifetime(account: &AccountState, asked: u64) -> u64 {
    account
        .account
        .faults
        .session_seconds
        .map_or(asked, |cap| asked.min(cap))
}

/// Whether the collector's role may not list principals of `kind` in `account`.
pub(crate) fn listing_denied(account: &AccountState, kind: PrincipalKind) -> bool {
    account.account.faults.deny_listing.contains(&kind)
}

/// Whether `principal` was deleted after it was listed (its jobs cannot be generated).
pub(crate) fn vanished(principal: &ResolvedPrincipal) -> bool {
    principal.faults.vanishes
}

/// Where a job stands when it is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobState {
    InProgress,
    Completed,
    /// `FAILED`, with AWS's error.
    Failed,
    /// Completed, with a result the SDK cannot parse.
    Malformed,
}

/// The state of a job of `principal` at its `polls`-th poll, `elapsed_ms` after it was
/// generated: done once the principal's (or else the account's) `job_polls` (1 by default)
/// and `job_ms` (0 by default) have both passed, unless it never completes; then failed or
/// malformed as the principal's faults say.
pub(crate) fn job_state(
    account: &AccountState,
    principal: &ResolvedPrincipal,
    polls: u32,
    elapsed_ms: i64,
) -> JobState {
    let faults = &account.account.faults;
    let polls_needed = principal
        .faults
        .job_polls
        .or(faults.job_polls)
        .unwrap_or(1)
        .max(1);
    let ms_needed = principal.faults.job_ms.or(faults.job_ms).unwrap_or(0);
    if principal.faults.job_never_completes
        || polls < polls_needed
        || elapsed_ms < i64::try_from(ms_needed).unwrap_or(i64::MAX)
    {
        JobState::InProgress
    } else if principal.faults.malformed_result {
        JobState::Malformed
    } else if principal.faults.job_failed {
        JobState::Failed
    } else {
        JobState::Completed
    }
}

/// Whether the account's identity faults deny `call` (the spoke role lacks the permission).
pub(crate) fn identity_denied(account: &AccountState, call: IdentityCall) -> bool {
    account.account.faults.identity.deny.contains(&call)
}

/// What `GenerateCredentialReport` meets: `LimitExceeded` for the first calls the scenario
/// says, then `STARTED` while the report is being built (once, or as often as the scenario
/// says), then `COMPLETE`. Counts the call in `report`.
pub(crate) enum ReportGeneration {
    LimitExceeded,
    Started,
    Complete,
}

pub(crate) fn report_generation(
    account: &AccountState,
    report: &mut ReportState,
) -> ReportGeneration {
    let faults = &account.account.faults.identity;
    if report.refused < faults.generate_limit_exceeded {
        report.refused += 1;
        ReportGeneration::LimitExceeded
    } else if report.generated_ms.is_none() && report.started < faults.report_started.max(1) {
        report.started += 1;
        ReportGeneration::Started
    } else {
        ReportGeneration::Complete
    }
}

/// What `GetCredentialReport` meets on its `n`-th call once a report exists: `ReportInProgress`
/// for the first ones, then `ReportExpired` for the next ones, then the report.
pub(crate) enum ReportRead {
    InProgress,
    Expired,
    Ready,
}

pub(crate) fn report_read(account: &AccountState, n: u32) -> ReportRead {
    let faults = &account.account.faults.identity;
    if n <= faults.report_in_progress {
        ReportRead::InProgress
    } else if n <= faults.report_in_progress + faults.report_expired {
        ReportRead::Expired
    } else {
        ReportRead::Ready
    }
}
