//! An account's identity details, best effort, beside its Access Advisor jobs and on the same
//! pacer and sessions: `GetAccountAuthorizationDetails` (all pages, documents URL-decoded into
//! JSON), the credential report (generated until `COMPLETE`, then read; generated again when
//! it expired) and `ListAccessKeys` for the users the report says have keys. Each part's
//! failure is recorded, never the account's. Stores each part in one transaction.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_iam::types::{AttachedPolicy, PolicyDetail, ReportStateType, Tag};

use super::aws::Failure;
use super::pacer::Pacer;
use super::run::RunShared;
use super::session::{is_expired, AccountSession};
use crate::db::identity::{
    compact_json, AuthorizationDetails, IdentityRecord, ManagedPolicy, UserCredentials,
};
use crate::db::runs::{IdentityPart, PartStatus, RecordedPart};
use crate::findings::Judged;

/// Times an expired or missing report is generated again before the part fails.
const REGENERATIONS: u32 = 2;

/// What the identity parts of one account came to: the parts' records, and what findings
/// may judge from them.
pub(super) struct IdentityOutcome {
    pub parts: Vec<RecordedPart>,
    pub details: bool,
    pub credentials: bool,
}

impl IdentityOutcome {
    pub fn judged(&self, usage: bool) -> Judged {
        Judged {
            usage,
            details: self.details,
            credentials: self.credentials,
        }
    }
}

fn part(part: IdentityPart, result: &Result<(), Failure>) -> RecordedPart {
    RecordedPart {
        part,
        status: if result.is_ok() {
            PartStatus::Collected
        } else {
            PartStatus::Failed
        },
        code: result.as_ref().err().map(|f| f.code.clone()),
        message: result.as_ref().err().map(|f| f.message.clone()),
    }
}

/// Collects and stores the account's identity parts (none when the setting turns them off).
pub(super) async fn collect(
    run: &RunShared,
    account: &str,
    session: &AccountSession<'_>,
    pacer: &Pacer,
) -> IdentityOutcome {
    if !run.settings.updater_identity_details {
        let off = |part| RecordedPart {
            part,
            status: PartStatus::Off,
            code: None,
            message: None,
        };
        return IdentityOutcome {
            parts: vec![
                off(IdentityPart::AuthorizationDetails),
                off(IdentityPart::CredentialReport),
            ],
            details: false,
            credentials: false,
        };
    }
    let store_failure =
        |err: crate::db::DbError| Failure::new("DatabaseError", crate::error_text::one_line(&err));
    let details = async {
        let _turn = run
            .details_turns
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let details = authorization_details(session, pacer).await?;
        run.db
            .store_authorization_details(account, &details)
            .await
            .map_err(store_failure)
    };
    let credentials = async {
        let mut users = credential_report(run, session, pacer).await?;
        let keys = access_key_ids(session, pacer, &mut users).await;
        run.db
            .store_credentials(account, &users)
            .await
            .map_err(store_failure)?;
        Ok::<_, Failure>(keys)
    };
    let (details, credentials) = tokio::join!(details, credentials);
    for (what, failure) in [
        ("authorization details", details.as_ref().err()),
        ("credential report", credentials.as_ref().err()),
    ] {
        if let Some(failure) = failure {
            tracing::info!(account, code = %failure.code, message = %failure.message, "{what} not collected (best effort; Access Advisor data is unaffected)");
        }
    }
    let mut parts = vec![
        part(IdentityPart::AuthorizationDetails, &details),
        part(
            IdentityPart::CredentialReport,
            &credentials.as_ref().map(|_| ()).map_err(Clone::clone),
        ),
    ];
    if let Ok(keys) = &credentials {
        parts.push(part(IdentityPart::AccessKeys, keys));
    }
    IdentityOutcome {
        parts,
        details: details.is_ok(),
        credentials: credentials.is_ok(),
    }
}

/// One IAM call on the account's current session, paced; a call answered `ExpiredToken` is
/// made once more on a new session.
async fn call<T, F, Fut>(
    session: &AccountSession<'_>,
    pacer: &Pacer,
    operation: &str,
    request: F,
) -> Result<T, Failure>
where
    F: Fn(aws_sdk_iam::Client) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut renewed = false;
    loop {
        let current = session.current().await?;
        match pacer.send(|| request(current.iam.clone())).await {
            Err(failure) if is_expired(&failure) && !renewed => {
                renewed = true;
                session.renew(&current).await?;
            }
            result => return result.map_err(|failure| failure.during(operation)),
        }
    }
}

