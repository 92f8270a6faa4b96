//! Findings end to end: identity details collected through the official SDK from aws-sim,
//! findings evaluated with their lifecycle (window edges, never-used and inactive keys, a
//! user's two keys, a password never used, principals created inside the window, exclusions,
//! archiving by hand, resolution when a role is used again and a key is deleted), an account
//! without the new permissions, the API over the wire and `report findings` in every format.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aardvark::collector::progress::Progress;
use aardvark::collector::UpdateRequest;
use aardvark::config::Settings;
use aardvark::db::Database;
use aardvark::findings::{Exclusion, FindingRules};
use aws_sim::identity::{AccessKey, Identity, IdentityCall, IdentityFaults, Password, Tag};
use aws_sim::scenario::{Account, Principal, ServiceUse};
use aws_sim::{AccountFaults, PrincipalKind, Scenario, SimHandle};
use common::{fresh_db, Backend};
use serde_json::Value;

const DAY_MS: i64 = 86_400_000;

/// An access key as compared: id, active, created, last used.
type StoredKey = (Option<String>, bool, Option<i64>, Option<i64>);
const ACCOUNT: &str = "222222222222";
const DENIED: &str = "333333333333";
const OLD: i64 = 1_577_836_800_000;

fn now_ms() -> i64 {
    // Whole seconds, as AWS reports times.
    chrono::Utc::now().timestamp_millis() / 1000 * 1000
}

fn days_ago(now: i64, days: i64) -> i64 {
    now - days * DAY_MS
}

fn principal(
    kind: PrincipalKind,
    name: &str,
    identity: Identity,
    services: Vec<ServiceUse>,
) -> Principal {
    Principal {
        kind,
        name: name.into(),
        path: "/".into(),
        services: Some(services),
        faults: Default::default(),
        identity: Some(identity),
    }
}

fn s3_used_at(ms: Option<i64>) -> Vec<ServiceUse> {
    vec![ServiceUse {
        namespace: "s3".into(),
        name: None,
        last_authenticated_ms: ms,
        entity: None,
        total_entities: u32::from(ms.is_some()),
        region: None,
        actions: Vec::new(),
    }]
}

fn role(name: &str, created: i64, last_used: Option<i64>, tags: Vec<Tag>) -> Principal {
    principal(
        PrincipalKind::Role,
        name,
        Identity {
            created_ms: Some(created),
            last_used_ms: last_used,
            last_used_region: last_used.map(|_| "eu-west-1".into()),
            tags,
            ..Default::default()
        },
        s3_used_at(last_used),
    )
}

fn key(id: &str, active: bool, created: i64, last_used: Option<i64>) -> AccessKey {
    AccessKey {
        id: Some(id.into()),
        active,
        created_ms: created,
        last_used_ms: last_used,
        last_used_region: last_used.map(|_| "us-east-1".into()),
        last_used_service: last_used.map(|_| "s3".into()),
    }
}

fn user(name: &str, created: i64, password: Option<Password>, keys: Vec<AccessKey>) -> Principal {
    principal(
        PrincipalKind::User,
        name,
        Identity {
            created_ms: Some(created),
            password,
            access_keys: keys,
            ..Default::default()
        },
        Vec::new(),
    )
}

