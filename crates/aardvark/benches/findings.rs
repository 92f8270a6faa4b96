//! Finding evaluation and recommendation benchmark: `cargo bench -p aardvark --bench findings`.
//!
//! A database of 1,000 accounts x 100 principals (100,000: half roles, half users, each with
//! ten services, tags, a password and keys for users; about a third unused; each with an
//! inline policy granting its ten services, roles sharing a customer-managed policy, users in
//! one of five groups with a policy of its own), then every account's findings evaluated as
//! `serve` and `update` do when the rules changed (every account, several at once), twice: the
//! first time every finding opens (inserts), the second time they are seen again (the steady
//! state; three times). Evaluation includes the recommendations of every principal with unused
//! permissions (every one here); they are then timed alone, computed and written (three times
//! account after account, three times several accounts at once), then from unchanged inputs.
//! Prints per account and per principal, on SQLite and, when AARDVARK_BENCH_POSTGRES_URL is
//! set, on PostgreSQL (a database whose tables the benchmark drops). AARDVARK_BENCH_ACCOUNTS
//! changes the number of accounts.

use std::time::Instant;

use aardvark::api::wire::RENDERING;
use aardvark::db::identity::{
    compact_json, AccessKeyRecord, AuthorizationDetails, IdentityRecord, ManagedPolicy,
    UserCredentials,
};
use aardvark::db::vocabulary::{PrincipalListing, PrincipalUsage, ServiceUsage};
use aardvark::db::write::WriteOptions;
use aardvark::db::Database;
use aardvark::findings::{self, FindingRules};

// The shipped binary's allocator (src/main.rs says why).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PRINCIPALS: usize = 100;
const DAY_MS: i64 = 86_400_000;
const GROUPS: usize = 5;

/// A policy granting every action of each of `services`.
/// A policy granting every action of `services`, as the collector hands documents to storage.
fn grant(services: impl IntoIterator<Item = usize>) -> String {
    let actions: Vec<String> = services.into_iter().map(|s| format!("svc{s}:*")).collect();
    compact_json(
        &serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}),
    )
}

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
    let shared = format!("arn:aws:iam::{account}:policy/shared");
    details.policies.push(ManagedPolicy {
        arn: shared.clone(),
        name: "shared".into(),
        default_version: "v1".into(),
        document: grant([0, 5, 9]),
    });
    for g in 0..GROUPS {
        details.principals.push(IdentityRecord {
            arn: format!("arn:aws:iam::{account}:group/g{g}"),
            kind: "group".into(),
            created_ms: Some(now - 1000 * DAY_MS),
            inline_policies: vec![("team".into(), grant([g, 8]))],
            ..Default::default()
        });
    }
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
            inline_policies: vec![("access".into(), grant(0..10))],
            managed_policies: if kind == "role" {
                vec![shared.clone()]
            } else {
                Vec::new()
            },
            groups: if kind == "user" {
                vec![format!("g{}", i % GROUPS)]
            } else {
                Vec::new()
            },
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

/// Passes timed more than once, for the median: between runs on this machine a figure moves
/// by up to 15%.
const ROUNDS: usize = 3;

fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds[seconds.len() / 2]
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
    let principals = (accounts * PRINCIPALS) as f64;
    let report = |pass: &str, seconds: f64, evaluated: usize| {
        println!(
            "  evaluation {pass}: {seconds:.2} s for {evaluated} accounts, {principals:.0} principals ({:.2} ms per account, {:.1} us per principal)",
            1000.0 * seconds / accounts as f64,
            1e6 * seconds / principals
        );
    };
    let started = Instant::now();
    let evaluated = findings::reevaluate_if_rules_changed(db, &FindingRules::default())
        .await
        .unwrap();
    report(
        "first (every finding opens)",
        started.elapsed().as_secs_f64(),
        evaluated,
    );
    // Then, each time with an exclusion added that matches nothing, every finding is seen
    // again (what a collection's evaluations do once findings exist); three times, the median
    // reported with the others.
    let mut again = Vec::new();
    for round in 0..ROUNDS {
        let unrelated = FindingRules {
            exclusions: vec![
                aardvark::findings::Exclusion::parse(&format!("99999999999{round}")).unwrap(),
            ],
            ..FindingRules::default()
        };
        let started = Instant::now();
        let evaluated = findings::reevaluate_if_rules_changed(db, &unrelated)
            .await
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        report(&format!("again, round {}", round + 1), seconds, evaluated);
        again.push(seconds);
    }
    report(
        "again (every finding seen again), median",
        median(again),
        accounts,
    );
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
    bench_recommendations(db, accounts).await;
}