/// Every page of `GetAccountAuthorizationDetails`. Paged by hand rather than with the SDK's
/// paginator so that a page answered `ExpiredToken` is asked again, from its marker, on a new
/// session.
async fn authorization_details(
    session: &AccountSession<'_>,
    pacer: &Pacer,
) -> Result<AuthorizationDetails, Failure> {
    let mut details = AuthorizationDetails::default();
    let mut marker: Option<String> = None;
    loop {
        let page = call(session, pacer, "GetAccountAuthorizationDetails", |iam| {
            let marker = marker.clone();
            async move {
                iam.get_account_authorization_details()
                    .max_items(1000)
                    .set_marker(marker)
                    .send()
                    .await
                    .map_err(|err| Failure::from_sdk(&err))
            }
        })
        .await?;
        for role in page.role_detail_list() {
            let mut record = identity(
                "role",
                role.arn(),
                role.create_date(),
                role.tags(),
                role.attached_managed_policies(),
                role.role_policy_list(),
            )?;
            if let Some(used) = role.role_last_used() {
                record.last_used_ms = used.last_used_date().and_then(|d| d.to_millis().ok());
                record.last_used_region = used.region().map(str::to_owned);
            }
            details.principals.push(record);
        }
        for user in page.user_detail_list() {
            let mut record = identity(
                "user",
                user.arn(),
                user.create_date(),
                user.tags(),
                user.attached_managed_policies(),
                user.user_policy_list(),
            )?;
            record.groups = user.group_list().to_vec();
            details.principals.push(record);
        }
        for group in page.group_detail_list() {
            details.principals.push(identity(
                "group",
                group.arn(),
                group.create_date(),
                &[],
                group.attached_managed_policies(),
                group.group_policy_list(),
            )?);
        }
        for policy in page.policies() {
            let (Some(arn), Some(name)) = (policy.arn(), policy.policy_name()) else {
                continue;
            };
            let default = policy
                .policy_version_list()
                .iter()
                .find(|version| version.is_default_version());
            if let Some(version) = default {
                details.policies.push(ManagedPolicy {
                    arn: arn.to_owned(),
                    name: name.to_owned(),
                    default_version: version.version_id().unwrap_or_default().to_owned(),
                    document: decoded(arn, name, version.document().unwrap_or_default())?,
                });
            }
        }
        match page.marker() {
            Some(next) if page.is_truncated() => marker = Some(next.to_owned()),
            _ => return Ok(details),
        }
    }
}

fn identity(
    kind: &str,
    arn: Option<&str>,
    created: Option<&aws_sdk_iam::primitives::DateTime>,
    tags: &[Tag],
    attached: &[AttachedPolicy],
    inline: &[PolicyDetail],
) -> Result<IdentityRecord, Failure> {
    let arn = arn.unwrap_or_default();
    Ok(IdentityRecord {
        arn: arn.to_owned(),
        kind: kind.to_owned(),
        created_ms: created.and_then(|d| d.to_millis().ok()),
        tags: tags
            .iter()
            .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
            .collect(),
        managed_policies: attached
            .iter()
            .filter_map(|policy| policy.policy_arn().map(str::to_owned))
            .collect(),
        inline_policies: inline
            .iter()
            .map(|policy| {
                let name = policy.policy_name().unwrap_or_default();
                let document = decoded(arn, name, policy.policy_document().unwrap_or_default())?;
                Ok((name.to_owned(), document))
            })
            .collect::<Result<_, Failure>>()?,
        ..Default::default()
    })
}

/// A policy document as IAM sends it (URL-encoded JSON), decoded and checked, as storage keeps
/// it (`compact_json`).
pub(crate) fn decoded(owner: &str, name: &str, encoded: &str) -> Result<String, Failure> {
    let malformed = |problem: String| {
        Failure::new(
            "MalformedPolicyDocument",
            format!("policy {name} of {owner}: {problem}"),
        )
    };
    let text = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map_err(|err| malformed(format!("not UTF-8 once URL-decoded ({err})")))?;
    let document: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| malformed(format!("not JSON ({err})")))?;
    Ok(compact_json(&document))
}

/// How long to wait before asking about the report again, and whether the wait fits in the
/// deadline.
struct Backoff {
    interval: Duration,
    max: Duration,
    deadline: Instant,
}

impl Backoff {
    async fn wait(&mut self, run: &RunShared, waiting_for: &str) -> Result<(), Failure> {
        if run.stop.is_set() {
            return Err(Failure::new(
                "Interrupted",
                format!("the run was stopped while {waiting_for}"),
            ));
        }
        if Instant::now() + self.interval > self.deadline {
            return Err(Failure::new(
                "Timeout",
                format!("{waiting_for} for longer than UPDATER_JOB_TIMEOUT_SECONDS"),
            ));
        }
        tokio::time::sleep(self.interval).await;
        self.interval = (self.interval * 2).min(self.max);
        Ok(())
    }
}

