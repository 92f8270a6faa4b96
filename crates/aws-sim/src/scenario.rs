//! Scenarios: which accounts exist, their principals and services, and the faults to inject.
//! A scenario is plain data (a YAML or JSON file, or built in code); [`Scenario::world`]
//! resolves it into every principal and service, deterministically from the seed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::identity::{self, Identity, IdentityFaults};

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario {path} is invalid: {message}")]
    Parse { path: String, message: String },
    #[error("scenario is invalid: {0}")]
    Invalid(String),
}

/// Everything the simulator serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Seed of every generated name, service choice and time.
    pub seed: u64,
    /// Account of the caller's own (non-assumed) credentials.
    pub hub_account: String,
    /// The role the collector assumes; present in every account unless a fault removes it.
    pub role_name: String,
    pub partition: String,
    /// Epoch milliseconds that generated last-use times lead up to.
    pub reference_time_ms: i64,
    /// Accounts listed one by one.
    pub accounts: Vec<Account>,
    /// More accounts, generated: ids `first_id`, `first_id + 1`, ...
    pub generated: Option<GeneratedAccounts>,
    /// Faults of every account that has none of its own.
    pub defaults: AccountFaults,
    /// Faults by account id, replacing `defaults` for that account (also for generated ones).
    pub account_faults: BTreeMap<String, AccountFaults>,
    /// A SWAG `accounts.json` served by S3 `GetObject`.
    pub swag: Option<SwagBucket>,
    /// Access Advisor lists only the services a principal's policies allow now (as AWS
    /// does), so that policies changed through IAM's write calls change what it lists.
    pub access_advisor_follows_policies: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            seed: 1,
            hub_account: "000000000000".into(),
            role_name: "Aardvark".into(),
            partition: "aws".into(),
            reference_time_ms: 1_793_000_000_000,
            accounts: Vec::new(),
            generated: None,
            defaults: AccountFaults::default(),
            account_faults: BTreeMap::new(),
            swag: None,
            access_advisor_follows_policies: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratedAccounts {
    pub count: u32,
    pub first_id: u64,
    pub principals: Generate,
}

