//! `aardvark update` end to end: the collector, through the official SDK, against the AWS
//! simulator, into a real database; compared exactly with what the simulator says a correct
//! collector stores.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aardvark::collector::aws::AwsOverrides;
use aardvark::collector::progress::Progress;
use aardvark::collector::report::{AccountStatus, RunReport};
use aardvark::collector::{Collector, CollectorError, UpdateRequest};
use aardvark::config::{AccountSource, Granularity, Settings, SwagSettings};
use aardvark::db::vocabulary::AdvisorFilter;
use aardvark::db::{Database, Reader};
use aws_sdk_sts::config::Credentials;
use aws_sim::scenario::{Account, AccountStatus as SimStatus, Principal, ServiceUse, SwagBucket};
use aws_sim::{
    AccountFaults, AssumeRoleFault, Burst, ExpectedService, PrincipalFaults, PrincipalKind,
    RateLimit, Scenario, SimHandle,
};
use common::{assert_same, fresh_db, stored, Backend, TestDb};

/// Every run must end well within this; a hang fails the test instead of blocking CI.
const RUN_DEADLINE: Duration = Duration::from_secs(180);

fn settings_for(sim: &SimHandle, db: &TestDb) -> Settings {
    Settings {
        database_uri: db.uri.clone(),
        accounts: sim.account_ids().to_vec(),
        account_source: AccountSource::Static,
        updater_num_threads: 64,
        updater_principal_concurrency: 8,
        updater_account_rate_limit: 0.0,
        updater_poll_interval: Duration::from_millis(2),
        updater_poll_max_interval: Duration::from_millis(20),
        ..Settings::default()
    }
}

async fn collect(
    sim: &SimHandle,
    db: &Database,
    settings: Settings,
    request: UpdateRequest,
) -> Result<RunReport, CollectorError> {
    let collector = common::collector_for(sim, db, settings).await;
    tokio::time::timeout(RUN_DEADLINE, collector.run(&request, Progress::logs()))
        .await
        .expect("the run ended")
}

fn account_id(i: u64) -> String {
    format!("{:012}", 100_000_000_000 + i)
}

/// 200 accounts of 4 principals (plus the collector's own role), 20 of them SCP-denied at
/// `denied` positions, 30 ms per IAM call.
fn seed_scenario(denied: &[u64]) -> Scenario {
    let mut scenario = Scenario::generated(42, 200, 4);
    scenario.defaults.latency_ms = 30;
    for &i in denied {
        scenario = scenario.with_account_faults(
            &account_id(i),
            AccountFaults {
                assume_role: Some(AssumeRoleFault::ScpDeny),
                ..Default::default()
            },
        );
    }
    scenario
}

async fn seed_scenario_run(denied: &[u64]) {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let sim = aws_sim::start(seed_scenario(denied)).await.unwrap();
    let mut settings = settings_for(&sim, &db);
    settings.updater_num_threads = 16;
    settings.updater_principal_concurrency = 2;
    let report = collect(&sim, &db.db, settings, UpdateRequest::default())
        .await
        .unwrap();

    assert_eq!(report.accounts.len(), 200);
    assert_eq!(report.exit_code(), 2);
    for &i in denied {
        let account = report.account(&account_id(i)).unwrap();
        assert_eq!(account.status, AccountStatus::Failed);
        let failure = account.failure.as_ref().unwrap();
        assert_eq!(failure.code, "AccessDenied");
        assert!(
            failure
                .message
                .ends_with("with an explicit deny in a service control policy"),
            "{}",
            failure.message
        );
        assert!(report
            .summary()
            .contains(&format!("{}: AccessDenied", account_id(i))));
    }
    assert_eq!(
        report
            .accounts
            .iter()
            .filter(|a| a.status == AccountStatus::Ok)
            .count(),
        180
    );
    assert_same(&stored(&db.db).await, sim.expected());

    let stats = sim.stats();
    for &i in denied {
        assert_eq!(
            stats.calls_of(&account_id(i), "AssumeRole"),
            1,
            "no retry of a denied AssumeRole"
        );
        assert_eq!(stats.calls_in(&account_id(i)), 1);
    }
    // Full concurrency to the end: in every stretch of the run until the last accounts drain,
    // as many requests were in flight as the account bound allows.
    let history = &stats.in_flight_history;
    let stretch = history.len() / 10;
    for decile in 1..9 {
        let peak = history[decile * stretch..(decile + 1) * stretch]
            .iter()
            .max()
            .copied()
            .unwrap_or(0);
        assert!(
            peak >= 12,
            "only {peak} requests in flight in decile {decile} of the run"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_with_scp_denials_scattered() {
    let denied: Vec<u64> = (0..20).map(|i| i * 10 + 3).collect();
    seed_scenario_run(&denied).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_with_scp_denials_all_at_the_front() {
    let denied: Vec<u64> = (0..20).collect();
    seed_scenario_run(&denied).await;
}

/// Each account-level row of the failure table: the account fails with AWS's reason, once,
/// and the other accounts are unaffected.
#[tokio::test]
async fn account_failures_are_isolated_and_classified() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut scenario = Scenario::generated(7, 6, 4)
        .with_account_faults(
            &account_id(0),
            AccountFaults {
                assume_role: Some(AssumeRoleFault::RoleMissing),
                ..Default::default()
            },
        )
        .with_account_faults(
            &account_id(1),
            AccountFaults {
                assume_role: Some(AssumeRoleFault::TrustDenied),
                ..Default::default()
            },
        )
        .with_account_faults(
            &account_id(2),
            AccountFaults {
                deny_listing: vec![PrincipalKind::Group],
                ..Default::default()
            },
        )
        .with_account_faults(
            &account_id(3),
            AccountFaults {
                server_errors: Some(Burst {
                    first: 0,
                    every: 1,
                    status: Some(500),
                }),
                ..Default::default()
            },
        );
    scenario.accounts.push(Account {
        id: "555555555555".into(),
        status: SimStatus::Suspended,
        ..Default::default()
    });
    let sim = aws_sim::start(scenario).await.unwrap();
    let mut settings = settings_for(&sim, &db);
    settings.updater_max_attempts = 2;
    let report = collect(&sim, &db.db, settings, UpdateRequest::default())
        .await
        .unwrap();
    let failure = |id: &str| {
        let account = report.account(id).unwrap();
        assert_eq!(account.status, AccountStatus::Failed, "{id}");
        account.failure.clone().unwrap()
    };
    assert_eq!(failure(&account_id(0)).code, "AccessDenied");
    assert_eq!(failure(&account_id(1)).code, "AccessDenied");
    let listing = failure(&account_id(2));
    assert_eq!(listing.code, "AccessDenied");
    assert!(
        listing.message.starts_with("ListGroups: ") && listing.message.contains("iam:ListGroups"),
        "{}",
        listing.message
    );
    let server = failure(&account_id(3));
    assert_eq!(server.code, "InternalFailure");
    assert!(server.message.contains("ListRoles"), "{}", server.message);
    let suspended = failure("555555555555");
    assert!(
        suspended.message.contains("suspended"),
        "{}",
        suspended.message
    );
    for ok in [4, 5] {
        assert_eq!(
            report.account(&account_id(ok)).unwrap().status,
            AccountStatus::Ok
        );
    }
    // Account 3 answers every call with a 5xx, which the simulator's expectation does not know.
    let reachable: BTreeMap<String, Vec<ExpectedService>> = sim
        .expected()
        .iter()
        .filter(|(arn, _)| arn.contains(&account_id(4)) || arn.contains(&account_id(5)))
        .map(|(arn, services)| (arn.clone(), services.clone()))
        .collect();
    assert_same(&stored(&db.db).await, &reachable);
    let stats = sim.stats();
    assert_eq!(
        stats.calls_of(&account_id(2), "ListGroups"),
        1,
        "AccessDenied is not retried"
    );
    assert_eq!(
        stats.calls_of(&account_id(3), "ListRoles"),
        2,
        "5xx retried up to UPDATER_MAX_ATTEMPTS"
    );

    // The run and each account's outcome are recorded.
    let runs = db.db.recent_runs(5).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].status.as_str(),
            runs[0].totals.accounts_failed,
            runs[0].totals.accounts_ok
        ),
        ("partial", 5, 2)
    );
    assert!(runs[0].finished_at.is_some());
    let recorded = db.db.run_accounts(runs[0].id).await.unwrap();
    assert_eq!(recorded.len(), 7);
    let denied = recorded
        .iter()
        .find(|r| r.account_id == account_id(2))
        .unwrap();
    assert_eq!(
        (denied.status.as_str(), denied.error_code.as_deref()),
        ("failed", Some("AccessDenied"))
    );
}

