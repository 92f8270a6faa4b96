//! The API over the wire, one test per row of docs/behaviour.md section 6.3, on SQLite and PostgreSQL.

mod common;

use common::{fresh_db, principal, service, spawn_app, Backend, TestApp, TestDb};
use serde_json::{json, Value};

const A: &str = "arn:aws:iam::111111111111:role/Admin";
const B: &str = "arn:aws:iam::111111111111:role/app/Under_Score";
const C: &str = "arn:aws:iam::111111111111:user/alice%";
const D: &str = "arn:aws:iam::222222222222:role/Admin";
const E: &str = "arn:aws:iam::222222222222:group/Devs";
const ALL: [&str; 5] = [A, B, C, D, E];
const LAST_UPDATED: &str = "Sun, 22 Nov 2026 19:54:58 GMT";
const OLD_1: i64 = 1_600_000_000_000;
const OLD_2: i64 = 1_650_000_000_000;
const OLD_3: i64 = 1_700_000_000_000;
const DAY_MS: i64 = 86_400_000;

struct Fixture {
    app: TestApp,
    _db: TestDb,
    recent: i64,
}

/// Five principals in two accounts, stored in the order of `ALL` (so ids 1..5).
async fn setup(backend: Backend) -> Option<Fixture> {
    let db = fresh_db(backend).await?;
    let recent = chrono::Utc::now().timestamp_millis() - 10 * DAY_MS;
    let data = [
        principal(
            A,
            vec![
                service("s3", recent, Some(A), 1),
                service("ec2", 0, None, 0),
                service("iam", OLD_1, Some(A), 2),
            ],
        ),
        principal(
            B,
            vec![
                service("s3", OLD_3, Some(B), 3),
                service("lambda", recent - 10 * DAY_MS, Some(B), 1),
            ],
        ),
        principal(C, vec![service("s3", recent - 1000, Some(C), 4)]),
        principal(D, vec![service("ec2", OLD_2, Some(D), 1)]),
        principal(E, vec![]),
    ];
    for item in &data {
        db.store(std::slice::from_ref(item)).await;
    }
    db.execute("UPDATE aws_iam_object SET \"lastUpdated\" = '2026-11-22 19:54:58.123456'")
        .await;
    let app = spawn_app(&db.db).await;
    Some(Fixture {
        app,
        _db: db,
        recent,
    })
}

fn entry(last_authenticated: i64, entity: Option<&str>, namespace: &str, total: i64) -> Value {
    json!({
        "lastAuthenticated": last_authenticated,
        "lastAuthenticatedEntity": entity,
        "lastUpdated": LAST_UPDATED,
        "serviceName": format!("Service {namespace}"),
        "serviceNamespace": namespace,
        "totalAuthenticatedEntities": total,
    })
}

/// What each principal's list holds (services in the order they were stored: by namespace).
fn services_of(arn: &str, recent: i64) -> Value {
    match arn {
        A => json!([
            entry(0, None, "ec2", 0),
            entry(OLD_1, Some(A), "iam", 2),
            entry(recent, Some(A), "s3", 1)
        ]),
        B => json!([
            entry(recent - 10 * DAY_MS, Some(B), "lambda", 1),
            entry(OLD_3, Some(B), "s3", 3)
        ]),
        C => json!([entry(recent - 1000, Some(C), "s3", 4)]),
        D => json!([entry(OLD_2, Some(D), "ec2", 1)]),
        E => json!([]),
        _ => unreachable!(),
    }
}

fn page(arns: &[&str], page: i64, total: i64, recent: i64) -> Value {
    let mut body = json!({"count": arns.len(), "page": page, "total": total});
    for arn in arns {
        body[*arn] = services_of(arn, recent);
    }
    body
}

fn arns_of(reply: &Value) -> Vec<String> {
    let mut arns: Vec<String> = reply
        .as_object()
        .unwrap()
        .keys()
        .filter(|key| key.starts_with("arn:"))
        .cloned()
        .collect();
    arns.sort();
    arns
}

