//! STS: `AssumeRole` (with the account's AssumeRole faults) and `GetCallerIdentity`.

use std::collections::HashMap;

use axum::http::StatusCode;

use crate::scenario::{AccountStatus, AssumeRoleFault};
use crate::server::{issued_key, Caller, Reply, SimState};
use crate::xml::{self, Xml};

const SESSION_SECONDS: i64 = 3600;

pub(crate) fn handle(
    state: &SimState,
    caller: &Caller,
    action: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Reply {
    let caller_account = match caller {
        Caller::Hub { .. } => state.scenario.hub_account.clone(),
        Caller::Assumed { account, .. } => account.clone(),
    };
    let error = |status, code: &str, message: &str| {
        Reply::query_error(status, xml::STS_NAMESPACE, code, message, request_id)
    };
    match action {
        "AssumeRole" => {
            let Some(role_arn) = params.get("RoleArn") else {
                return error(StatusCode::BAD_REQUEST, "ValidationError", "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null");
            };
            let session = params.get("RoleSessionName").cloned().unwrap_or_default();
            if session.is_empty() {
                return error(StatusCode::BAD_REQUEST, "ValidationError", "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null");
            }
            let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
            let (partition, target, resource) = match parts.as_slice() {
                ["arn", partition, "iam", "", account, resource]
                    if resource.starts_with("role/") =>
                {
                    (*partition, *account, *resource)
                }
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "ValidationError",
                        &format!("{role_arn} is invalid"),
                    )
                }
            };
            // The operation is counted against the account being assumed into.
            state.count(target, "AssumeRole");
            let caller_arn = match caller {
                Caller::Hub { .. } => format!(
                    "arn:{}:iam::{}:user/hub",
                    state.scenario.partition, state.scenario.hub_account
                ),
                Caller::Assumed { account, .. } => format!(
                    "arn:{}:sts::{account}:assumed-role/{}/aardvark",
                    state.scenario.partition, state.scenario.role_name
                ),
            };
            let not_authorized = |why: &str| {
                error(StatusCode::FORBIDDEN, "AccessDenied", &format!("User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}{why}"))
            };
            let role_name = resource.rsplit('/').next().unwrap_or_default();
            let Some(account) = state
                .accounts
                .get(target)
                .filter(|_| partition == state.scenario.partition)
            else {
                return not_authorized("");
            };
            match account.account.faults.assume_role {
                Some(AssumeRoleFault::ScpDeny) => {
                    return not_authorized(" with an explicit deny in a service control policy")
                }
                Some(AssumeRoleFault::RoleMissing | AssumeRoleFault::TrustDenied) => {
                    return not_authorized("")
                }
                None => {}
            }
            if role_name != state.scenario.role_name {
                return not_authorized("");
            }
            if account.account.status != AccountStatus::Active {
                return error(StatusCode::FORBIDDEN, "AccessDenied", &format!("User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn} because the account {target} is {}", account.account.status.as_str().to_ascii_lowercase()));
            }
            let duration = params
                .get("DurationSeconds")
                .and_then(|d| d.parse::<i64>().ok())
                .unwrap_or(SESSION_SECONDS);
            let key = issued_key(target, state.next_key());
            let expiration = crate::iso8601_seconds(state.now_ms() + duration * 1000);
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
            Reply::xml(
                StatusCode::OK,
                xml::response(xml::STS_NAMESPACE, "AssumeRole", request_id, &result.0),
            )
        }
        "GetCallerIdentity" => {
            state.count(&caller_account, "GetCallerIdentity");
            let (arn, user_id) = match caller {
                Caller::Hub { access_key } => (
                    format!(
                        "arn:{}:iam::{caller_account}:user/hub",
                        state.scenario.partition
                    ),
                    access_key.clone(),
                ),
                Caller::Assumed {
                    account,
                    access_key,
                } => (
                    format!(
                        "arn:{}:sts::{account}:assumed-role/{}/aardvark",
                        state.scenario.partition, state.scenario.role_name
                    ),
                    format!("{access_key}:aardvark"),
                ),
            };
            let mut result = Xml::default();
            result
                .element("Arn", arn)
                .element("UserId", user_id)
                .element("Account", &caller_account);
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
        other => {
            state.count(&caller_account, "Unknown");
            error(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                &format!("Could not find operation {other} for version 2011-06-15"),
            )
        }
    }
}