impl Default for GeneratedAccounts {
    fn default() -> Self {
        Self {
            count: 0,
            first_id: 100_000_000_000,
            principals: Generate::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountStatus {
    #[default]
    Active,
    Suspended,
    PendingClosure,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "ACTIVE",
            AccountStatus::Suspended => "SUSPENDED",
            AccountStatus::PendingClosure => "PENDING_CLOSURE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Account {
    pub id: String,
    /// Defaults to `account-<id>`.
    pub name: Option<String>,
    pub aliases: Vec<String>,
    pub status: AccountStatus,
    /// SWAG services enabled in this account (default: `aardvark`).
    pub swag_services: Option<Vec<String>>,
    /// SWAG environment (default `prod`).
    pub environment: Option<String>,
    pub generate: Generate,
    pub principals: Vec<Principal>,
    /// Replaces the scenario's `defaults`.
    pub faults: Option<AccountFaults>,
}

/// How many principals of each kind to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Generate {
    pub roles: u32,
    pub users: u32,
    pub groups: u32,
    pub policies: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    Role,
    User,
    Group,
    Policy,
}

impl PrincipalKind {
    pub const ALL: [PrincipalKind; 4] = [Self::Role, Self::User, Self::Group, Self::Policy];

    pub fn arn_word(self) -> &'static str {
        match self {
            PrincipalKind::Role => "role",
            PrincipalKind::User => "user",
            PrincipalKind::Group => "group",
            PrincipalKind::Policy => "policy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub name: String,
    #[serde(default = "root_path")]
    pub path: String,
    /// Explicit services; generated from the seed when absent.
    #[serde(default)]
    pub services: Option<Vec<ServiceUse>>,
    #[serde(default)]
    pub faults: PrincipalFaults,
    /// Explicit identity details; generated from the seed when absent.
    #[serde(default)]
    pub identity: Option<Identity>,
}

fn root_path() -> String {
    "/".into()
}

/// One service a principal may use, and its last use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceUse {
    pub namespace: String,
    /// Defaults to the catalog's name for the namespace.
    #[serde(default)]
    pub name: Option<String>,
    /// Epoch milliseconds (whole seconds); `None` when never used.
    #[serde(default)]
    pub last_authenticated_ms: Option<i64>,
    #[serde(default)]
    pub entity: Option<String>,
    #[serde(default)]
    pub total_entities: u32,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub actions: Vec<ActionUse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionUse {
    pub name: String,
    #[serde(default)]
    pub last_accessed_ms: Option<i64>,
    #[serde(default)]
    pub entity: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
}

/// How `AssumeRole` into an account fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssumeRoleFault {
    /// Denied by an explicit deny in a service control policy.
    ScpDeny,
    /// The role does not exist in the account.
    RoleMissing,
    /// The role's trust policy does not trust the caller.
    TrustDenied,
}

/// Calls that fail: the first `first` calls, and every `every`-th call after them (0: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Burst {
    pub first: u32,
    pub every: u32,
    /// HTTP status of injected server errors (500 or 503).
    pub status: Option<u16>,
}

impl Burst {
    /// Whether the `n`-th call (1-based) fails.
    pub fn hits(&self, n: u64) -> bool {
        n <= u64::from(self.first)
            || (self.every > 0
                && n > u64::from(self.first)
                && (n - u64::from(self.first)).is_multiple_of(u64::from(self.every)))
    }
}

/// A token bucket: `per_second` tokens a second, at most `burst` saved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// Faults of one account's IAM (and of `AssumeRole` into it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AccountFaults {
    pub assume_role: Option<AssumeRoleFault>,
    /// Listings answered with `AccessDenied`.
    pub deny_listing: Vec<PrincipalKind>,
    pub rate_limit: Option<RateLimit>,
    /// Added to every IAM call.
    pub latency_ms: u64,
    pub server_errors: Option<Burst>,
    /// IAM calls answered `Throttling` whatever the rate (the first `first`, then every
    /// `every`-th), counted as throttles.
    pub throttles: Option<Burst>,
    pub dropped_connections: Option<Burst>,
    /// `GetServiceLastAccessedDetails` calls until a job is done (default 1: the first poll).
    pub job_polls: Option<u32>,
    /// Milliseconds from a job's generation until it is done, as AWS's jobs take (default 0);
    /// with `job_polls`, a job is done once both have passed.
    pub job_ms: Option<u64>,
    /// Sessions `AssumeRole` issues last at most this many seconds, whatever `DurationSeconds`
    /// asks (AWS caps role-chained sessions at 3600); then their calls are answered
    /// `ExpiredToken`. `Expiration` states the lifetime granted.
    pub session_seconds: Option<u64>,
    /// Largest page of a listing or job result, whatever `MaxItems` asks.
    pub page_size: Option<u32>,
    /// Faults of `GetAccountAuthorizationDetails`, the credential report and `ListAccessKeys`.
    pub identity: IdentityFaults,
}

/// Faults of one principal's Access Advisor job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PrincipalFaults {
    /// The job ends `FAILED`.
    pub job_failed: bool,
    /// The job stays `IN_PROGRESS` forever.
    pub job_never_completes: bool,
    /// Polls until done, overriding the account's.
    pub job_polls: Option<u32>,
    /// Milliseconds until done, overriding the account's.
    pub job_ms: Option<u64>,
    /// Listed, but deleted before its job is generated (`NoSuchEntity`).
    pub vanishes: bool,
    /// The finished job's result is not well-formed XML.
    pub malformed_result: bool,
    /// `GetAccountAuthorizationDetails` sends its inline policy document as text that is not
    /// JSON once URL-decoded.
    pub malformed_policy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwagBucket {
    pub bucket: String,
    pub key: String,
    /// 1 or 2.
    pub schema_version: u8,
}

impl Default for SwagBucket {
    fn default() -> Self {
        Self {
            bucket: "swag".into(),
            key: "v2/accounts.json".into(),
            schema_version: 2,
        }
    }
}

/// A resolved principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPrincipal {
    pub kind: PrincipalKind,
    pub name: String,
    pub path: String,
    pub arn: String,
    pub id: String,
    pub services: Vec<ResolvedService>,
    pub faults: PrincipalFaults,
    /// Creation, tags, last use, password, keys (ids filled in), groups, attached policies.
    pub identity: Identity,
    /// Inline policies (name, document JSON): one granting the principal's services. For a
    /// managed policy, its default version's document.
    pub policies: Vec<(String, String)>,
}