/// The credential report: generated until `COMPLETE` (`STARTED` and `LimitExceeded` wait),
/// then read (`ReportInProgress` waits; `ReportExpired` and `ReportNotPresent` generate it
/// again), then parsed.
async fn credential_report(
    run: &RunShared,
    session: &AccountSession<'_>,
    pacer: &Pacer,
) -> Result<Vec<UserCredentials>, Failure> {
    let mut backoff = Backoff {
        interval: run.settings.updater_poll_interval,
        max: run.settings.updater_poll_max_interval,
        deadline: Instant::now() + run.settings.updater_job_timeout,
    };
    let mut regenerations = 0;
    'generate: loop {
        loop {
            let generated = call(
                session,
                pacer,
                "GenerateCredentialReport",
                |iam| async move {
                    iam.generate_credential_report()
                        .send()
                        .await
                        .map_err(|err| Failure::from_sdk(&err))
                },
            )
            .await;
            match generated {
                Ok(out) if out.state() == Some(&ReportStateType::Complete) => break,
                Ok(_) => {}
                Err(failure) if failure.is("LimitExceeded") => {}
                Err(failure) => return Err(failure),
            }
            backoff
                .wait(run, "the credential report was being generated")
                .await?;
        }
        loop {
            let report = call(session, pacer, "GetCredentialReport", |iam| async move {
                iam.get_credential_report()
                    .send()
                    .await
                    .map_err(|err| Failure::from_sdk(&err))
            })
            .await;
            match report {
                Ok(out) => {
                    let content = out.content().map(|blob| blob.as_ref()).unwrap_or_default();
                    return super::credential_report::parse(content)
                        .map_err(|err| Failure::new("MalformedCredentialReport", err.to_string()));
                }
                Err(failure) if failure.is("ReportInProgress") => {
                    backoff
                        .wait(run, "the credential report was being generated")
                        .await?;
                }
                Err(failure)
                    if (failure.is("ReportExpired") || failure.is("ReportNotPresent"))
                        && regenerations < REGENERATIONS =>
                {
                    regenerations += 1;
                    continue 'generate;
                }
                Err(failure) => return Err(failure),
            }
        }
    }
}

/// Fills in the ids of the users' keys from `ListAccessKeys` (one call per user with keys),
/// matching the report's slots by creation time, else by order. A failure leaves the rest
/// without ids and is returned for the record.
async fn access_key_ids(
    session: &AccountSession<'_>,
    pacer: &Pacer,
    users: &mut [UserCredentials],
) -> Result<(), Failure> {
    let mut first_failure = None;
    for user in users.iter_mut().filter(|user| !user.keys.is_empty()) {
        let name = user.user_name.clone();
        let listed = call(session, pacer, "ListAccessKeys", |iam| {
            let name = name.clone();
            async move {
                iam.list_access_keys()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|err| Failure::from_sdk(&err))
            }
        })
        .await;
        let listed = match listed {
            Ok(listed) => listed,
            Err(failure) => {
                first_failure.get_or_insert(failure);
                continue;
            }
        };
        let mut keys: Vec<(Option<i64>, String)> = listed
            .access_key_metadata()
            .iter()
            .filter_map(|key| {
                let created = key.create_date().and_then(|d| d.to_millis().ok());
                Some((created.map(|ms| ms / 1000), key.access_key_id()?.to_owned()))
            })
            .collect();
        for key in &mut user.keys {
            let seconds = key.created_ms.map(|ms| ms / 1000);
            let at = keys
                .iter()
                .position(|(created, _)| *created == seconds && seconds.is_some())
                .or_else(|| (!keys.is_empty()).then_some(0));
            key.key_id = at.map(|at| keys.remove(at).1);
        }
    }
    first_failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_url_decoded_into_json() {
        // As the IAM API Reference's GetAccountAuthorizationDetails example sends one.
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D";
        let document = decoded("arn:aws:iam::123456789012:role/r", "p", encoded).unwrap();
        // Compact, keys sorted.
        assert_eq!(
            document,
            r#"{"Statement":[{"Action":"*","Effect":"Allow","Resource":"*"}],"Version":"2012-10-17"}"#
        );
        let spaced = "%7B%22Sid%22%3A%20%22a%20b%2Bc%22%7D";
        assert_eq!(decoded("o", "p", spaced).unwrap(), r#"{"Sid":"a b+c"}"#);
    }

    #[test]
    fn bad_documents_name_the_policy_and_the_problem() {
        let half = decoded(
            "arn:aws:iam::123456789012:role/r",
            "inline",
            "%7B%22Version%22",
        )
        .unwrap_err();
        assert_eq!(half.code, "MalformedPolicyDocument");
        assert!(
            half.message
                .starts_with("policy inline of arn:aws:iam::123456789012:role/r: not JSON"),
            "{}",
            half.message
        );
        let bytes = decoded("o", "p", "%FF%FE").unwrap_err();
        assert!(bytes.message.contains("not UTF-8"), "{}", bytes.message);
    }
}
