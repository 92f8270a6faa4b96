//! Layered settings: a dynaconf-style `settings.yaml` (environment sections chosen by
//! `AARDVARK_ENV`), then `AARDVARK_<KEY>` variables (nested with `__`), then upstream's Docker
//! variables. Every value is checked here, so the rest of the program sees typed settings only.

pub mod legacy;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use yaml_serde::{Mapping, Value};

use crate::auth::ApiTokens;
use crate::named::named;

mod read;

/// Files tried in order when `--config` is not given.
pub const SEARCH_PATH: [&str; 2] = ["settings.yaml", "/etc/aardvark/settings.yaml"];

/// Keys upstream files carry that we accept without using them (they change nothing).
const IGNORED_KEYS: &[&str] = &[
    "SQLALCHEMY_TRACK_MODIFICATIONS",
    "SQLALCHEMY_ECHO",
    "DEBUG",
    "ENV_FOR_DYNACONF",
    "DYNACONF_NAMESPACE",
    "SECRET_KEY",
];

/// Keys upstream files carry whose effect is lost, and what to do instead.
pub(crate) const LOST_KEYS: &[(&str, &str)] = &[
    (
        "LOG_CFG",
        "LOG_CFG (Python's logging configuration, and the log file it wrote) has no equivalent: aardvark logs to stderr, one line per event (LOG_FORMAT: json for structured lines); send them to a file or the journal with the service manager (systemd, docker logs, or `2>> aardvark.log`)",
    ),
    (
        "PHANTOMJS",
        "PHANTOMJS is obsolete: upstream kept it from an older feature and never used it; nothing replaces it",
    ),
];

/// What to say of an unknown setting `name`: the known key it is nearest to, if any is near.
pub(crate) fn nearest_setting(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_uppercase();
    let suffix = format!("_{name}");
    if let Some(known) = SETTING_NAMES.iter().find(|known| known.ends_with(&suffix)) {
        return Some(known);
    }
    SETTING_NAMES
        .iter()
        .map(|known| (strsim::jaro_winkler(&name, known), *known))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, known)| known)
}

/// The warning for a key that is not a setting: lost, or unknown with the nearest known one.
pub(crate) fn unknown_key_warning(name: &str) -> String {
    if let Some((_, why)) = LOST_KEYS.iter().find(|(lost, _)| *lost == name) {
        return format!("{why}; {name} ignored");
    }
    match nearest_setting(name) {
        Some(known) => format!("unknown setting {name} ignored; did you mean {known}?"),
        None => format!("unknown setting {name} ignored (a typo?)"),
    }
}

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
        source: yaml_serde::Error,
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
named!(Partition { Aws => "aws", AwsUsGov => "aws-us-gov", AwsCn => "aws-cn" });

impl Partition {
    /// The partition a region belongs to (`us-gov-west-1`: `aws-us-gov`, `cn-north-1`:
    /// `aws-cn`, any other: `aws`).
    pub fn of_region(region: &str) -> Self {
        if region.starts_with("us-gov-") {
            Self::AwsUsGov
        } else if region.starts_with("cn-") {
            Self::AwsCn
        } else {
            Self::Aws
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
named!(AccountSource { Static => "static", Swag => "swag", Organizations => "organizations" });

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
named!(LogFormat { Text => "text", Json => "json" });

/// What Access Advisor jobs are asked for: tracked actions too (the same calls, more data),
/// or services only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Granularity {
    #[default]
    Action,
    Service,
}
named!(Granularity { Action => "action", Service => "service" });

/// Declares every setting once: its field (with its doc), type, default, key, and the reader
/// that checks a raw value. The struct, its `Default`, the list of known keys and validation
/// all come from this one table.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $field:ident: $type:ty = $default:expr, $key:literal => $read:expr; )+) => {
        /// Every setting the program uses, validated.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $( $(#[doc = $doc])* pub $field: $type, )+
            /// The file the settings came from, if any.
            pub file: Option<PathBuf>,
        }

        impl Default for Settings {
            fn default() -> Self {
                Self { $($field: $default,)+ file: None }
            }
        }

        /// Every key a settings file or an `AARDVARK_*` variable may set.
        pub(crate) const SETTING_NAMES: &[&str] = &[$($key),+];

        impl Settings {
            /// Sets the setting `input.key` names (one of [`SETTING_NAMES`]) from its raw value.
            fn set(&mut self, input: &mut Input<'_>) -> Result<(), ConfigError> {
                match input.key {
                    $( $key => self.$field = ($read)(&mut *input)?, )+
                    _ => unreachable!("only known settings are collected"),
                }
                Ok(())
            }
        }
    };
}

