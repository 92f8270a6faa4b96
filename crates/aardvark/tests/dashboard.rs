//! The dashboard in a real headless browser (Debian's chromium, driven over WebDriver by
//! chromedriver and fantoccini), served by a real server over a collection from aws-sim with
//! failures: the overview's counts, the failed accounts and principals with AWS's words, the
//! unused-access table and its order, a principal's services, actions and timeline, search and
//! paging, the token prompt, and that no request leaves for another host. Screenshots of each
//! view are saved under `target/tmp/dashboard/`. Without chromedriver (`AARDVARK_CHROMEDRIVER`
//! or `/usr/bin/chromedriver`) the browser test is skipped with a note; `.ci/run` installs it
//! and sets the variable, so that in CI it cannot be skipped.
//! Also the endpoints' parameters the dashboard relies on (`stale_days`, `sort`), over the wire,
//! and Swagger UI rendering under the content security policy the server sends with it.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aardvark::api::ApiOptions;
use aardvark::auth::ApiTokens;
use aardvark::collector::progress::Progress;
use aardvark::collector::UpdateRequest;
use aardvark::config::{AccountSource, Settings};
use aws_sim::Scenario;
use common::{fresh_db, spawn_app, spawn_app_with, Backend, TestApp, TestDb};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "dashboard-test-token";

/// The demo's world (SCP denials, a missing role, a denied listing, a failing job, a vanished
/// principal) without its latency and throttling, collected into `db`.
async fn collect_demo_world(db: &TestDb) -> aws_sim::SimHandle {
    let mut scenario = Scenario::demo();
    scenario.defaults.latency_ms = 0;
    for faults in scenario.account_faults.values_mut() {
        faults.rate_limit = None;
        faults.latency_ms = 0;
    }
    let sim = aws_sim::start(scenario).await.unwrap();
    let settings = Settings {
        database_uri: db.uri.clone(),
        accounts: sim.account_ids().to_vec(),
        account_source: AccountSource::Static,
        updater_account_rate_limit: 0.0,
        updater_poll_interval: Duration::from_millis(2),
        updater_poll_max_interval: Duration::from_millis(20),
        ..Settings::default()
    };
    let collector = common::collector_for(&sim, &db.db, settings).await;
    tokio::time::timeout(
        Duration::from_secs(120),
        collector.run(&UpdateRequest::default(), Progress::logs()),
    )
    .await
    .unwrap()
    .unwrap();
    sim
}

/// chromedriver on a free port, ended when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AARDVARK_CHROMEDRIVER").map(PathBuf::from) {
        assert!(
            path.is_file(),
            "AARDVARK_CHROMEDRIVER={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let path = PathBuf::from("/usr/bin/chromedriver");
    if path.is_file() {
        return Some(path);
    }
    eprintln!("note: no chromedriver (set AARDVARK_CHROMEDRIVER); skipping the browser test");
    None
}

async fn start_driver(path: PathBuf) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    let binary = std::env::var("AARDVARK_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1500", "--no-first-run", "--disable-extensions"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Opens `hash` of the page and waits until the view has rendered `selector`.
async fn open(
    client: &Client,
    app: &TestApp,
    hash: &str,
    selector: &str,
) -> fantoccini::elements::Element {
    client
        .goto(&format!("{}/{hash}", app.base_url))
        .await
        .unwrap();
    wait_for(client, selector).await
}

async fn wait_for(client: &Client, selector: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(selector))
        .await
        .unwrap_or_else(|err| panic!("{selector} never appeared: {err}"))
}

async fn texts(client: &Client, selector: &str) -> Vec<String> {
    let mut texts = Vec::new();
    for element in client.find_all(Locator::Css(selector)).await.unwrap() {
        texts.push(element.text().await.unwrap());
    }
    texts
}