impl ResolvedPrincipal {
    pub fn created_ms(&self) -> i64 {
        self.identity
            .created_ms
            .unwrap_or(identity::DEFAULT_CREATED_MS)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedService {
    pub namespace: String,
    pub name: String,
    pub last_authenticated_ms: Option<i64>,
    pub entity: Option<String>,
    pub total_entities: u32,
    pub region: Option<String>,
    pub actions: Vec<ActionUse>,
}

/// A resolved account.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAccount {
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub status: AccountStatus,
    pub swag_services: Vec<String>,
    pub environment: String,
    pub faults: AccountFaults,
    /// In listing order within each kind.
    pub principals: Vec<ResolvedPrincipal>,
}

impl ResolvedAccount {
    /// Whether a correct collector can read this account at all.
    pub fn collectable(&self) -> bool {
        self.faults.assume_role.is_none()
            && self.faults.deny_listing.is_empty()
            && self.status == AccountStatus::Active
    }
}

/// What a correct collector must have stored for one service, in the storage layer's terms.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedService {
    pub service_namespace: String,
    pub service_name: String,
    /// Epoch milliseconds; 0 when never used.
    pub last_authenticated: i64,
    pub last_authenticated_entity: Option<String>,
    pub total_authenticated_entities: i64,
}

/// Deterministic 64-bit mixing (splitmix64 finaliser) of a seed and a string.
fn mix(seed: u64, text: &str) -> u64 {
    let mut z = seed ^ 0x9E37_79B9_7F4A_7C15;
    for byte in text.bytes() {
        z = (z ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3);
    }
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Scenario {
    /// Reads a scenario file (YAML, of which JSON is a subset).
    pub fn from_file(path: &std::path::Path) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        yaml_serde::from_str(&text).map_err(|err| ScenarioError::Parse {
            path: shown,
            message: err.to_string(),
        })
    }

    /// `accounts` accounts of `principals` principals each (split across the four kinds), the
    /// first account id being 100000000000.
    pub fn generated(seed: u64, accounts: u32, principals: u32) -> Self {
        let quarter = principals / 4;
        Self {
            seed,
            generated: Some(GeneratedAccounts {
                count: accounts,
                principals: Generate {
                    roles: principals - 3 * quarter,
                    users: quarter,
                    groups: quarter,
                    policies: quarter,
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The built-in scenario of `aardvark demo`: 36 accounts of 12 principals, jobs done on the
    /// second poll, 20 ms per call; four accounts denied by an SCP, one without the role, one
    /// whose user listing is denied, three rate-limited to 4 requests/s, and one account with a
    /// principal whose job fails and one that vanishes.
    pub fn demo() -> Self {
        let mut scenario = Self::generated(2026, 36, 12);
        scenario.defaults = AccountFaults {
            job_polls: Some(2),
            latency_ms: 20,
            ..Default::default()
        };
        let id = |i: u64| format!("{:012}", 100_000_000_000 + i);
        for i in [3, 11, 19, 27] {
            scenario = scenario.with_account_faults(
                &id(i),
                AccountFaults {
                    assume_role: Some(AssumeRoleFault::ScpDeny),
                    ..Default::default()
                },
            );
        }
        scenario = scenario.with_account_faults(
            &id(8),
            AccountFaults {
                assume_role: Some(AssumeRoleFault::RoleMissing),
                ..Default::default()
            },
        );
        scenario = scenario.with_account_faults(
            &id(22),
            AccountFaults {
                deny_listing: vec![PrincipalKind::User],
                ..Default::default()
            },
        );
        for i in [5, 14, 30] {
            let throttled = AccountFaults {
                rate_limit: Some(RateLimit {
                    per_second: 4.0,
                    burst: 4,
                }),
                ..scenario.defaults.clone()
            };
            scenario = scenario.with_account_faults(&id(i), throttled);
        }
        let user = |name: &str, faults: PrincipalFaults| Principal {
            kind: PrincipalKind::User,
            name: name.into(),
            path: "/".into(),
            services: None,
            faults,
            identity: None,
        };
        scenario.accounts.push(Account {
            id: "999900000001".into(),
            name: Some("sandbox".into()),
            generate: Generate {
                roles: 3,
                users: 2,
                ..Default::default()
            },
            principals: vec![
                user(
                    "report-fails",
                    PrincipalFaults {
                        job_failed: true,
                        ..Default::default()
                    },
                ),
                user(
                    "deleted-meanwhile",
                    PrincipalFaults {
                        vanishes: true,
                        ..Default::default()
                    },
                ),
            ],
            ..Default::default()
        });
        scenario
    }

    /// Ids of every account, listed ones first.
    pub fn account_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.accounts.iter().map(|a| a.id.clone()).collect();
        if let Some(generated) = &self.generated {
            ids.extend(
                (0..u64::from(generated.count)).map(|i| format!("{:012}", generated.first_id + i)),
            );
        }
        ids
    }

    /// Sets the faults of one account (replacing the defaults for it).
    pub fn with_account_faults(mut self, account_id: &str, faults: AccountFaults) -> Self {
        self.account_faults.insert(account_id.to_owned(), faults);
        self
    }

    /// Resolves every account, principal and service.
    pub fn world(&self) -> Result<Vec<ResolvedAccount>, ScenarioError> {
        let mut accounts: Vec<Account> = self.accounts.clone();
        if let Some(generated) = &self.generated {
            accounts.extend((0..u64::from(generated.count)).map(|i| Account {
                id: format!("{:012}", generated.first_id + i),
                generate: generated.principals,
                ..Default::default()
            }));
        }
        let mut seen = std::collections::HashSet::new();
        accounts
            .iter()
            .map(|account| {
                if account.id.len() != 12 || !account.id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ScenarioError::Invalid(format!(
                        "account id {:?} is not 12 digits",
                        account.id
                    )));
                }
                if !seen.insert(account.id.clone()) {
                    return Err(ScenarioError::Invalid(format!(
                        "account {} is listed twice",
                        account.id
                    )));
                }
                Ok(self.resolve_account(account))
            })
            .collect()
    }

    fn resolve_account(&self, account: &Account) -> ResolvedAccount {
        let faults = self
            .account_faults
            .get(&account.id)
            .cloned()
            .or_else(|| account.faults.clone())
            .unwrap_or_else(|| self.defaults.clone());
        let specs = self.principal_specs(account, &faults);
        let arn_of = |kind: PrincipalKind, path: &str, name: &str| {
            format!(
                "arn:{}:iam::{}:{}{}{}",
                self.partition,
                account.id,
                kind.arn_word(),
                path,
                name
            )
        };
        // Entities that groups and policies report: the account's first user and first role.
        let first_of = |kind: PrincipalKind| {
            specs
                .iter()
                .find(|p| p.kind == kind)
                .map(|p| arn_of(p.kind, &p.path, &p.name))
        };
        let (first_user, first_role) =
            (first_of(PrincipalKind::User), first_of(PrincipalKind::Role));
        let principals = specs
            .iter()
            .map(|spec| {
                let arn = arn_of(spec.kind, &spec.path, &spec.name);
                let entity = match spec.kind {
                    PrincipalKind::Role | PrincipalKind::User => arn.clone(),
                    PrincipalKind::Group => first_user.clone().unwrap_or_else(|| arn.clone()),
                    PrincipalKind::Policy => first_role.clone().unwrap_or_else(|| arn.clone()),
                };
                self.resolve_principal(spec, arn, &entity)
            })
            .collect();
        let principals = self.with_identities(specs, principals);
        ResolvedAccount {
            id: account.id.clone(),
            name: account
                .name
                .clone()
                .unwrap_or_else(|| format!("account-{}", account.id)),
            aliases: account.aliases.clone(),
            status: account.status,
            swag_services: account
                .swag_services
                .clone()
                .unwrap_or_else(|| vec!["aardvark".into()]),
            environment: account.environment.clone().unwrap_or_else(|| "prod".into()),
            faults,
            principals,
        }
    }

    /// The account's principals before they are resolved: the role aardvark assumes (unless
    /// the scenario says it is missing, or lists it among the explicit ones), the generated
    /// ones, then the explicit ones.
    fn principal_specs(&self, account: &Account, faults: &AccountFaults) -> Vec<Principal> {
        let mut specs: Vec<Principal> = Vec::new();
        let explicit_role = account
            .principals
            .iter()
            .any(|p| p.kind == PrincipalKind::Role && p.name == self.role_name);
        if faults.assume_role != Some(AssumeRoleFault::RoleMissing) && !explicit_role {
            specs.push(Principal {
                kind: PrincipalKind::Role,
                name: self.role_name.clone(),
                path: "/".into(),
                services: None,
                faults: PrincipalFaults::default(),
                identity: None,
            });
        }
        let counts = [
            (PrincipalKind::Role, account.generate.roles, "role"),
            (PrincipalKind::User, account.generate.users, "user"),
            (PrincipalKind::Group, account.generate.groups, "group"),
            (PrincipalKind::Policy, account.generate.policies, "policy"),
        ];
        for (kind, count, word) in counts {
            for i in 0..count {
                let path = if kind == PrincipalKind::Role && i % 5 == 4 {
                    "/service-role/"
                } else {
                    "/"
                };
                specs.push(Principal {
                    kind,
                    name: format!("{word}-{i:04}"),
                    path: path.into(),
                    services: None,
                    faults: PrincipalFaults::default(),
                    identity: None,
                });
            }
        }
        specs.extend(account.principals.iter().cloned());
        specs
    }

    /// One principal with its id and services (explicit, or generated from the seed).
    fn resolve_principal(&self, spec: &Principal, arn: String, entity: &str) -> ResolvedPrincipal {
        let services = match &spec.services {
            Some(explicit) => explicit.iter().map(resolve_explicit).collect(),
            None => self.generate_services(&arn, entity, spec.kind),
        };
        let prefix = match spec.kind {
            PrincipalKind::Role => "AROA",
            PrincipalKind::User => "AIDA",
            PrincipalKind::Group => "AGPA",
            PrincipalKind::Policy => "ANPA",
        };
        ResolvedPrincipal {
            kind: spec.kind,
            name: spec.name.clone(),
            path: spec.path.clone(),
            id: format!("{prefix}{:016X}", mix(self.seed, &arn)),
            arn,
            services,
            faults: spec.faults,
            identity: Identity::default(),
            policies: Vec::new(),
        }
    }

    /// Each principal's identity (explicit, or generated), its inline policy granting its
    /// services, and the generated world's links: user `i` in group `i mod groups`, the
    /// collector's role with `SecurityAudit`, every third other role with the first
    /// customer-managed policy.
    fn with_identities(
        &self,
        specs: Vec<Principal>,
        mut principals: Vec<ResolvedPrincipal>,
    ) -> Vec<ResolvedPrincipal> {
        let names_of = |kind: PrincipalKind| -> Vec<String> {
            principals
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.name.clone())
                .collect()
        };
        let (groups, policies) = (
            names_of(PrincipalKind::Group),
            names_of(PrincipalKind::Policy),
        );
        let mut index_in_kind = std::collections::HashMap::new();
        for (spec, principal) in specs.into_iter().zip(principals.iter_mut()) {
            let index: &mut usize = index_in_kind.entry(principal.kind).or_default();
            let h = mix(self.seed ^ 0x1D, &principal.arn);
            let newest_use = principal
                .services
                .iter()
                .filter_map(|s| s.last_authenticated_ms)
                .max();
            let mut identity = spec.identity.clone().unwrap_or_else(|| {
                let mut generated = identity::generated(
                    principal.kind == PrincipalKind::User,
                    *index as u64,
                    h,
                    self.reference_time_ms,
                    newest_use,
                );
                match principal.kind {
                    PrincipalKind::User if !groups.is_empty() => {
                        generated.groups = vec![groups[*index % groups.len()].clone()];
                    }
                    PrincipalKind::Role if principal.name == self.role_name => {
                        generated.managed_policies = vec![identity::AUDIT_POLICY.into()];
                    }
                    PrincipalKind::Role if *index % 3 == 1 && !policies.is_empty() => {
                        generated.managed_policies = vec![policies[0].clone()];
                    }
                    _ => {}
                }
                generated
            });
            for (slot, key) in identity.access_keys.iter_mut().enumerate() {
                if key.id.is_none() {
                    let hash = mix(h, &slot.to_string());
                    key.id = Some(format!("AKIA{:016X}", hash));
                }
            }
            *index += 1;
            let namespaces: Vec<&str> = principal
                .services
                .iter()
                .map(|s| s.namespace.as_str())
                .collect();
            let document = identity::grant_document(&namespaces);
            principal.policies = match principal.kind {
                PrincipalKind::Policy => vec![("v1".into(), document)],
                _ if namespaces.is_empty() => Vec::new(),
                _ => vec![(format!("{}-access", principal.name), document)],
            };
            principal.identity = identity;
        }
        principals
    }

    fn generate_services(
        &self,
        arn: &str,
        entity: &str,
        kind: PrincipalKind,
    ) -> Vec<ResolvedService> {
        let catalog = catalog::SERVICES;
        let base = mix(self.seed, arn);
        let wanted = 3 + (base % 13) as usize;
        let mut picked: Vec<usize> = Vec::new();
        let mut attempt = 0u64;
        while picked.len() < wanted {
            let index =
                (mix(base.wrapping_add(attempt), "service") % catalog.len() as u64) as usize;
            if !picked.contains(&index) {
                picked.push(index);
            }
            attempt += 1;
        }
        picked
            .into_iter()
            .map(|index| {
                let (namespace, name) = catalog[index];
                let h = mix(base, namespace);
                let used = h % 100 < 65;
                let (last, total, service_entity, region) = if used {
                    // Whole seconds within the last 400 days, as AWS reports them.
                    let age_ms = (h >> 8) as i64 % (400 * DAY_MS);
                    let last = (self.reference_time_ms - age_ms) / 1000 * 1000;
                    let total = match kind {
                        PrincipalKind::Role | PrincipalKind::User => 1,
                        _ => 1 + (h >> 20) as u32 % 4,
                    };
                    (
                        Some(last),
                        total,
                        Some(entity.to_owned()),
                        Some("us-east-1".to_owned()),
                    )
                } else {
                    (None, 0, None, None)
                };
                let actions = catalog::tracked_actions(namespace)
                    .iter()
                    .enumerate()
                    .map(|(i, action)| {
                        let action_used = last.is_some() && mix(h, action).is_multiple_of(2);
                        ActionUse {
                            name: (*action).to_owned(),
                            last_accessed_ms: if action_used {
                                last.map(|t| t - i as i64 * DAY_MS)
                            } else {
                                None
                            },
                            entity: action_used.then(|| entity.to_owned()),
                            region: action_used.then(|| "us-east-1".to_owned()),
                        }
                    })
                    .collect();
                ResolvedService {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    last_authenticated_ms: last,
                    entity: service_entity,
                    total_entities: total,
                    region,
                    actions,
                }
            })
            .collect()
    }

    /// What a correct collector stores: for every principal of every collectable account whose
    /// job succeeds, its services, keyed by ARN.
    pub fn expected(&self) -> Result<BTreeMap<String, Vec<ExpectedService>>, ScenarioError> {
        let mut expected = BTreeMap::new();
        for account in self.world()?.iter().filter(|a| a.collectable()) {
            for principal in &account.principals {
                let faults = principal.faults;
                if faults.job_failed
                    || faults.job_never_completes
                    || faults.vanishes
                    || faults.malformed_result
                {
                    continue;
                }
                let mut services: Vec<ExpectedService> = principal
                    .services
                    .iter()
                    .map(|service| ExpectedService {
                        service_namespace: service.namespace.clone(),
                        service_name: service.name.clone(),
                        last_authenticated: service.last_authenticated_ms.unwrap_or(0),
                        last_authenticated_entity: service.entity.clone(),
                        total_authenticated_entities: i64::from(service.total_entities),
                    })
                    .collect();
                services.sort();
                expected.insert(principal.arn.clone(), services);
            }
        }
        Ok(expected)
    }
}

/// What a correct collector stores of one role's, user's or group's identity details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedIdentity {
    pub kind: PrincipalKind,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub last_used_region: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub groups: Vec<String>,
    /// ARNs of the attached managed policies.
    pub managed_policies: Vec<String>,
    /// Inline policies: name and document (JSON text).
    pub inline_policies: Vec<(String, String)>,
    /// Users: the password and keys the credential report gives (`None` when the account's
    /// report cannot be read).
    pub credentials: Option<Identity>,
}