settings! {
    /// Role assumed in each account.
    aws_rolename: String = "Aardvark".into(), "AWS_ROLENAME" => read::role_name;
    aws_region: String = "us-east-1".into(), "AWS_REGION" => read::non_empty_string;
    aws_arn_partition: Partition = Partition::Aws, "AWS_ARN_PARTITION" => read::name(false);
    database_uri: String = "sqlite:///aardvark.db".into(), "SQLALCHEMY_DATABASE_URI" => read::database_uri;
    /// Accounts collected at once (upstream's meaning).
    updater_num_threads: usize = 1_000, "UPDATER_NUM_THREADS" => read::whole(1, 10_000);
    /// ARNs whose failures are logged at info only.
    updater_failing_arns: Vec<String> = Vec::new(), "UPDATER_FAILING_ARNS" => read::string_list("a list of ARNs");
    /// Delete principals and namespaces AWS no longer lists.
    updater_prune: bool = false, "UPDATER_PRUNE" => read::boolean;
    /// `action` (tracked actions as well as services) or `service`.
    updater_granularity: Granularity = Granularity::Action, "UPDATER_GRANULARITY" => read::name(true);
    /// Principals collected at once within one account.
    updater_principal_concurrency: usize = 32, "UPDATER_PRINCIPAL_CONCURRENCY" => read::whole(1, 1_000);
    /// Principals of the whole run between their job's generation and their write, at most.
    updater_principals_in_flight: usize = 8_192, "UPDATER_PRINCIPALS_IN_FLIGHT" => read::whole(1, 1_000_000);
    /// Requests per second sent to one account's IAM (0: unpaced).
    updater_account_rate_limit: f64 = 10.0, "UPDATER_ACCOUNT_RATE_LIMIT" => read::rate;
    /// Requests one account may receive at once before pacing starts (default: half the
    /// rate, rounded up, so that requests that bunch up on the way still fit AWS's own bucket).
    updater_account_burst: u32 = 5, "UPDATER_ACCOUNT_BURST" => read::whole(1, 10_000);
    /// How long an Access Advisor job may take.
    updater_job_timeout: Duration = Duration::from_secs(300), "UPDATER_JOB_TIMEOUT_SECONDS" => read::seconds(1, 86_400);
    /// First interval of a job's polling backoff; doubles up to `updater_poll_max_interval`.
    /// (When a job is first polled, each account learns from its jobs.)
    updater_poll_interval: Duration = Duration::from_millis(250), "UPDATER_POLL_INTERVAL_MS" => read::millis(1, 600_000);
    updater_poll_max_interval: Duration = Duration::from_secs(5), "UPDATER_POLL_MAX_INTERVAL_MS" => read::millis(1, 600_000);
    /// Attempts per AWS call (the SDK's standard retry mode; throttled IAM calls are sent again
    /// by the account's pacer instead).
    updater_max_attempts: u32 = 5, "UPDATER_MAX_ATTEMPTS" => read::whole(1, 20);
    /// How long one attempt of an AWS call may take.
    updater_request_timeout: Duration = Duration::from_secs(60), "UPDATER_REQUEST_TIMEOUT_SECONDS" => read::seconds(1, 3_600);
    /// How long an assumed-role session is asked to last (`DurationSeconds`); AWS caps
    /// role-chained sessions at an hour.
    aws_session_duration: Duration = Duration::from_secs(3600), "AWS_SESSION_DURATION_SECONDS" => read::seconds(900, 43_200);
    /// Endpoint for every AWS service (else the SDK's own, or `AWS_ENDPOINT_URL`).
    aws_endpoint_url: Option<String> = None, "AWS_ENDPOINT_URL" => |input: &mut Input| read::url(input).map(Some);
    /// Endpoints per service: `sts`, `iam`, `s3`, `organizations`.
    aws_endpoints: BTreeMap<String, String> = BTreeMap::new(), "AWS_ENDPOINTS" => read::endpoints;
    /// Collect each account's identity details (`GetAccountAuthorizationDetails`, the
    /// credential report, `ListAccessKeys`) for findings; best effort per account.
    updater_identity_details: bool = true, "UPDATER_IDENTITY_DETAILS" => read::boolean;
    /// Findings' window: unused for this many days.
    findings_unused_days: i64 = crate::findings::DEFAULT_DAYS, "FINDINGS_UNUSED_DAYS" => read::whole(1, crate::findings::MAX_DAYS as u64);
    /// Findings these rules match are archived (account id, `tag:key[=value]`, ARN glob).
    findings_exclude: Vec<crate::findings::Exclusion> = Vec::new(), "FINDINGS_EXCLUDE" => read::exclusions;
    /// How long the history of last uses is kept (`GET /api/1/history`); 0 keeps none.
    history_retention_days: u32 = 400, "HISTORY_RETENTION_DAYS" => read::whole(0, 36_500);
    swag: Option<SwagSettings> = None, "SWAG" => read::swag;
    accounts: Vec<String> = Vec::new(), "ACCOUNTS" => read::string_list("a list of account ids or a comma-separated string");
    log_format: LogFormat = LogFormat::Text, "LOG_FORMAT" => read::name(true);
    account_source: AccountSource = AccountSource::Static, "ACCOUNT_SOURCE" => read::name(true);
    /// `serve`: collect on this schedule (`30m`, `6h`, `1d`); none by default.
    collect_every: Option<Duration> = None, "COLLECT_EVERY" => read::interval;
    /// `serve`: take part in collections (`false`: this server only answers the API, and
    /// starts no scheduled run).
    collect_worker: bool = true, "COLLECT_WORKER" => read::boolean;
    /// PostgreSQL: runs are shared by every process that takes part (`false`: a run is its
    /// starter's alone, as on SQLite).
    collect_shared: bool = true, "COLLECT_SHARED" => read::boolean;
    /// How long a worker's claim on an account of a shared run lasts without renewal: a dead
    /// worker's accounts are collected again by the others after it.
    collect_lease: Duration = Duration::from_secs(60), "COLLECT_LEASE_SECONDS" => read::seconds(2, 3_600);
    /// Tokens the API asks for (authentication is off when there are none).
    api_tokens: ApiTokens = ApiTokens::default(), "API_TOKENS" => read::api_tokens;
    /// Whether `/metrics` asks for a token too when tokens are on (set `false` to open it).
    metrics_require_token: bool = true, "METRICS_REQUIRE_TOKEN" => read::boolean;
    /// `Host` names the server answers for (`*` for any); by default the bound address and
    /// `localhost` when bound to loopback, any otherwise ([`crate::hosts`]).
    allowed_hosts: Option<Vec<String>> = None, "ALLOWED_HOSTS" => read::host_names;
    /// Connections served at once; more are refused at once, with a log line.
    max_connections: usize = 1_000, "MAX_CONNECTIONS" => read::whole(1, 1_000_000);
    /// How long a client may take to send a request's headers, counted from the connection's
    /// start (or TLS handshake) or from the end of its previous answer (bounds slow headers,
    /// silent and idle keep-alive connections), and then its body.
    header_read_timeout: Duration = Duration::from_secs(10), "HEADER_READ_TIMEOUT_SECONDS" => read::seconds(1, 3_600);
    /// Costly queries (a regex, combine, a count over 1000) run at once; 0: half the cores.
    costly_queries: usize = 0, "COSTLY_QUERIES" => read::whole(0, 1_000);
    /// One log line per request (method, route, status, latency, bytes).
    access_log: bool = true, "ACCESS_LOG" => read::boolean;
    /// `serve` over HTTPS: the certificate chain (PEM) ...
    tls_cert_file: Option<PathBuf> = None, "TLS_CERT_FILE" => read::path;
    /// ... and its private key (PEM).
    tls_key_file: Option<PathBuf> = None, "TLS_KEY_FILE" => read::path;
    /// How long `serve` lets requests in flight finish after SIGTERM or SIGINT.
    shutdown_timeout: Duration = Duration::from_secs(30), "SHUTDOWN_TIMEOUT_SECONDS" => read::seconds(0, 3_600);
}

