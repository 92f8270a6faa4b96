//! One account of a run, in named steps: assume the role, list the principals, keep those `-r`
//! asks for, collect them concurrently (each stored as soon as it is complete), prune after a
//! complete listing, and report. Never fails: every failure ends up in the account's report.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::StreamExt;

use super::accounts::TargetAccount;
use super::aws::Failure;
use super::pacer::Pacer;
use super::polling::{JobClock, Polling};
use super::principal::{self, JobContext};
use super::report::{AccountReport, PrincipalError};
use super::run::{arn_account, store, RunShared};
use super::session::{is_expired, AccountSession};
use crate::db::vocabulary::{PrincipalListing, PrincipalUsage};

/// One account from AssumeRole to its last principal.
pub(super) async fn collect(run: &RunShared, target: TargetAccount) -> AccountReport {
    let started = Instant::now();
    let started_at = crate::time::stored_now();
    let account = target.id.as_str();
    let role_arn = format!(
        "arn:{}:iam::{account}:role/{}",
        run.settings.aws_arn_partition.as_str(),
        run.settings.aws_rolename
    );
    let session = AccountSession::new(
        &run.sts,
        &run.aws,
        account,
        role_arn,
        run.settings.aws_session_duration,
    );
    let pacer = Pacer::new(
        run.settings.updater_account_rate_limit,
        run.settings.updater_account_burst,
        run.settings.updater_job_timeout,
    )
    .on_the_wire(run.aws.wire().clone());
    let listing = async {
        // The first session first: its denial (an SCP, a missing role) fails the account.
        session.current().await?;
        Box::pin(list_principals(&session, &pacer)).await
    };
    let listed = match listing.await {
        Ok(listed) => listed,
        Err(failure) => {
            tracing::warn!(account, code = %failure.code, message = %failure.message, "account failed");
            return AccountReport::failed_account(
                account,
                target.name,
                failure,
                started_at,
                started.elapsed(),
            );
        }
    };
    // The identity parts go beside the principals, on the same pacer: the credential
    // report's generation waits while the jobs run. Each stage boxed: every account in flight
    // holds this future, which would otherwise keep room for all of them (22 kB) all along.
    let (outcomes, identity) = tokio::join!(
        Box::pin(collect_principals(run, account, &session, &pacer, &listed)),
        Box::pin(super::identity::collect(run, account, &session, &pacer)),
    );
    log_pacing_and_sessions(run, account, &pacer, &session);
    let listed: Vec<String> = listed.into_iter().map(|(arn, _)| arn).collect();
    // A worker whose lease on the account was lost leaves the rest to the one that took it.
    run.work.before_writing().await;
    let writing = || !run.database_lost.load(Ordering::SeqCst) && !run.work.is_lost(account);
    let pruned = if run.prune && writing() {
        Box::pin(prune(run, account, &listed)).await
    } else {
        Vec::new()
    };
    let not_found = not_found(run, account, &listed);
    let mut report = AccountReport::from_outcomes(account, target.name, listed, outcomes);
    if writing() {
        Box::pin(evaluate_findings(run, account, identity.judged(true))).await;
    }
    report.parts = identity.parts;
    report.pruned = pruned;
    report.not_found = not_found;
    report.started_at = started_at;
    report.duration = started.elapsed();
    report
}

/// What the operator should know of how the account was paced and how its sessions lasted.
fn log_pacing_and_sessions(
    run: &RunShared,
    account: &str,
    pacer: &Pacer,
    session: &AccountSession<'_>,
) {
    let rate = pacer.rate();
    if rate < run.settings.updater_account_rate_limit {
        tracing::info!(
            account,
            requests_per_second = format!("{rate:.1}"),
            "AWS throttled the account: paced below UPDATER_ACCOUNT_RATE_LIMIT at its end"
        );
    }
    if session.sessions() > 1 {
        tracing::info!(
            account,
            sessions = session.sessions(),
            "sessions renewed during the account"
        );
    }
}

/// Evaluates the account's findings from what was collected; a failure is logged (the
/// findings stay as they were until the next evaluation).
async fn evaluate_findings(run: &RunShared, account: &str, judged: crate::findings::Judged) {
    let _turn = run
        .evaluation_turns
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let rules = run.settings.finding_rules();
    match crate::findings::evaluate_account(&run.db, account, judged, &rules, run.write.run_id)
        .await
    {
        Ok(changes) => tracing::debug!(account, ?changes, "findings evaluated"),
        Err(err) => {
            tracing::warn!(account, error = %err, "findings not evaluated; they stay as they were")
        }
    }
}

