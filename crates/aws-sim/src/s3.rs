//! S3 `GetObject` (path-style) serving the scenario's SWAG `accounts.json`, schema v1 or v2.

use axum::http::{StatusCode, Uri};
use serde_json::{json, Value};

use crate::reply::Reply;
use crate::scenario::AccountStatus;
use crate::state::SimState;
use crate::xml;

fn s3_error(
    status: StatusCode,
    code: &str,
    message: &str,
    resource: &str,
    request_id: &str,
) -> Reply {
    Reply::xml(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{request_id}</RequestId></Error>",
            xml::escape(message),
            xml::escape(resource)
        ),
    )
}

pub(crate) fn get_object(state: &SimState, uri: &Uri, request_id: &str) -> Reply {
    state.count(&state.scenario.hub_account, "GetObject");
    let path = percent_encoding::percent_decode_str(uri.path().trim_start_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    let (bucket, key) = path.split_once('/').unwrap_or((path.as_str(), ""));
    let Some(swag) = state
        .scenario
        .swag
        .as_ref()
        .filter(|swag| swag.bucket == bucket)
    else {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
            bucket,
            request_id,
        );
    };
    if key != swag.key {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
            key,
            request_id,
        );
    }
    Reply {
        status: StatusCode::OK,
        content_type: "application/json",
        body: swag_document(state, swag.schema_version).to_string(),
    }
}

/// The scenario's accounts as SWAG's `accounts.json`.
pub fn swag_document(state: &SimState, schema_version: u8) -> Value {
    let accounts = state.order.iter().map(|id| &state.accounts[id].account);
    if schema_version == 1 {
        let accounts: Vec<Value> = accounts
            .map(|account| {
                let services: serde_json::Map<String, Value> = account
                    .swag_services
                    .iter()
                    .map(|name| (name.clone(), json!({"enabled": true})))
                    .collect();
                json!({
                    "name": account.name,
                    "aliases": account.aliases,
                    "ours": true,
                    "email": format!("aws-{}@example.com", account.id),
                    "tags": [account.environment],
                    "metadata": {"account_number": account.id, "s3_name": account.name},
                    "services": services,
                })
            })
            .collect();
        return json!({ "accounts": accounts });
    }
    let accounts: Vec<Value> = accounts
        .map(|account| {
            let status = match account.status {
                AccountStatus::Active => "ready",
                AccountStatus::Suspended => "deprecated",
                AccountStatus::PendingClosure => "deleted",
            };
            let services: Vec<Value> = account
                .swag_services
                .iter()
                .map(|name| json!({"name": name, "status": [{"region": "all", "enabled": true, "notes": []}], "metadata": {}}))
                .collect();
            json!({
                "schemaVersion": "2",
                "id": account.id,
                "name": account.name,
                "aliases": account.aliases,
                "email": format!("aws-{}@example.com", account.id),
                "provider": "aws",
                "owner": "example",
                "environment": account.environment,
                "type": "service",
                "sensitive": false,
                "description": format!("Simulated account {}", account.id),
                "contacts": [],
                "tags": [],
                "regions": {},
                "account_status": status,
                "status": [{"region": "all", "status": "created", "notes": []}],
                "services": services,
            })
        })
        .collect();
    Value::Array(accounts)
}
