//! STS: `AssumeRole` (with the account's AssumeRole faults) and `GetCallerIdentity`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;

use crate::faults;
use crate::reply::Reply;
use crate::scenario::AccountStatus;
use crate::state::{issued_key, Caller, SimState};
use crate::xml::{self, Xml};

const SESSION_SECONDS: u64 = 3600;

fn error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Reply {
    Reply::query_error(status, xml::STS_NAMESPACE, code, message, request_id)
}

fn validation(message: &str, request_id: &str) -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "ValidationError",
        message,
        request_id,
    )
}

pub(crate) fn handle(
    state: &SimState,
    caller: &Caller,
    action: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Reply {
    match action {
        "AssumeRole" => assume_role(state, caller, params, request_id).unwrap_or_else(|e| e),
        "GetCallerIdentity" => get_caller_identity(state, caller, request_id),
        other => {
            state.count(state.caller_account(caller), "Unknown");
            error(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                &format!("Could not find operation {other} for version 2011-06-15"),
                request_id,
            )
        }
    }
}

/// The ARN a caller's credentials stand for.
fn caller_arn(state: &SimState, caller: &Caller) -> String {
    match caller {
        Caller::Hub { .. } => format!(
            "arn:{}:iam::{}:user/hub",
            state.scenario.partition, state.scenario.hub_account
        ),
        Caller::Assumed { account, .. } => format!(
            "arn:{}:sts::{account}:assumed-role/{}/aardvark",
            state.scenario.partition, state.scenario.role_name
        ),
    }
}

/// The role ARN's partition, account and resource, or AWS's validation error.
fn role_arn_fields<'a>(
    role_arn: &'a str,
    request_id: &str,
) -> Result<(&'a str, &'a str, &'a str), Reply> {
    let fields: Vec<&str> = role_arn.splitn(6, ':').collect();
    match fields.as_slice() {
        ["arn", partition, "iam", "", account, resource] if resource.starts_with("role/") => {
            Ok((partition, account, resource))
        }
        _ => Err(validation(&format!("{role_arn} is invalid"), request_id)),
    }
}

fn assume_role(
    state: &SimState,
    caller: &Caller,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Result<Reply, Reply> {
    let role_arn = params.get("RoleArn").ok_or_else(|| validation("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null", request_id))?;
    let session = params.get("RoleSessionName").cloned().unwrap_or_default();
    if session.is_empty() {
        return Err(validation("1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null", request_id));
    }
    let (partition, target, resource) = role_arn_fields(role_arn, request_id)?;
    // The operation is counted against the account being assumed into.
    state.count(target, "AssumeRole");
    let caller_arn = caller_arn(state, caller);
    let not_authorized = |why: &str| {
        error(StatusCode::FORBIDDEN, "AccessDenied", &format!("User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}{why}"), request_id)
    };
    let role_name = resource.rsplit('/').next().unwrap_or_default();
    let account = state
        .accounts
        .get(target)
        .filter(|_| partition == state.scenario.partition)
        .ok_or_else(|| not_authorized(""))?;
    if let Some(why) = faults::assume_role_denial(account) {
        return Err(not_authorized(why));
    }
    if role_name != state.scenario.role_name {
        return Err(not_authorized(""));
    }
    if account.account.status != AccountStatus::Active {
        return Err(not_authorized(&format!(
            " because the account {target} is {}",
            account.account.status.as_str().to_ascii_lowercase()
        )));
    }
    let asked = params
        .get("DurationSeconds")
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(SESSION_SECONDS);
    let lifetime = Duration::from_secs(faults::session_lifetime(account, asked));
    let key = issued_key(target, state.next_key());
    state.issue_session(&key, lifetime);
    // In wall-clock time, which is what clients compare it with.
    let expires = SystemTime::now() + lifetime;
    let expiration = xml::iso8601_seconds(
        expires
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as i64),
    );
    let role_id = format!(
        "AROA{:016X}",
        state
            .scenario
            .seed
            .wrapping_add(target.parse::<u64>().unwrap_or(0))
    );
    let mut result = Xml::default();
    result
        .open("Credentials")
        .element("AccessKeyId", &key)
        .element("SecretAccessKey", format!("simulated-secret-{key}"))
        .element("SessionToken", format!("simulated-session-token-{key}"))
        .element("Expiration", expiration)
        .close("Credentials")
        .open("AssumedRoleUser")
        .element("AssumedRoleId", format!("{role_id}:{session}"))
        .element(
            "Arn",
            format!("arn:{partition}:sts::{target}:assumed-role/{role_name}/{session}"),
        )
        .close("AssumedRoleUser");
    Ok(Reply::xml(
        StatusCode::OK,
        xml::response(xml::STS_NAMESPACE, "AssumeRole", request_id, &result.0),
    ))
}

fn get_caller_identity(state: &SimState, caller: &Caller, request_id: &str) -> Reply {
    let caller_account = state.caller_account(caller);
    state.count(caller_account, "GetCallerIdentity");
    let user_id = match caller {
        Caller::Hub { access_key } => access_key.clone(),
        Caller::Assumed { access_key, .. } => format!("{access_key}:aardvark"),
    };
    let mut result = Xml::default();
    result
        .element("Arn", caller_arn(state, caller))
        .element("UserId", user_id)
        .element("Account", caller_account);
    Reply::xml(
        StatusCode::OK,
        xml::response(
            xml::STS_NAMESPACE,
            "GetCallerIdentity",
            request_id,
            &result.0,
        ),
    )
}