/// Every role, user, group and customer-managed policy of the account, all pages, paced. A
/// listing answered `ExpiredToken` is started again once, with a new session. Paged by hand
/// rather than with the SDK's paginators: a throttled page is asked again by the pacer, where a
/// paginator ends at its first error.
async fn list_principals(
    session: &AccountSession<'_>,
    pacer: &Pacer,
) -> Result<Vec<(String, PrincipalListing)>, Failure> {
    let mut arns = Vec::new();
    // The four listings have four types; one loop shape for all of them.
    macro_rules! every_page {
        ($request:expr, $operation:literal, |$page:ident| $arns:expr) => {
            let mut renewed = false;
            'listing: loop {
                let current = session.current().await?;
                let (mut listed, mut marker) = (Vec::new(), None::<String>);
                loop {
                    let page = pacer
                        .send(|| {
                            ($request)(&current.iam)
                                .max_items(1000)
                                .set_marker(marker.clone())
                                .send()
                        })
                        .await;
                    let $page = match page {
                        Ok(page) => page,
                        Err(err) => {
                            let failure = Failure::from_sdk(&err).during($operation);
                            if is_expired(&failure) && !renewed {
                                renewed = true;
                                session.renew(&current).await?;
                                continue 'listing;
                            }
                            return Err(failure);
                        }
                    };
                    listed.extend($arns);
                    marker = next_marker($page.is_truncated(), $page.marker(), $operation)?;
                    if marker.is_none() {
                        break;
                    }
                }
                arns.extend(listed);
                break;
            }
        };
    }
    every_page!(
        |iam: &aws_sdk_iam::Client| iam.list_roles(),
        "ListRoles",
        |page| page
            .roles()
            .iter()
            .map(|r| (r.arn().to_owned(), listing(r.path(), Some(r.create_date()))))
    );
    every_page!(
        |iam: &aws_sdk_iam::Client| iam.list_users(),
        "ListUsers",
        |page| page
            .users()
            .iter()
            .map(|u| (u.arn().to_owned(), listing(u.path(), Some(u.create_date()))))
    );
    every_page!(
        |iam: &aws_sdk_iam::Client| iam.list_groups(),
        "ListGroups",
        |page| page
            .groups()
            .iter()
            .map(|g| (g.arn().to_owned(), listing(g.path(), Some(g.create_date()))))
    );
    every_page!(
        |iam: &aws_sdk_iam::Client| iam
            .list_policies()
            .scope(aws_sdk_iam::types::PolicyScopeType::Local),
        "ListPolicies",
        |page| page.policies().iter().filter_map(|p| Some((
            p.arn()?.to_owned(),
            listing(p.path().unwrap_or("/"), p.create_date())
        )))
    );
    Ok(arns)
}

/// Where a listing goes on after a page: nowhere when the page was the last, else its
/// `Marker` (a truncated page without one is a malformed answer).
fn next_marker(
    truncated: bool,
    marker: Option<&str>,
    operation: &str,
) -> Result<Option<String>, Failure> {
    if !truncated {
        return Ok(None);
    }
    match marker.filter(|m| !m.is_empty()) {
        Some(marker) => Ok(Some(marker.to_owned())),
        None => Err(Failure::new(
            "MalformedResponse",
            format!("{operation}: a truncated page without a Marker"),
        )),
    }
}

fn listing(path: &str, created: Option<&aws_sdk_iam::primitives::DateTime>) -> PrincipalListing {
    PrincipalListing {
        path: path.to_owned(),
        created_ms: created.and_then(|time| time.to_millis().ok()),
    }
}

/// Whether this run collects a listed principal: all of them, or those `-r` names.
fn wanted(run: &RunShared, arn: &str) -> bool {
    run.only_arns
        .as_ref()
        .is_none_or(|only| only.contains(&arn.to_lowercase()))
}

/// The `-r` ARNs of `account` that its listing does not hold.
fn not_found(run: &RunShared, account: &str, listed: &[String]) -> Vec<String> {
    if run.requested_arns.is_empty() {
        return Vec::new();
    }
    let listed: HashSet<String> = listed.iter().map(|arn| arn.to_lowercase()).collect();
    run.requested_arns
        .iter()
        .filter(|arn| arn_account(arn) == Some(account))
        .filter(|arn| !listed.contains(&arn.to_lowercase()))
        .cloned()
        .collect()
}