/// The world of the first collection; `later` is the same world after the role `unused-91`
/// was used and alice's first key deleted.
fn scenario(now: i64, later: bool) -> Scenario {
    let sandbox = vec![Tag {
        key: "env".into(),
        value: "sandbox".into(),
    }];
    let used_91 = if later {
        now - 60_000
    } else {
        days_ago(now, 91)
    };
    let mut alice_keys = vec![
        key("AKIAALICE0000000001", true, days_ago(now, 200), None),
        key("AKIAALICE0000000002", false, days_ago(now, 200), None),
    ];
    if later {
        alice_keys.remove(0);
    }
    // The collector's own role, used now: no finding.
    let collector_role = || role("Aardvark", OLD, Some(now - 60_000), Vec::new());
    let principals = vec![
        collector_role(),
        role("used-89", OLD, Some(days_ago(now, 89)), Vec::new()),
        role("unused-91", OLD, Some(used_91), Vec::new()),
        role("never-used", OLD, None, Vec::new()),
        role("young", days_ago(now, 10), None, Vec::new()),
        role("sandboxed", OLD, None, sandbox),
        user(
            "alice",
            OLD,
            Some(Password {
                last_used_ms: Some(days_ago(now, 91)),
                last_changed_ms: Some(OLD),
            }),
            alice_keys,
        ),
        user(
            "bob",
            OLD,
            Some(Password {
                last_used_ms: None,
                last_changed_ms: Some(OLD),
            }),
            vec![
                key("AKIABOB00000000001", true, OLD, Some(days_ago(now, 10))),
                key("AKIABOB00000000002", true, OLD, Some(days_ago(now, 91))),
            ],
        ),
        user("carol", OLD, None, Vec::new()),
        user(
            "dave",
            days_ago(now, 5),
            Some(Password::default()),
            vec![key("AKIADAVE0000000001", true, days_ago(now, 5), None)],
        ),
    ];
    let mut scenario = Scenario {
        reference_time_ms: now,
        ..Default::default()
    };
    scenario.accounts.push(Account {
        id: ACCOUNT.into(),
        principals,
        ..Default::default()
    });
    scenario.accounts.push(Account {
        id: DENIED.into(),
        principals: vec![collector_role(), role("lonely", OLD, None, Vec::new())],
        ..Default::default()
    });
    scenario.with_account_faults(
        DENIED,
        AccountFaults {
            identity: IdentityFaults {
                deny: vec![
                    IdentityCall::GetAccountAuthorizationDetails,
                    IdentityCall::GenerateCredentialReport,
                ],
                ..Default::default()
            },
            ..Default::default()
        },
    )
}

fn settings(sim: &SimHandle, db: &common::TestDb, exclude: &[&str]) -> Settings {
    Settings {
        findings_exclude: exclude
            .iter()
            .map(|rule| Exclusion::parse(rule).unwrap())
            .collect(),
        ..common::quick_settings(sim, db)
    }
}

async fn collect(sim: &SimHandle, db: &Database, settings: Settings) {
    let collector = common::collector_for(sim, db, settings).await;
    let report = tokio::time::timeout(
        Duration::from_secs(120),
        collector.run(&UpdateRequest::default(), Progress::logs()),
    )
    .await
    .expect("the run ended")
    .unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.summary());
}

/// (type, resource) -> (status, reason) of every finding of [`ACCOUNT`].
async fn findings(db: &Database) -> BTreeMap<(String, String), (String, Option<String>)> {
    let filter = aardvark::db::findings::FindingFilter {
        account: Some(ACCOUNT.into()),
        ..Default::default()
    };
    let (_, all) = db.findings_page(&filter, 0, 1000).await.unwrap();
    all.into_iter()
        .map(|f| {
            (
                (f.kind.as_str().to_owned(), f.resource.clone()),
                (f.status.as_str().to_owned(), f.reason.clone()),
            )
        })
        .collect()
}

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:{kind}/{name}")
}

fn expect(
    entries: &[(&str, String, &str, Option<&str>)],
) -> BTreeMap<(String, String), (String, Option<String>)> {
    entries
        .iter()
        .map(|(kind, resource, status, reason)| {
            (
                ((*kind).to_owned(), resource.clone()),
                ((*status).to_owned(), reason.map(str::to_owned)),
            )
        })
        .collect()
}

