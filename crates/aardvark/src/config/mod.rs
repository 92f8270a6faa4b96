//! Layered settings: a dynaconf-style `settings.yaml` (environment sections chosen by
//! `AARDVARK_ENV`), then `AARDVARK_<KEY>` variables (nested with `__`), then upstream's Docker
//! variables. Every value is checked here, so the rest of the program sees typed settings only.

pub mod legacy;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::{Mapping, Value};

/// Files tried in order when `--config` is not given.
pub const SEARCH_PATH: [&str; 2] = ["settings.yaml", "/etc/aardvark/settings.yaml"];

/// Keys upstream files carry that we accept without using them.
const IGNORED_KEYS: &[&str] = &[
    "SQLALCHEMY_TRACK_MODIFICATIONS",
    "SQLALCHEMY_ECHO",
    "LOG_CFG",
    "DEBUG",
    "ENV_FOR_DYNACONF",
    "DYNACONF_NAMESPACE",
    "SECRET_KEY",
];

/// Keys of the `SWAG` mapping.
const SWAG_KEYS: &[&str] = &["bucket", "filter", "service_enabled_requirement", "opts"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("{path}: expected a mapping of environment sections (default:, testing:, ...) at the top level")]
    NotAMapping { path: PathBuf },
    #[error("{origin}: {key} must be {expected}, found {found}")]
    Invalid {
        key: String,
        origin: Origin,
        expected: String,
        found: String,
    },
}

/// Where a setting's value came from, so that errors and warnings can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { path: PathBuf, section: String },
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "built-in default"),
            Origin::File { path, section } => write!(f, "{} (section {section})", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

/// AWS partitions an ARN can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    Aws,
    AwsUsGov,
    AwsCn,
}

impl Partition {
    pub fn as_str(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsUsGov => "aws-us-gov",
            Partition::AwsCn => "aws-cn",
        }
    }
}

/// `SWAG:` settings: where the account inventory lives and which accounts to take from it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SwagSettings {
    pub bucket: Option<String>,
    pub filter: Option<String>,
    pub service_enabled_requirement: Option<String>,
    pub opts: BTreeMap<String, String>,
}

/// Where `update` takes its accounts from when `-a` does not name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccountSource {
    /// The `ACCOUNTS` list (or `AARDVARK_ACCOUNTS`).
    #[default]
    Static,
    /// SWAG's `accounts.json` in S3.
    Swag,
    /// AWS Organizations `ListAccounts`, ACTIVE accounts.
    Organizations,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Every setting the program uses, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub aws_rolename: String,
    pub aws_region: String,
    pub aws_arn_partition: Partition,
    pub database_uri: String,
    pub updater_num_threads: usize,
    pub updater_failing_arns: Vec<String>,
    pub updater_prune: bool,
    /// Accounts collected at once.
    pub updater_account_concurrency: usize,
    /// Principals collected at once within one account.
    pub updater_principal_concurrency: usize,
    /// Requests per second sent to one account's IAM (0: unpaced).
    pub updater_account_rate_limit: f64,
    /// Requests one account may receive at once before pacing starts.
    pub updater_account_burst: u32,
    /// How long an Access Advisor job may take.
    pub updater_job_timeout: Duration,
    /// First wait between polls of a job; doubles up to `updater_poll_max_interval`.
    pub updater_poll_interval: Duration,
    pub updater_poll_max_interval: Duration,
    /// Attempts per AWS call (the SDK's adaptive retry mode).
    pub updater_max_attempts: u32,
    /// How long one attempt of an AWS call may take.
    pub updater_request_timeout: Duration,
    /// Endpoint for every AWS service (else the SDK's own, or `AWS_ENDPOINT_URL`).
    pub aws_endpoint_url: Option<String>,
    /// Endpoints per service: `sts`, `iam`, `s3`, `organizations`.
    pub aws_endpoints: BTreeMap<String, String>,
    pub swag: Option<SwagSettings>,
    pub accounts: Vec<String>,
    pub account_source: AccountSource,
    pub log_format: LogFormat,
    /// The file the settings came from, if any.
    pub file: Option<PathBuf>,
}