impl Scenario {
    /// What a correct collector stores of identity details, by ARN: every role, user and
    /// group of every collectable account whose `GetAccountAuthorizationDetails` is allowed
    /// and sends only documents that read.
    pub fn expected_identities(&self) -> Result<BTreeMap<String, ExpectedIdentity>, ScenarioError> {
        use identity::IdentityCall::{
            GenerateCredentialReport, GetAccountAuthorizationDetails, GetCredentialReport,
        };
        let mut expected = BTreeMap::new();
        for account in self.world()?.iter().filter(|a| a.collectable()) {
            let denied = &account.faults.identity.deny;
            let malformed = account.principals.iter().any(|p| p.faults.malformed_policy);
            if denied.contains(&GetAccountAuthorizationDetails) || malformed {
                continue;
            }
            let report = !denied.contains(&GenerateCredentialReport)
                && !denied.contains(&GetCredentialReport);
            for p in account
                .principals
                .iter()
                .filter(|p| p.kind != PrincipalKind::Policy)
            {
                let identity = &p.identity;
                expected.insert(
                    p.arn.clone(),
                    ExpectedIdentity {
                        kind: p.kind,
                        created_ms: p.created_ms(),
                        last_used_ms: identity
                            .last_used_ms
                            .filter(|_| p.kind == PrincipalKind::Role),
                        last_used_region: identity
                            .last_used_region
                            .clone()
                            .filter(|_| p.kind == PrincipalKind::Role),
                        tags: if p.kind == PrincipalKind::Group {
                            BTreeMap::new()
                        } else {
                            identity
                                .tags
                                .iter()
                                .map(|t| (t.key.clone(), t.value.clone()))
                                .collect()
                        },
                        groups: identity.groups.clone(),
                        managed_policies: identity
                            .managed_policies
                            .iter()
                            .map(|name| {
                                identity::managed_policy_arn(&self.partition, &account.id, name)
                            })
                            .collect(),
                        inline_policies: p.policies.clone(),
                        credentials: (report && p.kind == PrincipalKind::User)
                            .then(|| identity.clone()),
                    },
                );
            }
        }
        Ok(expected)
    }
}