/// Transient faults (5xx bursts, dropped connections, throttling) are absorbed by the SDK's
/// retries; every principal is still collected exactly.
#[tokio::test]
async fn transient_faults_are_retried_and_everything_is_collected() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let scenario = Scenario::generated(8, 4, 8)
        .with_account_faults(
            &account_id(0),
            AccountFaults {
                server_errors: Some(Burst {
                    first: 2,
                    every: 7,
                    status: Some(503),
                }),
                ..Default::default()
            },
        )
        .with_account_faults(
            &account_id(1),
            AccountFaults {
                dropped_connections: Some(Burst {
                    first: 1,
                    every: 9,
                    status: None,
                }),
                ..Default::default()
            },
        )
        .with_account_faults(
            &account_id(2),
            AccountFaults {
                server_errors: Some(Burst {
                    first: 1,
                    every: 5,
                    status: Some(500),
                }),
                ..Default::default()
            },
        );
    let sim = aws_sim::start(scenario).await.unwrap();
    let report = collect(
        &sim,
        &db.db,
        settings_for(&sim, &db),
        UpdateRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.summary());
    assert_same(&stored(&db.db).await, sim.expected());
}

/// `UPDATER_PRINCIPALS_IN_FLIGHT` bounds the principals between their job and their write over
/// the whole run, whatever each account's own concurrency allows, and every principal is still
/// stored. The same run without the bound shows that the simulator sees the difference.
#[tokio::test]
async fn principals_in_flight_are_bounded_over_every_account() {
    const ACCOUNTS: u64 = 3;
    const PLACES: usize = 2;
    for bounded in [true, false] {
        let Some(db) = fresh_db(Backend::Sqlite).await else {
            return;
        };
        let mut scenario = Scenario::generated(12, ACCOUNTS as u32, 12);
        scenario.defaults.latency_ms = 20;
        let sim = aws_sim::start(scenario).await.unwrap();
        let mut settings = settings_for(&sim, &db);
        settings.updater_identity_details = false;
        settings.updater_principal_concurrency = 32;
        if bounded {
            settings.updater_principals_in_flight = PLACES;
        }
        let report = collect(&sim, &db.db, settings, UpdateRequest::default())
            .await
            .unwrap();
        assert_eq!(report.exit_code(), 0, "{}", report.summary());
        assert_same(&stored(&db.db).await, sim.expected());
        // Besides the principals' calls, each account has at most one listing call in flight.
        let most = sim.stats().peak_in_flight_total;
        let allowed = PLACES as u64 + ACCOUNTS;
        if bounded {
            assert!(most <= allowed, "{most} requests in flight at once");
        } else {
            assert!(
                most > allowed,
                "unbounded, only {most} requests in flight at once"
            );
        }
    }
}

/// A call that takes longer than its attempt timeout is retried, then fails its account with
/// the reason; the other accounts are unaffected.
#[tokio::test]
async fn timeouts_fail_the_account_after_retries() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let scenario = Scenario::generated(17, 2, 2).with_account_faults(
        &account_id(0),
        AccountFaults {
            latency_ms: 1_500,
            ..Default::default()
        },
    );
    let sim = aws_sim::start(scenario).await.unwrap();
    let mut settings = settings_for(&sim, &db);
    settings.updater_request_timeout = Duration::from_secs(1);
    settings.updater_max_attempts = 2;
    let report = collect(&sim, &db.db, settings, UpdateRequest::default())
        .await
        .unwrap();
    let slow = report.account(&account_id(0)).unwrap();
    assert_eq!(slow.status, AccountStatus::Failed);
    assert_eq!(
        slow.failure.as_ref().unwrap().code,
        "Timeout",
        "{:?}",
        slow.failure
    );
    assert_eq!(sim.stats().calls_of(&account_id(0), "ListRoles"), 2);
    assert_eq!(
        report.account(&account_id(1)).unwrap().status,
        AccountStatus::Ok
    );
}

