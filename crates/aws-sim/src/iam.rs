//! IAM: the four listings and the two Access Advisor calls, in AWS's Query-protocol shapes.

use std::collections::HashMap;

use axum::http::StatusCode;

use crate::faults::{self, JobState};
use crate::policy_book::allows;
use crate::reply::Reply;
use crate::scenario::{PrincipalKind, ResolvedPrincipal};
use crate::state::{AccountState, Job, SimState};
use crate::xml::{self, Xml};
use crate::xml::{iso8601_millis, iso8601_seconds};

/// AWS managed policies `ListPolicies` returns for `Scope=AWS` or `All`.
const AWS_MANAGED: &[&str] = &["AdministratorAccess", "ReadOnlyAccess", "SecurityAudit"];
const DEFAULT_MAX_ITEMS: usize = 100;

/// The operation name an action is counted under.
pub(crate) fn operation_name(action: &str) -> &'static str {
    match action {
        "ListRoles" => "ListRoles",
        "ListUsers" => "ListUsers",
        "ListGroups" => "ListGroups",
        "ListPolicies" => "ListPolicies",
        "GenerateServiceLastAccessedDetails" => "GenerateServiceLastAccessedDetails",
        "GetServiceLastAccessedDetails" => "GetServiceLastAccessedDetails",
        "GetAccountAuthorizationDetails" => "GetAccountAuthorizationDetails",
        "GenerateCredentialReport" => "GenerateCredentialReport",
        "GetCredentialReport" => "GetCredentialReport",
        "ListAccessKeys" => "ListAccessKeys",
        _ => "Unknown",
    }
}

pub(crate) fn error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Reply {
    Reply::query_error(status, xml::IAM_NAMESPACE, code, message, request_id)
}

fn validation(message: String, request_id: &str) -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "ValidationError",
        &message,
        request_id,
    )
}

fn unknown_action(action: &str, request_id: &str) -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "InvalidAction",
        &format!("Could not find operation {action} for version 2010-05-08"),
        request_id,
    )
}

/// `MaxItems` (1..=1000) capped by the account's page size, and the offset `Marker` encodes.
pub(crate) fn page_window(
    params: &HashMap<String, String>,
    page_size: Option<u32>,
    request_id: &str,
) -> Result<(usize, usize), Reply> {
    let max_items = match params.get("MaxItems") {
        None => DEFAULT_MAX_ITEMS,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n < 1 => return Err(validation(format!("1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1"), request_id)),
            Ok(n) if n > 1000 => return Err(validation(format!("1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value less than or equal to 1000"), request_id)),
            Ok(n) => n as usize,
            Err(_) => return Err(validation(format!("Value '{text}' at 'maxItems' is not a number"), request_id)),
        },
    };
    let limit = page_size.map_or(max_items, |cap| max_items.min(cap.max(1) as usize));
    let offset = match params.get("Marker") {
        None => 0,
        Some(marker) => decode_marker(marker)
            .ok_or_else(|| validation(format!("Invalid Marker: {marker}"), request_id))?,
    };
    Ok((offset, limit))
}

/// Markers are opaque to clients: the offset, hex-encoded behind a fixed prefix.
fn encode_marker(offset: usize) -> String {
    format!("AQID{:X}", offset.wrapping_mul(7919))
}

fn decode_marker(marker: &str) -> Option<usize> {
    let value = usize::from_str_radix(marker.strip_prefix("AQID")?, 16).ok()?;
    (value % 7919 == 0).then_some(value / 7919)
}

pub(crate) fn truncation(xml: &mut Xml, next: Option<usize>) {
    xml.element("IsTruncated", next.is_some());
    if let Some(next) = next {
        xml.element("Marker", encode_marker(next));
    }
}

/// One page of `items` from `offset`, and where the next page starts.
pub(crate) fn page<T>(items: &[T], offset: usize, limit: usize) -> (&[T], Option<usize>) {
    let start = offset.min(items.len());
    let end = (start + limit).min(items.len());
    (&items[start..end], (end < items.len()).then_some(end))
}

