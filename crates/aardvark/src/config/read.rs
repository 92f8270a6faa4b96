//! Readers of raw setting values, one per kind of setting: each checks a YAML value and turns
//! it into its typed form, or names what the key takes. The table in `mod.rs` picks one per
//! setting.

use std::collections::BTreeMap;
use std::time::Duration;

use yaml_serde::Value;

use super::{key_name, ConfigError, Input, SwagSettings};
use crate::auth::ApiTokens;
use crate::named::Named;

/// Keys of the `SWAG` mapping.
const SWAG_KEYS: &[&str] = &["bucket", "filter", "service_enabled_requirement", "opts"];

/// Services `AWS_ENDPOINTS` may name.
const ENDPOINT_SERVICES: &[&str] = &["sts", "iam", "s3", "organizations"];

pub(super) fn non_empty_string(input: &mut Input) -> Result<String, ConfigError> {
    match input.value {
        Value::String(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        _ => Err(input.invalid("a non-empty string")),
    }
}

/// An IAM role name as IAM takes one: 1 to 64 of letters, digits and `+=,.@_-`.
pub(super) fn role_name(input: &mut Input) -> Result<String, ConfigError> {
    let name = non_empty_string(input)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if name.len() > 64 || !name.chars().all(allowed) {
        return Err(input.invalid(
            "an IAM role name: 1 to 64 letters, digits and +=,.@_- (no spaces or paths)",
        ));
    }
    Ok(name)
}

/// A database URI; a refused one is shown with its password masked.
pub(super) fn database_uri(input: &mut Input) -> Result<String, ConfigError> {
    let uri = non_empty_string(input)?;
    crate::db::uri::DatabaseTarget::parse(&uri).map_err(|err| ConfigError::Invalid {
        key: input.key.to_owned(),
        origin: input.origin.clone(),
        expected: format!("a database URI ({})", err.reason),
        found: format!("the string {:?}", err.uri),
    })?;
    Ok(uri)
}

/// One of `T`'s names, spelled exactly or (with `any_case`) in any case.
pub(super) fn name<T: Named>(any_case: bool) -> impl Fn(&mut Input) -> Result<T, ConfigError> {
    move |input| {
        input
            .value
            .as_str()
            .and_then(if any_case {
                T::from_name_ignoring_case
            } else {
                T::from_name
            })
            .ok_or_else(|| input.invalid(&T::choices()))
    }
}

/// A whole number within `min..=max`.
pub(super) fn whole<T: TryFrom<u64>>(
    min: u64,
    max: u64,
) -> impl Fn(&mut Input) -> Result<T, ConfigError> {
    move |input| {
        input
            .value
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| input.invalid(&format!("a whole number from {min} to {max}")))
    }
}

/// Whole seconds within `min..=max`.
pub(super) fn seconds(min: u64, max: u64) -> impl Fn(&mut Input) -> Result<Duration, ConfigError> {
    let read = whole(min, max);
    move |input| read(input).map(Duration::from_secs)
}

/// Whole milliseconds within `min..=max`.
pub(super) fn millis(min: u64, max: u64) -> impl Fn(&mut Input) -> Result<Duration, ConfigError> {
    let read = whole(min, max);
    move |input| read(input).map(Duration::from_millis)
}

/// Requests per second, 0 for unpaced.
pub(super) fn rate(input: &mut Input) -> Result<f64, ConfigError> {
    input
        .value
        .as_f64()
        .filter(|rate| rate.is_finite() && (0.0..=10_000.0).contains(rate))
        .ok_or_else(|| input.invalid("requests per second from 0 (unpaced) to 10000"))
}

pub(super) fn boolean(input: &mut Input) -> Result<bool, ConfigError> {
    input
        .value
        .as_bool()
        .ok_or_else(|| input.invalid("true or false"))
}

/// An http(s) URL.
pub(super) fn url(input: &mut Input) -> Result<String, ConfigError> {
    input
        .value
        .as_str()
        .map(str::trim)
        .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
        .map(str::to_owned)
        .ok_or_else(|| input.invalid("an http:// or https:// URL"))
}

/// A YAML list of strings, or one comma-separated string; `expected` names what the items are.
pub(super) fn string_list(
    expected: &'static str,
) -> impl Fn(&mut Input) -> Result<Vec<String>, ConfigError> {
    move |input| match input.value {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Number(number) => Ok(vec![number.to_string()]),
        Value::Sequence(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| input.invalid(expected)),
        _ => Err(input.invalid(expected)),
    }
}

/// `FINDINGS_EXCLUDE` rules.
pub(super) fn exclusions(
    input: &mut Input,
) -> Result<Vec<crate::findings::Exclusion>, ConfigError> {
    let expected = crate::findings::Exclusion::EXPECTED;
    string_list(expected)(input)?
        .iter()
        .map(|rule| crate::findings::Exclusion::parse(rule).ok_or_else(|| input.invalid(expected)))
        .collect()
}

/// `Host` names: `*`, a name (`aardvark.example.com`), a wildcard (`*.example.com`) or an IP
/// address, without a port.
pub(super) fn host_names(input: &mut Input) -> Result<Option<Vec<String>>, ConfigError> {
    let expected = "a list of host names (e.g. [aardvark.example.com, '*.example.com', 10.0.0.5] or '*'), without ports";
    let names = string_list(expected)(input)?;
    if names
        .iter()
        .any(|name| crate::hosts::HostPattern::parse(name).is_none())
    {
        return Err(input.invalid(expected));
    }
    Ok(Some(names))
}