async fn findings_have_a_lifecycle(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let now = now_ms();
    let sim = aws_sim::start(scenario(now, false)).await.unwrap();
    let database = db.db.clone();
    collect(&sim, &database, settings(&sim, &db, &["tag:env=sandbox"])).await;
    let excluded = "excluded by FINDINGS_EXCLUDE rule tag:env=sandbox";
    let found = Some("found");
    let first = expect(&[
        ("unused_role", arn("role", "unused-91"), "active", found),
        ("unused_role", arn("role", "never-used"), "active", found),
        (
            "unused_role",
            arn("role", "sandboxed"),
            "archived",
            Some(excluded),
        ),
        (
            "unused_permission",
            arn("role", "unused-91"),
            "active",
            found,
        ),
        (
            "unused_permission",
            arn("role", "never-used"),
            "active",
            found,
        ),
        (
            "unused_permission",
            arn("role", "sandboxed"),
            "archived",
            Some(excluded),
        ),
        ("unused_password", arn("user", "alice"), "active", found),
        ("unused_password", arn("user", "bob"), "active", found),
        (
            "unused_access_key",
            "AKIAALICE0000000001".into(),
            "active",
            found,
        ),
        (
            "unused_access_key",
            "AKIABOB00000000002".into(),
            "active",
            found,
        ),
    ]);
    assert_eq!(findings(&database).await, first);

    // The account without the new permissions: collected, not failed, its parts exact.
    let (_, runs) = database.runs_page(0, 1).await.unwrap();
    let records = database.run_accounts(runs[0].id).await.unwrap();
    let denied = records.iter().find(|r| r.account_id == DENIED).unwrap();
    assert_eq!(denied.status.as_str(), "ok");
    assert_eq!(
        denied.principals_collected, 2,
        "the collector's role and `lonely`"
    );
    let parts: Vec<(String, String, Option<String>)> = denied
        .parts
        .iter()
        .map(|p| {
            (
                p.part.as_str().to_owned(),
                p.status.as_str().to_owned(),
                p.code.clone(),
            )
        })
        .collect();
    assert_eq!(
        parts,
        vec![
            (
                "authorization_details".into(),
                "failed".into(),
                Some("AccessDenied".into())
            ),
            (
                "credential_report".into(),
                "failed".into(),
                Some("AccessDenied".into())
            ),
        ]
    );
    assert!(denied.parts[0].message.as_deref().unwrap().starts_with(
        "GetAccountAuthorizationDetails: User: arn:aws:sts::333333333333:assumed-role/Aardvark/aardvark is not authorized to perform: iam:GetAccountAuthorizationDetails"
    ));
    let ok = records.iter().find(|r| r.account_id == ACCOUNT).unwrap();
    assert!(ok.parts.iter().all(|p| p.status.as_str() == "collected") && ok.parts.len() == 3);

    // A finding an exclusion archived, made active by hand: the same world collected again
    // (an evaluation that finds what the last one found) archives it again by the rule, as
    // an evaluation of what is stored decides, and changes nothing else.
    let sandboxed = aardvark::db::findings::finding_id(
        aardvark::db::findings::FindingType::UnusedRole,
        &arn("role", "sandboxed"),
    );
    database
        .set_finding_archived(&sandboxed, false, "look again", "alice@example.com")
        .await
        .unwrap()
        .unwrap();
    collect(&sim, &database, settings(&sim, &db, &["tag:env=sandbox"])).await;
    assert_eq!(findings(&database).await, first);

    // Archived by hand: stays archived whatever the next evaluations find.
    let bob_password = aardvark::db::findings::finding_id(
        aardvark::db::findings::FindingType::UnusedPassword,
        &arn("user", "bob"),
    );
    database
        .set_finding_archived(&bob_password, true, "bob is on leave", "alice@example.com")
        .await
        .unwrap()
        .unwrap();

    // The world moves on: the role is used, alice's unused key is deleted; the exclusion goes.
    let later = aws_sim::start(scenario(now, true)).await.unwrap();
    collect(&later, &database, settings(&later, &db, &[])).await;
    let mut second = first.clone();
    let set =
        |map: &mut BTreeMap<_, _>, kind: &str, resource: String, status: &str, reason: &str| {
            map.insert(
                (kind.to_owned(), resource),
                (status.to_owned(), Some(reason.to_owned())),
            );
        };
    set(
        &mut second,
        "unused_role",
        arn("role", "unused-91"),
        "resolved",
        "the role was used again",
    );
    set(
        &mut second,
        "unused_permission",
        arn("role", "unused-91"),
        "resolved",
        "every permission was used in the window",
    );
    set(
        &mut second,
        "unused_access_key",
        "AKIAALICE0000000001".into(),
        "resolved",
        "the access key was deleted",
    );
    set(
        &mut second,
        "unused_role",
        arn("role", "sandboxed"),
        "active",
        "no FINDINGS_EXCLUDE rule matches any more",
    );
    set(
        &mut second,
        "unused_permission",
        arn("role", "sandboxed"),
        "active",
        "no FINDINGS_EXCLUDE rule matches any more",
    );
    set(
        &mut second,
        "unused_password",
        arn("user", "bob"),
        "archived",
        "bob is on leave",
    );
    assert_eq!(findings(&database).await, second);

    // While a finding holds it is seen at every evaluation; once it stops, its last sighting
    // stays that of the evaluation before.
    let stored = |kind, resource: String| {
        let db = database.clone();
        async move {
            let id = aardvark::db::findings::finding_id(kind, &resource);
            db.finding(&id).await.unwrap().unwrap()
        }
    };
    use aardvark::db::findings::FindingType::{UnusedAccessKey, UnusedRole};
    let resolved = stored(UnusedRole, arn("role", "unused-91")).await;
    // (The run's start evaluated every account again with the changed exclusions, on the
    // data then stored: the role was last seen holding there.)
    assert!(resolved.last_seen >= resolved.first_seen);
    assert!(resolved.updated_at > resolved.last_seen);
    let holding = stored(UnusedAccessKey, "AKIABOB00000000002".into()).await;
    assert!(holding.last_seen > holding.first_seen);
    assert_eq!(
        holding.last_seen, resolved.updated_at,
        "the second evaluation"
    );

    // Back to the first world: the role's finding is found again, with its whole history.
    collect(&sim, &database, settings(&sim, &db, &[])).await;
    let role_finding = database
        .finding(&aardvark::db::findings::finding_id(
            aardvark::db::findings::FindingType::UnusedRole,
            &arn("role", "unused-91"),
        ))
        .await
        .unwrap()
        .unwrap();
    let history: Vec<(&str, Option<&str>)> = role_finding
        .history
        .iter()
        .map(|c| (c.status.as_str(), c.reason.as_deref()))
        .collect();
    assert_eq!(
        history,
        vec![
            ("active", Some("found")),
            ("resolved", Some("the role was used again")),
            ("active", Some("found again")),
        ]
    );
    assert!(role_finding.history.iter().all(|c| c.run_id.is_some()));
    assert_eq!(role_finding.evidence["window_days"], 90);
    let archived = database.finding(&bob_password).await.unwrap().unwrap();
    assert_eq!(archived.archived_by.as_deref(), Some("alice@example.com"));
    assert_eq!(archived.status.as_str(), "archived");
    sim.shutdown().await;
    later.shutdown().await;
}