/// IAM calls with the hub's own credentials when the hub is not a scenario account: nothing
/// to list, nothing to report on.
pub(crate) fn handle_empty(
    action: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Reply {
    match action {
        "ListRoles" | "ListUsers" | "ListGroups" | "ListPolicies" => {
            let list = match action {
                "ListRoles" => "Roles",
                "ListUsers" => "Users",
                "ListGroups" => "Groups",
                _ => "Policies",
            };
            let mut result = Xml::default();
            result.open(list).close(list).element("IsTruncated", false);
            Reply::xml(
                StatusCode::OK,
                xml::response(xml::IAM_NAMESPACE, action, request_id, &result.0),
            )
        }
        "GenerateServiceLastAccessedDetails" => {
            no_such_entity_arn(params.get("Arn").map_or("", String::as_str), request_id)
        }
        "GetServiceLastAccessedDetails" => {
            no_such_job(params.get("JobId").map_or("", String::as_str), request_id)
        }
        other => unknown_action(other, request_id),
    }
}

fn no_such_entity_arn(arn: &str, request_id: &str) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
        &format!("The entity with ARN {arn} does not exist."),
        request_id,
    )
}

fn no_such_job(job_id: &str, request_id: &str) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
        &format!("No job with id {job_id} exists."),
        request_id,
    )
}

pub(crate) fn handle(
    state: &SimState,
    account: &AccountState,
    action: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Reply {
    let kind = match action {
        "ListRoles" => Some(PrincipalKind::Role),
        "ListUsers" => Some(PrincipalKind::User),
        "ListGroups" => Some(PrincipalKind::Group),
        "ListPolicies" => Some(PrincipalKind::Policy),
        _ => None,
    };
    if let Some(kind) = kind {
        if faults::listing_denied(account, kind) {
            return error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                &format!(
                    "User: arn:{}:sts::{}:assumed-role/{}/aardvark is not authorized to perform: iam:{action} on resource: arn:{}:iam::{}:{}/ because no identity-based policy allows the iam:{action} action",
                    state.scenario.partition, account.account.id, state.scenario.role_name, state.scenario.partition, account.account.id, kind.arn_word()
                ),
                request_id,
            );
        }
        return list(state, account, kind, action, params, request_id);
    }
    match action {
        "GenerateServiceLastAccessedDetails" => generate(state, account, params, request_id),
        "GetServiceLastAccessedDetails" => get_details(state, account, params, request_id),
        other => unknown_action(other, request_id),
    }
}