#[tokio::test]
async fn throttling_storm_is_survived_and_the_rate_limit_respected() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut scenario = Scenario::generated(9, 4, 8);
    scenario.defaults.rate_limit = Some(RateLimit {
        per_second: 20.0,
        burst: 5,
    });
    let sim = aws_sim::start(scenario).await.unwrap();
    // Unpaced, the collector runs into the limit at once; the SDK's retries ride it out.
    let report = collect(
        &sim,
        &db.db,
        settings_for(&sim, &db),
        UpdateRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.summary());
    assert_same(&stored(&db.db).await, sim.expected());
    let stormy = sim.stats().throttles.values().sum::<u64>();
    assert!(stormy > 0, "the storm happened");

    // Paced at the limit, throttling stays rare.
    let Some(db2) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let sim2 = aws_sim::start(sim.scenario().clone()).await.unwrap();
    let mut paced = settings_for(&sim2, &db2);
    paced.updater_account_rate_limit = 18.0;
    paced.updater_account_burst = 5;
    let report = collect(&sim2, &db2.db, paced, UpdateRequest::default())
        .await
        .unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.summary());
    assert_same(&stored(&db2.db).await, sim2.expected());
    let paced_throttles = sim2.stats().throttles.values().sum::<u64>();
    assert!(
        paced_throttles * 4 <= stormy,
        "paced {paced_throttles} vs unpaced {stormy}"
    );
}

/// Paced faster than AWS allows, an account's pacer comes down to AWS's rate and stays near it
/// (a pacer that kept its rate would be throttled about four times for every call answered);
/// throttles at an account's start cost it a slot each. Every throttled call is sent again
/// until it is answered: everything is stored.
#[tokio::test]
async fn throttled_accounts_settle_at_their_limit() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let scenario = Scenario::generated(28, 3, 8)
        .with_account_faults(
            &account_id(0),
            AccountFaults {
                rate_limit: Some(RateLimit {
                    per_second: 10.0,
                    burst: 2,
                }),
                ..Default::default()
            },
        )
        .with_account_faults(
            &account_id(1),
            AccountFaults {
                throttles: Some(Burst {
                    first: 2,
                    every: 0,
                    status: None,
                }),
                ..Default::default()
            },
        );
    let sim = aws_sim::start(scenario).await.unwrap();
    let mut settings = settings_for(&sim, &db);
    settings.updater_account_rate_limit = 50.0;
    settings.updater_account_burst = 25;
    // Throttles count for nothing against the attempts: AWS is asked again until it answers.
    settings.updater_max_attempts = 1;
    let report = collect(&sim, &db.db, settings, UpdateRequest::default())
        .await
        .unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.summary());
    assert_same(&stored(&db.db).await, sim.expected());
    let stats = sim.stats();
    let limited = account_id(0);
    let throttled = stats.throttles.get(&limited).copied().unwrap_or(0);
    let answered = stats.calls_in(&limited) - throttled;
    assert!(throttled > 0, "the limit was reached");
    assert!(
        throttled * 2 <= answered,
        "{throttled} throttled for {answered} answered"
    );
    assert_eq!(stats.throttles.get(&account_id(1)), Some(&2));
    assert_eq!(stats.throttles.len(), 2, "{:?}", stats.throttles);
}

#[tokio::test]
async fn listings_and_job_results_are_paginated() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut scenario = Scenario::generated(10, 3, 30);
    scenario.defaults.page_size = Some(2);
    scenario.defaults.job_polls = Some(3);
    let sim = aws_sim::start(scenario).await.unwrap();
    let report = collect(
        &sim,
        &db.db,
        settings_for(&sim, &db),
        UpdateRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.summary());
    assert_same(&stored(&db.db).await, sim.expected());
    let stats = sim.stats();
    assert!(
        stats.calls_of(&account_id(0), "ListRoles") >= 4,
        "listings took several pages"
    );
    let principals = sim.expected().len() as u64;
    assert!(
        stats.total_calls_of("GetServiceLastAccessedDetails") > 3 * principals,
        "job results took several pages"
    );
}

fn explicit_principal(
    name: &str,
    services: Vec<(&str, Option<i64>)>,
    faults: PrincipalFaults,
) -> Principal {
    Principal {
        kind: PrincipalKind::Role,
        name: name.into(),
        path: "/".into(),
        services: Some(
            services
                .into_iter()
                .map(|(namespace, last)| ServiceUse {
                    namespace: namespace.into(),
                    name: None,
                    last_authenticated_ms: last,
                    entity: last.map(|_| format!("arn:aws:iam::222222222222:role/{name}")),
                    total_entities: u32::from(last.is_some()),
                    region: None,
                    actions: Vec::new(),
                })
                .collect(),
        ),
        faults,
        identity: None,
    }
}

fn one_account(principals: Vec<Principal>) -> Scenario {
    let mut scenario = Scenario::default();
    scenario.accounts.push(Account {
        id: "222222222222".into(),
        principals,
        ..Default::default()
    });
    scenario
}

const ARN_STEADY: &str = "arn:aws:iam::222222222222:role/steady";
const ARN_FLAKY: &str = "arn:aws:iam::222222222222:role/flaky";