fn sorted(arns: &[&str]) -> Vec<String> {
    let mut arns: Vec<String> = arns.iter().map(|s| s.to_string()).collect();
    arns.sort();
    arns
}

async fn no_parameters_give_page_one_of_thirty(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    let expected = page(&ALL, 1, 5, f.recent);
    f.app
        .get("/api/1/advisors")
        .await
        .assert_exact(200, &expected);
    let empty_post = f
        .app
        .send(
            f.app
                .client
                .post(format!("{}/api/1/advisors", f.app.base_url)),
        )
        .await;
    empty_post.assert_exact(200, &expected);
    f.app
        .post_json("/api/1/advisors", "{}")
        .await
        .assert_exact(200, &expected);
}

async fn count_and_page_from_query_json_ints_and_json_strings(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    for reply in [
        f.app.get("/api/1/advisors?count=2&page=2").await,
        f.app
            .post_json("/api/1/advisors", r#"{"count": 2, "page": 2}"#)
            .await,
        f.app
            .post_json("/api/1/advisors", r#"{"count": "2", "page": "2"}"#)
            .await,
    ] {
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        assert_eq!(
            (
                body["count"].clone(),
                body["page"].clone(),
                body["total"].clone()
            ),
            (json!(2), json!(2), json!(5))
        );
        assert_eq!(arns_of(&body), sorted(&[C, D]));
    }
}

async fn bad_pages_and_counts_are_400_naming_the_value(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    f.app
        .get("/api/1/advisors?page=3&count=3")
        .await
        .assert_error(400, "'page': 3 is past the last page (2)");
    f.app
        .get("/api/1/advisors?page=0")
        .await
        .assert_error(400, "'page': 0");
    f.app
        .get("/api/1/advisors?page=-1")
        .await
        .assert_error(400, "'page': -1");
    f.app
        .get("/api/1/advisors?count=-1")
        .await
        .assert_error(400, "'count': -1");
    // The last page itself is fine, and page 1 of nothing is an empty page, not an error.
    assert_eq!(
        f.app.get("/api/1/advisors?page=2&count=3").await.status,
        200
    );
    f.app
        .get("/api/1/advisors?phrase=nomatch")
        .await
        .assert_exact(200, &json!({"count": 0, "page": 1, "total": 0}));
}

async fn count_zero_gives_only_totals(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    f.app
        .get("/api/1/advisors?count=0")
        .await
        .assert_exact(200, &json!({"count": 0, "page": 1, "total": 5}));
}

async fn integers_parse_like_python(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    for (query, count) in [("count=%2B2", 2), ("count=%203%20", 3), ("count=1_0", 10)] {
        let body = f.app.get(&format!("/api/1/advisors?{query}")).await.json();
        assert_eq!(body["count"], json!(count.min(5)), "{query}");
    }
    for (json_body, count, page) in [
        (r#"{"count": 2.7}"#, 2, 1),
        (r#"{"count": true}"#, 1, 1),
        (r#"{"count": null, "page": null}"#, 5, 1),
        (r#"{"count": 1, "page": 1.9}"#, 1, 1),
    ] {
        let reply = f.app.post_json("/api/1/advisors", json_body).await;
        assert_eq!(reply.status, 200, "{json_body}: {}", reply.text);
        let body = reply.json();
        assert_eq!(
            (body["count"].clone(), body["page"].clone()),
            (json!(count), json!(page)),
            "{json_body}"
        );
    }
}

async fn malformed_values_and_bodies_are_400(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    for value in ["abc", "1.5", ""] {
        f.app
            .get(&format!("/api/1/advisors?count={value}"))
            .await
            .assert_error(400, "'count'");
        f.app
            .get(&format!("/api/1/advisors?page={value}"))
            .await
            .assert_error(400, "'page'");
    }
    f.app
        .post_json("/api/1/advisors", r#"{"page": -0.5}"#)
        .await
        .assert_error(400, "'page': 0");
    f.app
        .post_json("/api/1/advisors", r#"{"count": "abc"}"#)
        .await
        .assert_error(400, "'count': \"abc\" is not an integer");
    f.app
        .post_json("/api/1/advisors", r#"{"count": [1]}"#)
        .await
        .assert_error(400, "'count'");
    f.app
        .post_json("/api/1/advisors", r#"{"count": 1"#)
        .await
        .assert_error(400, "malformed");
    f.app
        .post_json("/api/1/advisors", r#"[1, 2]"#)
        .await
        .assert_error(400, "must be an object");
    f.app
        .post_json("/api/1/advisors", r#""text""#)
        .await
        .assert_error(400, "must be an object");
    f.app
        .post_json("/api/1/advisors", r#"{"phrase": {"a": 1}}"#)
        .await
        .assert_error(400, "'phrase'");
}

async fn body_kinds_json_as_text_ignored_form_honoured(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    let url = format!("{}/api/1/advisors", f.app.base_url);
    let text = f
        .app
        .send(
            f.app
                .client
                .post(&url)
                .header("content-type", "text/plain")
                .body(r#"{"count": 1}"#),
        )
        .await;
    assert_eq!(text.json()["count"], json!(5));
    let form = f
        .app
        .send(
            f.app
                .client
                .post(&url)
                .form(&[("count", "1"), ("phrase", "222222222222")]),
        )
        .await;
    let body = form.json();
    assert_eq!(
        (body["count"].clone(), body["total"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(arns_of(&body), sorted(&[D]));
}

async fn json_body_wins_for_scalars_and_arns_merge(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    let body = f
        .app
        .post_json(
            "/api/1/advisors?count=1&phrase=222",
            r#"{"count": 3, "phrase": "111"}"#,
        )
        .await
        .json();
    assert_eq!(
        (body["count"].clone(), body["total"].clone()),
        (json!(3), json!(3))
    );
    let body = f
        .app
        .post_json(
            &format!("/api/1/advisors?arn={D}"),
            &json!({"arn": [A]}).to_string(),
        )
        .await
        .json();
    assert_eq!(arns_of(&body), sorted(&[A, D]));
}

async fn phrase_is_a_literal_case_insensitive_substring(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    let body = f.app.get("/api/1/advisors?phrase=ADMIN").await.json();
    assert_eq!(arns_of(&body), sorted(&[A, D]));
    // `%` and `_` are literal characters, not LIKE wildcards.
    let body = f.app.get("/api/1/advisors?phrase=%25").await.json();
    assert_eq!(arns_of(&body), sorted(&[C]));
    let body = f.app.get("/api/1/advisors?phrase=under_score").await.json();
    assert_eq!(arns_of(&body), sorted(&[B]));
    let body = f.app.get("/api/1/advisors?phrase=user_alice").await.json();
    assert_eq!(body["total"], json!(0));
    let body = f.app.get("/api/1/advisors?phrase=%5C").await.json();
    assert_eq!(body["total"], json!(0));
    // Empty phrase: no filter.
    assert_eq!(
        f.app.get("/api/1/advisors?phrase=").await.json()["total"],
        json!(5)
    );
}

async fn arn_filter_matches_exactly_in_any_case(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    let upper = A.to_uppercase();
    let reply = f
        .app
        .get(&format!(
            "/api/1/advisors?arn={upper}&arn={A}&arn={}",
            D.to_lowercase()
        ))
        .await;
    let body = reply.json();
    assert_eq!(
        body["total"],
        json!(2),
        "duplicates collapse: {}",
        reply.text
    );
    assert_eq!(
        arns_of(&body),
        sorted(&[A, D]),
        "the stored spelling is the key"
    );
    let body = f
        .app
        .post_json("/api/1/advisors", &json!({"arn": C}).to_string())
        .await
        .json();
    assert_eq!(arns_of(&body), sorted(&[C]));
    // A prefix is not an exact match.
    assert_eq!(
        f.app
            .get("/api/1/advisors?arn=arn:aws:iam::111111111111:role")
            .await
            .json()["total"],
        json!(0)
    );
    f.app
        .get("/api/1/advisors?arn=")
        .await
        .assert_exact(200, &json!({"count": 0, "page": 1, "total": 0}));
    assert_eq!(
        f.app
            .post_json("/api/1/advisors", r#"{"arn": []}"#)
            .await
            .json()["total"],
        json!(5)
    );
    f.app
        .post_json("/api/1/advisors", r#"{"arn": [1]}"#)
        .await
        .assert_error(400, "'arn'");
    // Characters that mean something in SQL, JSON or array literals are only characters.
    let odd = json!({"arn": ["a\"b", "c\\d", "e,f", "{g}", "h'i", "NULL", ""]}).to_string();
    f.app
        .post_json("/api/1/advisors", &odd)
        .await
        .assert_exact(200, &json!({"count": 0, "page": 1, "total": 0}));
    let body = f
        .app
        .post_json("/api/1/advisors", &json!({"arn": ["x\"y", A]}).to_string())
        .await
        .json();
    assert_eq!(arns_of(&body), sorted(&[A]));
}

async fn regex_is_anchored_at_the_start_and_case_sensitive(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    let get = |pattern: &str| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("regex", pattern)
            .finish();
        format!("/api/1/advisors?{query}")
    };
    let body = f.app.get(&get(r"arn:aws:iam::\d+:role/Admin")).await.json();
    assert_eq!(
        arns_of(&body),
        sorted(&[A, D]),
        "matches at the start, not only the whole string"
    );
    assert_eq!(
        f.app.get(&get("role/Admin")).await.json()["total"],
        json!(0),
        "anchored at the start"
    );
    assert_eq!(
        f.app.get(&get(".*role/admin")).await.json()["total"],
        json!(0),
        "case-sensitive"
    );
    let body = f.app.get(&get(".*role/")).await.json();
    assert_eq!(arns_of(&body), sorted(&[A, B, D]));
    // An alternation stays inside the anchor.
    let body = f.app.get(&get("nothing|arn:aws:iam::2")).await.json();
    assert_eq!(arns_of(&body), sorted(&[D, E]));
    let body = f
        .app
        .get(&format!("{}&count=1&page=2", get(".*Admin")))
        .await
        .json();
    assert_eq!(
        (body["total"].clone(), body["count"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(arns_of(&body), sorted(&[D]));
    f.app.get(&get("arn:(")).await.assert_error(400, "'regex'");
    f.app.get(&get("a)(b")).await.assert_error(400, "'regex'");
    f.app
        .get(&get("(?=arn)"))
        .await
        .assert_error(400, "not a supported regular expression");
}

async fn filters_combine_with_and(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    let body = f
        .app
        .post_json(
            "/api/1/advisors?phrase=admin",
            &json!({"regex": "arn:aws:iam::1", "arn": [A, B]}).to_string(),
        )
        .await
        .json();
    assert_eq!(arns_of(&body), sorted(&[A]));
}

async fn combine_aggregates_per_namespace(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    let recent = f.recent;
    let combined_entry = |la: i64, entity: Option<&str>, ns: &str, total: i64, used: bool| {
        let mut value = entry(la, entity, ns, total);
        value["USED_LAST_90_DAYS"] = json!(used);
        value
    };
    let expected = json!({
        "ec2": combined_entry(OLD_2, Some(D), "ec2", 1, false),
        "iam": combined_entry(OLD_1, Some(A), "iam", 2, false),
        "lambda": combined_entry(recent - 10 * DAY_MS, Some(B), "lambda", 1, true),
        "s3": combined_entry(recent, Some(A), "s3", 8, true),
    });
    f.app
        .get("/api/1/advisors?combine=true")
        .await
        .assert_exact(200, &expected);
    f.app
        .get("/api/1/advisors?combine=TRUE")
        .await
        .assert_exact(200, &expected);
    f.app
        .post_json("/api/1/advisors", r#"{"combine": true}"#)
        .await
        .assert_exact(200, &expected);
    let only_b = json!({
        "lambda": combined_entry(recent - 10 * DAY_MS, Some(B), "lambda", 1, true),
        "s3": combined_entry(OLD_3, Some(B), "s3", 3, false),
    });
    f.app
        .get(&format!("/api/1/advisors?combine=True&arn={B}"))
        .await
        .assert_exact(200, &only_b);
    f.app
        .get("/api/1/advisors?combine=true&phrase=nomatch")
        .await
        .assert_exact(200, &json!({}));
    for query in [
        "combine=true&count=4",
        "combine=true&count=0",
        "combine=true&count=2&page=2",
    ] {
        f.app
            .get(&format!("/api/1/advisors?{query}"))
            .await
            .assert_exact(
                400,
                &json!({"message": "Error: Please specify a count of at least 5."}),
            );
    }
    for value in ["yes", "1", "false"] {
        let body = f
            .app
            .get(&format!("/api/1/advisors?combine={value}"))
            .await
            .json();
        assert_eq!(body["total"], json!(5), "combine={value} is not combined");
    }
}

/// `combine=true` by hand from the principals' own lists (a page keyed by ARN, whose order
/// is here the principals' id order): per namespace the newest use, the first on ties, with
/// the entity counts summed (a lone entry keeps its own), entries without a namespace left out.
fn combined_by_hand(page: &Value, recent_since: i64) -> Value {
    let mut combined = serde_json::Map::new();
    let principals = page.as_object().unwrap();
    for (key, services) in principals {
        if ["count", "page", "total"].contains(&key.as_str()) {
            continue;
        }
        for service in services.as_array().unwrap() {
            let Some(namespace) = service["serviceNamespace"].as_str() else {
                continue;
            };
            let last = |entry: &Value| entry["lastAuthenticated"].as_i64().unwrap_or(0);
            let total = |entry: &Value| entry["totalAuthenticatedEntities"].as_i64().unwrap_or(0);
            match combined.get_mut(namespace) {
                None => {
                    combined.insert(namespace.to_owned(), service.clone());
                }
                Some(held) => {
                    let sum = total(held) + total(service);
                    if last(service) > last(held) {
                        *held = service.clone();
                    }
                    held["totalAuthenticatedEntities"] = json!(sum);
                }
            }
        }
    }
    for entry in combined.values_mut() {
        let used = entry["lastAuthenticated"]
            .as_i64()
            .is_some_and(|ms| ms > recent_since);
        entry["USED_LAST_90_DAYS"] = json!(used);
    }
    Value::Object(combined)
}

/// Combined answers come from each principal's kept digest; they are the same whatever is
/// kept: digests, renderings without one (an older build's), or no rendering at all.
async fn combine_is_exact_whatever_is_kept(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let recent = chrono::Utc::now().timestamp_millis() - 10 * DAY_MS;
    let arn = |n: usize| format!("arn:aws:iam::333333333333:role/p{n}");
    let mut odd = service("we\"ird\\ns", OLD_1, Some("arn:aws:iam::3:role/Ünï☃"), 2);
    odd.service_name = "Sérvice ☃ \"quoted\"".to_owned();
    let data = [
        vec![
            odd,
            service("s3", OLD_2, Some("é"), 1),
            service("ec2", 0, None, 0),
        ],
        vec![
            service("s3", OLD_2, Some("tie"), 5),
            service("iam", recent, Some("x"), 3),
        ],
        vec![
            service("lambda", OLD_3, None, 1),
            service("nullns", OLD_3, None, 1),
        ],
        vec![
            service("s3", recent - DAY_MS, Some("ñewest"), 4),
            service("ec2", 0, None, 7),
        ],
        vec![service("we\"ird\\ns", OLD_1, Some("later tie"), 1)],
    ];
    for (n, services) in data.into_iter().enumerate() {
        db.store(&[principal(&arn(n + 1), services)]).await;
    }
    // States the write path never makes, as upstream's rows may hold them.
    db.execute(
        "UPDATE advisor_data SET \"serviceNamespace\" = NULL WHERE \"serviceNamespace\" = 'nullns'",
    )
    .await;
    db.execute("UPDATE advisor_data SET \"totalAuthenticatedEntities\" = NULL WHERE \"serviceNamespace\" = 'lambda'").await;
    assert_eq!(db.db.render_missing().await.unwrap(), 1);
    let app = spawn_app(&db.db).await;
    let recent_since = chrono::Utc::now().timestamp_millis() - 90 * DAY_MS;
    let by_hand = || async {
        combined_by_hand(
            &app.get("/api/1/advisors?count=100").await.json(),
            recent_since,
        )
    };
    let combined = || async {
        app.get("/api/1/advisors?combine=true&count=100")
            .await
            .json()
    };
    let expected = by_hand().await;
    assert_eq!(expected["s3"]["lastAuthenticatedEntity"], json!("ñewest"));
    assert_eq!(expected["s3"]["totalAuthenticatedEntities"], json!(10));
    assert_eq!(
        expected["lambda"]["totalAuthenticatedEntities"],
        Value::Null
    );
    assert_eq!(
        expected["we\"ird\\ns"]["serviceName"],
        json!("Sérvice ☃ \"quoted\"")
    );
    assert_eq!(expected.as_object().unwrap().len(), 5);
    let digests = || {
        db.strings("SELECT CAST(item_id AS TEXT) FROM aardvark_rendered_digests ORDER BY item_id")
    };
    assert_eq!(digests().await, ["1", "2", "3", "4", "5"]);
    assert_eq!(combined().await, expected);

    // A rendering without its digest (an older build's), and a principal without either.
    db.execute("DELETE FROM aardvark_rendered_digests WHERE item_id = 1")
        .await;
    db.execute("DELETE FROM aardvark_rendered_services WHERE item_id = 2")
        .await;
    assert_eq!(digests().await, ["3", "4", "5"]);
    assert_eq!(combined().await, expected);
    assert_eq!(db.db.render_missing().await.unwrap(), 2);
    assert_eq!(digests().await, ["1", "2", "3", "4", "5"]);
    assert_eq!(combined().await, expected);

    // The digest is what is read (here one made to differ from its rendering)...
    db.execute("UPDATE aardvark_rendered_digests SET digest = replace(digest, 'ñewest', 'the digest') WHERE item_id = 4").await;
    let mut from_digest = expected.clone();
    from_digest["s3"]["lastAuthenticatedEntity"] = json!("the digest");
    assert_eq!(combined().await, from_digest);
    // ...until anything it was made from changes: the rendering goes, and its digest with it.
    db.execute("UPDATE advisor_data SET \"totalAuthenticatedEntities\" = 8 WHERE item_id = 4 AND \"serviceNamespace\" = 'ec2'").await;
    assert_eq!(digests().await, ["1", "2", "3", "5"]);
    let changed = by_hand().await;
    assert_eq!(changed["ec2"]["totalAuthenticatedEntities"], json!(8));
    assert_eq!(changed["s3"], expected["s3"]);
    assert_eq!(combined().await, changed);
}

async fn methods_and_paths(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    let url = format!("{}/api/1/advisors", f.app.base_url);
    let health = f.app.get("/healthcheck").await;
    assert_eq!((health.status, health.text.as_str()), (200, "ok"));
    assert_eq!(
        f.app
            .send(f.app.client.post(format!("{}/healthcheck", f.app.base_url)))
            .await
            .status,
        405
    );
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let reply = f.app.send(f.app.client.request(method.clone(), &url)).await;
        reply.assert_exact(
            405,
            &json!({"message": "The method is not allowed for the requested URL."}),
        );
        assert_eq!(
            reply.headers["allow"], "GET, POST, HEAD, OPTIONS",
            "{method}"
        );
    }
    let head = f.app.send(f.app.client.head(&url)).await;
    assert_eq!((head.status, head.text.as_str()), (200, ""));
    let options = f
        .app
        .send(f.app.client.request(reqwest::Method::OPTIONS, &url))
        .await;
    assert_eq!((options.status, options.text.as_str()), (200, ""));
    assert_eq!(options.headers["allow"], "GET, POST, HEAD, OPTIONS");
    for path in [
        "/api/1/advisors/",
        "/nothing",
        "/api/1/advisor",
        "/api/2/advisors",
    ] {
        f.app.get(path).await.assert_error(404, "not found");
    }
}

async fn openapi_and_swagger_ui_are_served_from_the_binary(backend: Backend) {
    let Some(f) = setup(backend).await else {
        return;
    };
    let spec = f.app.get("/apispec_1.json").await;
    assert_eq!(spec.status, 200);
    let spec = spec.json();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    assert!(spec["paths"]["/api/1/advisors"]["get"].is_object());
    assert!(spec["paths"]["/api/1/advisors"]["post"].is_object());
    // What schemathesis (in .ci/run) holds the server to: every endpoint, its 4xx and 503.
    for path in [
        "/api/1/advisors",
        "/api/1/runs",
        "/api/1/runs/{id}",
        "/api/1/accounts",
        "/api/1/history",
    ] {
        let responses = &spec["paths"][path]["get"]["responses"];
        for status in ["200", "400", "503"] {
            assert!(responses[status].is_object(), "{path} documents {status}");
        }
    }
    let body = &spec["paths"]["/api/1/advisors"]["post"]["requestBody"];
    assert_eq!(body["required"], json!(false), "{body}");
    let ui = f.app.get("/apidocs/").await;
    assert_eq!(ui.status, 200);
    assert!(
        ui.text.contains("swagger-ui"),
        "{}",
        &ui.text[..ui.text.len().min(300)]
    );
    let initializer = f.app.get("/apidocs/swagger-initializer.js").await;
    assert!(
        initializer.text.contains("/apispec_1.json"),
        "{}",
        initializer.text
    );
}

/// Text that JSON must escape (quotes, backslashes, every control character) and text it need
/// not (DEL, non-ASCII) comes out escaped exactly as Flask's encoder and serde_json do it.
async fn odd_text_is_escaped_exactly(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let controls: String = (1u8..0x20).map(char::from).collect();
    let odd = format!("say \"hi\" \\ {controls} \u{7f} caf\u{e9} \u{1f600}");
    let arn = "arn:aws:iam::333333333333:role/Odd";
    let mut usage = service("odd", 7, Some(&odd), 1);
    usage.service_name = odd.clone();
    db.store(&[principal(arn, vec![usage])]).await;
    db.execute("UPDATE aws_iam_object SET \"lastUpdated\" = '2026-11-22 19:54:58'")
        .await;
    let app = spawn_app(&db.db).await;
    let expected = json!({
        "count": 1, "page": 1, "total": 1,
        arn: [{
            "lastAuthenticated": 7,
            "lastAuthenticatedEntity": odd,
            "lastUpdated": LAST_UPDATED,
            "serviceName": odd,
            "serviceNamespace": "odd",
            "totalAuthenticatedEntities": 1,
        }],
    });
    app.get(&format!("/api/1/advisors?arn={arn}"))
        .await
        .assert_exact(200, &expected);
}

on_both_backends!(
    odd_text_is_escaped_exactly,
    no_parameters_give_page_one_of_thirty,
    count_and_page_from_query_json_ints_and_json_strings,
    bad_pages_and_counts_are_400_naming_the_value,
    count_zero_gives_only_totals,
    integers_parse_like_python,
    malformed_values_and_bodies_are_400,
    body_kinds_json_as_text_ignored_form_honoured,
    json_body_wins_for_scalars_and_arns_merge,
    phrase_is_a_literal_case_insensitive_substring,
    arn_filter_matches_exactly_in_any_case,
    regex_is_anchored_at_the_start_and_case_sensitive,
    filters_combine_with_and,
    combine_aggregates_per_namespace,
    combine_is_exact_whatever_is_kept,
    methods_and_paths,
    openapi_and_swagger_ui_are_served_from_the_binary,
);