impl Settings {
    /// The window and exclusions findings are evaluated with.
    pub fn finding_rules(&self) -> crate::findings::FindingRules {
        crate::findings::FindingRules {
            days: self.findings_unused_days,
            exclusions: self.findings_exclude.clone(),
        }
    }
}

/// The longest schedule `COLLECT_EVERY` takes.
const LONGEST_INTERVAL: Duration = Duration::from_secs(365 * 86_400);

/// A schedule's interval as `COLLECT_EVERY` and `serve --collect-every` take it: a number with
/// a unit (`90s`, `30m`, `6h`, `1d`, `1h 30m`), from one second to a year.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let expected = "a duration such as 30m, 6h or 1d (from 1s to 365d)";
    let interval = humantime::parse_duration(text.trim()).map_err(|_| expected.to_owned())?;
    if interval < Duration::from_secs(1) || interval > LONGEST_INTERVAL {
        return Err(expected.to_owned());
    }
    Ok(interval)
}

/// The settings plus what the operator should be told about them.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
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
    let text = match &file {
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let file = file.as_deref().zip(text.as_deref());
    load_file_text(file, &environment, env)
}

/// Checks the text of a settings file that is to be written at `path`, as every command will
/// read it (without the environment): what `aardvark config` writes must load.
pub fn check_file_text(path: &Path, text: &str) -> Result<Loaded, ConfigError> {
    load_file_text(Some((path, text)), "default", &BTreeMap::new())
}

