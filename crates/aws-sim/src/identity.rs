//! Identity details of the simulated world, as `GetAccountAuthorizationDetails` and the
//! credential report tell them: when each principal was created, a role's last use, tags,
//! group memberships, the policies each principal has (whose grants are the services Access
//! Advisor lists for it), a user's password and access keys. Explicit in a scenario, or
//! generated from the seed. Data only: no I/O.

use serde::{Deserialize, Serialize};

/// When generated principals were created: 2020-01-01T00:00:00Z.
pub const DEFAULT_CREATED_MS: i64 = 1_577_836_800_000;
/// The AWS-managed policy every account's collector role has attached.
pub const AUDIT_POLICY: &str = "SecurityAudit";
/// Its document (the real one is longer; these are the actions aardvark needs).
pub const AUDIT_DOCUMENT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:Get*","iam:List*","iam:GenerateServiceLastAccessedDetails","iam:GenerateCredentialReport"],"Resource":"*"}]}"#;

const DAY_MS: i64 = 86_400_000;

/// A principal's identity details; every field has a default, so a scenario states only
/// what it cares about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Identity {
    /// Epoch milliseconds (default 2020-01-01).
    pub created_ms: Option<i64>,
    pub tags: Vec<Tag>,
    /// Roles: `RoleLastUsed.LastUsedDate` (epoch milliseconds; whole seconds).
    pub last_used_ms: Option<i64>,
    pub last_used_region: Option<String>,
    /// Users: the console password (none when absent).
    pub password: Option<Password>,
    pub mfa_active: bool,
    /// Users: at most two access keys, in the report's order.
    pub access_keys: Vec<AccessKey>,
    /// Users: the names of their groups.
    pub groups: Vec<String>,
    /// Names of managed policies attached: the account's own (`policy-0000`) or AWS's
    /// (`SecurityAudit`).
    pub managed_policies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Password {
    /// `None`: the report says `no_information` (never used).
    pub last_used_ms: Option<i64>,
    /// Default: the user's creation.
    pub last_changed_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    /// `AKIA...`; generated from the user's ARN when absent.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    /// Creation (the report's `last_rotated`).
    pub created_ms: i64,
    /// `None`: never used (`N/A` in the report).
    #[serde(default)]
    pub last_used_ms: Option<i64>,
    #[serde(default)]
    pub last_used_region: Option<String>,
    #[serde(default)]
    pub last_used_service: Option<String>,
}

fn yes() -> bool {
    true
}

/// An identity for a generated principal from `h` (the principal's hash) and `index` (its
/// place among its kind): tags, and for users, in turn by index, every kind of password
/// and of keys the findings care about.
pub(crate) fn generated(
    kind_is_user: bool,
    index: u64,
    h: u64,
    reference_ms: i64,
    last_use_ms: Option<i64>,
) -> Identity {
    let days_ago = |n: u64| (reference_ms - (n as i64) * DAY_MS) / 1000 * 1000;
    let teams = ["payments", "search", "platform", "data"];
    let mut tags = vec![Tag {
        key: "team".into(),
        value: teams[(h % 4) as usize].into(),
    }];
    if h.is_multiple_of(5) {
        tags.push(Tag {
            key: "env".into(),
            value: "dev".into(),
        });
    }
    let mut identity = Identity {
        tags,
        last_used_ms: last_use_ms,
        last_used_region: last_use_ms.map(|_| "us-east-1".into()),
        ..Default::default()
    };
    if kind_is_user {
        identity.last_used_ms = None;
        identity.last_used_region = None;
        identity.mfa_active = h.is_multiple_of(3);
        identity.password = match index % 4 {
            0 => None,
            1 => Some(Password {
                last_used_ms: None,
                last_changed_ms: None,
            }),
            _ => Some(Password {
                last_used_ms: Some(days_ago((h >> 8) % 200)),
                last_changed_ms: None,
            }),
        };
        let keys = index % 3;
        identity.access_keys = (0..keys)
            .map(|slot| {
                let k = h >> (16 + 8 * slot);
                let used = !(index + slot).is_multiple_of(3);
                AccessKey {
                    id: None,
                    active: !(index + slot).is_multiple_of(5),
                    created_ms: days_ago(300 + (k >> 4) % 300),
                    last_used_ms: used.then(|| days_ago((k >> 6) % 250)),
                    last_used_region: used.then(|| "us-east-1".into()),
                    last_used_service: used.then(|| "s3".into()),
                }
            })
            .collect();
    }
    identity
}

/// The ARN of the managed policy `name` attached in `account`: AWS's own for
/// [`AUDIT_POLICY`], the account's otherwise.
pub fn managed_policy_arn(partition: &str, account: &str, name: &str) -> String {
    if name == AUDIT_POLICY {
        format!("arn:{partition}:iam::aws:policy/{name}")
    } else {
        format!("arn:{partition}:iam::{account}:policy/{name}")
    }
}

/// A policy document granting every action of `namespaces` (`ns:*`), as AWS stores it.
pub fn grant_document(namespaces: &[&str]) -> String {
    let actions: Vec<String> = namespaces.iter().map(|ns| format!("{ns}:*")).collect();
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    })
    .to_string()
}

/// One identity call, to deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityCall {
    GetAccountAuthorizationDetails,
    GenerateCredentialReport,
    GetCredentialReport,
    ListAccessKeys,
}

impl IdentityCall {
    pub fn action(self) -> &'static str {
        match self {
            Self::GetAccountAuthorizationDetails => "GetAccountAuthorizationDetails",
            Self::GenerateCredentialReport => "GenerateCredentialReport",
            Self::GetCredentialReport => "GetCredentialReport",
            Self::ListAccessKeys => "ListAccessKeys",
        }
    }
}

/// Faults of an account's identity calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityFaults {
    /// Calls answered `AccessDenied` (the spoke role lacks the permission).
    pub deny: Vec<IdentityCall>,
    /// `GenerateCredentialReport` answers `STARTED` this many times before `COMPLETE`.
    pub report_started: u32,
    /// The first `GetCredentialReport` calls answered `ReportInProgress`.
    pub report_in_progress: u32,
    /// The first `GenerateCredentialReport` calls answered `LimitExceeded`.
    pub generate_limit_exceeded: u32,
    /// The first `GetCredentialReport` calls answered `ReportExpired`.
    pub report_expired: u32,
}