/// A mapping of service to endpoint URL.
pub(super) fn endpoints(input: &mut Input) -> Result<BTreeMap<String, String>, ConfigError> {
    let Value::Mapping(map) = input.value else {
        return Err(input.invalid("a mapping of service (sts, iam, s3, organizations) to URL"));
    };
    let mut endpoints = BTreeMap::new();
    for (service, endpoint) in map {
        let service = key_name(service).to_ascii_lowercase();
        let full = format!("{}.{service}", input.key);
        let service_name = Value::String(service.clone());
        let mut item = Input {
            key: &full,
            value: &service_name,
            origin: input.origin,
            warnings: &mut *input.warnings,
        };
        if !ENDPOINT_SERVICES.contains(&service.as_str()) {
            return Err(item.invalid("a service among sts, iam, s3, organizations"));
        }
        item.value = endpoint;
        endpoints.insert(service, url(&mut item)?);
    }
    Ok(endpoints)
}

/// A schedule's interval (see [`super::parse_interval`]); null or `off` for none.
pub(super) fn interval(input: &mut Input) -> Result<Option<Duration>, ConfigError> {
    match input.value {
        Value::Null => Ok(None),
        Value::String(text) if text.trim().eq_ignore_ascii_case("off") => Ok(None),
        Value::String(text) => super::parse_interval(text)
            .map(Some)
            .map_err(|expected| input.invalid(&expected)),
        _ => Err(input.invalid("a duration such as 30m, 6h or 1d")),
    }
}

/// A file path.
pub(super) fn path(input: &mut Input) -> Result<Option<std::path::PathBuf>, ConfigError> {
    match input.value {
        Value::Null => Ok(None),
        Value::String(text) if !text.trim().is_empty() => Ok(Some(text.trim().into())),
        _ => Err(input.invalid("a file path")),
    }
}

/// API tokens: a list, or one comma-separated string. What is wrong is said without showing
/// the token.
pub(super) fn api_tokens(input: &mut Input) -> Result<ApiTokens, ConfigError> {
    let entries = string_list("a list of tokens")(input)?;
    ApiTokens::parse(entries.iter().map(|entry| entry.trim())).map_err(|err| ConfigError::Invalid {
        key: input.key.to_owned(),
        origin: input.origin.clone(),
        expected: "a list of tokens (each without spaces, or sha256:<64 hex digits>)".to_owned(),
        found: err.to_string(),
    })
}

/// The `SWAG` mapping; unknown keys in it are warnings.
pub(super) fn swag(input: &mut Input) -> Result<Option<SwagSettings>, ConfigError> {
    let map = match input.value {
        Value::Null => return Ok(None),
        Value::Mapping(map) => map,
        _ => return Err(input.invalid("a mapping (bucket, filter, ...)")),
    };
    let mut swag = SwagSettings::default();
    for (key, value) in map {
        let name = key_name(key).to_ascii_lowercase();
        let full = format!("SWAG.{name}");
        let item = Input {
            key: &full,
            value,
            origin: input.origin,
            warnings: &mut *input.warnings,
        };
        match name.as_str() {
            "bucket" => swag.bucket = bucket_name(&item)?,
            "filter" => swag.filter = jmespath_filter(&item)?,
            "service_enabled_requirement" => {
                swag.service_enabled_requirement = optional_string(&item)?
            }
            "opts" => swag.opts = swag_opts(&item)?,
            _ => item.warnings.push(format!(
                "{}: unknown setting {full} ignored (expected one of {})",
                input.origin,
                SWAG_KEYS.join(", ")
            )),
        }
    }
    Ok(Some(swag))
}

/// `SWAG.bucket`: a bucket's name, or null.
fn bucket_name(input: &Input) -> Result<Option<String>, ConfigError> {
    match optional_string(input)? {
        Some(name) if name.trim().is_empty() => Err(input.invalid("a bucket name")),
        other => Ok(other),
    }
}

/// `SWAG.filter`: a JMESPath expression (compiled here, so that a typo is said when the
/// settings are read, not when a run reads SWAG), or null or empty for none.
fn jmespath_filter(input: &Input) -> Result<Option<String>, ConfigError> {
    let filter = optional_string(input)?.filter(|filter| !filter.trim().is_empty());
    if let Some(filter) = &filter {
        if let Err(err) = jmespath::compile(filter) {
            return Err(input.invalid(&format!("a JMESPath expression ({err})")));
        }
    }
    Ok(filter)
}

fn optional_string(input: &Input) -> Result<Option<String>, ConfigError> {
    match input.value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        _ => Err(input.invalid("a string")),
    }
}

/// `SWAG.opts`: scalars by name.
fn swag_opts(input: &Input) -> Result<BTreeMap<String, String>, ConfigError> {
    let opts = match input.value {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Mapping(opts) => opts,
        _ => return Err(input.invalid("a mapping")),
    };
    let mut read = BTreeMap::new();
    for (opt, value) in opts {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(_) | Value::Bool(_) => key_name(value),
            _ => {
                return Err(super::invalid(
                    &format!("{}.{}", input.key, key_name(opt)),
                    input.origin,
                    "a scalar",
                    value,
                ))
            }
        };
        read.insert(key_name(opt), text);
    }
    Ok(read)
}
