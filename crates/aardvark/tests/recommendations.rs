//! Least-privilege recommendations end to end: a world collected from aws-sim through the
//! SDK by the real binary, the recommendations its evaluation stores, read over the wire
//! (`/api/1/recommendations`, `/api/1/findings/{id}`) and from `aardvark report recommend` in
//! each format; a second collection of the same world writes no new recommendation; then the
//! steps applied to the simulator through the SDK's IAM client, and a third collection: the
//! simulator's own evaluator finds every service used in the window still allowed, and every
//! `unused_permission` finding resolves.

mod common;

use std::collections::BTreeMap;

use aws_sim::identity::Identity;
use aws_sim::scenario::{Account, Principal, ServiceUse};
use aws_sim::{PrincipalKind, Scenario};
use common::{fresh_db, Backend};
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;
const ACCOUNT: &str = "222222222222";
const OLD: i64 = 1_577_836_800_000;

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:{kind}/{name}")
}

/// Services and their last use (`None`: never).
fn services(uses: &[(&str, Option<i64>)]) -> Vec<ServiceUse> {
    uses.iter()
        .map(|(namespace, last)| ServiceUse {
            namespace: (*namespace).into(),
            name: None,
            last_authenticated_ms: *last,
            entity: None,
            total_entities: u32::from(last.is_some()),
            region: None,
            actions: Vec::new(),
        })
        .collect()
}

fn principal(
    kind: PrincipalKind,
    name: &str,
    uses: &[(&str, Option<i64>)],
    groups: &[&str],
    managed: &[&str],
) -> Principal {
    Principal {
        kind,
        name: name.into(),
        path: "/".into(),
        services: Some(services(uses)),
        faults: Default::default(),
        identity: Some(Identity {
            created_ms: Some(OLD),
            last_used_ms: Some(OLD),
            groups: groups.iter().map(|g| (*g).into()).collect(),
            managed_policies: managed.iter().map(|m| (*m).into()).collect(),
            ..Default::default()
        }),
    }
}

/// Each role, user and group gets an inline policy `<name>-access` granting `ns:*` for its
/// services (the simulator's rule); the customer-managed `shared` grants ec2 and sqs.
fn scenario(now: i64) -> Scenario {
    let recent = Some(now - 10 * DAY_MS);
    let old = Some(now - 200 * DAY_MS);
    let role = PrincipalKind::Role;
    let principals = vec![
        principal(role, "Aardvark", &[("iam", Some(now - 60_000))], &[], &[]),
        principal(
            role,
            "worker",
            &[("s3", recent), ("ec2", recent), ("sqs", None)],
            &[],
            &["shared"],
        ),
        principal(
            role,
            "other",
            &[("ec2", recent), ("kms", None), ("sqs", None)],
            &[],
            &["shared"],
        ),
        principal(
            role,
            "auditor",
            &[("iam", old), ("s3", recent)],
            &[],
            &["SecurityAudit"],
        ),
        principal(
            PrincipalKind::User,
            "uma",
            &[("s3", recent), ("dynamodb", old)],
            &["devs"],
            &[],
        ),
        principal(PrincipalKind::Group, "devs", &[("dynamodb", old)], &[], &[]),
        principal(
            PrincipalKind::Policy,
            "shared",
            &[("ec2", recent), ("sqs", None)],
            &[],
            &[],
        ),
    ];
    let mut scenario = Scenario {
        reference_time_ms: now,
        access_advisor_follows_policies: true,
        ..Default::default()
    };
    scenario.accounts.push(Account {
        id: ACCOUNT.into(),
        principals,
        ..Default::default()
    });
    scenario
}

fn grant(actions: &[&str]) -> Value {
    let action = match actions {
        [one] => json!(one),
        _ => json!(actions),
    };
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
}

/// (action, policy name, attached to, recommended document) of each step.
fn steps_of(recommendation: &Value) -> Vec<(String, String, String, Value)> {
    recommendation["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            (
                step["action"].as_str().unwrap().to_owned(),
                step["policy"]["name"].as_str().unwrap().to_owned(),
                step["policy"]["attached_to"].as_str().unwrap().to_owned(),
                step["recommended"].clone(),
            )
        })
        .collect()
}

