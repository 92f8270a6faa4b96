//! Unused access and actions over the wire (`/api/1/unused`, `/api/1/unused/accounts`,
//! `/api/1/actions`) and `aardvark report unused`, on SQLite and PostgreSQL: principals whose
//! services straddle the window, principals created inside it, every kind, bad parameters.

mod common;

use aardvark::db::vocabulary::{ActionUsage, PrincipalListing, PrincipalUsage, ServiceUsage};
use common::{fresh_db, spawn_app, Backend, TestDb};
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;
const MIXED: &str = "arn:aws:iam::111111111111:role/mixed";
const IDLE: &str = "arn:aws:iam::111111111111:role/path/idle";
const NEW: &str = "arn:aws:iam::111111111111:user/new";
const DEVS: &str = "arn:aws:iam::111111111111:group/devs";
const POLICY: &str = "arn:aws:iam::222222222222:policy/p";

struct Times {
    inside: i64,
    outside: i64,
    future: i64,
    old: i64,
    young: i64,
}

fn times() -> Times {
    let now = chrono::Utc::now().timestamp_millis();
    Times {
        inside: now - 89 * DAY,
        outside: now - 91 * DAY,
        future: now + DAY,
        old: now - 400 * DAY,
        young: now - 10 * DAY,
    }
}

fn service(namespace: &str, last: i64) -> ServiceUsage {
    ServiceUsage {
        service_name: format!("Service {namespace}"),
        service_namespace: namespace.into(),
        last_authenticated: last,
        ..ServiceUsage::default()
    }
}

fn listed(arn: &str, created_ms: Option<i64>, services: Vec<ServiceUsage>) -> PrincipalUsage {
    PrincipalUsage {
        arn: arn.into(),
        services,
        listing: created_ms.map(|created_ms| PrincipalListing {
            path: "/".into(),
            created_ms: Some(created_ms),
        }),
    }
}

async fn stored(backend: Backend) -> Option<(TestDb, Times)> {
    let t = fresh_db(backend).await?;
    let at = times();
    // One at a time, so that ids follow this order.
    for principal in [
        listed(
            MIXED,
            Some(at.old),
            vec![
                service("s3", at.inside),
                service("ec2", at.outside),
                service("iam", 0),
                service("lambda", at.future),
            ],
        ),
        listed(
            IDLE,
            Some(at.old),
            vec![service("s3", at.outside), service("ec2", 0)],
        ),
        listed(NEW, Some(at.young), vec![service("s3", 0)]),
        listed(DEVS, None, vec![service("s3", at.inside)]),
        listed(POLICY, Some(at.old), vec![service("kms", at.outside)]),
    ] {
        t.store(&[principal]).await;
    }
    Some((t, at))
}

