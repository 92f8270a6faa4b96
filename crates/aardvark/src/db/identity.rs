//! Identity details: what `GetAccountAuthorizationDetails`, the credential report and
//! `ListAccessKeys` say of an account, stored per account and part (each collection of a part
//! replaces that part's rows of the account in one transaction, so a part is never half
//! stored), policy documents once per distinct document (by digest), and the facts findings
//! are evaluated from.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::error::DbError;
use super::Database;

/// A role, user or group as `GetAccountAuthorizationDetails` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityRecord {
    pub arn: String,
    /// `role`, `user` or `group`.
    pub kind: String,
    pub created_ms: Option<i64>,
    /// Roles: `RoleLastUsed`.
    pub last_used_ms: Option<i64>,
    pub last_used_region: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub groups: Vec<String>,
    /// ARNs of attached managed policies.
    pub managed_policies: Vec<String>,
    /// Inline policies: name and document as compact JSON (`compact_json`).
    pub inline_policies: Vec<(String, String)>,
}

/// A managed policy with its default version's document: decoded where recommendations read
/// it, compact JSON text (`compact_json`) where the collector hands it to storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy<Document = serde_json::Value> {
    pub arn: String,
    pub name: String,
    pub default_version: String,
    pub document: Document,
}

/// An account's authorization details, all pages. Documents are kept as text: decoded, a
/// thousand accounts' documents held 170 MB while they waited to be stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationDetails {
    pub principals: Vec<IdentityRecord>,
    pub policies: Vec<ManagedPolicy<String>>,
}

/// One user's row of the credential report, with its keys' ids where `ListAccessKeys` gave
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserCredentials {
    pub arn: String,
    pub user_name: String,
    pub created_ms: Option<i64>,
    pub password_enabled: bool,
    pub password_last_used_ms: Option<i64>,
    /// The report's word when it gives no date (`N/A`, `no_information`, `not_supported`).
    pub password_last_used_note: Option<String>,
    pub password_last_changed_ms: Option<i64>,
    pub mfa_active: bool,
    /// The user's keys (slots 1 and 2 of the report that hold one).
    pub keys: Vec<AccessKeyRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessKeyRecord {
    /// 1 or 2: the report's `access_key_1` or `access_key_2`.
    pub slot: i64,
    pub key_id: Option<String>,
    pub active: bool,
    /// The report's `last_rotated`: when the key was created.
    pub created_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
    pub last_used_region: Option<String>,
    pub last_used_service: Option<String>,
}

impl AccessKeyRecord {
    /// What a finding names the key by: its id, or the user and slot when `ListAccessKeys`
    /// could not say it.
    pub fn resource(&self, user_arn: &str) -> String {
        match &self.key_id {
            Some(id) => id.clone(),
            None => format!("{user_arn}#access_key_{}", self.slot),
        }
    }
}

/// One principal's Access Advisor data as findings read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFacts {
    pub arn: String,
    pub kind: String,
    pub created_ms: Option<i64>,
    /// (namespace, last authenticated; 0 when never).
    pub services: Vec<(String, i64)>,
    /// (namespace, action, last accessed; 0 when never).
    pub actions: Vec<(String, String, i64)>,
}

/// What findings are evaluated from, for one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFacts {
    pub identities: Vec<IdentityRecord>,
    pub credentials: Vec<UserCredentials>,
    pub usage: Vec<UsageFacts>,
}

/// A document as stored and digested: compact JSON, keys sorted (as `serde_json` keeps them).
pub fn compact_json(document: &serde_json::Value) -> String {
    document.to_string()
}