async fn script(client: &Client, code: &str) -> Value {
    client.execute(code, vec![]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_headless_browser() {
    let Some(driver_path) = chromedriver() else {
        return;
    };
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let _sim = collect_demo_world(&db).await;
    // A later use and an age-out of one principal, so that its timeline has several changes.
    let arn = "arn:aws:iam::100000000000:role/Aardvark";
    let later = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let principal = common::principal(
        arn,
        vec![
            common::service("s3", later, Some(arn), 1),
            common::service("ec2", 0, None, 0),
        ],
    );
    db.store(&[principal]).await;

    let app = spawn_app(&db.db).await;
    let api = |path: &str| {
        let app = &app;
        let path = path.to_owned();
        async move { app.get(&path).await.json() }
    };
    let driver = start_driver(driver_path).await;
    let client = browser(&driver).await;

    // Overview: the counts are the API's, and each links to its rows.
    open(&client, &app, "#/", "#status-cards").await;
    for status in ["ok", "partial", "failed", "interrupted", "never"] {
        let expected =
            api(&format!("/api/1/accounts?status={status}&count=0")).await["total"].clone();
        let shown = texts(&client, &format!("[data-count={status}]")).await;
        assert_eq!(shown, [expected.to_string()], "{status}");
    }
    assert!(!texts(&client, "#runs tr[data-run='1']").await.is_empty());
    let stale = api("/api/1/accounts?stale_days=2&count=0").await["total"].clone();
    assert_eq!(
        texts(&client, "#stale-count").await,
        [format!("{stale} accounts")]
    );
    screenshot(&client, "overview").await;
    client
        .find(Locator::Css("[data-count=failed]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#accounts").await;
    let failed_rows = texts(&client, "#accounts tbody tr").await;
    let failed_total = api("/api/1/accounts?status=failed&count=0").await["total"]
        .as_u64()
        .unwrap();
    assert_eq!(failed_rows.len() as u64, failed_total, "{failed_rows:?}");
    assert_eq!(
        failed_total, 6,
        "4 SCP denials, a missing role, a denied listing"
    );

    // Failures: each failed account with AWS's code and message, and the failed principal.
    open(&client, &app, "#/failures", "#failed-accounts").await;
    let rows = texts(&client, "#failed-accounts tbody tr").await;
    let denied = rows
        .iter()
        .find(|row| row.starts_with("100000000003"))
        .expect("the denied account");
    assert!(denied.contains("AccessDenied"), "{denied}");
    assert!(
        denied.contains("explicit deny in a service control policy"),
        "{denied}"
    );
    let principals = texts(&client, "#failed-principals tbody tr").await;
    assert!(
        principals
            .iter()
            .any(|row| row.contains("user/report-fails")),
        "{principals:?}"
    );
    screenshot(&client, "failures").await;

    // Unused access: sorted by unused principals, most first, as the API sorts them.
    open(
        &client,
        &app,
        "#/unused?days=90&sort=unused",
        "#unused-accounts",
    )
    .await;
    let expected = api("/api/1/unused/accounts?days=90&sort=unused&count=50").await;
    let shown: Vec<String> = script(
        &client,
        "return [...document.querySelectorAll('#unused-accounts tbody tr')].map(r => r.dataset.account)",
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|v| v.as_str().unwrap().to_owned())
    .collect();
    let expected_order: Vec<String> = expected["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shown, expected_order);
    let unused_counts: Vec<i64> = expected["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["unused"].as_i64().unwrap())
        .collect();
    assert!(
        unused_counts.windows(2).all(|pair| pair[0] >= pair[1]),
        "{unused_counts:?}"
    );
    screenshot(&client, "unused").await;
    // Sorting by another column asks the server again.
    client
        .find(Locator::Css("[data-sort=account]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "[data-sort=account].sorted").await;
    // A number links to the account's principals.
    let first = &expected_order[0];
    client
        .find(Locator::Css(&format!(
            "tr[data-account='{first}'] [data-unused]"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#account-principals, main .empty").await;
    let unused_of_first = expected["accounts"][0]["unused"].as_u64().unwrap();
    let rows = texts(&client, "#account-principals tbody tr").await;
    assert_eq!(rows.len() as u64, unused_of_first.min(50), "{rows:?}");
    let flagged = script(
        &client,
        "return document.querySelectorAll('#account-principals tbody tr .flag-unused').length",
    )
    .await;
    assert_eq!(
        flagged.as_u64(),
        Some(rows.len() as u64),
        "every row behind the number is unused"
    );

    // A principal: its services, its actions, its timeline.
    open(
        &client,
        &app,
        &format!("#/principal/{}", urlencode(arn)),
        "#timeline",
    )
    .await;
    let history = api(&format!("/api/1/history?arn={}&count=1000", urlencode(arn))).await;
    let changes = history["total"].as_u64().unwrap();
    assert!(changes >= 2, "{history}");
    let marks = script(
        &client,
        "return document.querySelectorAll('#timeline circle').length",
    )
    .await;
    assert_eq!(marks.as_u64(), Some(changes));
    let unused = api(&format!("/api/1/unused?arn={}", urlencode(arn))).await;
    let principal = &unused["principals"][0];
    let services =
        principal["used"].as_array().unwrap().len() + principal["unused"].as_array().unwrap().len();
    assert_eq!(texts(&client, "#services tbody tr").await.len(), services);
    let actions = api(&format!("/api/1/actions?arn={}", urlencode(arn))).await;
    let action_count = actions["principals"][0]["actions"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        texts(&client, "#actions tbody tr").await.len(),
        action_count
    );
    screenshot(&client, "principal").await;

    // A principal with a least-privilege recommendation: each step, its policy before and
    // after as a diff, the removed patterns on deleted lines.
    let recommended = api("/api/1/recommendations?count=1").await;
    let recommendation = &recommended["recommendations"][0];
    let steps = recommendation["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{recommended}");
    let recommended_arn = recommendation["principal"].as_str().unwrap();
    open(
        &client,
        &app,
        &format!("#/principal/{}", urlencode(recommended_arn)),
        "#recommendation",
    )
    .await;
    assert_eq!(
        texts(&client, "#recommendation .step").await.len(),
        steps.len()
    );
    let deleted = texts(&client, "#recommendation .step:first-of-type del").await;
    for removed in steps[0]["removed"].as_array().unwrap() {
        let pattern = removed["pattern"].as_str().unwrap();
        assert!(
            deleted.iter().any(|line| line.contains(pattern)),
            "{pattern} not among {deleted:?}"
        );
    }
    screenshot(&client, "recommendation").await;

    // Search by ARN substring, a page at a time.
    let search = client.find(Locator::Css("#search")).await.unwrap();
    search.clear().await.unwrap();
    search.send_keys(":role/").await.unwrap();
    client
        .find(Locator::Css("#search-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#search-results").await;
    let total = api("/api/1/advisors?phrase=:role/&count=1").await["total"]
        .as_u64()
        .unwrap();
    assert!(total > 50, "two pages at least: {total}");
    assert_eq!(texts(&client, "#search-results tbody tr").await.len(), 50);
    let pages = total.div_ceil(50);
    assert_eq!(
        texts(&client, ".page-of").await,
        [format!("page 1 of {pages} ({total})")]
    );
    screenshot(&client, "search").await;
    client
        .find(Locator::Css("[data-page=next]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(&format!(
            "//span[@class='page-of' and text()='page 2 of {pages} ({total})']"
        )))
        .await
        .unwrap();
    let second_page = texts(&client, "#search-results tbody tr").await.len() as u64;
    assert_eq!(second_page, (total - 50).min(50));

    // Nothing was asked of another host.
    let resources = script(
        &client,
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])",
    )
    .await;
    for resource in resources.as_array().unwrap() {
        let resource = resource.as_str().unwrap();
        assert!(
            resource.starts_with(&app.base_url),
            "a request left for {resource}"
        );
    }
    let page = app.get("/").await;
    let policy = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
        "{policy}"
    );
    client.close().await.unwrap();

    // With authentication on: the page asks once, keeps the token, and asks again after a 401.
    let secured = spawn_app_with(
        &db.db,
        ApiOptions {
            tokens: ApiTokens::parse([TOKEN]).unwrap(),
            ..ApiOptions::default()
        },
    )
    .await;
    let client = browser(&driver).await;
    client
        .goto(&format!("{}/#/failures", secured.base_url))
        .await
        .unwrap();
    wait_for(&client, "#token-dialog[open]").await;
    screenshot(&client, "token-prompt").await;
    client
        .find(Locator::Css("#token-input"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    client
        .find(Locator::Css("#token-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#failed-accounts").await;
    assert_eq!(
        script(
            &client,
            "return document.getElementById('token-dialog').open"
        )
        .await,
        Value::Bool(false)
    );
    // Kept for the session: another view needs no prompt.
    client
        .goto(&format!("{}/#/unused", secured.base_url))
        .await
        .unwrap();
    wait_for(&client, "#unused-accounts").await;
    // Findings: the overview's counts are the API's; a finding is archived from its page, with
    // the token, and its history says who and why.
    let summary = secured
        .send(
            secured
                .client
                .get(format!("{}/api/1/findings/summary", secured.base_url))
                .bearer_auth(TOKEN),
        )
        .await
        .json();
    client
        .goto(&format!("{}/#/", secured.base_url))
        .await
        .unwrap();
    wait_for(&client, "#finding-cards").await;
    for kind in [
        "unused_role",
        "unused_access_key",
        "unused_password",
        "unused_permission",
    ] {
        let shown = texts(&client, &format!("[data-findings={kind}]")).await;
        assert_eq!(
            shown,
            [summary["totals"][kind]["active"].to_string()],
            "{kind}"
        );
    }
    assert!(
        summary["totals"]["unused_access_key"]["active"]
            .as_i64()
            .unwrap()
            > 0
    );
    client
        .goto(&format!(
            "{}/#/findings?type=unused_access_key&status=active",
            secured.base_url
        ))
        .await
        .unwrap();
    wait_for(&client, "#findings tbody tr").await;
    screenshot(&client, "findings").await;
    let id = script(
        &client,
        "return document.querySelector('#findings tbody tr').dataset.finding",
    )
    .await;
    let id = id.as_str().unwrap().to_owned();
    client
        .find(Locator::Css("#findings tbody tr a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#evidence").await;
    client
        .find(Locator::Css("#finding-reason"))
        .await
        .unwrap()
        .send_keys("a break-glass key")
        .await
        .unwrap();
    client
        .find(Locator::Css("#finding-action"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let archived = loop {
        let finding = secured
            .send(
                secured
                    .client
                    .get(format!("{}/api/1/findings/{id}", secured.base_url))
                    .bearer_auth(TOKEN),
            )
            .await
            .json();
        if finding["status"] == "archived" || Instant::now() > deadline {
            break finding;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(archived["status"], "archived", "{archived}");
    assert_eq!(archived["reason"], "a break-glass key");
    assert_eq!(archived["archived_by"], "dashboard");
    wait_for(&client, "#finding-history tbody tr:nth-child(2)").await;
    screenshot(&client, "finding").await;
    // A token the server refuses brings the prompt back.
    script(
        &client,
        "sessionStorage.setItem('aardvark.token', 'revoked'); location.hash = '#/'; return null",
    )
    .await;
    wait_for(&client, "#token-dialog[open]").await;
    let reason = texts(&client, "#token-reason").await;
    assert!(reason[0].contains("refused"), "{reason:?}");
    client.close().await.unwrap();
}

/// Swagger UI runs under the content security policy the server sends with it: its scripts load
/// from this server, render the document's operations, and a screenshot shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_renders_under_its_content_security_policy() {
    let Some(driver_path) = chromedriver() else {
        return;
    };
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let app = spawn_app(&db.db).await;
    let policy = app.get("/apidocs/").await.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let driver = start_driver(driver_path).await;
    let client = browser(&driver).await;
    client
        .goto(&format!("{}/apidocs/", app.base_url))
        .await
        .unwrap();
    let title = wait_for(&client, ".swagger-ui .info .title").await;
    assert!(title.text().await.unwrap().starts_with("Aardvark"));
    wait_for(&client, ".opblock-summary-path").await;
    let paths = texts(&client, ".opblock-summary-path").await;
    assert!(
        paths.iter().any(|path| path == "/api/1/advisors"),
        "{paths:?}"
    );
    screenshot(&client, "swagger-ui").await;
    client.close().await.unwrap();
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The parameters the dashboard relies on: `stale_days` on `/api/1/accounts`, `sort` on
/// `/api/1/unused/accounts`, `status` on `/api/1/unused` (the rows behind each count), and
/// their bad values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parameters_the_dashboard_relies_on() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let _sim = collect_demo_world(&db).await;
    let app = spawn_app(&db.db).await;
    let all = app.get("/api/1/accounts?count=1000").await.json();
    let never_ok: Vec<&str> = all["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["last_success"].is_null())
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        never_ok.len(),
        7,
        "six failed accounts and the partial sandbox"
    );
    let stale = app
        .get("/api/1/accounts?stale_days=1&count=1000")
        .await
        .json();
    let stale_ids: Vec<&str> = stale["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        stale_ids, never_ok,
        "collected just now: only those never collected"
    );
    // An account whose last success is older than the window.
    db.execute(
        "UPDATE aardvark_run_accounts SET started_at = '2020-01-01 00:00:00.000000' WHERE account_id = '100000000000'",
    )
    .await;
    let app = spawn_app(&db.db).await; // a new server: its kept outcomes are read afresh
    let stale = app
        .get("/api/1/accounts?stale_days=30&count=1000")
        .await
        .json();
    assert_eq!(stale["total"], never_ok.len() + 1, "{stale}");
    app.get("/api/1/accounts?stale_days=0")
        .await
        .assert_error(400, "stale_days");
    app.get("/api/1/accounts?stale_days=x")
        .await
        .assert_error(400, "stale_days");

    for (sort, key) in [
        ("unused", "unused"),
        ("with_unused_services", "with_unused_services"),
        ("principals", "principals"),
    ] {
        let page = app
            .get(&format!("/api/1/unused/accounts?sort={sort}&count=1000"))
            .await
            .json();
        let values: Vec<i64> = page["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a[key].as_i64().unwrap())
            .collect();
        assert!(
            values.windows(2).all(|pair| pair[0] >= pair[1]),
            "{sort}: {values:?}"
        );
    }
    let by_id = app
        .get("/api/1/unused/accounts?sort=account&count=1000")
        .await
        .json();
    let ids: Vec<&str> = by_id["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    app.get("/api/1/unused/accounts?sort=size")
        .await
        .assert_error(400, "sort");

    // Behind each count of an account, exactly the principals it counts.
    for days in [30, 365] {
        let totals = app
            .get(&format!("/api/1/unused/accounts?days={days}&count=1000"))
            .await
            .json();
        for account in totals["accounts"].as_array().unwrap() {
            let id = account["account"].as_str().unwrap();
            for status in ["unused", "with_unused_services", "too_new"] {
                let page = app
                    .get(&format!(
                        "/api/1/unused?account={id}&days={days}&status={status}&count=1000"
                    ))
                    .await
                    .json();
                assert_eq!(
                    page["total"], account[status],
                    "{id} {status} over {days} days"
                );
                assert_eq!(
                    page["principals"].as_array().unwrap().len() as u64,
                    account[status].as_u64().unwrap()
                );
            }
        }
    }
    let paged = app.get("/api/1/unused?account=100000000000&days=3650&status=with_unused_services&count=2&page=2").await.json();
    assert_eq!(paged["page"], 2);
    assert!(paged["principals"].as_array().unwrap().len() <= 2);
    // Without `account`: the principals behind every account's count.
    let everywhere = app.get("/api/1/unused?status=unused&count=0").await.json();
    let totals = app.get("/api/1/unused/accounts?count=1000").await.json();
    let sum: u64 = totals["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|account| account["unused"].as_u64().unwrap())
        .sum();
    assert!(sum > 0);
    assert_eq!(everywhere["total"], sum);
    app.get("/api/1/unused?account=100000000000&status=idle")
        .await
        .assert_error(400, "status");
}