/// The settings plus what the operator should be told about them.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            aws_rolename: "Aardvark".into(),
            aws_region: "us-east-1".into(),
            aws_arn_partition: Partition::Aws,
            database_uri: "sqlite:///aardvark.db".into(),
            updater_num_threads: 50,
            updater_failing_arns: Vec::new(),
            updater_prune: false,
            updater_account_concurrency: 50,
            updater_principal_concurrency: 10,
            updater_account_rate_limit: 10.0,
            updater_account_burst: 10,
            updater_job_timeout: Duration::from_secs(300),
            updater_poll_interval: Duration::from_millis(500),
            updater_poll_max_interval: Duration::from_secs(5),
            updater_max_attempts: 5,
            updater_request_timeout: Duration::from_secs(60),
            aws_endpoint_url: None,
            aws_endpoints: BTreeMap::new(),
            swag: None,
            accounts: Vec::new(),
            account_source: AccountSource::Static,
            log_format: LogFormat::Text,
            file: None,
        }
    }
}

/// One raw value and where it came from.
type RawValues = BTreeMap<String, (Value, Origin)>;

/// Loads settings from the file (explicit, or the first of [`SEARCH_PATH`] that exists) and the
/// given environment variables.
pub fn load(
    explicit: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<Loaded, ConfigError> {
    let search: Vec<PathBuf> = SEARCH_PATH.iter().map(PathBuf::from).collect();
    load_searching(explicit, &search, env)
}

/// [`load`] with another list of files to try when `explicit` is `None`.
pub fn load_searching(
    explicit: Option<&Path>,
    search: &[PathBuf],
    env: &BTreeMap<String, String>,
) -> Result<Loaded, ConfigError> {
    let file = match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => search.iter().find(|candidate| candidate.is_file()).cloned(),
    };
    let environment = env
        .get("AARDVARK_ENV")
        .map(|name| name.to_ascii_lowercase())
        .unwrap_or_else(|| "default".into());
    let mut warnings = Vec::new();
    let mut raw = RawValues::new();
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        read_file_values(path, &text, &environment, &mut raw, &mut warnings)?;
    }
    read_env_values(env, &mut raw, &mut warnings);
    let mut settings = validate(raw, &mut warnings)?;
    settings.file = file;
    Ok(Loaded { settings, warnings })
}

/// Loads settings with the process environment.
pub fn load_from_process(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    load(explicit, &std::env::vars().collect())
}

fn read_file_values(
    path: &Path,
    text: &str,
    environment: &str,
    raw: &mut RawValues,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let document: Value = if text.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_yaml::from_str(text).map_err(|source| ConfigError::Yaml {
            path: path.to_path_buf(),
            source,
        })?
    };
    let Value::Mapping(top) = document else {
        return Err(ConfigError::NotAMapping {
            path: path.to_path_buf(),
        });
    };
    // Top-level keys that are settings apply to every environment; mappings under any other
    // name are environment sections, of which `default` and then the chosen one apply.
    let mut sections: BTreeMap<String, Mapping> = BTreeMap::new();
    let mut flat = Mapping::new();
    for (key, value) in top {
        let name = key_name(&key);
        match value {
            Value::Mapping(section) if !is_setting(&name) => {
                sections.insert(name.to_ascii_lowercase(), section);
            }
            value => {
                flat.insert(Value::String(name), value);
            }
        }
    }
    if environment != "default" && !sections.contains_key(environment) {
        warnings.push(format!(
            "{}: AARDVARK_ENV={environment} but the file has no section {environment}:",
            path.display()
        ));
    }
    let mut layers = vec![("top level".to_owned(), flat)];
    for name in ["default", "global", environment] {
        if let Some(section) = sections.remove(name) {
            layers.push((name.to_owned(), section));
        }
    }
    for (section, mapping) in layers {
        for (key, value) in mapping {
            let name = key_name(&key).to_ascii_uppercase();
            let origin = Origin::File {
                path: path.to_path_buf(),
                section: section.clone(),
            };
            if IGNORED_KEYS.contains(&name.as_str()) {
                continue;
            }
            if !is_setting(&name) {
                warnings.push(format!(
                    "{origin}: unknown setting {name} ignored (a typo?)"
                ));
                continue;
            }
            raw.insert(name, (value, origin));
        }
    }
    Ok(())
}

