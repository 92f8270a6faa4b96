//! Which accounts a run collects: ids from `-a`, the static `ACCOUNTS` list, SWAG's
//! `accounts.json` (schema v1 or v2, JMESPath filter, required service), or AWS Organizations
//! (ACTIVE accounts). Names and aliases in `-a` are looked up in the configured source.

use aws_sdk_organizations::types::AccountStatus;
use serde_json::Value;

use super::aws::{AwsContext, Failure};
use super::CollectorError;
use crate::arn::is_account_id;
use crate::config::{AccountSource, Settings, SwagSettings};

/// An account to collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAccount {
    pub id: String,
    pub name: Option<String>,
    pub aliases: Vec<String>,
}

impl TargetAccount {
    fn id_only(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            name: None,
            aliases: Vec::new(),
        }
    }
}

/// The accounts a run collects. `requested` are `-a` values (already split on commas);
/// `arn_accounts` the accounts of `-r` ARNs, used when nothing else is asked for.
pub async fn resolve(
    settings: &Settings,
    aws: &AwsContext,
    requested: &[String],
    arn_accounts: &[String],
) -> Result<Vec<TargetAccount>, CollectorError> {
    let only_ids = requested.iter().all(|value| is_account_id(value));
    let mut chosen: Vec<TargetAccount> = Vec::new();
    if requested.is_empty() && !arn_accounts.is_empty() {
        chosen = arn_accounts
            .iter()
            .map(|id| TargetAccount::id_only(id))
            .collect();
    } else if !requested.is_empty() && only_ids {
        chosen = requested
            .iter()
            .map(|id| TargetAccount::id_only(id))
            .collect();
    } else {
        let catalog = catalog(settings, aws).await?;
        if requested.is_empty() {
            chosen = catalog;
        } else {
            for value in requested {
                if value.eq_ignore_ascii_case("all") {
                    chosen.extend(catalog.iter().cloned());
                } else if is_account_id(value) {
                    chosen.push(
                        catalog
                            .iter()
                            .find(|account| &account.id == value)
                            .cloned()
                            .unwrap_or_else(|| TargetAccount::id_only(value)),
                    );
                } else {
                    let found = catalog.iter().find(|account| {
                        account
                            .name
                            .as_deref()
                            .is_some_and(|name| name.eq_ignore_ascii_case(value))
                            || account
                                .aliases
                                .iter()
                                .any(|alias| alias.eq_ignore_ascii_case(value))
                    });
                    match found {
                        Some(account) => chosen.push(account.clone()),
                        None => {
                            return Err(CollectorError::Accounts(format!(
                                "{value:?} is neither a 12-digit account id nor a name or alias of an account in {}",
                                source_name(settings.account_source)
                            )))
                        }
                    }
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    chosen.retain(|account| seen.insert(account.id.clone()));
    if chosen.is_empty() {
        return Err(CollectorError::Accounts(format!(
            "no accounts to collect from {}: pass -a, or configure ACCOUNTS, SWAG or ACCOUNT_SOURCE: organizations",
            source_name(settings.account_source)
        )));
    }
    Ok(chosen)
}

fn source_name(source: AccountSource) -> &'static str {
    match source {
        AccountSource::Static => "the ACCOUNTS setting",
        AccountSource::Swag => "SWAG",
        AccountSource::Organizations => "AWS Organizations",
    }
}

/// Every account the configured source knows.
async fn catalog(
    settings: &Settings,
    aws: &AwsContext,
) -> Result<Vec<TargetAccount>, CollectorError> {
    match settings.account_source {
        AccountSource::Static => Ok(settings
            .accounts
            .iter()
            .map(|id| TargetAccount::id_only(id))
            .collect()),
        AccountSource::Organizations => {
            let pages: Vec<_> = aws
                .organizations()
                .list_accounts()
                .into_paginator()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|err| {
                    CollectorError::Accounts(format!(
                        "Organizations ListAccounts failed: {}",
                        Failure::from_sdk(&err)
                    ))
                })?;
            Ok(pages
                .iter()
                .flat_map(|page| page.accounts())
                .filter(|account| account.status() == Some(&AccountStatus::Active))
                .filter_map(|account| {
                    Some(TargetAccount {
                        id: account.id()?.to_owned(),
                        name: account.name().map(str::to_owned),
                        aliases: Vec::new(),
                    })
                })
                .collect())
        }
        AccountSource::Swag => {
            let swag = settings.swag.clone().unwrap_or_default();
            let Some(bucket) = swag.bucket.clone() else {
                return Err(CollectorError::Accounts(
                    "ACCOUNT_SOURCE is swag but SWAG.bucket is not set".into(),
                ));
            };
            let key = swag_key(&swag);
            let object = aws
                .s3()
                .get_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .map_err(|err| {
                    CollectorError::Accounts(format!(
                        "cannot read s3://{bucket}/{key}: {}",
                        Failure::from_sdk(&err)
                    ))
                })?;
            let bytes = object
                .body
                .collect()
                .await
                .map_err(|err| {
                    CollectorError::Accounts(format!("cannot read s3://{bucket}/{key}: {err}"))
                })?
                .into_bytes();
            let document: Value = serde_json::from_slice(&bytes).map_err(|err| {
                CollectorError::Accounts(format!("s3://{bucket}/{key} is not JSON: {err}"))
            })?;
            swag_accounts(&document, &swag)
                .map_err(|err| CollectorError::Accounts(format!("s3://{bucket}/{key}: {err}")))
        }
    }
}

/// The object holding `accounts.json`: `SWAG.opts.data_file`, else SWAG's v2 default.
fn swag_key(swag: &SwagSettings) -> String {
    swag.opts
        .get("data_file")
        .or_else(|| swag.opts.get("swag.data_file"))
        .cloned()
        .unwrap_or_else(|| "v2/accounts.json".into())
}

/// The accounts of a SWAG document (v2: a list; v1: `{"accounts": [...]}`), after the JMESPath
/// `filter` and the `service_enabled_requirement`.
pub fn swag_accounts(document: &Value, swag: &SwagSettings) -> Result<Vec<TargetAccount>, String> {
    let (items, version) = match document {
        Value::Array(_) => (document.clone(), 2),
        Value::Object(map) if map.get("accounts").is_some_and(Value::is_array) => {
            (map["accounts"].clone(), 1)
        }
        _ => {
            return Err(
                "expected a list of accounts (schema v2) or {\"accounts\": [...]} (schema v1)"
                    .into(),
            )
        }
    };
    let items = match swag.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        None => items,
        Some(filter) => {
            let expression = jmespath::compile(filter)
                .map_err(|err| format!("SWAG.filter {filter:?} is not valid JMESPath: {err}"))?;
            let result = expression
                .search(items)
                .map_err(|err| format!("SWAG.filter {filter:?} failed: {err}"))?;
            serde_json::to_value(&*result)
                .map_err(|err| format!("SWAG.filter {filter:?} gave an unusable result: {err}"))?
        }
    };
    let Value::Array(items) = items else {
        return Err("SWAG.filter must select a list of accounts".into());
    };
    let required = swag
        .service_enabled_requirement
        .as_deref()
        .filter(|s| !s.is_empty());
    let mut accounts = Vec::new();
    for item in &items {
        let id = if version == 2 {
            item.get("id")
        } else {
            item.pointer("/metadata/account_number")
        };
        let Some(id) = id.and_then(|id| {
            id.as_str()
                .map(str::to_owned)
                .or_else(|| id.as_u64().map(|n| format!("{n:012}")))
        }) else {
            return Err(format!("an account has no id: {item}"));
        };
        if let Some(service) = required {
            let enabled = if version == 2 {
                item["services"].as_array().is_some_and(|services| {
                    services.iter().any(|s| {
                        s["name"] == service
                            && s["status"]
                                .as_array()
                                .is_some_and(|st| st.iter().any(|r| r["enabled"] == true))
                    })
                })
            } else {
                item["services"][service]["enabled"] == true
            };
            if !enabled {
                continue;
            }
        }
        accounts.push(TargetAccount {
            id,
            name: item["name"].as_str().map(str::to_owned),
            aliases: item["aliases"]
                .as_array()
                .map(|aliases| {
                    aliases
                        .iter()
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn swag(filter: Option<&str>, service: Option<&str>) -> SwagSettings {
        SwagSettings {
            filter: filter.map(str::to_owned),
            service_enabled_requirement: service.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn swag_v2_filter_and_required_service() {
        let document = json!([
            {"id": "111111111111", "name": "prod", "aliases": ["p"], "environment": "prod",
             "services": [{"name": "aardvark", "status": [{"region": "all", "enabled": true}]}]},
            {"id": "222222222222", "name": "test", "environment": "test",
             "services": [{"name": "aardvark", "status": [{"region": "all", "enabled": false}]}]},
            {"id": "333333333333", "name": "dev", "environment": "test", "services": []},
        ]);
        let all = swag_accounts(&document, &swag(None, None)).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].aliases, vec!["p"]);
        let test_only =
            swag_accounts(&document, &swag(Some("[?environment=='test']"), None)).unwrap();
        assert_eq!(
            test_only.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["222222222222", "333333333333"]
        );
        let enabled = swag_accounts(&document, &swag(None, Some("aardvark"))).unwrap();
        assert_eq!(
            enabled.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["111111111111"]
        );
        assert!(swag_accounts(&document, &swag(Some("[?"), None))
            .unwrap_err()
            .contains("not valid JMESPath"));
        assert!(swag_accounts(&document, &swag(Some("[0]"), None))
            .unwrap_err()
            .contains("list of accounts"));
    }

    #[test]
    fn swag_v1_accounts() {
        let document = json!({"accounts": [
            {"name": "prod", "metadata": {"account_number": "111111111111"}, "services": {"aardvark": {"enabled": true}}},
            {"name": "old", "metadata": {"account_number": "222222222222"}, "services": {}},
        ]});
        let enabled = swag_accounts(&document, &swag(None, Some("aardvark"))).unwrap();
        assert_eq!(
            enabled,
            vec![TargetAccount {
                id: "111111111111".into(),
                name: Some("prod".into()),
                aliases: vec![]
            }]
        );
        assert!(swag_accounts(&json!({"x": 1}), &swag(None, None)).is_err());
    }
}