/// Principal-level rows of the failure table, and a second run over stored data: newer wins,
/// aged out becomes 0, and a principal that fails or vanishes keeps what was stored.
async fn second_run_updates_and_failures_keep_stored_data(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let first = one_account(vec![
        explicit_principal(
            "steady",
            vec![
                ("s3", Some(1_700_000_000_000)),
                ("ec2", Some(1_700_000_000_000)),
                ("sns", None),
            ],
            PrincipalFaults::default(),
        ),
        explicit_principal(
            "flaky",
            vec![("s3", Some(1_700_000_000_000))],
            PrincipalFaults::default(),
        ),
        explicit_principal(
            "gone",
            vec![("kms", Some(1_700_000_000_000))],
            PrincipalFaults::default(),
        ),
        explicit_principal(
            "slow",
            vec![("kms", Some(1_700_000_000_000))],
            PrincipalFaults::default(),
        ),
        explicit_principal(
            "broken",
            vec![("kms", Some(1_700_000_000_000))],
            PrincipalFaults::default(),
        ),
    ]);
    let sim = aws_sim::start(first).await.unwrap();
    let report = collect(
        &sim,
        &db.db,
        settings_for(&sim, &db),
        UpdateRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.summary());
    let first_run = report.run_id;
    let before = stored(&db.db).await;
    let stamps_before = Reader::new(db.db.clone())
        .advisors(&AdvisorFilter::default(), 1, 100)
        .await
        .unwrap();
    sim.shutdown().await;

    let second = one_account(vec![
        explicit_principal(
            "steady",
            vec![
                ("s3", Some(1_800_000_000_000)),
                ("ec2", None),
                ("sns", None),
            ],
            PrincipalFaults::default(),
        ),
        explicit_principal(
            "flaky",
            vec![("s3", Some(1_800_000_000_000))],
            PrincipalFaults {
                job_failed: true,
                ..Default::default()
            },
        ),
        explicit_principal(
            "gone",
            vec![("kms", Some(1_800_000_000_000))],
            PrincipalFaults {
                vanishes: true,
                ..Default::default()
            },
        ),
        explicit_principal(
            "slow",
            vec![("kms", Some(1_800_000_000_000))],
            PrincipalFaults {
                job_never_completes: true,
                ..Default::default()
            },
        ),
        explicit_principal(
            "broken",
            vec![("kms", Some(1_800_000_000_000))],
            PrincipalFaults {
                malformed_result: true,
                ..Default::default()
            },
        ),
    ]);
    let sim = aws_sim::start(second).await.unwrap();
    let mut settings = settings_for(&sim, &db);
    settings.updater_job_timeout = Duration::from_secs(1);
    settings.updater_failing_arns = vec![ARN_FLAKY.into()];
    let report = collect(&sim, &db.db, settings, UpdateRequest::default())
        .await
        .unwrap();
    assert_eq!(report.exit_code(), 2);
    let account = &report.accounts[0];
    assert_eq!(account.status, AccountStatus::Partial);
    assert_eq!(
        account.vanished,
        vec!["arn:aws:iam::222222222222:role/gone".to_owned()]
    );
    let failures: BTreeMap<&str, &str> = account
        .failed
        .iter()
        .map(|f| (f.arn.as_str(), f.failure.code.as_str()))
        .collect();
    assert_eq!(
        failures,
        BTreeMap::from([
            ("arn:aws:iam::222222222222:role/broken", "MalformedResponse"),
            (ARN_FLAKY, "ServiceFailure"),
            ("arn:aws:iam::222222222222:role/slow", "JobTimeout"),
        ])
    );

    let after = stored(&db.db).await;
    let steady = &after[ARN_STEADY];
    let find = |ns: &str| {
        steady
            .iter()
            .find(|s| s.service_namespace == ns)
            .unwrap()
            .last_authenticated
    };
    assert_eq!(
        (find("s3"), find("ec2"), find("sns")),
        (1_800_000_000_000, 0, 0),
        "newer wins; aged out becomes 0"
    );
    for arn in [
        ARN_FLAKY,
        "arn:aws:iam::222222222222:role/gone",
        "arn:aws:iam::222222222222:role/slow",
        "arn:aws:iam::222222222222:role/broken",
    ] {
        assert_eq!(after[arn], before[arn], "{arn} keeps its stored rows");
    }
    let stamps_after = Reader::new(db.db.clone())
        .advisors(&AdvisorFilter::default(), 1, 100)
        .await
        .unwrap();
    for (old, new) in stamps_before
        .principals()
        .unwrap()
        .iter()
        .zip(&stamps_after.principals().unwrap())
    {
        if old.arn == ARN_STEADY || old.arn.ends_with(":role/Aardvark") {
            assert_ne!(
                old.last_updated, new.last_updated,
                "collected principals are stamped"
            );
        } else {
            assert_eq!(
                old.last_updated, new.last_updated,
                "{} keeps its lastUpdated",
                old.arn
            );
        }
    }
    let recorded = db.db.run_accounts(report.run_id).await.unwrap();
    assert_eq!(recorded[0].failures.len(), 3);

    // The history holds each first value and each change, with the run that saw it; the
    // principals that failed or vanished gained nothing.
    let history = |arn: &'static str| {
        let db = db.db.clone();
        async move {
            let page = db.history(arn, None, 0, 100).await.unwrap().unwrap();
            page.changes
                .into_iter()
                .map(|c| (c.namespace, c.last_authenticated, c.previous, c.run_id))
                .collect::<Vec<_>>()
        }
    };
    let first = (Some(first_run), Some(report.run_id));
    assert_eq!(
        history(ARN_STEADY).await,
        [
            ("ec2".to_owned(), 1_700_000_000_000, None, first.0),
            ("s3".to_owned(), 1_700_000_000_000, None, first.0),
            ("sns".to_owned(), 0, None, first.0),
            ("ec2".to_owned(), 0, Some(1_700_000_000_000), first.1),
            (
                "s3".to_owned(),
                1_800_000_000_000,
                Some(1_700_000_000_000),
                first.1
            ),
        ]
    );
    assert_eq!(
        history(ARN_FLAKY).await,
        [("s3".to_owned(), 1_700_000_000_000, None, first.0)]
    );
    assert_eq!(
        history("arn:aws:iam::222222222222:role/broken").await,
        [("kms".to_owned(), 1_700_000_000_000, None, first.0)]
    );
}