fn read_env_values(
    env: &BTreeMap<String, String>,
    raw: &mut RawValues,
    warnings: &mut Vec<String>,
) {
    // Upstream's Docker image variables, lowest precedence among variables.
    let docker = [
        ("AARDVARK_ROLE", "AWS_ROLENAME"),
        ("AARDVARK_ACCOUNTS", "ACCOUNTS"),
        ("AARDVARK_DATABASE_URI", "SQLALCHEMY_DATABASE_URI"),
        ("AWS_ARN_PARTITION", "AWS_ARN_PARTITION"),
    ];
    for (var, key) in docker {
        if let Some(text) = env.get(var) {
            raw.insert(
                key.into(),
                (Value::String(text.clone()), Origin::Env(var.into())),
            );
        }
    }
    if let Some(dir) = env.get("AARDVARK_DATA_DIR") {
        if !env.contains_key("AARDVARK_DATABASE_URI") {
            let uri = format!("sqlite:///{}", Path::new(dir).join("aardvark.db").display());
            raw.insert(
                "SQLALCHEMY_DATABASE_URI".into(),
                (Value::String(uri), Origin::Env("AARDVARK_DATA_DIR".into())),
            );
        }
    }
    for (var, text) in env {
        let Some(rest) = var.strip_prefix("AARDVARK_") else {
            continue;
        };
        let mut path = rest.split("__");
        let name = path.next().unwrap_or_default().to_ascii_uppercase();
        if !is_setting(&name) {
            continue; // AARDVARK_ENV, Docker variables and variables of other tools
        }
        let value = parse_env_scalar(text);
        let origin = Origin::Env(var.clone());
        let nested: Vec<String> = path.map(|part| part.to_ascii_lowercase()).collect();
        if nested.is_empty() {
            raw.insert(name, (value, origin));
            continue;
        }
        let entry = raw
            .entry(name)
            .or_insert_with(|| (Value::Mapping(Mapping::new()), origin.clone()));
        if !entry.0.is_mapping() {
            entry.0 = Value::Mapping(Mapping::new());
        }
        let mut target = &mut entry.0;
        for (depth, part) in nested.iter().enumerate() {
            let Value::Mapping(map) = target else {
                warnings.push(format!("{var}: cannot nest below a non-mapping value"));
                break;
            };
            let slot = Value::String(part.clone());
            if depth + 1 == nested.len() {
                map.insert(slot, value.clone());
                break;
            }
            target = map
                .entry(slot)
                .or_insert_with(|| Value::Mapping(Mapping::new()));
        }
        entry.1 = origin;
    }
}

