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

/// Every account a source knows: those it offers, and those its filters leave out (SWAG's
/// `filter` and `service_enabled_requirement`, Organizations' accounts that are not ACTIVE),
/// so that a name among the latter is reported as excluded, not unknown.
struct Catalog {
    accounts: Vec<TargetAccount>,
    excluded: Vec<TargetAccount>,
}

impl Catalog {
    fn by_id<'a>(accounts: &'a [TargetAccount], id: &str) -> Option<&'a TargetAccount> {
        accounts.iter().find(|account| account.id == id)
    }

    fn by_name<'a>(accounts: &'a [TargetAccount], value: &str) -> Option<&'a TargetAccount> {
        accounts.iter().find(|account| {
            account
                .name
                .as_deref()
                .is_some_and(|name| name.eq_ignore_ascii_case(value))
                || account
                    .aliases
                    .iter()
                    .any(|alias| alias.eq_ignore_ascii_case(value))
        })
    }

    /// The account `value` (an id, a name or an alias) stands for. An id the source does not
    /// offer is still collected (upstream's `-a ID`); a name must be one it offers.
    fn find(&self, value: &str, source: &str) -> Result<TargetAccount, CollectorError> {
        if is_account_id(value) {
            return Ok(Self::by_id(&self.accounts, value)
                .cloned()
                .unwrap_or_else(|| TargetAccount::id_only(value)));
        }
        if let Some(account) = Self::by_name(&self.accounts, value) {
            return Ok(account.clone());
        }
        Err(CollectorError::Accounts(match Self::by_name(&self.excluded, value) {
            Some(excluded) => format!(
                "{value:?} (account {}) is in {source} but its filters leave it out (SWAG.filter, SWAG.service_enabled_requirement, or not ACTIVE); pass its id to collect it anyway",
                excluded.id
            ),
            None => format!(
                "{value:?} is neither a 12-digit account id nor a name or alias of an account in {source}"
            ),
        }))
    }
}

/// The accounts a run collects. `requested` are `-a` values (already split on commas);
/// without them, `ACCOUNTS` chooses among the accounts of SWAG or Organizations (ids, names
/// or aliases, as upstream's `AARDVARK_ACCOUNTS` did), or is the list itself for the static
/// source. `arn_accounts`, the accounts of `-r` ARNs, narrow the choice to themselves, and
/// each must be among the accounts chosen (a mistyped id would otherwise become an account
/// that fails in every run).
pub async fn resolve(
    settings: &Settings,
    aws: &AwsContext,
    requested: &[String],
    arn_accounts: &[String],
) -> Result<Vec<TargetAccount>, CollectorError> {
    let source = source_name(settings.account_source);
    let (asked, asked_by): (&[String], String) = if !requested.is_empty() {
        (requested, "-a".into())
    } else if settings.account_source != AccountSource::Static && !settings.accounts.is_empty() {
        (
            &settings.accounts,
            format!("ACCOUNTS, looked up in {source}"),
        )
    } else {
        (&[], source.to_owned())
    };
    let mut chosen: Vec<TargetAccount> =
        if !asked.is_empty() && asked.iter().all(|v| is_account_id(v)) {
            asked.iter().map(|id| TargetAccount::id_only(id)).collect()
        } else {
            let catalog = catalog(settings, aws).await?;
            if asked.is_empty() {
                catalog.accounts
            } else {
                let mut chosen = Vec::new();
                for value in asked {
                    if value.eq_ignore_ascii_case("all") {
                        chosen.extend(catalog.accounts.iter().cloned());
                    } else {
                        chosen.push(catalog.find(value, source)?);
                    }
                }
                chosen
            }
        };
    let mut seen = std::collections::HashSet::new();
    chosen.retain(|account| seen.insert(account.id.clone()));
    if !arn_accounts.is_empty() {
        if let Some(missing) = arn_accounts
            .iter()
            .find(|id| Catalog::by_id(&chosen, id).is_none())
        {
            return Err(CollectorError::Accounts(format!(
                "account {missing} of a -r ARN is not among the accounts of {asked_by}: check the ARN, or pass -a {missing} to collect an account that is not configured"
            )));
        }
        chosen.retain(|account| arn_accounts.contains(&account.id));
    }
    if chosen.is_empty() {
        return Err(CollectorError::Accounts(format!(
            "no accounts to collect from {source}: pass -a, or configure ACCOUNTS, SWAG or ACCOUNT_SOURCE: organizations"
        )));
    }
    tracing::info!(accounts = chosen.len(), "accounts from {asked_by}");
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
async fn catalog(settings: &Settings, aws: &AwsContext) -> Result<Catalog, CollectorError> {
    match settings.account_source {
        AccountSource::Static => {
            if let Some(name) = settings.accounts.iter().find(|v| !is_account_id(v)) {
                return Err(CollectorError::Accounts(format!(
                    "ACCOUNTS holds {name:?}, which is not a 12-digit account id (names need ACCOUNT_SOURCE: swag or organizations)"
                )));
            }
            Ok(Catalog {
                accounts: settings
                    .accounts
                    .iter()
                    .map(|id| TargetAccount::id_only(id))
                    .collect(),
                excluded: Vec::new(),
            })
        }
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
            let (accounts, excluded) = pages
                .iter()
                .flat_map(|page| page.accounts())
                .filter_map(|account| {
                    let target = TargetAccount {
                        id: account.id()?.to_owned(),
                        name: account.name().map(str::to_owned),
                        aliases: Vec::new(),
                    };
                    Some((target, account.status() == Some(&AccountStatus::Active)))
                })
                .partition::<Vec<_>, _>(|(_, active)| *active);
            let targets =
                |pairs: Vec<(TargetAccount, bool)>| pairs.into_iter().map(|(t, _)| t).collect();
            Ok(Catalog {
                accounts: targets(accounts),
                excluded: targets(excluded),
            })
        }
        AccountSource::Swag => swag_catalog(aws, settings.swag.clone().unwrap_or_default()).await,
    }
}