/// What a listing holds: the account's principals, and AWS's managed policies.
enum Item<'a> {
    Ours(&'a ResolvedPrincipal),
    AwsManaged(&'static str),
}

/// One AWS managed policy as `ListPolicies` shows it.
fn aws_managed_policy(result: &mut Xml, partition: &str, name: &str) {
    result
        .element("PolicyName", name)
        .element("PolicyId", format!("ANPAAWS{:013X}", name.len() * 7919))
        .element("Arn", format!("arn:{partition}:iam::aws:policy/{name}"))
        .element("Path", "/")
        .element("DefaultVersionId", "v1")
        .element("AttachmentCount", 0)
        .element("PermissionsBoundaryUsageCount", 0)
        .element("IsAttachable", true)
        .element("CreateDate", "2015-02-06T18:39:46Z")
        .element("UpdateDate", "2015-02-06T18:39:46Z");
}

/// One of the account's principals as its kind's listing shows it.
fn listed_principal(
    result: &mut Xml,
    kind: PrincipalKind,
    member_name: &str,
    principal: &ResolvedPrincipal,
) {
    let created = iso8601_seconds(principal.created_ms());
    result
        .element("Path", &principal.path)
        .element(member_name, &principal.name);
    match kind {
        PrincipalKind::Role => {
            result
                .element("RoleId", &principal.id)
                .element("Arn", &principal.arn)
                .element("CreateDate", created)
                .element(
                    "AssumeRolePolicyDocument",
                    "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D",
                )
                .element("MaxSessionDuration", 3600);
        }
        PrincipalKind::User => {
            result
                .element("UserId", &principal.id)
                .element("Arn", &principal.arn)
                .element("CreateDate", created);
        }
        PrincipalKind::Group => {
            result
                .element("GroupId", &principal.id)
                .element("Arn", &principal.arn)
                .element("CreateDate", created);
        }
        PrincipalKind::Policy => {
            result
                .element("PolicyId", &principal.id)
                .element("Arn", &principal.arn)
                .element("DefaultVersionId", "v1")
                .element("AttachmentCount", 1)
                .element("PermissionsBoundaryUsageCount", 0)
                .element("IsAttachable", true)
                .element("CreateDate", &created)
                .element("UpdateDate", &created);
        }
    }
}

fn list(
    state: &SimState,
    account: &AccountState,
    kind: PrincipalKind,
    action: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Reply {
    let (offset, limit) = match page_window(params, account.account.faults.page_size, request_id) {
        Ok(window) => window,
        Err(reply) => return reply,
    };
    let prefix = params.get("PathPrefix").map_or("/", String::as_str);
    let scope = params.get("Scope").map_or("All", String::as_str);
    if kind == PrincipalKind::Policy && !matches!(scope, "All" | "AWS" | "Local") {
        return validation(format!("1 validation error detected: Value '{scope}' at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]"), request_id);
    }
    let mut items: Vec<Item> = Vec::new();
    if kind == PrincipalKind::Policy && scope != "Local" && prefix == "/" {
        items.extend(AWS_MANAGED.iter().map(|name| Item::AwsManaged(name)));
    }
    if kind != PrincipalKind::Policy || scope != "AWS" {
        items.extend(
            account
                .account
                .principals
                .iter()
                .filter(|p| p.kind == kind && p.path.starts_with(prefix))
                .map(Item::Ours),
        );
    }
    let (shown, next) = page(&items, offset, limit);
    let (list_name, member_name) = match kind {
        PrincipalKind::Role => ("Roles", "RoleName"),
        PrincipalKind::User => ("Users", "UserName"),
        PrincipalKind::Group => ("Groups", "GroupName"),
        PrincipalKind::Policy => ("Policies", "PolicyName"),
    };
    let mut result = Xml::default();
    result.open(list_name);
    for item in shown {
        result.open("member");
        match item {
            Item::AwsManaged(name) => {
                aws_managed_policy(&mut result, &state.scenario.partition, name)
            }
            Item::Ours(principal) => listed_principal(&mut result, kind, member_name, principal),
        }
        result.close("member");
    }
    result.close(list_name);
    truncation(&mut result, next);
    Reply::xml(
        StatusCode::OK,
        xml::response(xml::IAM_NAMESPACE, action, request_id, &result.0),
    )
}

fn generate(
    state: &SimState,
    account: &AccountState,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Reply {
    let Some(arn) = params.get("Arn") else {
        return validation("1 validation error detected: Value null at 'arn' failed to satisfy constraint: Member must not be null".into(), request_id);
    };
    let action_level = match params.get("Granularity").map(String::as_str) {
        None | Some("SERVICE_LEVEL") => false,
        Some("ACTION_LEVEL") => true,
        Some(other) => return validation(format!("1 validation error detected: Value '{other}' at 'granularity' failed to satisfy constraint: Member must satisfy enum value set: [SERVICE_LEVEL, ACTION_LEVEL]"), request_id),
    };
    let Some(&index) = account.by_arn.get(arn) else {
        return no_such_entity_arn(arn, request_id);
    };
    if faults::vanished(&account.account.principals[index]) {
        return no_such_entity_arn(arn, request_id);
    }
    let job_id = state.new_id();
    let job = Job {
        account: account.account.id.clone(),
        principal: index,
        action_level,
        created_ms: state.now_ms(),
        polls: 0,
    };
    state.jobs.lock().unwrap().insert(job_id.clone(), job);
    let mut result = Xml::default();
    result.element("JobId", &job_id);
    Reply::xml(
        StatusCode::OK,
        xml::response(
            xml::IAM_NAMESPACE,
            "GenerateServiceLastAccessedDetails",
            request_id,
            &result.0,
        ),
    )
}

/// Job `job_id` of `account`, counted as polled once more, or AWS's `NoSuchEntity`.
fn polled_job(
    state: &SimState,
    account: &AccountState,
    job_id: &str,
    request_id: &str,
) -> Result<Job, Reply> {
    let mut jobs = state.jobs.lock().unwrap();
    match jobs.get_mut(job_id) {
        Some(job) if job.account == account.account.id => {
            job.polls += 1;
            Ok(job.clone())
        }
        _ => Err(no_such_job(job_id, request_id)),
    }
}

/// A `GetServiceLastAccessedDetails` answer holding `result`.
fn details_reply(request_id: &str, result: &str) -> Reply {
    Reply::xml(
        StatusCode::OK,
        xml::response(
            xml::IAM_NAMESPACE,
            "GetServiceLastAccessedDetails",
            request_id,
            result,
        ),
    )
}

/// A completed job whose count is not a number: the SDK cannot parse it.
fn malformed_details(request_id: &str) -> Reply {
    let result = "<JobStatus>COMPLETED</JobStatus><JobType>SERVICE_LEVEL</JobType><ServicesLastAccessed><member>\
        <ServiceName>Amazon S3</ServiceName><ServiceNamespace>s3</ServiceNamespace>\
        <TotalAuthenticatedEntities>many</TotalAuthenticatedEntities></member></ServicesLastAccessed>";
    details_reply(request_id, result)
}

/// One service of a completed job, with its tracked actions at action level.
fn service_last_accessed(
    result: &mut Xml,
    service: &crate::scenario::ResolvedService,
    action_level: bool,
) {
    result
        .open("member")
        .element("ServiceName", &service.name)
        .element("ServiceNamespace", &service.namespace)
        .optional(
            "LastAuthenticated",
            service.last_authenticated_ms.map(iso8601_seconds),
        )
        .optional("LastAuthenticatedEntity", service.entity.as_ref())
        .optional("LastAuthenticatedRegion", service.region.as_ref())
        .element("TotalAuthenticatedEntities", service.total_entities);
    if action_level && !service.actions.is_empty() {
        result.open("TrackedActionsLastAccessed");
        for action in &service.actions {
            result
                .open("member")
                .element("ActionName", &action.name)
                .optional("LastAccessedEntity", action.entity.as_ref())
                .optional(
                    "LastAccessedTime",
                    action.last_accessed_ms.map(iso8601_seconds),
                )
                .optional("LastAccessedRegion", action.region.as_ref())
                .close("member");
        }
        result.close("TrackedActionsLastAccessed");
    }
    result.close("member");
}

/// The services Access Advisor lists for principal `index`: all of its own, or, where the
/// scenario says so, only those its policies allow now (as AWS lists them).
fn listed_services<'a>(
    state: &SimState,
    account: &'a AccountState,
    index: usize,
) -> Vec<&'a crate::scenario::ResolvedService> {
    let principals = &account.account.principals;
    let services = principals[index].services.iter();
    if !state.scenario.access_advisor_follows_policies {
        return services.collect();
    }
    let documents = account
        .policies
        .lock()
        .unwrap()
        .effective(principals, index);
    services
        .filter(|service| {
            allows(
                &documents,
                &format!("{}:AardvarkSimProbe", service.namespace),
            )
        })
        .collect()
}

fn get_details(
    state: &SimState,
    account: &AccountState,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Reply {
    let Some(job_id) = params.get("JobId") else {
        return validation("1 validation error detected: Value null at 'jobId' failed to satisfy constraint: Member must not be null".into(), request_id);
    };
    let (offset, limit) = match page_window(params, account.account.faults.page_size, request_id) {
        Ok(window) => window,
        Err(reply) => return reply,
    };
    let job = match polled_job(state, account, job_id, request_id) {
        Ok(job) => job,
        Err(reply) => return reply,
    };
    let principal = &account.account.principals[job.principal];
    let state_now = faults::job_state(
        account,
        principal,
        job.polls,
        state.now_ms() - job.created_ms,
    );
    if state_now == JobState::Malformed {
        return malformed_details(request_id);
    }
    let job_type = if job.action_level {
        "ACTION_LEVEL"
    } else {
        "SERVICE_LEVEL"
    };
    let mut result = Xml::default();
    let status = match state_now {
        JobState::InProgress => "IN_PROGRESS",
        JobState::Failed => "FAILED",
        JobState::Completed | JobState::Malformed => "COMPLETED",
    };
    result
        .element("JobStatus", status)
        .element("JobType", job_type)
        .element("JobCreationDate", iso8601_millis(job.created_ms));
    let mut next = None;
    // While a job runs, AWS sends no services and no JobCompletionDate (a required member).
    result.open("ServicesLastAccessed");
    if status == "COMPLETED" {
        let services = listed_services(state, account, job.principal);
        let (shown, after) = page(&services, offset, limit);
        next = after;
        for service in shown {
            service_last_accessed(&mut result, service, job.action_level);
        }
    }
    result.close("ServicesLastAccessed");
    if state_now != JobState::InProgress {
        result.element("JobCompletionDate", iso8601_millis(job.created_ms + 1500));
    }
    truncation(&mut result, next);
    if status == "FAILED" {
        result
            .open("Error")
            .element(
                "Message",
                format!(
                    "Unable to generate the report for {}: an internal error occurred.",
                    principal.arn
                ),
            )
            .element("Code", "ServiceFailure")
            .close("Error");
    }
    details_reply(request_id, &result.0)
}