/// Collects and stores the `wanted` principals of `listed`, `UPDATER_PRINCIPAL_CONCURRENCY`
/// at a time. Returns each principal's outcome; those the run was stopped before are
/// `Interrupted`.
async fn collect_principals(
    run: &RunShared,
    account: &str,
    session: &AccountSession<'_>,
    pacer: &Pacer,
    listed: &[(String, PrincipalListing)],
) -> Vec<(String, Result<(), PrincipalError>)> {
    let polling = Polling {
        first_interval: run.settings.updater_poll_interval,
        max_interval: run.settings.updater_poll_max_interval,
        deadline: run.settings.updater_job_timeout,
    };
    let clock = JobClock::default();
    let context = JobContext {
        clock: &clock,
        pacer,
        polling,
        granularity: run.settings.updater_granularity,
        stop: &run.stop,
    };
    let places = &run.principal_places;
    // By index: with references as the stream's items, its closures are not general enough
    // over their lifetimes for the account's spawned task (a limit of rustc's inference).
    futures::stream::iter((0..listed.len()).filter(|&index| wanted(run, &listed[index].0)))
        // A principal takes its place in the run (`UPDATER_PRINCIPALS_IN_FLIGHT`) before its
        // future is made, so that those waiting for one hold nothing beyond their listing. The
        // run's semaphore is never closed: there is always a place to wait for.
        .then(move |index| {
            let places = places.clone();
            async move { (index, places.acquire_owned().await.ok()) }
        })
        .map(|(index, place)| async move {
            let (arn, listing) = &listed[index];
            let _place = place;
            // Once the run is asked to stop, or another worker took the account over, no new
            // principal starts.
            if run.stop.is_set() || run.work.is_lost(account) {
                return (arn.clone(), Err(PrincipalError::Interrupted));
            }
            let outcome = collect_principal(run, session, context, arn, listing).await;
            run.progress.principal_done();
            log_outcome(run, account, arn, &outcome);
            (arn.clone(), outcome)
        })
        .buffer_unordered(run.settings.updater_principal_concurrency)
        .collect()
        .await
}

/// One principal: its Access Advisor data, then its write.
async fn collect_principal(
    run: &RunShared,
    session: &AccountSession<'_>,
    context: JobContext<'_>,
    arn: &str,
    listing: &PrincipalListing,
) -> Result<(), PrincipalError> {
    if run.database_lost.load(Ordering::SeqCst) {
        return Err(PrincipalError::Failed(Failure::new(
            "DatabaseLost",
            "not collected: the database was lost",
        )));
    }
    // Each stage boxed: an account holds one of these futures per principal in flight, each
    // as large as its largest stage unless the stages live on the heap only while they run.
    let services = Box::pin(principal::fetch_usage(session, context, arn)).await?;
    let usage = PrincipalUsage {
        arn: arn.to_owned(),
        services,
        listing: Some(listing.clone()),
    };
    Box::pin(store(run, usage))
        .await
        .map_err(PrincipalError::Failed)
}

fn log_outcome(run: &RunShared, account: &str, arn: &str, outcome: &Result<(), PrincipalError>) {
    match outcome {
        Ok(()) => {}
        Err(PrincipalError::Interrupted) => {}
        Err(PrincipalError::Vanished(failure)) => {
            tracing::info!(account, arn, reason = %failure, "principal vanished since it was listed; stored data untouched");
        }
        Err(PrincipalError::Failed(failure)) if run.failing_arns.contains(arn) => {
            tracing::info!(account, arn, code = %failure.code, message = %failure.message, "principal failed (a known failing ARN)");
        }
        Err(PrincipalError::Failed(failure)) => {
            tracing::warn!(account, arn, code = %failure.code, message = %failure.message, "principal failed");
        }
    }
}

/// Removes what a complete listing no longer holds; returns the principals that went.
/// A failed prune removes nothing and costs only the pruning.
async fn prune(run: &RunShared, account: &str, listed: &[String]) -> Vec<String> {
    let complete: HashSet<String> = listed.iter().cloned().collect();
    // An account that is not an account id has no principals stored under it.
    let Ok(account_id) = account.parse::<crate::arn::AccountId>() else {
        return Vec::new();
    };
    match run.db.prune_account(&account_id, &complete).await {
        Ok(removed) => {
            for arn in &removed {
                tracing::info!(account, arn = %arn, "pruned: no longer listed by AWS");
            }
            removed
        }
        Err(err) => {
            tracing::error!(account, error = %err, "pruning failed; nothing was removed");
            Vec::new()
        }
    }
}