/// Environment values are YAML scalars: `10` is a number, `true` a boolean, `[a, b]` a list.
fn parse_env_scalar(text: &str) -> Value {
    serde_yaml::from_str::<Value>(text)
        .ok()
        .filter(|value| !value.is_mapping())
        .unwrap_or_else(|| Value::String(text.to_owned()))
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

fn is_setting(name: &str) -> bool {
    SETTING_NAMES.contains(&name.to_ascii_uppercase().as_str())
}

const SETTING_NAMES: &[&str] = &[
    "AWS_ROLENAME",
    "AWS_REGION",
    "AWS_ARN_PARTITION",
    "SQLALCHEMY_DATABASE_URI",
    "UPDATER_NUM_THREADS",
    "UPDATER_FAILING_ARNS",
    "UPDATER_PRUNE",
    "UPDATER_ACCOUNT_CONCURRENCY",
    "UPDATER_PRINCIPAL_CONCURRENCY",
    "UPDATER_ACCOUNT_RATE_LIMIT",
    "UPDATER_ACCOUNT_BURST",
    "UPDATER_JOB_TIMEOUT_SECONDS",
    "UPDATER_POLL_INTERVAL_MS",
    "UPDATER_POLL_MAX_INTERVAL_MS",
    "UPDATER_MAX_ATTEMPTS",
    "UPDATER_REQUEST_TIMEOUT_SECONDS",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINTS",
    "SWAG",
    "ACCOUNTS",
    "LOG_FORMAT",
    "ACCOUNT_SOURCE",
];

fn invalid(key: &str, origin: &Origin, expected: &str, found: &Value) -> ConfigError {
    let found = match found {
        Value::Null => "nothing (null)".to_owned(),
        Value::Bool(value) => format!("the boolean {value}"),
        Value::Number(value) => format!("the number {value}"),
        Value::String(value) => format!("the string {value:?}"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(tagged) => format!("a value tagged {}", tagged.tag),
    };
    ConfigError::Invalid {
        key: key.to_owned(),
        origin: origin.clone(),
        expected: expected.to_owned(),
        found,
    }
}

fn validate(raw: RawValues, warnings: &mut Vec<String>) -> Result<Settings, ConfigError> {
    let mut settings = Settings::default();
    for (key, (value, origin)) in &raw {
        let string = || match value {
            Value::String(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
            _ => Err(invalid(key, origin, "a non-empty string", value)),
        };
        match key.as_str() {
            "AWS_ROLENAME" => settings.aws_rolename = string()?,
            "AWS_REGION" => settings.aws_region = string()?,
            "SQLALCHEMY_DATABASE_URI" => {
                let uri = string()?;
                crate::db::uri::DatabaseTarget::parse(&uri).map_err(|err| {
                    invalid(
                        key,
                        origin,
                        &format!("a database URI ({})", err.reason),
                        value,
                    )
                })?;
                settings.database_uri = uri;
            }
            "AWS_ARN_PARTITION" => {
                settings.aws_arn_partition = match value.as_str() {
                    Some("aws") => Partition::Aws,
                    Some("aws-us-gov") => Partition::AwsUsGov,
                    Some("aws-cn") => Partition::AwsCn,
                    _ => {
                        return Err(invalid(
                            key,
                            origin,
                            "one of aws, aws-us-gov, aws-cn",
                            value,
                        ))
                    }
                }
            }
            "UPDATER_NUM_THREADS" => {
                settings.updater_num_threads = whole(key, origin, value, 1, 10_000)? as usize
            }
            "UPDATER_ACCOUNT_CONCURRENCY" => {
                settings.updater_account_concurrency =
                    whole(key, origin, value, 1, 10_000)? as usize
            }
            "UPDATER_PRINCIPAL_CONCURRENCY" => {
                settings.updater_principal_concurrency =
                    whole(key, origin, value, 1, 1_000)? as usize
            }
            "UPDATER_ACCOUNT_RATE_LIMIT" => {
                settings.updater_account_rate_limit = value
                    .as_f64()
                    .filter(|rate| rate.is_finite() && (0.0..=10_000.0).contains(rate))
                    .ok_or_else(|| {
                        invalid(
                            key,
                            origin,
                            "requests per second from 0 (unpaced) to 10000",
                            value,
                        )
                    })?;
                if !raw.contains_key("UPDATER_ACCOUNT_BURST") {
                    settings.updater_account_burst =
                        settings.updater_account_rate_limit.ceil().max(1.0) as u32;
                }
            }
            "UPDATER_ACCOUNT_BURST" => {
                settings.updater_account_burst = whole(key, origin, value, 1, 10_000)? as u32
            }
            "UPDATER_JOB_TIMEOUT_SECONDS" => {
                settings.updater_job_timeout =
                    Duration::from_secs(whole(key, origin, value, 1, 86_400)?)
            }
            "UPDATER_POLL_INTERVAL_MS" => {
                settings.updater_poll_interval =
                    Duration::from_millis(whole(key, origin, value, 1, 600_000)?)
            }
            "UPDATER_POLL_MAX_INTERVAL_MS" => {
                settings.updater_poll_max_interval =
                    Duration::from_millis(whole(key, origin, value, 1, 600_000)?)
            }
            "UPDATER_MAX_ATTEMPTS" => {
                settings.updater_max_attempts = whole(key, origin, value, 1, 20)? as u32
            }
            "UPDATER_REQUEST_TIMEOUT_SECONDS" => {
                settings.updater_request_timeout =
                    Duration::from_secs(whole(key, origin, value, 1, 3_600)?)
            }
            "AWS_ENDPOINT_URL" => settings.aws_endpoint_url = Some(url(key, origin, value)?),
            "AWS_ENDPOINTS" => {
                let Value::Mapping(map) = value else {
                    return Err(invalid(
                        key,
                        origin,
                        "a mapping of service (sts, iam, s3, organizations) to URL",
                        value,
                    ));
                };
                for (service, endpoint) in map {
                    let service = key_name(service).to_ascii_lowercase();
                    let full = format!("AWS_ENDPOINTS.{service}");
                    if !["sts", "iam", "s3", "organizations"].contains(&service.as_str()) {
                        return Err(invalid(
                            &full,
                            origin,
                            "a service among sts, iam, s3, organizations",
                            &Value::String(service.clone()),
                        ));
                    }
                    settings
                        .aws_endpoints
                        .insert(service, url(&full, origin, endpoint)?);
                }
            }
            "UPDATER_FAILING_ARNS" => {
                settings.updater_failing_arns = string_list(value)
                    .ok_or_else(|| invalid(key, origin, "a list of ARNs", value))?;
            }
            "ACCOUNTS" => {
                settings.accounts = string_list(value).ok_or_else(|| {
                    invalid(
                        key,
                        origin,
                        "a list of account ids or a comma-separated string",
                        value,
                    )
                })?;
            }
            "UPDATER_PRUNE" => {
                settings.updater_prune = value
                    .as_bool()
                    .ok_or_else(|| invalid(key, origin, "true or false", value))?;
            }
            "LOG_FORMAT" => {
                settings.log_format = match value.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some("text") => LogFormat::Text,
                    Some("json") => LogFormat::Json,
                    _ => return Err(invalid(key, origin, "text or json", value)),
                }
            }
            "ACCOUNT_SOURCE" => {
                settings.account_source =
                    match value.as_str().map(str::to_ascii_lowercase).as_deref() {
                        Some("static") => AccountSource::Static,
                        Some("swag") => AccountSource::Swag,
                        Some("organizations") => AccountSource::Organizations,
                        _ => {
                            return Err(invalid(
                                key,
                                origin,
                                "one of static, swag, organizations",
                                value,
                            ))
                        }
                    }
            }
            "SWAG" => settings.swag = validate_swag(value, origin, warnings)?,
            _ => unreachable!("only known settings are collected"),
        }
    }
    // Upstream used SWAG whenever it was configured.
    if !raw.contains_key("ACCOUNT_SOURCE")
        && settings
            .swag
            .as_ref()
            .is_some_and(|swag| swag.bucket.is_some())
    {
        settings.account_source = AccountSource::Swag;
    }
    Ok(settings)
}

/// A whole number within `min..=max`.
fn whole(
    key: &str,
    origin: &Origin,
    value: &Value,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    value
        .as_u64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            invalid(
                key,
                origin,
                &format!("a whole number from {min} to {max}"),
                value,
            )
        })
}