/// SWAG's accounts: `accounts.json` read from S3, filtered as the settings say.
async fn swag_catalog(aws: &AwsContext, swag: SwagSettings) -> Result<Catalog, CollectorError> {
    let Some(bucket) = swag.bucket.clone() else {
        return Err(CollectorError::Accounts(
            "ACCOUNT_SOURCE is swag but SWAG.bucket is not set".into(),
        ));
    };
    let key = swag_key(&swag);
    let region = swag_option(&swag, "region");
    let object = aws
        .s3(region.as_deref())
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
            CollectorError::Accounts(format!(
                "cannot read s3://{bucket}/{key}: {}",
                crate::error_text::one_line(&err)
            ))
        })?
        .into_bytes();
    let document: Value = serde_json::from_slice(&bytes).map_err(|err| {
        CollectorError::Accounts(format!("s3://{bucket}/{key} is not JSON: {err}"))
    })?;
    let in_file = |err| CollectorError::Accounts(format!("s3://{bucket}/{key}: {err}"));
    let accounts = swag_accounts(&document, &swag).map_err(in_file)?;
    let unfiltered = SwagSettings {
        filter: None,
        service_enabled_requirement: None,
        ..swag
    };
    let excluded = swag_accounts(&document, &unfiltered)
        .map_err(in_file)?
        .into_iter()
        .filter(|account| Catalog::by_id(&accounts, &account.id).is_none())
        .collect();
    Ok(Catalog { accounts, excluded })
}

/// SWAG option `name` (`SWAG.opts.NAME`, or upstream's `swag.NAME`).
fn swag_option(swag: &SwagSettings, name: &str) -> Option<String> {
    swag.opts
        .get(name)
        .or_else(|| swag.opts.get(&format!("swag.{name}")))
        .cloned()
}

/// The object holding `accounts.json`: `SWAG.opts.data_file`, else SWAG's v2 default.
fn swag_key(swag: &SwagSettings) -> String {
    swag_option(swag, "data_file").unwrap_or_else(|| "v2/accounts.json".into())
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