/// SHA-256 of `text`, in hex.
pub fn text_digest(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// SHA-256 over lists of text fields, each field and each list ended by its own separator, so
/// that no two different sequences of lists hash alike; in hex.
#[derive(Default)]
pub struct FieldsDigest(Sha256);

impl FieldsDigest {
    pub fn put(&mut self, fields: &[&str]) {
        for field in fields {
            self.0.update(field.as_bytes());
            self.0.update([0]);
        }
        self.0.update([1]);
    }

    /// `put` of a list of owned fields.
    pub fn put_owned(&mut self, fields: &[String]) {
        self.put(&fields.iter().map(String::as_str).collect::<Vec<_>>());
    }

    pub fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

/// `bytes` in lower-case hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

fn stored_json<T: serde::de::DeserializeOwned>(text: String) -> Result<T, DbError> {
    serde_json::from_str(&text)
        .map_err(|err| DbError::undecodable(format!("stored identity JSON: {err}")))
}

/// The rows of an account's authorization details: its principals, its managed policies, and
/// each distinct document once, by digest.
fn detail_rows(account_id: &str, details: &AuthorizationDetails) -> (Rows, Rows, Rows) {
    let mut documents: BTreeMap<String, String> = BTreeMap::new();
    let mut identities = Vec::with_capacity(details.principals.len());
    for principal in &details.principals {
        let inline: BTreeMap<&str, String> = principal
            .inline_policies
            .iter()
            .map(|(name, document)| {
                let digest = text_digest(document);
                documents.insert(digest.clone(), document.clone());
                (name.as_str(), digest)
            })
            .collect();
        identities.push(vec![
            Cell::Text(Some(principal.arn.clone())),
            Cell::Text(Some(account_id.to_owned())),
            Cell::Text(Some(principal.kind.clone())),
            Cell::Int(principal.created_ms),
            Cell::Int(principal.last_used_ms),
            Cell::Text(principal.last_used_region.clone()),
            Cell::json(&principal.tags),
            Cell::json(&principal.groups),
            Cell::json(&principal.managed_policies),
            Cell::json(&inline),
        ]);
    }
    let policies: Vec<Vec<Cell>> = details
        .policies
        .iter()
        .map(|policy| {
            let digest = text_digest(&policy.document);
            documents.insert(digest.clone(), policy.document.clone());
            vec![
                Cell::Text(Some(account_id.to_owned())),
                Cell::Text(Some(policy.arn.clone())),
                Cell::Text(Some(policy.name.clone())),
                Cell::Text(Some(policy.default_version.clone())),
                Cell::Text(Some(digest)),
            ]
        })
        .collect();
    let documents: Vec<Vec<Cell>> = documents
        .into_iter()
        .map(|(digest, document)| vec![Cell::Text(Some(digest)), Cell::Text(Some(document))])
        .collect();
    (identities, policies, documents)
}

/// Rows to insert.
type Rows = Vec<Vec<Cell>>;

/// One value of a row to insert.
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
}

impl Cell {
    fn json<T: serde::Serialize>(value: &T) -> Self {
        Cell::Text(Some(serde_json::to_string(value).unwrap_or_default()))
    }
}

/// Inserts `rows` into `table` (its name and columns), as many to a statement as the
/// parameter limit allows, with `then` (an `ON CONFLICT` clause) after each statement's
/// values.
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: super::Dialect,
    table: &str,
    then: &str,
    rows: &[Vec<Cell>],
) -> Result<(), DbError> {
    let Some(columns) = rows.first().map(Vec::len) else {
        return Ok(());
    };
    let per_statement = (super::vocabulary::PARAMS_PER_STATEMENT / columns).max(1);
    for chunk in rows.chunks(per_statement) {
        let sql = format!(
            "INSERT INTO {table} VALUES {}{then}",
            dialect.values_placeholders(chunk.len(), columns)
        );
        let mut query = sqlx::query(&sql);
        for cell in chunk.iter().flatten() {
            query = match cell {
                Cell::Text(text) => query.bind(text.as_deref()),
                Cell::Int(number) => query.bind(*number),
            };
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

fn flag(value: bool) -> i64 {
    i64::from(value)
}

impl Database {
    /// Replaces the account's authorization details (principals and managed policies) in one
    /// transaction, many rows to a statement; documents are written once per digest.
    pub async fn store_authorization_details(
        &self,
        account_id: &str,
        details: &AuthorizationDetails,
    ) -> Result<(), DbError> {
        let (identities, policies, documents) = detail_rows(account_id, details);
        self.replace_part(
            account_id,
            &["aardvark_identities", "aardvark_managed_policies"],
            &[
                (
                    "aardvark_identities (arn, account_id, kind, created_ms, last_used_ms, \
                     last_used_region, tags, groups_json, managed_policies, inline_policies)",
                    "",
                    &identities,
                ),
                (
                    "aardvark_managed_policies (account_id, arn, name, default_version, digest)",
                    "",
                    &policies,
                ),
                (
                    "aardvark_policy_documents (digest, document)",
                    " ON CONFLICT (digest) DO NOTHING",
                    &documents,
                ),
            ],
        )
        .await
    }

    /// Replaces the account's credential report rows and access keys in one transaction, many
    /// rows to a statement.
    pub async fn store_credentials(
        &self,
        account_id: &str,
        users: &[UserCredentials],
    ) -> Result<(), DbError> {
        let account = || Cell::Text(Some(account_id.to_owned()));
        let mut credentials = Vec::with_capacity(users.len());
        let mut keys = Vec::new();
        for user in users {
            credentials.push(vec![
                Cell::Text(Some(user.arn.clone())),
                account(),
                Cell::Text(Some(user.user_name.clone())),
                Cell::Int(user.created_ms),
                Cell::Int(Some(flag(user.password_enabled))),
                Cell::Int(user.password_last_used_ms),
                Cell::Text(user.password_last_used_note.clone()),
                Cell::Int(user.password_last_changed_ms),
                Cell::Int(Some(flag(user.mfa_active))),
            ]);
            for key in &user.keys {
                keys.push(vec![
                    Cell::Text(Some(user.arn.clone())),
                    Cell::Int(Some(key.slot)),
                    account(),
                    Cell::Text(key.key_id.clone()),
                    Cell::Int(Some(flag(key.active))),
                    Cell::Int(key.created_ms),
                    Cell::Int(key.last_used_ms),
                    Cell::Text(key.last_used_region.clone()),
                    Cell::Text(key.last_used_service.clone()),
                ]);
            }
        }
        self.replace_part(
            account_id,
            &["aardvark_credentials", "aardvark_access_keys"],
            &[
                (
                    "aardvark_credentials (arn, account_id, user_name, created_ms, \
                     password_enabled, password_last_used_ms, password_last_used_note, \
                     password_last_changed_ms, mfa_active)",
                    "",
                    &credentials,
                ),
                (
                    "aardvark_access_keys (arn, slot, account_id, key_id, active, \
                     created_ms, last_used_ms, last_used_region, last_used_service)",
                    "",
                    &keys,
                ),
            ],
        )
        .await
    }

    /// Replaces one part of an account in one transaction: its rows of `tables` go, then
    /// each `(table and columns, conflict clause, rows)` is inserted.
    async fn replace_part(
        &self,
        account_id: &str,
        tables: &[&str],
        inserts: &[(&str, &str, &Rows)],
    ) -> Result<(), DbError> {
        let (_turn, mut tx) = self.begin_write().await?;
        for table in tables {
            sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
        }
        for (table, then, rows) in inserts {
            insert_rows(&mut tx, self.dialect(), table, then, rows).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes the account's identity details and findings (with their history and
    /// recommendations), in one
    /// transaction; returns how many findings went.
    pub async fn forget_identity_and_findings(&self, account_id: &str) -> Result<u64, DbError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM aardvark_finding_history WHERE finding_id IN \
             (SELECT id FROM aardvark_findings WHERE account_id = $1)",
        )
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        for table in [
            "aardvark_recommendations",
            "aardvark_recommendation_inputs",
            "aardvark_findings_applied",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
        }
        let findings = sqlx::query("DELETE FROM aardvark_findings WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for table in [
            "aardvark_identities",
            "aardvark_managed_policies",
            "aardvark_credentials",
            "aardvark_access_keys",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(findings)
    }

    /// Accounts with any identity detail or Access Advisor data stored, by id.
    pub async fn accounts_with_facts(&self) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT account_id FROM aardvark_identities UNION SELECT account_id FROM aardvark_credentials \
             UNION SELECT account FROM aardvark_principals ORDER BY 1",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Everything stored of the account that findings are evaluated from.
    pub async fn account_facts(&self, account_id: &str) -> Result<AccountFacts, DbError> {
        Ok(AccountFacts {
            identities: self.identities_of(account_id).await?,
            credentials: self.credentials_of(account_id).await?,
            usage: self.usage_of(account_id).await?,
        })
    }

    /// The rows `SELECT {columns} {rest}` (with `account_id` as `$1`) returns, read as `T`
    /// from one JSON row.
    pub(super) async fn json_rows<T: serde::de::DeserializeOwned>(
        &self,
        columns: &str,
        rest: &str,
        account_id: &str,
    ) -> Result<Vec<T>, DbError> {
        let text: String = sqlx::query_scalar(&self.dialect().rows_as_json(columns, rest))
            .bind(account_id)
            .fetch_one(self.pool())
            .await?;
        stored_json(text)
    }

    async fn identities_of(&self, account_id: &str) -> Result<Vec<IdentityRecord>, DbError> {
        type Row = (
            String,
            String,
            Option<i64>,
            Option<i64>,
            Option<String>,
            String,
            String,
            String,
        );
        let rows: Vec<Row> = self
            .json_rows(
                "arn, kind, created_ms, last_used_ms, last_used_region, tags, groups_json, managed_policies",
                "FROM aardvark_identities WHERE account_id = $1",
                account_id,
            )
            .await?;
        let mut identities = rows
            .into_iter()
            .map(
                |(arn, kind, created_ms, last_used_ms, last_used_region, tags, groups, managed)| {
                    Ok(IdentityRecord {
                        arn,
                        kind,
                        created_ms,
                        last_used_ms,
                        last_used_region,
                        tags: stored_json(tags)?,
                        groups: stored_json(groups)?,
                        managed_policies: stored_json(managed)?,
                        inline_policies: Vec::new(),
                    })
                },
            )
            .collect::<Result<Vec<_>, DbError>>()?;
        identities.sort_by(|a, b| a.arn.cmp(&b.arn));
        Ok(identities)
    }

    async fn credentials_of(&self, account_id: &str) -> Result<Vec<UserCredentials>, DbError> {
        type Row = (
            String,
            String,
            Option<i64>,
            i64,
            Option<i64>,
            Option<String>,
            Option<i64>,
            i64,
        );
        let rows: Vec<Row> = self
            .json_rows(
                "arn, user_name, created_ms, password_enabled, password_last_used_ms, \
                 password_last_used_note, password_last_changed_ms, mfa_active",
                "FROM aardvark_credentials WHERE account_id = $1",
                account_id,
            )
            .await?;
        let mut users: Vec<UserCredentials> = rows
            .into_iter()
            .map(
                |(arn, user_name, created_ms, enabled, last_used, note, changed, mfa)| {
                    UserCredentials {
                        arn,
                        user_name,
                        created_ms,
                        password_enabled: enabled != 0,
                        password_last_used_ms: last_used,
                        password_last_used_note: note,
                        password_last_changed_ms: changed,
                        mfa_active: mfa != 0,
                        keys: Vec::new(),
                    }
                },
            )
            .collect();
        users.sort_by(|a, b| a.arn.cmp(&b.arn));
        let position: HashMap<String, usize> = users
            .iter()
            .enumerate()
            .map(|(at, user)| (user.arn.clone(), at))
            .collect();
        type KeyRow = (
            String,
            i64,
            Option<String>,
            i64,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let mut keys: Vec<KeyRow> = self
            .json_rows(
                "arn, slot, key_id, active, created_ms, last_used_ms, last_used_region, last_used_service",
                "FROM aardvark_access_keys WHERE account_id = $1",
                account_id,
            )
            .await?;
        keys.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        for (arn, slot, key_id, active, created_ms, last_used_ms, region, service) in keys {
            if let Some(&at) = position.get(&arn) {
                users[at].keys.push(AccessKeyRecord {
                    slot,
                    key_id,
                    active: active != 0,
                    created_ms,
                    last_used_ms,
                    last_used_region: region,
                    last_used_service: service,
                });
            }
        }
        Ok(users)
    }

    /// The account's roles' and users' services and tracked actions, by ARN (one statement,
    /// one row).
    async fn usage_of(&self, account_id: &str) -> Result<Vec<UsageFacts>, DbError> {
        type Principal = (
            String,
            String,
            Option<i64>,
            Vec<(Option<String>, i64)>,
            Vec<(String, String, i64)>,
        );
        let text: String = sqlx::query_scalar(self.dialect().account_usage())
            .bind(account_id)
            .fetch_one(self.pool())
            .await?;
        let principals: Vec<Principal> = serde_json::from_str(&text)
            .map_err(|err| DbError::undecodable(format!("an account's usage: {err}")))?;
        let mut usage: Vec<UsageFacts> = principals
            .into_iter()
            .map(|(arn, kind, created_ms, services, actions)| UsageFacts {
                arn,
                kind,
                created_ms,
                services: services
                    .into_iter()
                    .filter_map(|(namespace, last)| Some((namespace?, last)))
                    .collect(),
                actions,
            })
            .collect();
        usage.sort_by(|a, b| a.arn.cmp(&b.arn));
        Ok(usage)
    }
}