fn uses(services: &[(&str, i64)]) -> Value {
    services
        .iter()
        .map(|(ns, last)| json!({"lastAuthenticated": last, "serviceName": format!("Service {ns}"), "serviceNamespace": ns}))
        .collect()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn unused_principals_in_a_window(backend: Backend) {
    let Some((t, at)) = stored(backend).await else {
        return;
    };
    let app = spawn_app(&t.db).await;
    let reply = app.get("/api/1/unused?account=111111111111").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({"count": 4, "days": 90, "page": 1, "total": 4, "principals": [
            {"account": "111111111111", "arn": MIXED, "created": rfc3339(at.old), "kind": "role",
             "last_used": at.future, "too_new": false, "unused_principal": false,
             "unused": uses(&[("ec2", at.outside), ("iam", 0)]),
             "used": uses(&[("lambda", at.future), ("s3", at.inside)])},
            {"account": "111111111111", "arn": IDLE, "created": rfc3339(at.old), "kind": "role",
             "last_used": at.outside, "too_new": false, "unused_principal": true,
             "unused": uses(&[("ec2", 0), ("s3", at.outside)]), "used": []},
            {"account": "111111111111", "arn": NEW, "created": rfc3339(at.young), "kind": "user",
             "last_used": 0, "too_new": true, "unused_principal": true,
             "unused": uses(&[("s3", 0)]), "used": []},
            {"account": "111111111111", "arn": DEVS, "created": null, "kind": "group",
             "last_used": at.inside, "too_new": false, "unused_principal": false,
             "unused": [], "used": uses(&[("s3", at.inside)])},
        ]})
    );
    // A wider window uses more; a kind, an ARN in another case, a phrase narrow it.
    let wide = app
        .get("/api/1/unused?days=92&arn=ARN:AWS:IAM::111111111111:ROLE/PATH/IDLE")
        .await
        .json();
    assert_eq!(wide["total"], 1);
    assert_eq!(wide["principals"][0]["used"], uses(&[("s3", at.outside)]));
    let arns = |body: Value| -> Vec<String> {
        body["principals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["arn"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        arns(app.get("/api/1/unused?kind=role").await.json()),
        [MIXED, IDLE]
    );
    assert_eq!(
        arns(app.get("/api/1/unused?kind=policy").await.json()),
        [POLICY]
    );
    assert_eq!(
        arns(app.get("/api/1/unused?kind=group").await.json()),
        [DEVS]
    );
    assert_eq!(
        arns(app.get("/api/1/unused?phrase=NEW").await.json()),
        [NEW]
    );
    assert_eq!(
        arns(app.get("/api/1/unused?count=2&page=2").await.json()),
        [NEW, DEVS]
    );
}

async fn totals_per_account_leave_out_principals_too_new(backend: Backend) {
    let Some((t, _)) = stored(backend).await else {
        return;
    };
    let app = spawn_app(&t.db).await;
    app.get("/api/1/unused/accounts").await.assert_exact(
        200,
        &json!({"count": 2, "days": 90, "page": 1, "total": 2, "accounts": [
            {"account": "111111111111", "principals": 4, "too_new": 1, "unused": 1, "with_unused_services": 2},
            {"account": "222222222222", "principals": 1, "too_new": 0, "unused": 1, "with_unused_services": 1},
        ]}),
    );
    app.get("/api/1/unused/accounts?kind=role&days=92").await.assert_exact(
        200,
        &json!({"count": 1, "days": 92, "page": 1, "total": 1, "accounts": [
            {"account": "111111111111", "principals": 2, "too_new": 0, "unused": 0, "with_unused_services": 2},
        ]}),
    );
    let one = app
        .get("/api/1/unused/accounts?account=222222222222")
        .await
        .json();
    assert_eq!(
        (one["total"].clone(), one["accounts"][0]["account"].clone()),
        (json!(1), json!("222222222222"))
    );
}

async fn bad_parameters_name_the_parameter_and_the_range(backend: Backend) {
    let Some((t, _)) = stored(backend).await else {
        return;
    };
    let app = spawn_app(&t.db).await;
    for path in ["/api/1/unused", "/api/1/unused/accounts"] {
        for (query, message) in [
            (
                "days=0",
                "invalid value for 'days': 0; it must be from 1 to 3650",
            ),
            (
                "days=3651",
                "invalid value for 'days': 3651; it must be from 1 to 3650",
            ),
            (
                "days=abc",
                "invalid value for 'days': \"abc\" is not an integer",
            ),
            (
                "kind=robot",
                "invalid value for 'kind': \"robot\"; it must be one of role, user, group, policy",
            ),
            (
                "count=1001",
                "invalid value for 'count': 1001; it must be from 0 to 1000",
            ),
            (
                "account=12345",
                "invalid value for 'account': \"12345\"; it must be a 12-digit account id",
            ),
        ] {
            app.get(&format!("{path}?{query}"))
                .await
                .assert_exact(400, &json!({ "message": message }));
        }
    }
    app.get("/api/1/actions?count=1001").await.assert_exact(
        400,
        &json!({"message": "invalid value for 'count': 1001; it must be from 0 to 1000"}),
    );
}

async fn actions_are_replaced_per_principal_and_empty_at_service_level(backend: Backend) {
    let Some((t, at)) = stored(backend).await else {
        return;
    };
    let action = |name: &str, last: i64| ActionUsage {
        action: name.into(),
        last_accessed: last,
        entity: (last > 0).then(|| MIXED.to_owned()),
        region: (last > 0).then(|| "eu-west-1".to_owned()),
    };
    let mut s3 = service("s3", at.inside);
    s3.region = Some("eu-west-1".into());
    s3.actions = Some(vec![action("PutObject", 0), action("GetObject", at.inside)]);
    let mut ec2 = service("ec2", at.outside);
    ec2.actions = Some(vec![action("RunInstances", at.outside)]);
    t.store(&[listed(MIXED, None, vec![s3.clone(), ec2])]).await;
    let app = spawn_app(&t.db).await;
    let entry = |ns: &str, name: &str, last: i64| {
        json!({"action": name, "entity": (last > 0).then_some(MIXED), "lastAccessed": last,
               "region": (last > 0).then_some("eu-west-1"), "serviceNamespace": ns})
    };
    app.get(&format!("/api/1/actions?arn={MIXED}"))
        .await
        .assert_exact(
            200,
            &json!({"count": 1, "page": 1, "total": 1, "principals": [{"arn": MIXED, "actions": [
                entry("ec2", "RunInstances", at.outside),
                entry("s3", "GetObject", at.inside),
                entry("s3", "PutObject", 0),
            ]}]}),
        );
    // A new action-level result replaces them; a service-level one leaves them. Written in
    // one group with another principal's actions: each principal's are its own.
    s3.actions = Some(vec![action("GetObject", at.future)]);
    let mut idle_s3 = service("s3", at.inside);
    idle_s3.actions = Some(vec![action("ListBucket", at.inside)]);
    let mut new_s3 = service("s3", at.future);
    new_s3.actions = None;
    t.store(&[
        listed(MIXED, None, vec![s3]),
        listed(IDLE, None, vec![idle_s3]),
        listed(NEW, None, vec![new_s3.clone()]),
    ])
    .await;
    t.store(&[listed(MIXED, None, vec![new_s3])]).await;
    app.get("/api/1/actions?account=111111111111")
        .await
        .assert_exact(
            200,
            &json!({"count": 4, "page": 1, "total": 4, "principals": [
                {"arn": MIXED, "actions": [entry("s3", "GetObject", at.future)]},
                {"arn": IDLE, "actions": [{"action": "ListBucket", "entity": MIXED,
                    "lastAccessed": at.inside, "region": "eu-west-1", "serviceNamespace": "s3"}]},
                {"arn": NEW, "actions": []},
                {"arn": DEVS, "actions": []},
            ]}),
        );
    // Principals with service-level data only: an empty list each, not an error.
    app.get("/api/1/actions?account=222222222222").await.assert_exact(
        200,
        &json!({"count": 1, "page": 1, "total": 1, "principals": [{"arn": POLICY, "actions": []}]}),
    );
    // The listing's CreateDate stays when a later write carries none.
    let body = app.get(&format!("/api/1/unused?arn={MIXED}")).await.json();
    assert_eq!(body["principals"][0]["created"], json!(rfc3339(at.old)));
}

async fn report_unused_prints_table_csv_and_json(backend: Backend) {
    let Some((t, at)) = stored(backend).await else {
        return;
    };
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_aardvark"))
            .args(["-q", "report", "unused"])
            .args(args)
            .env("AARDVARK_DATABASE_URI", &t.uri)
            .env("AARDVARK_ENV", "default")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    // An account nothing is stored for is an error, not an empty table.
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_aardvark"))
        .args(["-q", "report", "unused", "--account", "999999999999"])
        .env("AARDVARK_DATABASE_URI", &t.uri)
        .env("AARDVARK_ENV", "default")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no principal of account 999999999999 is stored"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let csv = run(&["--format", "csv", "--account", "111111111111"]);
    let day = |ms: i64| rfc3339(ms)[..10].to_owned();
    assert_eq!(
        csv,
        format!(
            "account,kind,arn,created,last_used,unused_principal,too_new,used_services,unused_services,unused\n\
             111111111111,role,{IDLE},{},{},true,false,0,2,ec2 s3\n\
             111111111111,role,{MIXED},{},{},false,false,2,2,ec2 iam\n\
             111111111111,group,{DEVS},,{},false,false,1,0,\n\
             111111111111,user,{NEW},{},never,true,true,0,1,s3\n",
            rfc3339(at.old), day(at.outside), rfc3339(at.old), day(at.future), day(at.inside), rfc3339(at.young),
        ),
        "most unused first, too-new principals after, then by ARN"
    );
    let json: Value = serde_json::from_str(&run(&[
        "--format", "json", "--kind", "policy", "--days", "92",
    ]))
    .unwrap();
    assert_eq!(json["days"], 92);
    assert_eq!(json["principals"][0]["arn"], POLICY);
    assert_eq!(json["principals"][0]["used"], uses(&[("kms", at.outside)]));
    assert_eq!(json["accounts"][0]["account"], "222222222222");
    let table = run(&["--format", "table"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ACCOUNT") && lines[0].contains("UNUSED SERVICES"),
        "{table}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.contains("arn:aws:iam::"))
            .count(),
        5,
        "{table}"
    );
    assert!(table.contains("too new"), "{table}");
}

on_both_backends!(
    unused_principals_in_a_window,
    totals_per_account_leave_out_principals_too_new,
    bad_parameters_name_the_parameter_and_the_range,
    actions_are_replaced_per_principal_and_empty_at_service_level,
    report_unused_prints_table_csv_and_json,
);
