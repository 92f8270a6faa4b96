//! Organizations `ListAccounts` over AWS's JSON 1.1 protocol, for the hub (management) account.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::reply::Reply;
use crate::state::{Caller, SimState};

const TARGET_PREFIX: &str = "AWSOrganizationsV20161128.";
const MAX_RESULTS: usize = 20;

fn json_error(status: StatusCode, kind: &str, message: &str) -> Reply {
    Reply {
        status,
        content_type: "application/x-amz-json-1.1",
        body: json!({"__type": kind, "message": message}).to_string(),
    }
}

/// Where a `ListAccounts` page starts and how long it is, or AWS's error.
fn page_asked(body: &[u8]) -> Result<(usize, usize), Reply> {
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|err| {
            json_error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                &err.to_string(),
            )
        })?
    };
    let max_results = match request.get("MaxResults").and_then(Value::as_u64) {
        None => MAX_RESULTS,
        Some(n @ 1..=20) => n as usize,
        Some(n) => {
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                "InvalidInputException",
                &format!("1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 20"),
            ))
        }
    };
    let start = match request.get("NextToken").and_then(Value::as_str) {
        None => 0,
        Some(token) => token
            .strip_prefix("orgs-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                json_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidInputException",
                    "You specified an invalid value for nextToken.",
                )
            })?,
    };
    Ok((start, max_results))
}

pub(crate) fn handle(state: &SimState, caller: &Caller, target: &str, body: &[u8]) -> Reply {
    let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    if operation != "ListAccounts" {
        state.count(&state.scenario.hub_account, "Unknown");
        return json_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("Unknown operation {target}"),
        );
    }
    state.count(&state.scenario.hub_account, "ListAccounts");
    if !matches!(caller, Caller::Hub { .. }) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "AccessDeniedException",
            "You don't have permissions to access this resource.",
        );
    }
    let (start, max_results) = match page_asked(body) {
        Ok(page) => page,
        Err(reply) => return reply,
    };
    let end = (start + max_results).min(state.order.len());
    let accounts: Vec<Value> = state.order[start.min(end)..end]
        .iter()
        .map(|id| {
            let account = &state.accounts[id].account;
            json!({
                "Id": account.id,
                "Arn": format!("arn:{}:organizations::{}:account/o-simulated/{}", state.scenario.partition, state.scenario.hub_account, account.id),
                "Email": format!("aws-{}@example.com", account.id),
                "Name": account.name,
                "Status": account.status.as_str(),
                "JoinedMethod": "CREATED",
                "JoinedTimestamp": 1.6e9,
            })
        })
        .collect();
    let mut response = json!({ "Accounts": accounts });
    if end < state.order.len() {
        response["NextToken"] = json!(format!("orgs-{end}"));
    }
    Reply {
        status: StatusCode::OK,
        content_type: "application/x-amz-json-1.1",
        body: response.to_string(),
    }
}