/// An http(s) URL.
fn url(key: &str, origin: &Origin, value: &Value) -> Result<String, ConfigError> {
    value
        .as_str()
        .map(str::trim)
        .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
        .map(str::to_owned)
        .ok_or_else(|| invalid(key, origin, "an http:// or https:// URL", value))
}

/// A YAML list of strings, or one comma-separated string.
fn string_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Null => Some(Vec::new()),
        Value::String(text) => Some(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        Value::Number(number) => Some(vec![number.to_string()]),
        Value::Sequence(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn validate_swag(
    value: &Value,
    origin: &Origin,
    warnings: &mut Vec<String>,
) -> Result<Option<SwagSettings>, ConfigError> {
    let map = match value {
        Value::Null => return Ok(None),
        Value::Mapping(map) => map,
        _ => {
            return Err(invalid(
                "SWAG",
                origin,
                "a mapping (bucket, filter, ...)",
                value,
            ))
        }
    };
    let mut swag = SwagSettings::default();
    for (key, item) in map {
        let name = key_name(key).to_ascii_lowercase();
        let full = format!("SWAG.{name}");
        let optional_string = || match item {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(text.clone())),
            _ => Err(invalid(&full, origin, "a string", item)),
        };
        match name.as_str() {
            "bucket" => swag.bucket = optional_string()?,
            "filter" => swag.filter = optional_string()?,
            "service_enabled_requirement" => swag.service_enabled_requirement = optional_string()?,
            "opts" => {
                let Value::Mapping(opts) = item else {
                    if item.is_null() {
                        continue;
                    }
                    return Err(invalid(&full, origin, "a mapping", item));
                };
                for (opt, opt_value) in opts {
                    let text = match opt_value {
                        Value::String(text) => text.clone(),
                        Value::Number(_) | Value::Bool(_) => key_name(opt_value),
                        _ => {
                            return Err(invalid(
                                &format!("{full}.{}", key_name(opt)),
                                origin,
                                "a scalar",
                                opt_value,
                            ))
                        }
                    };
                    swag.opts.insert(key_name(opt), text);
                }
            }
            _ => warnings.push(format!(
                "{origin}: unknown setting {full} ignored (expected one of {})",
                SWAG_KEYS.join(", ")
            )),
        }
    }
    Ok(Some(swag))
}

/// Renders settings as a `settings.yaml` document with a `default:` section.
pub fn to_yaml(values: &BTreeMap<String, Value>) -> String {
    let mut section = Mapping::new();
    for (key, value) in values {
        section.insert(Value::String(key.clone()), value.clone());
    }
    let mut top = Mapping::new();
    top.insert(Value::String("default".into()), Value::Mapping(section));
    serde_yaml::to_string(&Value::Mapping(top)).expect("YAML values always serialize")
}