/// Whether `text` is an RFC 3339 UTC time to the second (`2026-12-01T10:00:00Z`).
fn is_rfc3339(text: &serde_json::Value) -> bool {
    text.as_str()
        .is_some_and(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%SZ").is_ok())
}

/// The operator's endpoints over the wire, after a collection with failures of every kind
/// (SCP denials, a missing role, a denied listing, a FAILED job, a vanished principal,
/// throttled accounts): each account's status and AWS's code and message as collected, each
/// run's counts, a run in progress with its live counts, paging and bad input.
async fn the_operator_api_says_which_accounts_failed_and_why(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let sim = aws_sim::start(Scenario::demo()).await.unwrap();
    let report = collect(
        &sim,
        &db.db,
        settings_for(&sim, &db),
        UpdateRequest::default(),
    )
    .await
    .unwrap();
    assert!(report
        .accounts
        .iter()
        .any(|a| a.status == AccountStatus::Failed));
    assert!(report.principals_vanished() > 0 && report.principals_failed() > 0);
    let app = common::spawn_app(&db.db).await;
    // The principal `aardvark demo` suggests for /api/1/actions has actions to show.
    let suggested = report
        .accounts
        .iter()
        .filter(|a| a.status == AccountStatus::Ok)
        .find_map(|a| sim.principal_with_tracked_actions(&a.id))
        .unwrap();
    let actions = app
        .get(&format!("/api/1/actions?arn={suggested}"))
        .await
        .json();
    assert!(
        actions["principals"][0]["actions"]
            .as_array()
            .is_some_and(|actions| !actions.is_empty()),
        "{actions}"
    );
    let count = |status: AccountStatus| {
        report
            .accounts
            .iter()
            .filter(|a| a.status == status)
            .count()
    };

    let runs = app.get("/api/1/runs").await;
    assert_eq!(runs.status, 200, "{}", runs.text);
    let runs = runs.json();
    let run = &runs["runs"][0];
    assert!(
        is_rfc3339(&run["started"]) && is_rfc3339(&run["finished"]),
        "{run}"
    );
    assert_eq!(
        runs,
        serde_json::json!({
            "count": 1, "page": 1, "total": 1,
            "runs": [{
                "id": report.run_id,
                "status": "partial",
                "started": run["started"],
                "finished": run["finished"],
                "accounts": {
                    "ok": count(AccountStatus::Ok),
                    "partial": count(AccountStatus::Partial),
                    "failed": count(AccountStatus::Failed),
                    "interrupted": 0,
                },
                "principals": {
                    "collected": report.principals_collected(),
                    "failed": report.principals_failed(),
                    "vanished": report.principals_vanished(),
                    "interrupted": 0,
                },
            }],
        })
    );

    let latest = app.get("/api/1/runs/latest").await.json();
    assert_eq!(
        latest,
        app.get(&format!("/api/1/runs/{}", report.run_id))
            .await
            .json()
    );
    let every = latest["accounts"].as_array().unwrap();
    assert_eq!(latest["total"], report.accounts.len());
    assert_eq!(latest["count"], report.accounts.len());
    // Pages of accounts are slices of the whole, in the order they were recorded.
    for (page, count) in [(1, 2), (2, 2), (3, 1000)] {
        let paged = app
            .get(&format!(
                "/api/1/runs/{}?page={page}&count={count}",
                report.run_id
            ))
            .await
            .json();
        let expected: Vec<_> = every
            .iter()
            .skip((page - 1) * count)
            .take(count)
            .cloned()
            .collect();
        assert_eq!(paged["accounts"], serde_json::Value::from(expected.clone()));
        assert_eq!(paged["count"], expected.len());
        assert_eq!(paged["page"], page);
        assert_eq!(paged["total"], report.accounts.len());
    }
    app.get(&format!("/api/1/runs/{}?count=1001", report.run_id))
        .await
        .assert_error(400, "count");
    let detail: BTreeMap<String, serde_json::Value> = every
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a.clone()))
        .collect();
    assert_eq!(detail.len(), report.accounts.len());
    for account in &report.accounts {
        let served = &detail[&account.id];
        let failure = account
            .failure
            .as_ref()
            .map(|f| serde_json::json!({"code": f.code, "message": f.message}));
        let failed: Vec<serde_json::Value> = account
            .failed
            .iter()
            .map(|p| serde_json::json!({"arn": p.arn, "code": p.failure.code, "message": p.failure.message}))
            .collect();
        // Every listed account had its identity parts collected; a failed one has none.
        let parts: Vec<serde_json::Value> = account
            .parts
            .iter()
            .map(|p| serde_json::json!({"part": p.part.as_str(), "status": p.status.as_str(), "failure": null}))
            .collect();
        let expected_parts = if account.status == AccountStatus::Failed {
            0
        } else {
            3
        };
        assert_eq!(parts.len(), expected_parts, "{}", account.id);
        assert_eq!(
            served,
            &serde_json::json!({
                "id": account.id,
                "name": account.name,
                "status": account.status.as_str(),
                "failure": failure,
                "collected": account.collected,
                "failed": failed,
                "vanished": account.vanished,
                "interrupted": 0,
                "pruned": [],
                "not_found": [],
                "parts": parts,
                "duration_ms": served["duration_ms"],
                // Collected once, by this process.
                "attempts": 1,
                "worker": {"host": this_host(), "pid": std::process::id()},
            }),
        );
    }
    let scp = report
        .accounts
        .iter()
        .find(|a| {
            a.failure.as_ref().is_some_and(|f| {
                f.message
                    .ends_with("explicit deny in a service control policy")
            })
        })
        .expect("an SCP-denied account");

    let accounts = app.get("/api/1/accounts?count=1000").await.json();
    assert_eq!(accounts["total"], report.accounts.len());
    let listed: BTreeMap<String, serde_json::Value> = accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a.clone()))
        .collect();
    let stored_now = stored(&db.db).await;
    for account in &report.accounts {
        let served = &listed[&account.id];
        let principals = stored_now
            .keys()
            .filter(|arn| arn.split(':').nth(4) == Some(account.id.as_str()))
            .count();
        assert_eq!(served["status"], account.status.as_str(), "{served}");
        assert_eq!(served["principals"], principals, "{served}");
        assert_eq!(served["last_run"], report.run_id);
        assert!(is_rfc3339(&served["last_attempt"]), "{served}");
        assert_eq!(
            is_rfc3339(&served["last_success"]),
            account.status == AccountStatus::Ok,
            "{served}"
        );
        assert_eq!(
            served["failure"],
            account.failure.as_ref().map_or(
                serde_json::Value::Null,
                |f| serde_json::json!({"code": f.code, "message": f.message})
            )
        );
    }
    assert_eq!(
        listed[&scp.id]["failure"]["code"], "AccessDenied",
        "an SCP denial reads as AWS wrote it"
    );
    let failed = app
        .get("/api/1/accounts?status=failed&count=1000")
        .await
        .json();
    assert_eq!(failed["total"], count(AccountStatus::Failed));
    let phrase = app
        .get(&format!("/api/1/accounts?phrase={}", &scp.id[6..]))
        .await
        .json();
    assert_eq!(phrase["accounts"][0]["id"], scp.id.as_str());
    let second = app.get("/api/1/accounts?count=5&page=2").await.json();
    assert_eq!(
        (second["count"].as_u64(), second["page"].as_u64()),
        (Some(5), Some(2))
    );
    assert_eq!(second["accounts"][0], accounts["accounts"][5]);

    // A run in progress shows what it has done so far.
    let owner = aardvark::db::runs::RunOwner::this_process();
    let running = db.db.start_run("{}", &owner).await.unwrap();
    let done = report
        .accounts
        .iter()
        .find(|a| a.status == AccountStatus::Ok)
        .unwrap();
    db.db.record_account(running, &done.record()).await.unwrap();
    let live = app.get("/api/1/runs/latest").await.json();
    assert_eq!(
        (&live["id"], &live["status"], &live["finished"]),
        (
            &serde_json::json!(running),
            &serde_json::json!("running"),
            &serde_json::Value::Null
        )
    );
    assert_eq!(live["principals"]["collected"], done.collected);
    // The accounts list, read before, follows the new record.
    let followed = app
        .get(&format!("/api/1/accounts?phrase={}", done.id))
        .await
        .json();
    assert_eq!(followed["accounts"][0]["last_run"], running);
    assert_eq!(live["accounts"].as_array().unwrap().len(), 1);
    let page = app.get("/api/1/runs?count=1&page=2").await.json();
    assert_eq!(
        (page["total"].as_u64(), page["runs"][0]["id"].as_i64()),
        (Some(2), Some(report.run_id))
    );

    // Bad input: JSON errors naming the parameter.
    app.get("/api/1/runs/999999")
        .await
        .assert_error(404, "no run 999999");
    app.get("/api/1/runs/abc")
        .await
        .assert_error(400, "invalid run id");
    app.get("/api/1/runs?page=0")
        .await
        .assert_error(400, "'page'");
    app.get("/api/1/accounts?count=1001")
        .await
        .assert_error(400, "from 0 to 1000");
    app.get("/api/1/accounts?status=bogus")
        .await
        .assert_error(400, "ok, partial, failed, interrupted, never");
}