fn step(
    action: &str,
    policy: &str,
    owner: &str,
    document: Value,
) -> (String, String, String, Value) {
    (action.into(), policy.into(), owner.into(), document)
}

async fn recommendations_over_the_wire_and_from_the_cli(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let now = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    let sim = aws_sim::start(scenario(now)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let update = |flags: &[&str]| {
        let output = common::aardvark_against(dir.path(), &sim, &db, "")
            .args(["-q", "update"])
            .args(flags)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", common::output_text(&output));
    };
    update(&[]);
    let app = common::spawn_app(&db.db).await;
    let page = app
        .get(&format!("/api/1/recommendations?account={ACCOUNT}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let body = page.json();
    let by_principal: BTreeMap<&str, &Value> = body["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["principal"].as_str().unwrap(), r))
        .collect();
    let expected: BTreeMap<String, Vec<_>> = [
        (
            arn("role", "auditor"),
            vec![
                step(
                    "REPLACE_INLINE_POLICY",
                    "auditor-access",
                    &arn("role", "auditor"),
                    grant(&["s3:*"]),
                ),
                step(
                    "DETACH_POLICY",
                    "SecurityAudit",
                    &arn("role", "auditor"),
                    Value::Null,
                ),
            ],
        ),
        (
            arn("role", "other"),
            vec![
                step(
                    "REPLACE_INLINE_POLICY",
                    "other-access",
                    &arn("role", "other"),
                    grant(&["ec2:*"]),
                ),
                // Nobody holding `shared` used sqs; `other` used ec2.
                step(
                    "CREATE_POLICY_VERSION",
                    "shared",
                    &arn("role", "other"),
                    grant(&["ec2:*"]),
                ),
            ],
        ),
        (
            arn("user", "uma"),
            vec![
                step(
                    "REPLACE_INLINE_POLICY",
                    "uma-access",
                    &arn("user", "uma"),
                    grant(&["s3:*"]),
                ),
                step(
                    "DELETE_INLINE_POLICY",
                    "devs-access",
                    &arn("group", "devs"),
                    Value::Null,
                ),
            ],
        ),
        (
            arn("role", "worker"),
            vec![
                step(
                    "REPLACE_INLINE_POLICY",
                    "worker-access",
                    &arn("role", "worker"),
                    grant(&["s3:*", "ec2:*"]),
                ),
                step(
                    "CREATE_POLICY_VERSION",
                    "shared",
                    &arn("role", "worker"),
                    grant(&["ec2:*"]),
                ),
            ],
        ),
    ]
    .into_iter()
    .collect();
    let got: BTreeMap<String, Vec<_>> = by_principal
        .iter()
        .map(|(arn, r)| ((*arn).to_owned(), steps_of(r)))
        .collect();
    assert_eq!(got, expected, "{}", page.text);
    assert_eq!(body["total"], 4);
    let worker = by_principal[arn("role", "worker").as_str()];
    assert_eq!(worker["rejected"], Value::Null);
    assert_eq!(worker["window_days"], 90);
    assert_eq!(worker["steps"][1]["shared_with_total"], 1);
    assert_eq!(
        worker["steps"][1]["shared_with"],
        json!([arn("role", "other")])
    );
    let removed: Vec<(&str, &str)> = worker["steps"][0]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["pattern"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(removed, [("sqs:*", "sqs was not used in the window")]);
    assert_eq!(worker["steps"][0]["removed"][0]["last_used"], Value::Null);
    let auditor = by_principal[arn("role", "auditor").as_str()];
    let iam_last_used = chrono::DateTime::from_timestamp_millis(now - 200 * DAY_MS)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    assert_eq!(auditor["steps"][0]["removed"][0]["pattern"], "iam:*");
    assert_eq!(
        auditor["steps"][0]["removed"][0]["last_used"],
        iam_last_used
    );

    // One principal, any case; the finding carries its recommendation and history.
    let one = app
        .get(&format!(
            "/api/1/recommendations?arn={}",
            arn("role", "WORKER").to_uppercase()
        ))
        .await
        .json();
    assert_eq!(one["total"], 1);
    let finding_id = one["recommendations"][0]["finding_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let finding = app.get(&format!("/api/1/findings/{finding_id}")).await;
    assert_eq!(finding.status, 200, "{}", finding.text);
    let finding = finding.json();
    assert_eq!(finding["type"], "unused_permission");
    assert_eq!(
        steps_of(&finding["recommendation"]),
        expected[&arn("role", "worker")]
    );
    assert_eq!(
        finding["recommendation_history"].as_array().unwrap().len(),
        1
    );
    app.get("/api/1/recommendations?account=12")
        .await
        .assert_error(400, "account");

    // The same world again: nothing new is recommended, nothing written.
    update(&[]);
    let finding = app
        .get(&format!("/api/1/findings/{finding_id}"))
        .await
        .json();
    assert_eq!(
        finding["recommendation_history"].as_array().unwrap().len(),
        1
    );
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains("aardvark_recommendations{state=\"offered\"} 4"),
        "{metrics}"
    );

    let report = |format: &str, arn: &str| {
        common::aardvark_against(dir.path(), &sim, &db, "")
            .args(["report", "recommend", "--arn", arn, "--format", format])
            .output()
            .unwrap()
    };
    let json = report("json", &arn("user", "uma"));
    assert!(json.status.success(), "{}", common::output_text(&json));
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(steps_of(&json), expected[&arn("user", "uma")]);
    let diff = report("diff", &arn("role", "worker"));
    let diff = String::from_utf8(diff.stdout).unwrap();
    assert!(
        diff.contains("--- worker-access (current)\n+++ worker-access (recommended)\n"),
        "{diff}"
    );
    assert!(diff.contains("-        \"sqs:*\"\n"), "{diff}");
    assert!(
        diff.contains("#   removes sqs:*: sqs was not used in the window (last used never)"),
        "{diff}"
    );
    let cli = report("cli", &arn("user", "uma"));
    let cli = String::from_utf8(cli.stdout).unwrap();
    assert!(
        cli.contains("aws iam put-user-policy --user-name 'uma' --policy-name 'uma-access' --policy-document file://'step-1-uma.json'"),
        "{cli}"
    );
    assert!(
        cli.contains("aws iam delete-group-policy --group-name 'devs' --policy-name 'devs-access'"),
        "{cli}"
    );
    let auditor = String::from_utf8(report("cli", &arn("role", "auditor")).stdout).unwrap();
    assert!(
        auditor.contains("aws iam detach-role-policy --role-name 'auditor' --policy-arn 'arn:aws:iam::aws:policy/SecurityAudit'"),
        "{auditor}"
    );
    let none = report("diff", &arn("role", "Aardvark"));
    assert!(!none.status.success());
    assert!(
        common::output_text(&none)
            .contains("no recommendation for arn:aws:iam::222222222222:role/Aardvark"),
        "{}",
        common::output_text(&none)
    );

    // Every step applied through the SDK's IAM client, then the world collected again, pruned:
    // what AWS no longer lists goes (without pruning, upstream's rule keeps it stored).
    let iam = iam_client(&sim, ACCOUNT).await;
    for recommendation in body["recommendations"].as_array().unwrap() {
        for step in recommendation["steps"].as_array().unwrap() {
            apply(&iam, step).await;
        }
    }
    update(&["--prune"]);
    let since = now - 90 * DAY_MS;
    assert_eq!(sim.denied_uses(since), Vec::<String>::new());
    let permissions = app
        .get("/api/1/findings?type=unused_permission")
        .await
        .json();
    let statuses: BTreeMap<String, (String, String)> = permissions["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["principal"].as_str().unwrap().to_owned(),
                (
                    f["status"].as_str().unwrap().to_owned(),
                    f["reason"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect();
    let resolved = (
        "resolved".to_owned(),
        "every permission was used in the window".to_owned(),
    );
    assert_eq!(
        statuses,
        expected
            .keys()
            .map(|arn| (arn.clone(), resolved.clone()))
            .collect(),
        "{permissions}"
    );
    let in_force = app.get("/api/1/recommendations").await.json();
    assert_eq!(in_force["total"], 0, "{in_force}");
    let finding = app
        .get(&format!("/api/1/findings/{finding_id}"))
        .await
        .json();
    assert_eq!(finding["recommendation"], Value::Null);
    assert_eq!(finding["recommendation_history"][0]["current"], false);
}

/// An IAM client acting in `account`, through the simulator's STS as the collector does.
async fn iam_client(sim: &aws_sim::SimHandle, account: &str) -> aws_sdk_iam::Client {
    let region = aws_sdk_sts::config::Region::new("us-east-1");
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(region.clone())
            .endpoint_url(&sim.base_url)
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                "AKIDHUB",
                "hub-secret",
                None,
                None,
                "test",
            ))
            .build(),
    );
    let assumed = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/Aardvark"))
        .role_session_name("apply-recommendations")
        .send()
        .await
        .unwrap();
    let credentials = assumed.credentials().unwrap();
    aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
            .region(region)
            .endpoint_url(&sim.base_url)
            .credentials_provider(aws_sdk_iam::config::Credentials::new(
                credentials.access_key_id(),
                credentials.secret_access_key(),
                Some(credentials.session_token().to_owned()),
                None,
                "assumed",
            ))
            .build(),
    )
}

/// A request sent, its answer dropped, its error as text.
macro_rules! sent {
    ($request:expr) => {
        $request
            .send()
            .await
            .map(drop)
            .map_err(|err| format!("{err:?}"))
    };
}

/// One step, as the `cli` format's commands would apply it.
async fn apply(iam: &aws_sdk_iam::Client, step: &Value) {
    let owner = step["policy"]["attached_to"].as_str().unwrap();
    let (kind, name) = owner.rsplit(':').next().unwrap().split_once('/').unwrap();
    let name = name.rsplit('/').next().unwrap();
    let policy = step["policy"]["name"].as_str().unwrap();
    let arn = step["policy"]["arn"].as_str().unwrap_or_default();
    let document = step["recommended"].to_string();
    let applied = match (step["action"].as_str().unwrap(), kind) {
        ("REPLACE_INLINE_POLICY", "role") => sent!(iam
            .put_role_policy()
            .role_name(name)
            .policy_name(policy)
            .policy_document(document)),
        ("REPLACE_INLINE_POLICY", "user") => sent!(iam
            .put_user_policy()
            .user_name(name)
            .policy_name(policy)
            .policy_document(document)),
        ("REPLACE_INLINE_POLICY", "group") => sent!(iam
            .put_group_policy()
            .group_name(name)
            .policy_name(policy)
            .policy_document(document)),
        ("DELETE_INLINE_POLICY", "role") => {
            sent!(iam.delete_role_policy().role_name(name).policy_name(policy))
        }
        ("DELETE_INLINE_POLICY", "user") => {
            sent!(iam.delete_user_policy().user_name(name).policy_name(policy))
        }
        ("DELETE_INLINE_POLICY", "group") => sent!(iam
            .delete_group_policy()
            .group_name(name)
            .policy_name(policy)),
        ("CREATE_POLICY_VERSION", _) => sent!(iam
            .create_policy_version()
            .policy_arn(arn)
            .policy_document(document)
            .set_as_default(true)),
        ("DETACH_POLICY", "role") => {
            sent!(iam.detach_role_policy().role_name(name).policy_arn(arn))
        }
        ("DETACH_POLICY", "user") => {
            sent!(iam.detach_user_policy().user_name(name).policy_arn(arn))
        }
        ("DETACH_POLICY", "group") => {
            sent!(iam.detach_group_policy().group_name(name).policy_arn(arn))
        }
        ("CREATE_POLICY", kind) => {
            let created = iam
                .create_policy()
                .policy_name(step["new_policy_name"].as_str().unwrap())
                .policy_document(document)
                .send()
                .await
                .unwrap_or_else(|err| panic!("{step}: {err:?}"));
            let arn = created.policy().and_then(|p| p.arn()).unwrap().to_owned();
            match kind {
                "role" => sent!(iam.attach_role_policy().role_name(name).policy_arn(arn)),
                "user" => sent!(iam.attach_user_policy().user_name(name).policy_arn(arn)),
                _ => sent!(iam.attach_group_policy().group_name(name).policy_arn(arn)),
            }
        }
        other => Err(format!("unexpected step {other:?}")),
    };
    if let Err(err) = applied {
        panic!("{step}: {err}");
    }
}

on_both_backends!(recommendations_over_the_wire_and_from_the_cli);