fn load_file_text(
    file: Option<(&Path, &str)>,
    environment: &str,
    env: &BTreeMap<String, String>,
) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let mut raw = RawValues::new();
    if let Some((path, text)) = file {
        read_file_values(path, text, environment, &mut raw, &mut warnings)?;
    }
    read_env_values(env, &mut raw, &mut warnings);
    let mut settings = validate(raw, &mut warnings)?;
    settings.file = file.map(|(path, _)| path.to_path_buf());
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
        yaml_serde::from_str(text).map_err(|source| ConfigError::Yaml {
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
                warnings.push(format!("{origin}: {}", unknown_key_warning(&name)));
                continue;
            }
            raw.insert(name, (value, origin));
        }
    }
    Ok(())
}

/// AWS's own region variables, in the SDK's order, below every aardvark source: a file or
/// variable of aardvark's that names a region is the operator's choice for aardvark.
fn read_standard_region(env: &BTreeMap<String, String>, raw: &mut RawValues) {
    if raw.contains_key("AWS_REGION") || env.contains_key("AARDVARK_AWS_REGION") {
        return;
    }
    let standard = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|var| Some((var, env.get(var).filter(|v| !v.trim().is_empty())?)));
    if let Some((var, region)) = standard {
        raw.insert(
            "AWS_REGION".into(),
            (
                Value::String(region.trim().to_owned()),
                Origin::Env(var.into()),
            ),
        );
    }
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
    read_standard_region(env, raw);
    // A value derived from another setting: only where no database URI is set anywhere (the
    // file, upstream's variable or ours), never over one.
    if let Some(dir) = env.get("AARDVARK_DATA_DIR") {
        let set_anywhere = raw.contains_key("SQLALCHEMY_DATABASE_URI")
            || env
                .keys()
                .any(|var| var.eq_ignore_ascii_case("AARDVARK_SQLALCHEMY_DATABASE_URI"));
        if !set_anywhere {
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
    yaml_serde::from_str::<Value>(text)
        .ok()
        .filter(|value| !value.is_mapping())
        .unwrap_or_else(|| Value::String(text.to_owned()))
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        other => yaml_serde::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

fn is_setting(name: &str) -> bool {
    SETTING_NAMES.contains(&name.to_ascii_uppercase().as_str())
}

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

/// One raw value on its way to a setting: what a reader of [`read`] checks.
struct Input<'a> {
    key: &'a str,
    value: &'a Value,
    origin: &'a Origin,
    warnings: &'a mut Vec<String>,
}

impl Input<'_> {
    /// The error for this value: `expected` says what the key takes.
    fn invalid(&self, expected: &str) -> ConfigError {
        invalid(self.key, self.origin, expected, self.value)
    }
}

fn validate(raw: RawValues, warnings: &mut Vec<String>) -> Result<Settings, ConfigError> {
    let mut settings = Settings::default();
    for (key, (value, origin)) in &raw {
        settings.set(&mut Input {
            key,
            value,
            origin,
            warnings,
        })?;
    }
    if raw.contains_key("UPDATER_ACCOUNT_RATE_LIMIT") && !raw.contains_key("UPDATER_ACCOUNT_BURST")
    {
        settings.updater_account_burst =
            (settings.updater_account_rate_limit / 2.0).ceil().max(1.0) as u32;
    }
    // The partition of a GovCloud or China region, unless one is set.
    if !raw.contains_key("AWS_ARN_PARTITION") {
        settings.aws_arn_partition = Partition::of_region(&settings.aws_region);
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

/// Checks one answer for setting `key` as a settings file would hold it (`10`, `swag`,
/// `[a, b]`); the error says what the key takes. For `aardvark config`, so that its questions
/// accept exactly what the settings do.
pub fn check_answer(key: &str, answer: &str) -> Result<Value, String> {
    check_value(key, parse_env_scalar(answer))
}

/// Checks `value` for setting `key` with the setting's own reader; the error says what the
/// key takes.
pub fn check_value(key: &str, value: Value) -> Result<Value, String> {
    if !is_setting(key) {
        return Err(format!("{key} is not a setting"));
    }
    let origin = Origin::Default;
    let mut warnings = Vec::new();
    let mut input = Input {
        key,
        value: &value,
        origin: &origin,
        warnings: &mut warnings,
    };
    match Settings::default().set(&mut input) {
        Ok(()) => Ok(value),
        Err(ConfigError::Invalid { expected, .. }) => Err(expected),
        Err(other) => Err(other.to_string()),
    }
}

/// Renders settings as a `settings.yaml` document with a `default:` section.
pub fn to_yaml(values: &BTreeMap<String, Value>) -> String {
    let mut section = Mapping::new();
    for (key, value) in values {
        section.insert(Value::String(key.clone()), value.clone());
    }
    let mut top = Mapping::new();
    top.insert(Value::String("default".into()), Value::Mapping(section));
    yaml_serde::to_string(&Value::Mapping(top)).expect("YAML values always serialize")
}
