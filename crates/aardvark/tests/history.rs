//! The history of last uses: what the write path appends, `GET /api/1/history` over the wire,
//! trimming to the retention, and pruning, on SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use aardvark::db::write::WriteOptions;
use common::{fresh_db, principal, service, spawn_app, Backend, TestDb};
use serde_json::{json, Value};

const ROLE: &str = "arn:aws:iam::111111111111:role/Admin";
const OTHER: &str = "arn:aws:iam::111111111111:role/Other";
const DAY_MS: i64 = 86_400_000;

async fn write(t: &TestDb, arn: &str, s3: i64, run_id: Option<i64>, keep_history: bool) {
    let options = WriteOptions {
        run_id,
        keep_history,
        ..WriteOptions::default()
    };
    t.db.store_principals(
        &[principal(
            arn,
            vec![service("s3", s3, None, 1), service("ec2", 0, None, 0)],
        )],
        options,
    )
    .await
    .unwrap();
}

/// The writes of a principal whose s3 use moves on, is reported older, ages out, and moves on
/// once more with history off.
async fn changing(t: &TestDb) {
    write(t, ROLE, 1_000, None, true).await;
    write(t, ROLE, 1_000, Some(6), true).await;
    write(t, ROLE, 2_000, Some(7), true).await;
    write(t, ROLE, 1_500, Some(8), true).await;
    write(t, ROLE, 0, Some(9), true).await;
    write(t, ROLE, 3_000, Some(10), false).await;
    write(t, OTHER, 5_000, Some(7), true).await;
}

/// `changes` without `observed`, which is checked on its own.
fn without_observed(body: &Value) -> Value {
    let mut body = body.clone();
    for change in body["changes"].as_array_mut().unwrap() {
        let observed = change.as_object_mut().unwrap().remove("observed").unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(observed.as_str().unwrap()).unwrap();
        let age = chrono::Utc::now().signed_duration_since(at);
        assert!(age.num_seconds().abs() < 600, "observed {observed} is now");
    }
    body
}

async fn history_lists_each_change_oldest_first(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    changing(&t).await;
    let app = spawn_app(&t.db).await;
    let change = |ns: &str, last: i64, previous: Option<i64>, run: Option<i64>| json!({"serviceNamespace": ns, "lastAuthenticated": last, "previous": previous, "run": run});
    let reply = app.get(&format!("/api/1/history?arn={ROLE}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        without_observed(&reply.json()),
        json!({"count": 4, "page": 1, "total": 4, "changes": [
            change("ec2", 0, None, None),
            change("s3", 1_000, None, None),
            change("s3", 2_000, Some(1_000), Some(7)),
            change("s3", 0, Some(2_000), Some(9)),
        ]})
    );
    // One namespace; the ARN in another case; paging.
    let upper = ROLE.to_uppercase().replace("ARN:AWS:IAM", "arn:aws:iam");
    let reply = app
        .get(&format!(
            "/api/1/history?arn={upper}&namespace=s3&count=2&page=2"
        ))
        .await;
    assert_eq!(
        without_observed(&reply.json()),
        json!({"count": 1, "page": 2, "total": 3, "changes": [change("s3", 0, Some(2_000), Some(9))]})
    );
    let reply = app
        .get(&format!("/api/1/history?arn={ROLE}&namespace=kms"))
        .await;
    reply.assert_exact(
        200,
        &json!({"count": 0, "page": 1, "total": 0, "changes": []}),
    );

    for (query, status, message) in [
        (
            "",
            400,
            "missing parameter 'arn': the principal's ARN".to_owned(),
        ),
        (
            "?arn=",
            400,
            "missing parameter 'arn': the principal's ARN".to_owned(),
        ),
        (
            "?arn=arn:aws:iam::111111111111:role/Nobody",
            404,
            "no principal with ARN \"arn:aws:iam::111111111111:role/Nobody\" is stored".to_owned(),
        ),
        (
            &format!("?arn={ROLE}&count=1001"),
            400,
            "invalid value for 'count': 1001; it must be from 0 to 1000".to_owned(),
        ),
        (
            &format!("?arn={ROLE}&page=0"),
            400,
            "invalid value for 'page': 0; pages are numbered from 1".to_owned(),
        ),
    ] {
        app.get(&format!("/api/1/history{query}"))
            .await
            .assert_exact(status, &json!({ "message": message }));
    }
}

/// Every entry in order, as "principal number, namespace, last use" (1 for ROLE, 2 for OTHER).
async fn entries(t: &TestDb) -> Vec<String> {
    t.strings(&format!(
        "SELECT CASE o.arn WHEN '{ROLE}' THEN '1' WHEN '{OTHER}' THEN '2' ELSE '?' END \
         || ' ' || h.\"serviceNamespace\" || ' ' || CAST(h.\"lastAuthenticated\" AS TEXT) \
         FROM aardvark_history h LEFT JOIN aws_iam_object o ON o.id = h.item_id ORDER BY h.id"
    ))
    .await
}

async fn trimming_keeps_the_retention_and_each_latest_value(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    changing(&t).await;
    let all = entries(&t).await;
    assert_eq!(
        all,
        [
            "1 ec2 0",
            "1 s3 1000",
            "1 s3 2000",
            "1 s3 0",
            "2 ec2 0",
            "2 s3 5000"
        ]
    );
    let retention = Duration::from_secs(400 * 86_400);
    assert_eq!(
        t.db.trim_history(retention).await.unwrap(),
        0,
        "nothing is old"
    );
    // Age everything but the second s3 change past the retention.
    let old = chrono::Utc::now().timestamp_millis() - 401 * DAY_MS;
    t.execute(&format!(
        "UPDATE aardvark_history SET observed_ms = {old} WHERE \"lastAuthenticated\" <> 2000"
    ))
    .await;
    assert_eq!(t.db.trim_history(retention).await.unwrap(), 1);
    assert_eq!(
        entries(&t).await,
        ["1 ec2 0", "1 s3 2000", "1 s3 0", "2 ec2 0", "2 s3 5000"],
        "an old entry goes only when a later one of its pair remains"
    );
    assert_eq!(t.db.trim_history(Duration::ZERO).await.unwrap(), 5);
    assert!(entries(&t).await.is_empty(), "a retention of 0 keeps none");
}

async fn pruning_a_principal_removes_its_history(backend: Backend) {
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    changing(&t).await;
    let removed =
        t.db.prune_account(
            &"111111111111".parse().unwrap(),
            &HashSet::from([OTHER.to_owned()]),
        )
        .await
        .unwrap();
    assert_eq!(removed, [ROLE]);
    assert_eq!(entries(&t).await, ["2 ec2 0", "2 s3 5000"]);
    assert!(t.db.history(ROLE, None, 0, 10).await.unwrap().is_none());
}

on_both_backends!(
    history_lists_each_change_oldest_first,
    trimming_keeps_the_retention_and_each_latest_value,
    pruning_a_principal_removes_its_history,
);