fn resolve_explicit(service: &ServiceUse) -> ResolvedService {
    let name = service.name.clone().unwrap_or_else(|| {
        catalog::SERVICES
            .iter()
            .find(|(namespace, _)| *namespace == service.namespace)
            .map(|(_, name)| (*name).to_owned())
            .unwrap_or_else(|| service.namespace.clone())
    });
    ResolvedService {
        namespace: service.namespace.clone(),
        name,
        last_authenticated_ms: service.last_authenticated_ms,
        entity: service.entity.clone(),
        total_entities: service.total_entities,
        region: service.region.clone(),
        actions: service.actions.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_seed_dependent() {
        let a = Scenario::generated(7, 3, 8).world().unwrap();
        let b = Scenario::generated(7, 3, 8).world().unwrap();
        let c = Scenario::generated(8, 3, 8).world().unwrap();
        assert_eq!(a, b);
        assert_ne!(a[0].principals[1].services, c[0].principals[1].services);
        assert_eq!(a.len(), 3);
        // The collector's own role plus 8 generated principals.
        assert_eq!(a[0].principals.len(), 9);
        assert_eq!(
            a[0].principals[0].arn,
            "arn:aws:iam::100000000000:role/Aardvark"
        );
        assert!(a
            .iter()
            .flat_map(|acc| &acc.principals)
            .all(|p| (3..=15).contains(&p.services.len())));
    }

    #[test]
    fn bursts_hit_first_and_every() {
        let burst = Burst {
            first: 2,
            every: 3,
            status: None,
        };
        let hits: Vec<u64> = (1..=10).filter(|n| burst.hits(*n)).collect();
        assert_eq!(hits, vec![1, 2, 5, 8]);
    }

    #[test]
    fn faulty_accounts_and_principals_are_not_expected() {
        let mut scenario = Scenario::generated(1, 2, 4);
        scenario = scenario.with_account_faults(
            "100000000001",
            AccountFaults {
                assume_role: Some(AssumeRoleFault::ScpDeny),
                ..Default::default()
            },
        );
        let expected = scenario.expected().unwrap();
        assert!(expected.keys().all(|arn| arn.contains("100000000000")));
        assert_eq!(expected.len(), 5);
    }
}
