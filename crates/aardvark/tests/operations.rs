//! What an operator's tooling sees of a server, over the wire: `/metrics` parsed with a
//! Prometheus text parser after a collection with failures, throttling and session renewals
//! (its figures checked against the simulator's own counts and the run's records, on both
//! backends), and every authentication case, with the OpenAPI document that declares it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aardvark::api::ApiOptions;
use aardvark::auth::{digest_entry, ApiTokens};
use aardvark::collector::progress::Progress;
use aardvark::collector::UpdateRequest;
use aardvark::config::{AccountSource, Settings};
use aws_sim::{AccountFaults, AssumeRoleFault, Burst, Scenario};
use common::{fresh_db, spawn_app, spawn_app_with, stored, Backend, TestApp};
use prometheus_parse::{Sample, Scrape, Value as PromValue};

const TOKEN: &str = "operations-test-token";

async fn scrape(app: &TestApp, token: Option<&str>) -> (Scrape, String) {
    let mut request = app.client.get(format!("{}/metrics", app.base_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let reply = app.send(request).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let parsed = Scrape::parse(reply.text.lines().map(|line| Ok(line.to_owned()))).unwrap();
    (parsed, reply.text)
}

fn value(sample: &Sample) -> f64 {
    match &sample.value {
        PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => *v,
        other => panic!("{} is not a number: {other:?}", sample.metric),
    }
}

/// The samples of `metric` whose labels include `labels`.
fn samples<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The sum of `metric` over the samples with `labels`.
fn sum(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, metric, labels).into_iter().map(value).sum()
}

/// Four accounts: one answering every 20th IAM call 503 (retried by the SDK), one SCP-denied,
/// one throttled (every 15th IAM call: sent again by its pacer), one whose sessions last a
/// second, less than its collection at 20 requests a second.
fn troubled_scenario() -> Scenario {
    let mut scenario = Scenario::generated(31, 4, 12);
    let ids = scenario.account_ids();
    scenario = scenario
        .with_account_faults(
            &ids[0],
            AccountFaults {
                server_errors: Some(Burst {
                    first: 0,
                    every: 20,
                    status: Some(503),
                }),
                ..Default::default()
            },
        )
        .with_account_faults(
            &ids[1],
            AccountFaults {
                assume_role: Some(AssumeRoleFault::ScpDeny),
                ..Default::default()
            },
        )
        .with_account_faults(
            &ids[2],
            AccountFaults {
                throttles: Some(Burst {
                    first: 0,
                    every: 15,
                    status: None,
                }),
                ..Default::default()
            },
        )
        .with_account_faults(
            &ids[3],
            AccountFaults {
                session_seconds: Some(1),
                job_ms: Some(300),
                ..Default::default()
            },
        );
    scenario
}

/// `/metrics` after a collection: HTTP counts exact for the requests made, the database's
/// figures equal to the run's records, and the AWS counts equal to what the simulator saw.
async fn metrics_after_a_collection(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let sim = aws_sim::start(troubled_scenario()).await.unwrap();
    let ids = sim.account_ids().to_vec();
    let settings = Settings {
        database_uri: db.uri.clone(),
        accounts: ids.clone(),
        account_source: AccountSource::Static,
        updater_principal_concurrency: 8,
        updater_account_rate_limit: 20.0,
        updater_account_burst: 5,
        updater_poll_interval: Duration::from_millis(2),
        updater_poll_max_interval: Duration::from_millis(20),
        ..Settings::default()
    };
    let collector = common::collector_for(&sim, &db.db, settings).await;
    let report = tokio::time::timeout(
        Duration::from_secs(120),
        collector.run(&UpdateRequest::default(), Progress::logs()),
    )
    .await
    .unwrap()
    .unwrap();
    let app = spawn_app_with(
        &db.db,
        ApiOptions {
            aws_metrics: Some(collector.aws_metrics().clone()),
            ..ApiOptions::default()
        },
    )
    .await;
    for _ in 0..2 {
        assert_eq!(app.get("/api/1/advisors?count=3").await.status, 200);
    }
    assert_eq!(app.get("/api/1/unused?days=0").await.status, 400);
    assert_eq!(app.get("/no/such/page").await.status, 404);
    let (scrape, text) = scrape(&app, None).await;

    // This server's requests, exactly (the scrape itself is counted once it is answered).
    let requests = "aardvark_http_requests_total";
    let advisors = [("route", "/api/1/advisors"), ("method", "GET")];
    assert_eq!(
        sum(
            &scrape,
            requests,
            &[advisors[0], advisors[1], ("status", "200")]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &scrape,
            requests,
            &[("route", "/api/1/unused"), ("status", "400")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &scrape,
            requests,
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(sum(&scrape, requests, &[]), 4.0, "{text}");
    let latency = samples(
        &scrape,
        "aardvark_http_request_duration_seconds",
        &[advisors[0]],
    );
    assert_eq!(latency.len(), 1, "{text}");
    match &latency[0].value {
        PromValue::Histogram(buckets) => {
            assert_eq!(buckets.last().unwrap().count, 2.0, "{buckets:?}");
            assert!(buckets
                .windows(2)
                .all(|pair| pair[0].count <= pair[1].count));
        }
        other => panic!("not a histogram: {other:?}"),
    }

    // From the database: what the run recorded.
    let stored = stored(&db.db).await;
    assert_eq!(
        sum(&scrape, "aardvark_principals", &[]),
        stored.len() as f64
    );
    let now = chrono::Utc::now().timestamp() as f64;
    for account in &report.accounts {
        let id = account.id.as_str();
        let status = format!("{:?}", account.status).to_lowercase();
        assert_eq!(
            sum(
                &scrape,
                "aardvark_account_status",
                &[("account", id), ("status", &status)]
            ),
            1.0,
            "{id} {status}: {text}"
        );
        assert_eq!(
            samples(&scrape, "aardvark_account_status", &[("account", id)]).len(),
            1
        );
        let last_success = samples(
            &scrape,
            "aardvark_account_last_success_timestamp_seconds",
            &[("account", id)],
        );
        if status == "ok" {
            let at = value(last_success[0]);
            assert!((now - 300.0..=now + 1.0).contains(&at), "{id}: {at}");
        } else {
            assert!(last_success.is_empty(), "{id} never succeeded: {text}");
        }
    }
    assert_eq!(
        sum(
            &scrape,
            "aardvark_account_status",
            &[("account", &ids[1]), ("status", "failed")]
        ),
        1.0
    );
    let run = db.db.run(None).await.unwrap().unwrap();
    assert_eq!(sum(&scrape, "aardvark_last_run_id", &[]), run.id as f64);
    assert_eq!(
        sum(
            &scrape,
            "aardvark_last_run_status",
            &[("status", run.status.as_str())]
        ),
        1.0
    );
    for (status, count) in [
        ("ok", run.totals.accounts_ok),
        ("partial", run.totals.accounts_partial),
        ("failed", run.totals.accounts_failed),
    ] {
        assert_eq!(
            sum(&scrape, "aardvark_last_run_accounts", &[("status", status)]),
            count as f64
        );
    }
    assert_eq!(run.totals.accounts_failed, 1);
    assert_eq!(
        sum(
            &scrape,
            "aardvark_last_run_principals",
            &[("outcome", "collected")]
        ),
        run.totals.principals_collected as f64
    );
    assert!(sum(&scrape, "aardvark_last_run_duration_seconds", &[]) > 0.0);

    // The AWS calls, as the simulator counted them.
    let stats = sim.stats();
    let calls = sum(&scrape, "aardvark_aws_calls_total", &[]);
    let retries = sum(&scrape, "aardvark_aws_retries_total", &[]);
    assert_eq!(
        calls + retries,
        stats.requests as f64,
        "every attempt reached the simulator: {text}"
    );
    assert_eq!(
        sum(&scrape, "aardvark_aws_throttles_total", &[]),
        stats.throttles.values().sum::<u64>() as f64,
        "{text}"
    );
    assert!(
        sum(&scrape, "aardvark_aws_throttles_total", &[]) > 0.0,
        "the scenario throttles"
    );
    assert!(retries > 0.0);
    let assume_role = [("service", "sts"), ("operation", "AssumeRole")];
    assert_eq!(
        sum(
            &scrape,
            "aardvark_aws_calls_total",
            &[assume_role[0], assume_role[1], ("outcome", "AccessDenied")]
        ),
        1.0,
        "{text}"
    );
    let assumed: u64 = ids.iter().map(|id| stats.calls_of(id, "AssumeRole")).sum();
    assert_eq!(
        sum(&scrape, "aardvark_aws_calls_total", &assume_role),
        assumed as f64
    );
    let renewals = stats.calls_of(&ids[3], "AssumeRole") - 1;
    assert!(
        renewals > 0,
        "sessions of a second renew during a collection of seconds"
    );
    assert_eq!(
        sum(&scrape, "aardvark_aws_session_renewals_total", &[]),
        renewals as f64
    );
    assert!(
        sum(
            &scrape,
            "aardvark_aws_calls_total",
            &[
                ("operation", "GenerateServiceLastAccessedDetails"),
                ("outcome", "ok")
            ]
        ) > 0.0
    );
}

on_both_backends!(metrics_after_a_collection);

/// A server without a collector has no AWS counters, and its database figures are those of an
/// empty database.
#[tokio::test]
async fn metrics_of_a_server_that_does_not_collect() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let app = spawn_app(&db.db).await;
    let (scrape, text) = scrape(&app, None).await;
    assert!(
        samples(&scrape, "aardvark_aws_calls_total", &[]).is_empty(),
        "{text}"
    );
    assert!(!text.contains("aardvark_aws_"), "{text}");
    assert_eq!(sum(&scrape, "aardvark_principals", &[]), 0.0);
    assert!(samples(&scrape, "aardvark_last_run_id", &[]).is_empty());
}

fn with_tokens(entries: &[&str], metrics_require_token: bool) -> ApiOptions {
    ApiOptions {
        tokens: ApiTokens::parse(entries.iter().copied()).unwrap(),
        metrics_require_token,
        ..ApiOptions::default()
    }
}

fn challenges(reply: &common::Reply) -> Vec<String> {
    reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

/// Every authentication case, on a server whose settings hold one token plainly and one as
/// its digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_where_they_must_be() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    db.store(&[common::principal(
        "arn:aws:iam::123456789012:role/Alpha",
        vec![common::service("s3", 1_600_000_000_000, None, 1)],
    )])
    .await;
    let digest_only = "token-known-by-its-digest";
    let app = spawn_app_with(
        &db.db,
        with_tokens(&[TOKEN, &digest_entry(digest_only)], false),
    )
    .await;
    let url = |path: &str| format!("{}{path}", app.base_url);

    // No credentials: 401 JSON offering both schemes.
    let reply = app.get("/api/1/advisors").await;
    reply.assert_error(401, "authentication required");
    assert_eq!(
        challenges(&reply),
        [
            "Bearer realm=\"aardvark\"",
            "Basic realm=\"aardvark\", charset=\"UTF-8\""
        ]
    );
    // A wrong bearer token: 401 offering Bearer only (no browser prompt for a page using it).
    let reply = app
        .send(app.client.get(url("/api/1/advisors")).bearer_auth("wrong"))
        .await;
    reply.assert_error(401, "the bearer token is not valid");
    assert_eq!(challenges(&reply), ["Bearer realm=\"aardvark\""]);
    let reply = app
        .send(app.client.get(url("/api/1/advisors")).bearer_auth(""))
        .await;
    assert_eq!(reply.status, 401);
    // Right tokens, either way, either form.
    for token in [TOKEN, digest_only] {
        let reply = app
            .send(app.client.get(url("/api/1/advisors")).bearer_auth(token))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["total"], 1);
        let reply = app
            .send(
                app.client
                    .get(url("/api/1/advisors"))
                    .basic_auth("aardvark", Some(token)),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    // The token's digest is not the token.
    let reply = app
        .send(
            app.client
                .get(url("/api/1/advisors"))
                .bearer_auth(digest_entry(digest_only)),
        )
        .await;
    assert_eq!(reply.status, 401);
    // Repokid's form: the token as the password in the URL.
    let with_userinfo = app
        .base_url
        .replace("http://", &format!("http://aardvark:{TOKEN}@"));
    let reply = app
        .send(
            app.client
                .get(format!("{with_userinfo}/api/1/advisors?count=1")),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = app
        .send(
            app.client
                .post(format!("{with_userinfo}/api/1/advisors"))
                .header("content-type", "application/json")
                .body("{\"arn\": [\"arn:aws:iam::123456789012:role/Alpha\"]}"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // A wrong Basic password, and Basic credentials that are not base64 of user:password.
    let reply = app
        .send(
            app.client
                .get(url("/api/1/advisors"))
                .basic_auth("aardvark", Some("nope")),
        )
        .await;
    reply.assert_error(401, "the token given as the Basic password is not valid");
    assert_eq!(
        challenges(&reply),
        ["Basic realm=\"aardvark\", charset=\"UTF-8\""]
    );
    let reply = app
        .send(
            app.client
                .get(url("/api/1/advisors"))
                .header("authorization", "Basic %%%"),
        )
        .await;
    reply.assert_error(401, "not base64");
    let reply = app
        .send(
            app.client
                .get(url("/api/1/advisors"))
                .header("authorization", "Digest x"),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(challenges(&reply).len(), 2);
    // Every endpoint needs it, unknown paths included.
    for path in [
        "/api/1/runs",
        "/api/1/accounts",
        "/api/1/unused",
        "/nope",
        "/apidocsx",
    ] {
        assert_eq!(app.get(path).await.status, 401, "{path}");
    }
    // Except the health check, the documentation and Swagger UI's files (no data in them, and
    // the UI must load before its Authorize button can take the token), and here the metrics.
    for path in [
        "/healthcheck",
        "/metrics",
        "/apispec_1.json",
        "/apidocs/",
        "/apidocs/swagger-initializer.js",
    ] {
        assert_eq!(app.get(path).await.status, 200, "{path}");
    }

    // The document declares both schemes and the 401, except where no token is needed.
    let reply = app
        .send(app.client.get(url("/apispec_1.json")).bearer_auth(TOKEN))
        .await;
    let document = reply.json();
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    let advisors = &document["paths"]["/api/1/advisors"]["get"];
    assert_eq!(
        advisors["security"],
        serde_json::json!([{"bearer": []}, {"basic": []}])
    );
    assert!(advisors["responses"]["401"]["headers"]["WWW-Authenticate"].is_object());
    for open in ["/healthcheck", "/metrics"] {
        let operation = &document["paths"][open]["get"];
        assert!(operation["security"].is_null(), "{open}: {operation}");
        assert!(operation["responses"]["401"].is_null(), "{open}");
    }
}

#[tokio::test]
async fn metrics_can_require_the_token_too() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let app = spawn_app_with(&db.db, with_tokens(&[TOKEN], true)).await;
    assert_eq!(app.get("/metrics").await.status, 401);
    assert_eq!(app.get("/healthcheck").await.status, 200);
    scrape(&app, Some(TOKEN)).await;
    let reply = app
        .send(
            app.client
                .get(format!("{}/apispec_1.json", app.base_url))
                .bearer_auth(TOKEN),
        )
        .await;
    let document = reply.json();
    assert!(document["paths"]["/metrics"]["get"]["responses"]["401"].is_object());
}

/// Without tokens the document declares no scheme (authentication is off).
#[tokio::test]
async fn no_tokens_no_authentication() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let app = spawn_app(&db.db).await;
    assert_eq!(app.get("/api/1/advisors").await.status, 200);
    let document = app.get("/apispec_1.json").await.json();
    assert!(document["components"]["securitySchemes"].is_null());
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for status in operation["responses"].as_object().unwrap().keys() {
                *statuses.entry(status.clone()).or_default() += 1;
            }
        }
    }
    assert!(!statuses.contains_key("401"), "{statuses:?}");
}