/// Every account's recommendations alone, as evaluation makes them: from the facts and the
/// evaluation's findings (read and made beforehand, not timed), after their stored rows are
/// withdrawn (every one written again: account after account, then several at once as
/// evaluations run), then again from the same inputs (nothing computed or written).
async fn bench_recommendations(db: &Database, accounts: usize) {
    let rules = FindingRules::default();
    let now = chrono::Utc::now();
    // Leaked: the tasks below outlive this function's borrow checker's view of it.
    let stored_now: &'static str =
        Box::leak(aardvark::time::format_stored(now.naive_utc()).into_boxed_str());
    let mut inputs = Vec::with_capacity(accounts);
    for i in 0..accounts {
        let account = account_id(i);
        let facts = db.account_facts(&account).await.unwrap();
        let evaluation = findings::evaluate(
            &account,
            &facts,
            findings::Judged::ALL,
            &rules,
            now.timestamp_millis(),
        );
        // No holding: every current recommendation of the account is withdrawn.
        let nothing = aardvark::db::findings::Evaluation {
            account: account.clone(),
            ..Default::default()
        };
        inputs.push((facts, evaluation, nothing));
    }
    let inputs = std::sync::Arc::new(inputs);
    let at = findings::Evaluated {
        now_ms: now.timestamp_millis(),
        run_id: None,
        stored_now,
    };
    let withdraw_all = || async {
        for (facts, _, nothing) in inputs.iter() {
            findings::refresh_recommendations(db, facts, nothing, &rules, at)
                .await
                .unwrap();
        }
    };
    let principals = (accounts * PRINCIPALS) as f64;
    let started = Instant::now();
    let mut policies = Vec::with_capacity(accounts);
    for i in 0..accounts {
        policies.push(db.account_policies(&account_id(i)).await.unwrap());
    }
    println!(
        "  reading every account's policies: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut bytes = 0;
    for ((facts, evaluation, _), policies) in inputs.iter().zip(&policies) {
        let now_ms = now.timestamp_millis();
        let fresh = findings::recommendations(facts, policies, evaluation, &rules, now_ms);
        bytes += fresh.iter().map(|r| r.body.len()).sum::<usize>();
    }
    println!(
        "  computing every recommendation alone: {:.2} s ({:.0} bytes of JSON each)",
        started.elapsed().as_secs_f64(),
        bytes as f64 / principals
    );
    // Each account its own task, as `findings::reevaluate_if_rules_changed` runs them.
    let refresh_all = |at_once: usize| {
        let shared = inputs.clone();
        async move {
            use futures::{StreamExt, TryStreamExt};
            let started = Instant::now();
            let tasks = (0..shared.len()).map(|i| {
                let (db, shared) = (db.clone(), shared.clone());
                tokio::spawn(async move {
                    let (facts, evaluation, _) = &shared[i];
                    let rules = FindingRules::default();
                    findings::refresh_recommendations(&db, facts, evaluation, &rules, at).await
                })
            });
            let changes: Vec<_> = futures::stream::iter(tasks)
                .buffer_unordered(at_once)
                .map(Result::unwrap)
                .try_collect()
                .await
                .unwrap();
            let seconds = started.elapsed().as_secs_f64();
            let written: u64 = changes.iter().map(|c| c.written).sum();
            let unchanged: u64 = changes.iter().map(|c| c.unchanged).sum();
            (seconds, written, unchanged)
        }
    };
    let print = |pass: &str, (seconds, written, unchanged): (f64, u64, u64)| {
        println!(
            "  recommendations ({pass}): {seconds:.2} s for {principals:.0} principals ({:.1} us per principal; {written} written, {unchanged} unchanged)",
            1e6 * seconds / principals,
        );
    };
    // Written (every stored one withdrawn first), account after account, then as
    // evaluations make them (several accounts at once); each three times.
    for (how, at_once) in [
        ("one account at a time", 1),
        (
            "accounts at once as evaluation runs them",
            findings::EVALUATIONS_AT_ONCE,
        ),
    ] {
        let mut rounds = Vec::new();
        for round in 0..ROUNDS {
            withdraw_all().await;
            let pass = refresh_all(at_once).await;
            print(&format!("written, {how}, round {}", round + 1), pass);
            rounds.push(pass.0);
        }
        let median = median(rounds);
        println!(
            "  recommendations (written, {how}), median: {median:.2} s ({:.1} us per principal)",
            1e6 * median / principals
        );
    }
    // Computed again from the same inputs: nothing computed, nothing written.
    print("unchanged", refresh_all(1).await);
    let counts = db.recommendation_counts().await.unwrap();
    println!(
        "  {} recommendations in force ({} not offered)",
        counts.offered + counts.rejected,
        counts.rejected
    );
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