/// Every tracked action the simulator holds for the collected principals, as the API
/// answers them: `(arn, namespace, action, lastAccessed, entity, region)`.
type ActionRow = (String, String, String, i64, Option<String>, Option<String>);

fn expected_actions(
    scenario: &Scenario,
    expected: &BTreeMap<String, Vec<ExpectedService>>,
) -> Vec<ActionRow> {
    let mut rows = Vec::new();
    for account in scenario.world().unwrap() {
        for principal in &account.principals {
            if !expected.contains_key(&principal.arn) {
                continue;
            }
            for service in &principal.services {
                for action in &service.actions {
                    rows.push((
                        principal.arn.clone(),
                        service.namespace.clone(),
                        action.name.clone(),
                        action.last_accessed_ms.unwrap_or(0),
                        action.entity.clone(),
                        action.region.clone(),
                    ));
                }
            }
        }
    }
    rows.sort();
    rows
}

async fn stored_actions(app: &common::TestApp) -> Vec<ActionRow> {
    let body = app.get("/api/1/actions?count=1000").await.json();
    let mut rows = Vec::new();
    for principal in body["principals"].as_array().unwrap() {
        for action in principal["actions"].as_array().unwrap() {
            let text = |key: &str| action[key].as_str().map(str::to_owned);
            rows.push((
                principal["arn"].as_str().unwrap().to_owned(),
                text("serviceNamespace").unwrap(),
                text("action").unwrap(),
                action["lastAccessed"].as_i64().unwrap(),
                text("entity"),
                text("region"),
            ));
        }
    }
    rows.sort();
    rows
}

/// At both granularities, the same services; at action level also every tracked action, and
/// each principal's kind, path and CreateDate from the listing.
async fn both_granularities_store_what_the_simulator_holds(backend: Backend) {
    for granularity in [Granularity::Action, Granularity::Service] {
        let Some(db) = fresh_db(backend).await else {
            return;
        };
        let scenario = Scenario::generated(41, 3, 12);
        let sim = aws_sim::start(scenario.clone()).await.unwrap();
        let mut settings = settings_for(&sim, &db);
        settings.updater_granularity = granularity;
        let report = collect(&sim, &db.db, settings, UpdateRequest::default())
            .await
            .unwrap();
        assert_eq!(report.exit_code(), 0, "{}", report.summary());
        assert_same(&stored(&db.db).await, sim.expected());
        let app = common::spawn_app(&db.db).await;
        let actions = stored_actions(&app).await;
        match granularity {
            Granularity::Action => {
                let expected = expected_actions(&scenario, sim.expected());
                assert!(expected.len() > 20, "the scenario tracks actions");
                assert_eq!(actions, expected);
            }
            Granularity::Service => assert!(actions.is_empty(), "{actions:?}"),
        }
        // Each used service's LastAuthenticatedRegion, at both granularities.
        let regions = db
            .strings("SELECT region FROM aardvark_service_regions")
            .await;
        let used = sim
            .expected()
            .values()
            .flatten()
            .filter(|s| s.last_authenticated > 0)
            .count();
        assert_eq!(regions.len(), used);
        assert!(
            regions.iter().all(|region| region == "us-east-1"),
            "{regions:?}"
        );
        let unused = app.get("/api/1/unused?count=1000").await.json();
        let principals = unused["principals"].as_array().unwrap();
        assert_eq!(principals.len(), sim.expected().len());
        for principal in principals {
            assert_eq!(principal["created"], "2020-01-01T00:00:00Z", "{principal}");
            let arn = principal["arn"].as_str().unwrap();
            let kind = principal["kind"].as_str().unwrap();
            assert!(arn.contains(&format!(":{kind}/")), "{arn} is a {kind}");
        }
    }
}

on_both_backends!(
    second_run_updates_and_failures_keep_stored_data,
    the_operator_api_says_which_accounts_failed_and_why,
    both_granularities_store_what_the_simulator_holds,
);