/// A part that fails (a denied report, a document that does not read) stores nothing of
/// itself and keeps that part's findings as they were, marked stale.
async fn findings_of_a_part_not_collected_stay_stale(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let now = now_ms();
    let sim = aws_sim::start(scenario(now, false)).await.unwrap();
    let database = db.db.clone();
    collect(&sim, &database, settings(&sim, &db, &[])).await;
    let before = findings(&database).await;
    // The report cannot be read, and one document does not read: both parts fail.
    let mut denied = scenario(now, true).with_account_faults(
        ACCOUNT,
        AccountFaults {
            identity: IdentityFaults {
                deny: vec![IdentityCall::GetCredentialReport],
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let young = denied.accounts[0]
        .principals
        .iter_mut()
        .find(|p| p.name == "young")
        .unwrap();
    young.faults.malformed_policy = true;
    let later = aws_sim::start(denied).await.unwrap();
    collect(&later, &database, settings(&later, &db, &[])).await;
    let (_, runs) = database.runs_page(0, 1).await.unwrap();
    let records = database.run_accounts(runs[0].id).await.unwrap();
    let record = records.iter().find(|r| r.account_id == ACCOUNT).unwrap();
    assert_eq!(record.status.as_str(), "ok");
    let parts = &record.parts;
    assert_eq!(parts[0].code.as_deref(), Some("MalformedPolicyDocument"));
    let message = parts[0].message.as_deref().unwrap();
    assert!(
        message
            .starts_with("policy young-access of arn:aws:iam::222222222222:role/young: not JSON"),
        "{message}"
    );
    assert_eq!(parts[1].code.as_deref(), Some("AccessDenied"));
    // Nothing of the failed parts was stored: the first collection's details stand.
    let facts = database.account_facts(ACCOUNT).await.unwrap();
    let role = facts
        .identities
        .iter()
        .find(|i| i.arn == arn("role", "unused-91"))
        .unwrap();
    assert_eq!(role.last_used_ms, Some(days_ago(now, 91)));
    let alice = facts
        .credentials
        .iter()
        .find(|u| u.arn == arn("user", "alice"))
        .unwrap();
    assert_eq!(
        alice.keys.len(),
        2,
        "the deleted key is still there: the report was not read"
    );
    let (_, all) = database
        .findings_page(&Default::default(), 0, 1000)
        .await
        .unwrap();
    for finding in all.iter().filter(|f| f.account == ACCOUNT) {
        let judged = finding.kind.as_str() == "unused_permission";
        assert_eq!(
            finding.stale,
            !judged,
            "{} {}",
            finding.kind.as_str(),
            finding.resource
        );
    }
    let key = (
        "unused_access_key".to_owned(),
        "AKIAALICE0000000001".to_owned(),
    );
    assert_eq!(
        findings(&database).await[&key],
        before[&key],
        "kept as it was, though deleted since"
    );
}

/// Identity details stored exactly as the simulator holds them (roles' last uses, tags, groups,
/// attached policies, inline documents decoded and stored once each, passwords, keys with their
/// ids), in accounts with every part allowed, without the credential report, and without the
/// authorization details.
async fn identity_details_are_stored_exactly(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let deny = |calls: Vec<IdentityCall>| AccountFaults {
        identity: IdentityFaults {
            deny: calls,
            ..Default::default()
        },
        ..Default::default()
    };
    let scenario = Scenario::generated(7, 3, 24)
        .with_account_faults(
            "100000000001",
            deny(vec![IdentityCall::GetCredentialReport]),
        )
        .with_account_faults(
            "100000000002",
            deny(vec![IdentityCall::GetAccountAuthorizationDetails]),
        );
    let expected = scenario.expected_identities().unwrap();
    let sim = aws_sim::start(scenario).await.unwrap();
    collect(&sim, &db.db, settings(&sim, &db, &[])).await;
    let mut stored_identities = BTreeMap::new();
    let mut documents = std::collections::BTreeSet::new();
    for account in sim.account_ids() {
        let facts = db.db.account_facts(account).await.unwrap();
        let inline = db.db.account_policies(account).await.unwrap().inline;
        let credentials: BTreeMap<String, _> = facts
            .credentials
            .iter()
            .map(|user| (user.arn.clone(), user.clone()))
            .collect();
        for identity in facts.identities {
            let policies: Vec<(String, String)> = inline[&identity.arn]
                .iter()
                .map(|(name, document)| (name.clone(), document.to_string()))
                .collect();
            documents.extend(policies.iter().map(|(_, d)| d.clone()));
            let keys = credentials.get(&identity.arn).map(|user| {
                let keys: Vec<StoredKey> = user
                    .keys
                    .iter()
                    .map(|k| (k.key_id.clone(), k.active, k.created_ms, k.last_used_ms))
                    .collect();
                (user.password_enabled, user.password_last_used_ms, keys)
            });
            stored_identities.insert(
                identity.arn.clone(),
                (
                    identity.kind.clone(),
                    identity.created_ms,
                    identity.last_used_ms,
                    identity.last_used_region.clone(),
                    identity.tags.clone(),
                    identity.groups.clone(),
                    identity.managed_policies.clone(),
                    policies,
                    keys,
                ),
            );
        }
    }
    let expected_identities: BTreeMap<String, _> = expected
        .iter()
        .map(|(arn, e)| {
            let keys = e.credentials.as_ref().map(|identity| {
                let keys: Vec<StoredKey> = identity
                    .access_keys
                    .iter()
                    .map(|k| (k.id.clone(), k.active, Some(k.created_ms), k.last_used_ms))
                    .collect();
                let password = identity.password.as_ref();
                (
                    password.is_some(),
                    password.and_then(|p| p.last_used_ms),
                    keys,
                )
            });
            // Documents compare as the JSON they are, whatever their spacing.
            let policies: Vec<(String, String)> = e
                .inline_policies
                .iter()
                .map(|(name, d)| {
                    (
                        name.clone(),
                        serde_json::from_str::<Value>(d).unwrap().to_string(),
                    )
                })
                .collect();
            let kind = match e.kind {
                PrincipalKind::Role => "role",
                PrincipalKind::User => "user",
                _ => "group",
            };
            (
                arn.clone(),
                (
                    kind.to_owned(),
                    Some(e.created_ms),
                    e.last_used_ms,
                    e.last_used_region.clone(),
                    e.tags.clone(),
                    e.groups.clone(),
                    e.managed_policies.clone(),
                    policies,
                    keys,
                ),
            )
        })
        .collect();
    assert_eq!(stored_identities.len(), expected_identities.len());
    assert_eq!(stored_identities, expected_identities);
    assert!(expected.keys().all(|arn| !arn.contains("100000000002")));
    assert!(expected.values().any(|e| e
        .credentials
        .as_ref()
        .is_some_and(|c| c.access_keys.len() == 2)));
    assert!(
        expected.values().any(|e| e.last_used_ms.is_some())
            && expected.values().any(|e| !e.groups.is_empty())
    );
    // Each distinct document once, whoever attaches it; SecurityAudit once for every account.
    let world = sim.scenario().world().unwrap();
    for account in world.iter().filter(|a| a.id != "100000000002") {
        for policy in account
            .principals
            .iter()
            .filter(|p| p.kind == PrincipalKind::Policy)
        {
            let document: Value = serde_json::from_str(&policy.policies[0].1).unwrap();
            documents.insert(document.to_string());
        }
    }
    let audit: Value = serde_json::from_str(aws_sim::identity::AUDIT_DOCUMENT).unwrap();
    documents.insert(audit.to_string());
    let stored_documents: Vec<String> = db
        .strings("SELECT document FROM aardvark_policy_documents")
        .await;
    let distinct: std::collections::BTreeSet<String> = stored_documents.iter().cloned().collect();
    assert_eq!(distinct.len(), stored_documents.len(), "each document once");
    assert_eq!(
        distinct, documents,
        "inline, customer-managed and SecurityAudit"
    );
    let audit = db
        .strings(
            "SELECT DISTINCT digest FROM aardvark_managed_policies WHERE name = 'SecurityAudit'",
        )
        .await;
    assert_eq!(audit.len(), 1);
    sim.shutdown().await;
}

/// A server or `update` starting with other exclusions evaluates every account again.
async fn changed_rules_evaluate_every_account_again(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let sim = aws_sim::start(scenario(now_ms(), false)).await.unwrap();
    collect(&sim, &db.db, settings(&sim, &db, &[])).await;
    let active = |db: Database| async move {
        let filter = aardvark::db::findings::FindingFilter {
            status: Some(aardvark::db::findings::FindingStatus::Active),
            ..Default::default()
        };
        db.findings_page(&filter, 0, 0).await.unwrap().0
    };
    let before = active(db.db.clone()).await;
    assert!(before > 0);
    let same = aardvark::findings::reevaluate_if_rules_changed(
        &db.db,
        &settings(&sim, &db, &[]).finding_rules(),
    )
    .await
    .unwrap();
    assert_eq!(same, 0, "the same rules: nothing to do");
    let rules = settings(&sim, &db, &[ACCOUNT, DENIED]).finding_rules();
    let accounts = aardvark::findings::reevaluate_if_rules_changed(&db.db, &rules)
        .await
        .unwrap();
    assert_eq!(accounts, 2);
    assert_eq!(
        active(db.db.clone()).await,
        0,
        "every finding archived by the account rules"
    );
    let back = aardvark::findings::reevaluate_if_rules_changed(&db.db, &FindingRules::default())
        .await
        .unwrap();
    assert_eq!(back, 2);
    assert_eq!(active(db.db.clone()).await, before);
    sim.shutdown().await;
}

on_both_backends!(
    identity_details_are_stored_exactly,
    changed_rules_evaluate_every_account_again,
    findings_have_a_lifecycle,
    findings_of_a_part_not_collected_stay_stale
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_over_the_wire_and_in_every_report_format() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let now = now_ms();
    let sim = aws_sim::start(scenario(now, false)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let update = common::aardvark_against(
        dir.path(),
        &sim,
        &db,
        "  FINDINGS_EXCLUDE: ['arn:aws:iam::*:user/b*']\n",
    )
    .args(["-q", "update"])
    .output()
    .unwrap();
    assert!(update.status.success(), "{}", common::output_text(&update));
    let summary = String::from_utf8_lossy(&update.stdout);
    assert!(
        summary.contains("identity details not collected (Access Advisor data unaffected): authorization_details in 1, credential_report in 1 accounts\n  333333333333 authorization_details: AccessDenied: GetAccountAuthorizationDetails: User: "),
        "{summary}"
    );
    let database = db.db.clone();

    // Read-only without tokens.
    let app = common::spawn_app(&database).await;
    let page = app.get("/api/1/findings?type=unused_password").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let body = page.json();
    assert_eq!(body["total"], 2);
    let statuses: Vec<(&str, &str)> = body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["principal"].as_str().unwrap(),
                f["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("arn:aws:iam::222222222222:user/alice", "active"),
            ("arn:aws:iam::222222222222:user/bob", "archived"),
        ]
    );
    let id = body["findings"][0]["id"].as_str().unwrap().to_owned();
    let one = app.get(&format!("/api/1/findings/{id}")).await.json();
    assert_eq!(
        one["evidence"]["password_last_used"],
        Value::String(
            chrono::DateTime::from_timestamp_millis(days_ago(now, 91))
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        )
    );
    assert_eq!(one["history"][0]["reason"], "found");
    app.get("/api/1/findings/0123")
        .await
        .assert_error(404, "no finding has the id");
    app.get("/api/1/findings?type=unused")
        .await
        .assert_error(400, "type");
    app.get("/api/1/findings?account=12")
        .await
        .assert_error(400, "account");
    let refused = app
        .post_json(
            &format!("/api/1/findings/{id}/archive"),
            r#"{"reason": "accepted risk"}"#,
        )
        .await;
    refused.assert_error(403, "API_TOKENS");
    // A write's route takes POST only, and says so.
    let options = app
        .send(app.client.request(
            reqwest::Method::OPTIONS,
            format!("{}/api/1/findings/{id}/archive", app.base_url),
        ))
        .await;
    assert_eq!(options.headers.get("allow").unwrap(), "POST, OPTIONS");
    let get = app.get(&format!("/api/1/findings/{id}/unarchive")).await;
    assert_eq!(get.status, 405);
    assert_eq!(get.headers.get("allow").unwrap(), "POST, OPTIONS");
    let summary = app.get("/api/1/findings/summary").await.json();
    assert_eq!(summary["totals"]["unused_password"]["active"], 1);
    assert_eq!(summary["totals"]["unused_password"]["archived"], 1);
    let per_account: Vec<&Value> = summary["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["account"] == ACCOUNT)
        .collect();
    assert_eq!(per_account.len(), 4, "four types in the account");
    // `/metrics`: findings by type and status, every pair.
    let metrics = app.get("/metrics").await;
    let scrape =
        prometheus_parse::Scrape::parse(metrics.text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let findings_metric = |kind: &str, status: &str| {
        let sample = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "aardvark_findings"
                    && s.labels.get("finding_type") == Some(kind)
                    && s.labels.get("status") == Some(status)
            })
            .unwrap_or_else(|| panic!("aardvark_findings{{{kind}, {status}}}"));
        match sample.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{other:?}"),
        }
    };
    assert_eq!(findings_metric("unused_password", "active"), 1.0);
    assert_eq!(findings_metric("unused_password", "archived"), 1.0);
    assert_eq!(findings_metric("unused_role", "resolved"), 0.0);
    // `/api/1/unused?status=` needs no account.
    assert_eq!(app.get("/api/1/unused?status=unused").await.status, 200);
    let accounts = app.get("/api/1/accounts").await.json();
    let denied = accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == DENIED)
        .unwrap()
        .clone();
    assert_eq!(denied["status"], "ok");
    assert_eq!(denied["parts"][0]["failure"]["code"], "AccessDenied");
    drop(app);

    // With tokens: archive and unarchive, kept in the history with who and why.
    let options = aardvark::api::ApiOptions {
        tokens: aardvark::auth::ApiTokens::parse(["s3cret"]).unwrap(),
        ..Default::default()
    };
    let app = common::spawn_app_with(&database, options).await;
    let post = |path: String, body: &'static str| {
        app.client
            .post(format!("{}{path}", app.base_url))
            .bearer_auth("s3cret")
            .header("content-type", "application/json")
            .body(body)
    };
    let archived = app
        .send(post(
            format!("/api/1/findings/{id}/archive"),
            r#"{"reason": "accepted risk", "by": "sec-team"}"#,
        ))
        .await;
    assert_eq!(archived.status, 200, "{}", archived.text);
    assert_eq!(archived.json()["status"], "archived");
    assert_eq!(archived.json()["archived_by"], "sec-team");
    let bad = app
        .send(post(
            format!("/api/1/findings/{id}/archive"),
            r#"{"reason": ""}"#,
        ))
        .await;
    bad.assert_error(400, "reason");
    let unarchived = app
        .send(post(
            format!("/api/1/findings/{id}/unarchive"),
            r#"{"reason": "risk revisited"}"#,
        ))
        .await;
    let history = unarchived.json()["history"].clone();
    assert_eq!(unarchived.json()["status"], "active");
    assert_eq!(history[1]["actor"], "sec-team");
    assert_eq!(history[2]["actor"], "api");
    assert_eq!(history[2]["reason"], "risk revisited");
    drop(app);

    // `report findings` in every format.
    let report = |format: &str| {
        let output = common::aardvark_against(
            dir.path(),
            &sim,
            &db,
            "  FINDINGS_EXCLUDE: ['arn:aws:iam::*:user/b*']\n",
        )
        .args([
            "-q",
            "report",
            "findings",
            "--account",
            ACCOUNT,
            "--format",
            format,
        ])
        .output()
        .unwrap();
        assert!(output.status.success(), "{}", common::output_text(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    let csv = report("csv");
    assert_eq!(csv.lines().count(), 11, "a header and ten findings:\n{csv}");
    assert!(csv.starts_with("id,type,status,account,resource,first_seen,last_seen,reason\n"));
    let json: Value = serde_json::from_str(&report("json")).unwrap();
    assert_eq!(json["findings"].as_array().unwrap().len(), 10);
    let asff: Value = serde_json::from_str(&report("asff")).unwrap();
    let asff = asff.as_array().unwrap();
    assert_eq!(asff.len(), 10);
    for finding in asff {
        check_asff(finding);
    }
    let table = report("table");
    assert!(
        table.starts_with("ID") && table.contains("unused_access_key"),
        "{table}"
    );
    sim.shutdown().await;
}

/// A finding as Security Hub's `BatchImportFindings` requires it: every required field, of its
/// type and within its limits (AWS Security Finding Format, "Required attributes").
fn check_asff(finding: &Value) {
    let text = |field: &str, max: usize| {
        let value = finding[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is a string: {finding}"));
        assert!(!value.is_empty() && value.len() <= max, "{field}: {value}");
        value.to_owned()
    };
    assert_eq!(text("SchemaVersion", 20), "2018-10-08");
    text("Id", 512);
    text("GeneratorId", 512);
    text("Title", 256);
    text("Description", 1024);
    let account = text("AwsAccountId", 12);
    assert!(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
    let product = text("ProductArn", 2048);
    assert_eq!(
        product,
        format!("arn:aws:securityhub:us-east-1:{account}:product/{account}/default")
    );
    for field in [
        "CreatedAt",
        "UpdatedAt",
        "FirstObservedAt",
        "LastObservedAt",
    ] {
        chrono::DateTime::parse_from_rfc3339(&text(field, 64)).unwrap();
    }
    let types = finding["Types"].as_array().unwrap();
    assert!(!types.is_empty() && types.len() <= 50);
    let namespaces = [
        "Software and Configuration Checks",
        "TTPs",
        "Effects",
        "Unusual Behaviors",
        "Sensitive Data Identifications",
    ];
    for kind in types {
        let kind = kind.as_str().unwrap();
        assert!(
            namespaces
                .iter()
                .any(|ns| kind.starts_with(&format!("{ns}/"))),
            "{kind}"
        );
        assert!(kind.split('/').count() <= 3);
    }
    let label = finding["Severity"]["Label"].as_str().unwrap();
    assert!(["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"].contains(&label));
    let resources = finding["Resources"].as_array().unwrap();
    assert!(!resources.is_empty() && resources.len() <= 32);
    for resource in resources {
        assert!(["AwsIamRole", "AwsIamUser", "AwsIamAccessKey"]
            .contains(&resource["Type"].as_str().unwrap()));
        assert!(!resource["Id"].as_str().unwrap().is_empty());
    }
    let workflow = finding["Workflow"]["Status"].as_str().unwrap();
    assert!(["NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED"].contains(&workflow));
    let state = finding["RecordState"].as_str().unwrap();
    assert!(["ACTIVE", "ARCHIVED"].contains(&state));
    for (_, value) in finding["ProductFields"].as_object().unwrap() {
        assert!(value.is_string(), "ProductFields values are strings");
    }
}
