//! Finding evaluation benchmark: `cargo bench -p aardvark --bench findings`.
//!
//! A database of 1,000 accounts x 100 principals (100,000: half roles, half users, each with
//! ten services, tags, a password and keys for users; about a third unused), then every
//! account's findings evaluated as `serve` and `update` do when the rules changed (every
//! account, several at once), twice: the first time every finding opens (inserts), the second
//! time they are seen again (the steady state). Prints what reading the facts alone takes, and
//! both times, per account and per principal, on SQLite and, when AARDVARK_BENCH_POSTGRES_URL
//! is set, on PostgreSQL (a database whose tables the benchmark drops). AARDVARK_BENCH_ACCOUNTS
//! changes the number of accounts.

use std::time::Instant;

use aardvark::api::wire::RENDERING;
use aardvark::db::identity::{
    AccessKeyRecord, AuthorizationDetails, IdentityRecord, UserCredentials,
};
use aardvark::db::vocabulary::{PrincipalListing, PrincipalUsage, ServiceUsage};
use aardvark::db::write::WriteOptions;
use aardvark::db::Database;
use aardvark::findings::{self, FindingRules};

// The shipped binary's allocator (src/main.rs says why).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PRINCIPALS: usize = 100;
const DAY_MS: i64 = 86_400_000;

fn account_id(i: usize) -> String {
    format!("{:012}", 300_000_000_000 + i)
}

/// One account's principals, identity details and credentials.
fn account_data(
    account: &str,
    now: i64,
) -> (
    Vec<PrincipalUsage>,
    AuthorizationDetails,
    Vec<UserCredentials>,
) {
    let mut usage = Vec::new();
    let mut details = AuthorizationDetails::default();
    let mut credentials = Vec::new();
    for i in 0..PRINCIPALS {
        let kind = if i % 2 == 0 { "role" } else { "user" };
        let arn = format!("arn:aws:iam::{account}:{kind}/p-{i:04}");
        // A third unused in the window, the rest used recently.
        let last = if i % 3 == 0 {
            now - 200 * DAY_MS
        } else {
            now - DAY_MS
        };
        let services = (0..10)
            .map(|s| ServiceUsage {
                service_name: format!("Service {s}"),
                service_namespace: format!("svc{s}"),
                last_authenticated: if s < 7 { last } else { 0 },
                total_authenticated_entities: 1,
                ..Default::default()
            })
            .collect();
        usage.push(PrincipalUsage {
            arn: arn.clone(),
            services,
            listing: Some(PrincipalListing {
                path: "/".into(),
                created_ms: Some(now - 1000 * DAY_MS),
            }),
        });
        details.principals.push(IdentityRecord {
            arn: arn.clone(),
            kind: kind.into(),
            created_ms: Some(now - 1000 * DAY_MS),
            last_used_ms: (kind == "role").then_some(last),
            tags: [("team".to_owned(), format!("t{}", i % 7))].into(),
            inline_policies: vec![("access".into(), serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))],
            ..Default::default()
        });
        if kind == "user" {
            credentials.push(UserCredentials {
                arn,
                user_name: format!("p-{i:04}"),
                created_ms: Some(now - 1000 * DAY_MS),
                password_enabled: true,
                password_last_used_ms: Some(last),
                password_last_changed_ms: Some(now - 1000 * DAY_MS),
                keys: vec![AccessKeyRecord {
                    slot: 1,
                    key_id: Some(format!("AKIA{account}{i:04}")),
                    active: true,
                    created_ms: Some(now - 1000 * DAY_MS),
                    last_used_ms: Some(last),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
    }
    (usage, details, credentials)
}

async fn bench(db: &Database, backend: &str, accounts: usize) {
    db.migrate().await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let filled = Instant::now();
    for i in 0..accounts {
        let account = account_id(i);
        let (usage, details, credentials) = account_data(&account, now);
        db.store_principals(&usage, WriteOptions::default())
            .await
            .unwrap();
        db.store_authorization_details(&account, &details)
            .await
            .unwrap();
        db.store_credentials(&account, &credentials).await.unwrap();
    }
    println!(
        "findings on {backend}: {accounts} accounts x {PRINCIPALS} principals stored in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    // What evaluation reads, alone.
    let started = Instant::now();
    for i in 0..accounts {
        db.account_facts(&account_id(i)).await.unwrap();
    }
    println!(
        "  reading every account's facts: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    // As `serve` or `update` does when the rules changed: every account, several at once.
    // First every finding opens; then, with an exclusion that matches nothing added, every
    // finding is seen again (what a collection's evaluations do once findings exist).
    let unrelated = FindingRules {
        exclusions: vec![aardvark::findings::Exclusion::parse("999999999999").unwrap()],
        ..FindingRules::default()
    };
    for (pass, rules) in [
        ("first (every finding opens)", FindingRules::default()),
        ("again (every finding seen again)", unrelated),
    ] {
        let started = Instant::now();
        let evaluated = findings::reevaluate_if_rules_changed(db, &rules)
            .await
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let principals = (accounts * PRINCIPALS) as f64;
        println!(
            "  evaluation {pass}: {seconds:.2} s for {evaluated} accounts, {principals:.0} principals ({:.2} ms per account, {:.1} us per principal)",
            1000.0 * seconds / accounts as f64,
            1e6 * seconds / principals
        );
    }
    // What a collection's evaluation of one account changes once nothing moved: nothing.
    let changes = findings::evaluate_account(
        db,
        &account_id(0),
        findings::Judged::ALL,
        &FindingRules::default(),
        None,
    )
    .await
    .unwrap();
    println!("  one account evaluated again: {changes:?}");
    let (total, _) = db.findings_page(&Default::default(), 0, 0).await.unwrap();
    println!("  {total} findings stored");
}

#[tokio::main]
async fn main() {
    let accounts: usize = std::env::var("AARDVARK_BENCH_ACCOUNTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite:///{}", dir.path().join("findings.db").display());
    let db = Database::connect(&uri, RENDERING).await.unwrap();
    bench(&db, "SQLite", accounts).await;
    db.close().await;
    if let Some(url) = std::env::var("AARDVARK_BENCH_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        let db = Database::connect(&url, RENDERING).await.unwrap();
        let _ = db.drop_all().await;
        bench(&db, "PostgreSQL", accounts).await;
        let _ = db.drop_all().await;
        db.close().await;
    }
}