#[tokio::test]
async fn only_the_requested_arns_and_the_missing_ones_reported() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let sim = aws_sim::start(Scenario::generated(11, 3, 8)).await.unwrap();
    let wanted = format!("arn:aws:iam::{}:user/user-0001", account_id(1));
    let missing = format!("arn:aws:iam::{}:role/nobody", account_id(1));
    let request = UpdateRequest {
        arns: vec![
            wanted.to_uppercase().replace("ARN:AWS:IAM", "arn:aws:iam"),
            missing.clone(),
        ],
        ..Default::default()
    };
    let report = collect(&sim, &db.db, settings_for(&sim, &db), request)
        .await
        .unwrap();
    assert_eq!(
        report.accounts.len(),
        1,
        "only the ARNs' account is visited"
    );
    assert_eq!(report.arns_not_found().collect::<Vec<_>>(), vec![&missing]);
    assert_eq!(report.exit_code(), 2);
    assert!(report.summary().contains(&missing));
    let recorded = db.db.run_accounts(report.run_id).await.unwrap();
    assert_eq!(
        recorded[0].not_found,
        vec![missing.clone()],
        "the run's record names the ARN not found"
    );
    let data = stored(&db.db).await;
    assert_eq!(
        data.keys().cloned().collect::<Vec<_>>(),
        vec![wanted.clone()]
    );
    assert_eq!(data[&wanted], sim.expected()[&wanted]);

    let bad = collect(
        &sim,
        &db.db,
        settings_for(&sim, &db),
        UpdateRequest {
            arns: vec!["role/x".into()],
            ..Default::default()
        },
    )
    .await;
    assert!(matches!(bad, Err(CollectorError::InvalidArn(_))), "{bad:?}");

    // A mistyped account in -r is refused, not collected as a new account that fails forever.
    let mistyped = format!("arn:aws:iam::{}:role/x", "999999999999");
    let refused = collect(
        &sim,
        &db.db,
        settings_for(&sim, &db),
        UpdateRequest {
            arns: vec![mistyped],
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(&refused, Err(CollectorError::Accounts(message)) if message.contains("999999999999") && message.contains("-a 999999999999")),
        "{refused:?}"
    );
    // `-a all -r ARN` visits the ARN's account only.
    let report = collect(
        &sim,
        &db.db,
        settings_for(&sim, &db),
        UpdateRequest {
            accounts: vec!["all".into()],
            arns: vec![wanted.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let visited: Vec<&str> = report.accounts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(visited, [account_id(1).as_str()]);
    assert_eq!(
        sim.stats().calls_of(&account_id(0), "AssumeRole"),
        0,
        "no role assumed in accounts without -r ARNs"
    );
}

#[tokio::test]
async fn accounts_from_swag_by_name_alias_filter_and_service() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut scenario = Scenario::generated(12, 3, 4);
    scenario.swag = Some(SwagBucket {
        bucket: "swag".into(),
        key: "v2/accounts.json".into(),
        schema_version: 2,
    });
    scenario.accounts.push(Account {
        id: "777777777777".into(),
        name: Some("payments".into()),
        aliases: vec!["pay".into()],
        environment: Some("test".into()),
        generate: aws_sim::scenario::Generate {
            roles: 1,
            ..Default::default()
        },
        ..Default::default()
    });
    scenario.accounts.push(Account {
        id: "888888888888".into(),
        name: Some("no-aardvark".into()),
        swag_services: Some(vec![]),
        ..Default::default()
    });
    let sim = aws_sim::start(scenario).await.unwrap();
    let mut settings = settings_for(&sim, &db);
    settings.accounts = Vec::new();
    settings.account_source = AccountSource::Swag;
    settings.swag = Some(SwagSettings {
        bucket: Some("swag".into()),
        service_enabled_requirement: Some("aardvark".into()),
        ..Default::default()
    });
    let report = collect(&sim, &db.db, settings.clone(), UpdateRequest::default())
        .await
        .unwrap();
    let mut visited: Vec<&str> = report.accounts.iter().map(|a| a.id.as_str()).collect();
    visited.sort();
    assert_eq!(
        visited,
        [
            "100000000000",
            "100000000001",
            "100000000002",
            "777777777777"
        ],
        "the account without aardvark enabled is skipped"
    );

    let by_name = collect(
        &sim,
        &db.db,
        settings.clone(),
        UpdateRequest {
            accounts: vec!["pay".into(), "account-100000000001".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut visited: Vec<&str> = by_name.accounts.iter().map(|a| a.id.as_str()).collect();
    visited.sort();
    assert_eq!(visited, ["100000000001", "777777777777"]);
    assert_eq!(
        by_name.account("777777777777").unwrap().name.as_deref(),
        Some("payments")
    );

    // ACCOUNTS (upstream's AARDVARK_ACCOUNTS) chooses among SWAG's accounts, as -a does.
    let chosen = collect(
        &sim,
        &db.db,
        Settings {
            accounts: vec!["pay".into(), "100000000002".into()],
            ..settings.clone()
        },
        UpdateRequest::default(),
    )
    .await
    .unwrap();
    let mut visited: Vec<&str> = chosen.accounts.iter().map(|a| a.id.as_str()).collect();
    visited.sort();
    assert_eq!(visited, ["100000000002", "777777777777"]);

    // A name SWAG's filters leave out is reported as such, with the way to collect it.
    let excluded = collect(
        &sim,
        &db.db,
        settings.clone(),
        UpdateRequest {
            accounts: vec!["no-aardvark".into()],
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(&excluded, Err(CollectorError::Accounts(message))
            if message.contains("888888888888") && message.contains("filters leave it out")),
        "{excluded:?}"
    );

    settings.swag.as_mut().unwrap().filter = Some("[?environment=='test']".into());
    let filtered = collect(&sim, &db.db, settings.clone(), UpdateRequest::default())
        .await
        .unwrap();
    assert_eq!(
        filtered
            .accounts
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        ["777777777777"]
    );

    let unknown = collect(
        &sim,
        &db.db,
        settings,
        UpdateRequest {
            accounts: vec!["nonesuch".into()],
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(&unknown, Err(CollectorError::Accounts(message)) if message.contains("nonesuch")),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn accounts_from_organizations_are_the_active_ones() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut scenario = Scenario::generated(13, 23, 1);
    scenario.accounts.push(Account {
        id: "666666666666".into(),
        status: SimStatus::Suspended,
        ..Default::default()
    });
    let sim = aws_sim::start(scenario).await.unwrap();
    let mut settings = settings_for(&sim, &db);
    settings.account_source = AccountSource::Organizations;
    settings.accounts.clear();
    let report = collect(
        &sim,
        &db.db,
        settings,
        UpdateRequest {
            accounts: vec!["all".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        report.accounts.len(),
        23,
        "all ACTIVE accounts, over two pages, and not the suspended one"
    );
    assert_eq!(report.exit_code(), 0, "{}", report.summary());
    assert_same(&stored(&db.db).await, sim.expected());
}

#[tokio::test]
async fn pruning_follows_only_complete_listings() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let sim = aws_sim::start(Scenario::generated(14, 2, 4)).await.unwrap();
    collect(
        &sim,
        &db.db,
        settings_for(&sim, &db),
        UpdateRequest::default(),
    )
    .await
    .unwrap();
    // Principals AWS no longer has: one in a readable account, one in an account that fails.
    let ghost_ok = format!("arn:aws:iam::{}:role/deleted", account_id(0));
    let ghost_failed = format!("arn:aws:iam::{}:role/deleted", account_id(1));
    db.store(&[
        common::principal(&ghost_ok, vec![common::service("s3", 1, None, 1)]),
        common::principal(&ghost_failed, vec![common::service("s3", 1, None, 1)]),
    ])
    .await;
    sim.shutdown().await;
    let scenario = Scenario::generated(14, 2, 4).with_account_faults(
        &account_id(1),
        AccountFaults {
            deny_listing: vec![PrincipalKind::Policy],
            ..Default::default()
        },
    );
    let sim = aws_sim::start(scenario).await.unwrap();
    let report = collect(
        &sim,
        &db.db,
        settings_for(&sim, &db),
        UpdateRequest {
            prune: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        report.account(&account_id(0)).unwrap().pruned,
        [ghost_ok.as_str()]
    );
    let recorded = db.db.run_accounts(report.run_id).await.unwrap();
    let pruned: Vec<&String> = recorded.iter().flat_map(|a| &a.pruned).collect();
    assert_eq!(
        pruned,
        [&ghost_ok],
        "the run's record names what was pruned"
    );
    assert!(report.summary().contains(&ghost_ok), "{}", report.summary());
    let data = stored(&db.db).await;
    assert!(
        !data.contains_key(&ghost_ok),
        "absent from a complete listing: pruned"
    );
    assert!(
        data.contains_key(&ghost_failed),
        "the failed listing prunes nothing"
    );
}

#[tokio::test]
async fn a_lost_database_fails_the_run() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut scenario = Scenario::generated(15, 20, 8);
    scenario.defaults.latency_ms = 20;
    let sim = aws_sim::start(scenario).await.unwrap();
    let mut settings = settings_for(&sim, &db);
    settings.updater_num_threads = 2;
    let run_db = db.db.clone();
    let run = tokio::spawn({
        let settings = settings.clone();
        let overrides = AwsOverrides {
            endpoint_url: Some(sim.base_url.clone()),
            credentials: Some(Credentials::new("AKIDHUB", "s", None, None, "t")),
        };
        async move {
            let collector = Collector::new(settings, run_db, overrides).await;
            collector
                .run(&UpdateRequest::default(), Progress::logs())
                .await
        }
    });
    // Once the collection is under way, the database goes away.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sim.stats().total_calls_of("GetServiceLastAccessedDetails") < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "the collection did not start"
        );
        tokio::task::yield_now().await;
    }
    db.db.close().await;
    let result = tokio::time::timeout(RUN_DEADLINE, run)
        .await
        .expect("the run ended")
        .unwrap();
    assert!(
        matches!(result, Err(CollectorError::DatabaseLost(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn two_runs_at_once_on_one_database_are_safe() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let sim = aws_sim::start(Scenario::generated(16, 6, 8)).await.unwrap();
    let settings = settings_for(&sim, &db);
    let (a, b) = tokio::join!(
        collect(&sim, &db.db, settings.clone(), UpdateRequest::default()),
        collect(&sim, &db.db, settings, UpdateRequest::default())
    );
    assert_eq!(a.unwrap().exit_code(), 0);
    assert_eq!(b.unwrap().exit_code(), 0);
    assert_same(&stored(&db.db).await, sim.expected());
    assert_eq!(db.db.recent_runs(10).await.unwrap().len(), 2);
}

/// Sessions that last 2 s, accounts that take several: every session is renewed before it
/// runs out or at its first `ExpiredToken`, jobs outlive their session and are generated
/// again, and no principal fails.
#[tokio::test]
async fn collections_outlast_several_sessions_and_no_principal_fails() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut scenario = Scenario::generated(31, 3, 40);
    scenario.defaults.session_seconds = Some(2);
    scenario.defaults.latency_ms = 10;
    scenario.defaults.job_ms = Some(300);
    scenario.defaults.rate_limit = Some(RateLimit {
        per_second: 20.0,
        burst: 5,
    });
    let sim = aws_sim::start(scenario).await.unwrap();
    let mut settings = settings_for(&sim, &db);
    settings.updater_account_rate_limit = 20.0;
    settings.updater_account_burst = 5;
    settings.updater_principal_concurrency = 8;
    let started = std::time::Instant::now();
    let report = collect(&sim, &db.db, settings, UpdateRequest::default())
        .await
        .unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.summary());
    assert_same(&stored(&db.db).await, sim.expected());
    let stats = sim.stats();
    let seconds = started.elapsed().as_secs_f64();
    for account in sim.account_ids() {
        let sessions = stats.calls_of(account, "AssumeRole");
        assert!(
            sessions >= 3,
            "{account}: {sessions} sessions in a {seconds:.1} s collection of 2 s sessions"
        );
    }
}

/// Sessions shorter than an account's collection (12 s, AWS's shortest is 15 min): with the
/// shipped defaults and AWS's pacing (10 requests/s), a job is generated only on a session
/// that outlives it, so jobs are hardly ever polled with expired credentials, and every
/// principal is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_generated_on_sessions_that_outlive_them() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut scenario = Scenario::generated(33, 6, 80);
    scenario.defaults.session_seconds = Some(12);
    scenario.defaults.rate_limit = Some(RateLimit {
        per_second: 10.0,
        burst: 10,
    });
    let sim = aws_sim::start(scenario).await.unwrap();
    let settings = Settings {
        database_uri: db.uri.clone(),
        accounts: sim.account_ids().to_vec(),
        account_source: AccountSource::Static,
        ..Settings::default()
    };
    let report = collect(&sim, &db.db, settings, UpdateRequest::default())
        .await
        .unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.summary());
    assert_same(&stored(&db.db).await, sim.expected());
    let stats = sim.stats();
    let expired: u64 = stats.expired_tokens.values().sum();
    let sessions: u64 = sim
        .account_ids()
        .iter()
        .map(|account| stats.calls_of(account, "AssumeRole"))
        .sum();
    // Alone on this machine, no call is signed with an expired session (generating jobs on
    // any session that was not due made 163 such calls here); a loaded machine stretches
    // jobs beyond what a 12 s session can hold, hence the bound rather than zero.
    let principals = sim.expected().len() as u64;
    assert!(
        expired * 4 < principals,
        "{expired} calls signed with expired sessions for {principals} principals ({sessions} sessions): {:?}",
        stats.expired_tokens
    );
}

/// Polls spend the account's budget: a job that takes time is polled about once, once the
/// account has learnt how long its jobs take; one that takes polls is polled as often as it
/// needs and hardly more.
#[tokio::test]
async fn jobs_are_polled_about_as_often_as_they_need() {
    for (job_ms, job_polls, most_polls_per_job) in [(300, 1, 1.6), (0, 3, 3.2)] {
        let Some(db) = fresh_db(Backend::Sqlite).await else {
            return;
        };
        let mut scenario = Scenario::generated(32, 2, 30);
        scenario.defaults.job_ms = Some(job_ms);
        scenario.defaults.job_polls = Some(job_polls);
        let sim = aws_sim::start(scenario).await.unwrap();
        let mut settings = settings_for(&sim, &db);
        settings.updater_poll_interval = Duration::from_millis(50);
        settings.updater_poll_max_interval = Duration::from_millis(400);
        let report = collect(&sim, &db.db, settings, UpdateRequest::default())
            .await
            .unwrap();
        assert_eq!(report.exit_code(), 0, "{}", report.summary());
        let stats = sim.stats();
        let jobs = stats.total_calls_of("GenerateServiceLastAccessedDetails") as f64;
        let polls = stats.total_calls_of("GetServiceLastAccessedDetails") as f64;
        assert!(
            polls <= jobs * most_polls_per_job,
            "jobs done after {job_ms} ms and {job_polls} polls: {polls} polls for {jobs} jobs"
        );
    }
}

/// This machine's host name, as a run records its workers'.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}
