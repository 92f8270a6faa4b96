//! Every endpoint and fault of the simulator, driven through the official AWS SDK clients.

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::types::{AccessAdvisorUsageGranularityType, JobStatusType, PolicyScopeType};
use aws_sdk_sts::config::Credentials;
use aws_sim::{
    AccountFaults, AssumeRoleFault, Burst, PrincipalFaults, PrincipalKind, RateLimit, Scenario,
    SimHandle,
};

const A: &str = "100000000000";
const B: &str = "100000000001";

async fn hub_config(sim: &SimHandle, retries: bool) -> SdkConfig {
    let retry = if retries {
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1))
    } else {
        RetryConfig::disabled()
    };
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&sim.base_url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDHUB",
            "hub-secret",
            None,
            None,
            "test",
        ))
        .retry_config(retry)
        .load()
        .await
}

/// An IAM client acting in `account`, through an explicit `AssumeRole`.
async fn iam_in(sim: &SimHandle, account: &str, retries: bool) -> aws_sdk_iam::Client {
    let config = hub_config(sim, retries).await;
    let sts = aws_sdk_sts::Client::new(&config);
    let assumed = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/Aardvark"))
        .role_session_name("aardvark")
        .send()
        .await
        .unwrap();
    let creds = assumed.credentials().unwrap();
    let provider = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_owned()),
        None,
        "assumed",
    );
    aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&config)
            .credentials_provider(provider)
            .build(),
    )
}

fn code_and_message<E: aws_sdk_iam::error::ProvideErrorMetadata>(err: &E) -> (String, String) {
    (
        err.code().unwrap_or_default().to_owned(),
        err.message().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn assume_role_issues_keys_that_act_in_the_account() {
    let sim = aws_sim::start(Scenario::generated(1, 2, 4)).await.unwrap();
    let config = hub_config(&sim, false).await;
    let sts = aws_sdk_sts::Client::new(&config);
    let hub = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(hub.account(), Some("000000000000"));
    let assumed = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{B}:role/Aardvark"))
        .role_session_name("aardvark")
        .send()
        .await
        .unwrap();
    assert_eq!(
        assumed.assumed_role_user().unwrap().arn(),
        format!("arn:aws:sts::{B}:assumed-role/Aardvark/aardvark")
    );
    let creds = assumed.credentials().unwrap();
    assert!(creds.access_key_id().starts_with("ASIA"));
    assert!(creds.expiration().secs() > 0);
    let provider = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_owned()),
        None,
        "t",
    );
    let as_b = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&config)
            .credentials_provider(provider)
            .build(),
    );
    assert_eq!(
        as_b.get_caller_identity().send().await.unwrap().account(),
        Some(B)
    );
    let stats = sim.stats();
    assert_eq!(stats.calls_of(B, "AssumeRole"), 1);
    assert_eq!(stats.calls_of("000000000000", "GetCallerIdentity"), 1);
    assert_eq!(stats.calls_of(B, "GetCallerIdentity"), 1);
}

#[tokio::test]
async fn assume_role_faults_answer_access_denied_as_aws_does() {
    let scenario = Scenario::generated(1, 4, 4)
        .with_account_faults(
            A,
            AccountFaults {
                assume_role: Some(AssumeRoleFault::ScpDeny),
                ..Default::default()
            },
        )
        .with_account_faults(
            B,
            AccountFaults {
                assume_role: Some(AssumeRoleFault::RoleMissing),
                ..Default::default()
            },
        )
        .with_account_faults(
            "100000000002",
            AccountFaults {
                assume_role: Some(AssumeRoleFault::TrustDenied),
                ..Default::default()
            },
        );
    let sim = aws_sim::start(scenario).await.unwrap();
    let sts = aws_sdk_sts::Client::new(&hub_config(&sim, false).await);
    let attempt = |account: &str| {
        sts.assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/Aardvark"))
            .role_session_name("aardvark")
            .send()
    };
    let err = attempt(A).await.unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
    let err = err.into_service_error();
    assert_eq!(
        code_and_message(&err),
        (
            "AccessDenied".to_owned(),
            format!("User: arn:aws:iam::000000000000:user/hub is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{A}:role/Aardvark with an explicit deny in a service control policy")
        )
    );
    for account in [B, "100000000002", "999999999999"] {
        let err = attempt(account).await.unwrap_err().into_service_error();
        let (code, message) = code_and_message(&err);
        assert_eq!(code, "AccessDenied", "{account}");
        assert!(
            !message.contains("service control policy") && message.contains(account),
            "{message}"
        );
    }
    assert!(attempt("100000000003").await.is_ok());
    // The missing role is not listed either.
    let roles = iam_in(&sim, "100000000003", false)
        .await
        .list_roles()
        .send()
        .await
        .unwrap();
    assert!(roles.roles().iter().any(|r| r.role_name() == "Aardvark"));
}

#[tokio::test]
async fn unknown_session_keys_are_rejected() {
    let sim = aws_sim::start(Scenario::generated(1, 1, 4)).await.unwrap();
    let config = hub_config(&sim, false).await;
    let forged = Credentials::new("ASIA999999999999FFFF", "x", Some("t".into()), None, "t");
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&config)
            .credentials_provider(forged)
            .build(),
    );
    let err = iam
        .list_roles()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code_and_message(&err).0, "InvalidClientTokenId");
}

#[tokio::test]
async fn listings_paginate_filter_and_can_be_denied() {
    let mut scenario = Scenario::generated(3, 2, 40);
    scenario.defaults.page_size = Some(3);
    scenario = scenario.with_account_faults(
        B,
        AccountFaults {
            deny_listing: vec![PrincipalKind::User],
            ..Default::default()
        },
    );
    let sim = aws_sim::start(scenario).await.unwrap();
    let iam = iam_in(&sim, A, false).await;
    let roles: Vec<_> = iam
        .list_roles()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(
        roles.len(),
        11,
        "10 generated roles and the collector's own"
    );
    assert!(roles
        .iter()
        .any(|r| r.arn() == format!("arn:aws:iam::{A}:role/service-role/role-0004")));
    assert_eq!(sim.stats().calls_of(A, "ListRoles"), 4, "pages of 3");
    let users: Vec<_> = iam
        .list_users()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let groups: Vec<_> = iam
        .list_groups()
        .max_items(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let local: Vec<_> = iam
        .list_policies()
        .scope(PolicyScopeType::Local)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let all: Vec<_> = iam
        .list_policies()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let aws: Vec<_> = iam
        .list_policies()
        .scope(PolicyScopeType::Aws)
        .send()
        .await
        .unwrap()
        .policies()
        .to_vec();
    assert_eq!(
        (users.len(), groups.len(), local.len(), all.len(), aws.len()),
        (10, 10, 10, 13, 3)
    );
    assert!(aws
        .iter()
        .all(|p| p.arn().unwrap().starts_with("arn:aws:iam::aws:policy/")));
    assert_eq!(users[0].arn(), format!("arn:aws:iam::{A}:user/user-0000"));
    let service_roles = iam
        .list_roles()
        .path_prefix("/service-role/")
        .send()
        .await
        .unwrap();
    assert_eq!(service_roles.roles().len(), 2);
    let first = iam.list_roles().max_items(5).send().await.unwrap();
    assert!(first.is_truncated());
    assert_eq!(
        first.roles().len(),
        3,
        "the account's page size caps MaxItems"
    );

    let err = iam
        .list_roles()
        .max_items(0)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code_and_message(&err).0, "ValidationError");
    let err = iam
        .list_roles()
        .max_items(1001)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(code_and_message(&err)
        .1
        .contains("less than or equal to 1000"));
    let err = iam
        .list_roles()
        .marker("not-ours")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code_and_message(&err).0, "ValidationError");

    let denied = iam_in(&sim, B, false).await;
    assert!(denied.list_roles().send().await.is_ok());
    let err = denied.list_users().send().await.unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
    let (code, message) = code_and_message(&err.into_service_error());
    assert_eq!(code, "AccessDenied");
    assert!(message.contains("iam:ListUsers"), "{message}");
}

#[tokio::test]
async fn jobs_poll_complete_and_paginate_with_every_field() {
    let mut scenario = Scenario::generated(5, 1, 8);
    scenario.defaults.job_polls = Some(2);
    scenario.defaults.page_size = Some(4);
    let sim = aws_sim::start(scenario).await.unwrap();
    let iam = iam_in(&sim, A, false).await;
    let arn = format!("arn:aws:iam::{A}:role/role-0000");
    let job = iam
        .generate_service_last_accessed_details()
        .arn(&arn)
        .send()
        .await
        .unwrap();
    let job_id = job.job_id().unwrap();
    let first = iam
        .get_service_last_accessed_details()
        .job_id(job_id)
        .send()
        .await
        .unwrap();
    assert_eq!(first.job_status(), &JobStatusType::InProgress);
    assert!(first.services_last_accessed().is_empty());
    // AWS omits JobCompletionDate while the job runs; the SDK fills in epoch 0.
    assert_eq!(first.job_completion_date().secs(), 0);
    let mut services = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = iam
            .get_service_last_accessed_details()
            .job_id(job_id)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(page.job_status(), &JobStatusType::Completed);
        assert_eq!(
            page.job_type(),
            Some(&AccessAdvisorUsageGranularityType::ServiceLevel)
        );
        assert!(page.job_completion_date().secs() > 0);
        assert!(page.job_completion_date() >= page.job_creation_date());
        services.extend(page.services_last_accessed().to_vec());
        pages += 1;
        if !page.is_truncated() {
            break;
        }
        marker = page.marker().map(str::to_owned);
    }
    let expected = &sim.expected()[&arn];
    assert_eq!(services.len(), expected.len());
    assert!(pages >= 2 || expected.len() <= 4);
    for service in &services {
        let want = expected
            .iter()
            .find(|e| e.service_namespace == service.service_namespace())
            .unwrap();
        assert_eq!(service.service_name(), want.service_name);
        let ms = service
            .last_authenticated()
            .map_or(0, |t| t.to_millis().unwrap());
        assert_eq!(ms, want.last_authenticated);
        assert_eq!(
            service.last_authenticated_entity(),
            want.last_authenticated_entity.as_deref()
        );
        assert_eq!(
            i64::from(service.total_authenticated_entities().unwrap_or(0)),
            want.total_authenticated_entities
        );
        assert_eq!(
            service.last_authenticated_region().is_some(),
            want.last_authenticated != 0
        );
        assert!(
            service.tracked_actions_last_accessed().is_empty(),
            "service level has no actions"
        );
    }

    let action_job = iam
        .generate_service_last_accessed_details()
        .arn(&arn)
        .granularity(AccessAdvisorUsageGranularityType::ActionLevel)
        .send()
        .await
        .unwrap();
    let id = action_job.job_id().unwrap();
    iam.get_service_last_accessed_details()
        .job_id(id)
        .send()
        .await
        .unwrap();
    let done = iam
        .get_service_last_accessed_details()
        .job_id(id)
        .max_items(1000)
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.job_type(),
        Some(&AccessAdvisorUsageGranularityType::ActionLevel)
    );
    let unknown = iam
        .get_service_last_accessed_details()
        .job_id("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code_and_message(&unknown).0, "NoSuchEntity");
    let bad = iam
        .generate_service_last_accessed_details()
        .arn(format!("arn:aws:iam::{A}:role/none"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.raw_response().unwrap().status().as_u16(), 404);
    assert_eq!(
        code_and_message(&bad.into_service_error()).0,
        "NoSuchEntity"
    );
}

#[tokio::test]
async fn action_level_jobs_report_tracked_actions() {
    let mut scenario = Scenario::generated(1, 1, 0);
    scenario.accounts.push(aws_sim::scenario::Account {
        id: B.into(),
        principals: vec![aws_sim::scenario::Principal {
            kind: PrincipalKind::Role,
            name: "explicit".into(),
            path: "/".into(),
            services: Some(vec![aws_sim::scenario::ServiceUse {
                namespace: "s3".into(),
                name: None,
                last_authenticated_ms: Some(1_790_000_000_000),
                entity: Some("arn:aws:iam::100000000001:role/explicit".into()),
                total_entities: 1,
                region: Some("eu-west-1".into()),
                actions: vec![aws_sim::scenario::ActionUse {
                    name: "GetObject".into(),
                    last_accessed_ms: Some(1_790_000_000_000),
                    entity: Some("arn:aws:iam::100000000001:role/explicit".into()),
                    region: Some("eu-west-1".into()),
                }],
            }]),
            faults: PrincipalFaults::default(),
            identity: None,
        }],
        ..Default::default()
    });
    let sim = aws_sim::start(scenario).await.unwrap();
    let iam = iam_in(&sim, B, false).await;
    let job = iam
        .generate_service_last_accessed_details()
        .arn(format!("arn:aws:iam::{B}:role/explicit"))
        .granularity(AccessAdvisorUsageGranularityType::ActionLevel)
        .send()
        .await
        .unwrap();
    let done = iam
        .get_service_last_accessed_details()
        .job_id(job.job_id().unwrap())
        .send()
        .await
        .unwrap();
    let service = &done.services_last_accessed()[0];
    assert_eq!(
        (service.service_name(), service.service_namespace()),
        ("Amazon S3", "s3")
    );
    assert_eq!(service.last_authenticated().unwrap().secs(), 1_790_000_000);
    assert_eq!(service.last_authenticated_region(), Some("eu-west-1"));
    let action = &service.tracked_actions_last_accessed()[0];
    assert_eq!(action.action_name(), Some("GetObject"));
    assert_eq!(action.last_accessed_time().unwrap().secs(), 1_790_000_000);
    assert_eq!(action.last_accessed_region(), Some("eu-west-1"));
    assert_eq!(
        action.last_accessed_entity(),
        Some("arn:aws:iam::100000000001:role/explicit")
    );
}

#[tokio::test]
async fn principal_faults_fail_hang_or_vanish() {
    let mut scenario = Scenario::generated(1, 0, 0);
    let principal = |name: &str, faults: PrincipalFaults| aws_sim::scenario::Principal {
        kind: PrincipalKind::User,
        name: name.into(),
        path: "/".into(),
        services: None,
        faults,
        identity: None,
    };
    scenario.accounts.push(aws_sim::scenario::Account {
        id: A.into(),
        principals: vec![
            principal(
                "failing",
                PrincipalFaults {
                    job_failed: true,
                    ..Default::default()
                },
            ),
            principal(
                "stuck",
                PrincipalFaults {
                    job_never_completes: true,
                    ..Default::default()
                },
            ),
            principal(
                "gone",
                PrincipalFaults {
                    vanishes: true,
                    ..Default::default()
                },
            ),
            principal(
                "broken",
                PrincipalFaults {
                    malformed_result: true,
                    ..Default::default()
                },
            ),
            principal(
                "slow",
                PrincipalFaults {
                    job_polls: Some(3),
                    ..Default::default()
                },
            ),
        ],
        ..Default::default()
    });
    let sim = aws_sim::start(scenario).await.unwrap();
    let iam = iam_in(&sim, A, false).await;
    let arn = |name: &str| format!("arn:aws:iam::{A}:user/{name}");
    let job = |name: &str| {
        iam.generate_service_last_accessed_details()
            .arn(arn(name))
            .send()
    };
    let failing = job("failing").await.unwrap();
    let result = iam
        .get_service_last_accessed_details()
        .job_id(failing.job_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(result.job_status(), &JobStatusType::Failed);
    let error = result.error().unwrap();
    assert_eq!(error.code(), "ServiceFailure");
    assert!(error.message().contains(&arn("failing")));
    let stuck = job("stuck").await.unwrap();
    for _ in 0..5 {
        let poll = iam
            .get_service_last_accessed_details()
            .job_id(stuck.job_id().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(poll.job_status(), &JobStatusType::InProgress);
    }
    let broken = job("broken").await.unwrap();
    let err = iam
        .get_service_last_accessed_details()
        .job_id(broken.job_id().unwrap())
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            aws_sdk_iam::error::SdkError::ResponseError(_)
                | aws_sdk_iam::error::SdkError::ServiceError(_)
        ),
        "{err:?}"
    );
    let gone = job("gone").await.unwrap_err().into_service_error();
    assert_eq!(code_and_message(&gone).0, "NoSuchEntity");
    let users = iam.list_users().send().await.unwrap();
    assert_eq!(users.users().len(), 5, "the vanishing user is still listed");
    let slow = job("slow").await.unwrap();
    let statuses: Vec<JobStatusType> = poll_statuses(&iam, slow.job_id().unwrap(), 3).await;
    assert_eq!(
        statuses,
        vec![
            JobStatusType::InProgress,
            JobStatusType::InProgress,
            JobStatusType::Completed
        ]
    );
    let expected = sim.expected();
    assert!(
        expected.contains_key(&arn("slow"))
            && !expected.contains_key(&arn("failing"))
            && !expected.contains_key(&arn("stuck"))
            && !expected.contains_key(&arn("gone"))
            && !expected.contains_key(&arn("broken"))
    );
}

async fn poll_statuses(
    iam: &aws_sdk_iam::Client,
    job_id: &str,
    times: usize,
) -> Vec<JobStatusType> {
    let mut statuses = Vec::new();
    for _ in 0..times {
        statuses.push(
            iam.get_service_last_accessed_details()
                .job_id(job_id)
                .send()
                .await
                .unwrap()
                .job_status()
                .clone(),
        );
    }
    statuses
}

#[tokio::test]
async fn throttling_is_a_token_bucket_per_account() {
    let scenario = Scenario::generated(1, 2, 4).with_account_faults(
        A,
        AccountFaults {
            rate_limit: Some(RateLimit {
                per_second: 0.001,
                burst: 3,
            }),
            ..Default::default()
        },
    );
    let sim = aws_sim::start(scenario).await.unwrap();
    let iam = iam_in(&sim, A, false).await;
    for _ in 0..3 {
        iam.list_roles().send().await.unwrap();
    }
    let err = iam.list_roles().send().await.unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    assert_eq!(
        code_and_message(&err.into_service_error()),
        ("Throttling".to_owned(), "Rate exceeded".to_owned())
    );
    // Another account has a bucket of its own (none here).
    let other = iam_in(&sim, B, false).await;
    for _ in 0..5 {
        other.list_roles().send().await.unwrap();
    }
    let stats = sim.stats();
    assert_eq!(stats.throttles.get(A), Some(&1));
    assert_eq!(stats.throttles.get(B), None);
    assert_eq!(stats.calls_of(A, "ListRoles"), 4);
}

#[tokio::test]
async fn refilled_tokens_allow_the_rate() {
    let scenario = Scenario::generated(1, 1, 4).with_account_faults(
        A,
        AccountFaults {
            rate_limit: Some(RateLimit {
                per_second: 50.0,
                burst: 1,
            }),
            ..Default::default()
        },
    );
    let sim = aws_sim::start(scenario).await.unwrap();
    let iam = iam_in(&sim, A, false).await;
    iam.list_roles().send().await.unwrap();
    // Waiting for a condition (a token), bounded by a deadline: at 50/s one arrives within 20 ms.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match iam.list_roles().send().await {
            Ok(_) => break,
            Err(err) => {
                assert_eq!(code_and_message(&err.into_service_error()).0, "Throttling");
                assert!(Instant::now() < deadline, "no token within 10 s at 50/s");
                tokio::task::yield_now().await;
            }
        }
    }
}

#[tokio::test]
async fn latency_server_errors_and_dropped_connections() {
    let scenario = Scenario::generated(1, 3, 4)
        .with_account_faults(
            A,
            AccountFaults {
                latency_ms: 150,
                ..Default::default()
            },
        )
        .with_account_faults(
            B,
            AccountFaults {
                server_errors: Some(Burst {
                    first: 2,
                    every: 0,
                    status: Some(503),
                }),
                ..Default::default()
            },
        )
        .with_account_faults(
            "100000000002",
            AccountFaults {
                dropped_connections: Some(Burst {
                    first: 1,
                    every: 0,
                    status: None,
                }),
                ..Default::default()
            },
        );
    let sim = aws_sim::start(scenario).await.unwrap();
    let slow = iam_in(&sim, A, false).await;
    let started = Instant::now();
    slow.list_roles().send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));

    let no_retry = iam_in(&sim, B, false).await;
    let err = no_retry.list_roles().send().await.unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 503);
    assert_eq!(
        code_and_message(&err.into_service_error()).0,
        "ServiceUnavailable"
    );
    // The SDK's standard retry rides over the second (last) injected error.
    let with_retry = iam_in(&sim, B, true).await;
    with_retry.list_roles().send().await.unwrap();
    assert_eq!(sim.stats().calls_of(B, "ListRoles"), 3);

    let dropped = iam_in(&sim, "100000000002", false).await;
    let err = dropped.list_roles().send().await.unwrap_err();
    assert!(
        matches!(
            err,
            aws_sdk_iam::error::SdkError::DispatchFailure(_)
                | aws_sdk_iam::error::SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
    dropped.list_roles().send().await.unwrap();
}

#[tokio::test]
async fn concurrency_is_counted_per_account() {
    let scenario = Scenario::generated(1, 2, 4).with_account_faults(
        A,
        AccountFaults {
            latency_ms: 300,
            ..Default::default()
        },
    );
    let sim = aws_sim::start(scenario).await.unwrap();
    let iam = iam_in(&sim, A, false).await;
    let calls: Vec<_> = (0..8).map(|_| iam.list_roles().send()).collect();
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    let stats = sim.stats();
    assert_eq!(stats.peak_in_flight.get(A), Some(&8));
    assert!(stats.peak_in_flight_total >= 8);
    assert_eq!(stats.peak_in_flight.get(B), None);
    assert_eq!(stats.in_flight_history.len() as u64, stats.requests);
}

#[tokio::test]
async fn organizations_lists_accounts_in_pages() {
    let mut scenario = Scenario::generated(1, 25, 0);
    scenario.accounts.push(aws_sim::scenario::Account {
        id: "999999999999".into(),
        status: aws_sim::scenario::AccountStatus::Suspended,
        ..Default::default()
    });
    let sim = aws_sim::start(scenario).await.unwrap();
    let orgs = aws_sdk_organizations::Client::new(&hub_config(&sim, false).await);
    let pages: Vec<_> = orgs
        .list_accounts()
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let accounts: Vec<_> = pages
        .iter()
        .flat_map(|page| page.accounts().to_vec())
        .collect();
    assert_eq!(accounts.len(), 26);
    assert_eq!(
        sim.stats().calls_of("000000000000", "ListAccounts"),
        2,
        "pages of 20"
    );
    let suspended = accounts
        .iter()
        .find(|a| a.id() == Some("999999999999"))
        .unwrap();
    assert_eq!(
        suspended.status(),
        Some(&aws_sdk_organizations::types::AccountStatus::Suspended)
    );
    assert_eq!(accounts[1].id(), Some("100000000000"));
    assert_eq!(accounts[1].name(), Some("account-100000000000"));
    let err = orgs
        .list_accounts()
        .max_results(50)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_input_exception(), "{err:?}");
}

#[tokio::test]
async fn s3_serves_swag_accounts_json_in_both_schemas() {
    for (version, key) in [(2u8, "v2/accounts.json"), (1, "accounts.json")] {
        let mut scenario = Scenario::generated(1, 3, 0);
        scenario.swag = Some(aws_sim::scenario::SwagBucket {
            bucket: "swag-data".into(),
            key: key.into(),
            schema_version: version,
        });
        scenario.accounts.push(aws_sim::scenario::Account {
            id: "555555555555".into(),
            name: Some("prod".into()),
            aliases: vec!["production".into()],
            ..Default::default()
        });
        let sim = aws_sim::start(scenario).await.unwrap();
        let config = hub_config(&sim, false).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        let object = s3
            .get_object()
            .bucket("swag-data")
            .key(key)
            .send()
            .await
            .unwrap();
        let bytes = object.body.collect().await.unwrap().into_bytes();
        let document: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        if version == 2 {
            let accounts = document.as_array().unwrap();
            assert_eq!(accounts.len(), 4);
            let prod = accounts.iter().find(|a| a["id"] == "555555555555").unwrap();
            assert_eq!(prod["name"], "prod");
            assert_eq!(prod["aliases"][0], "production");
            assert_eq!(prod["services"][0]["name"], "aardvark");
            assert_eq!(prod["services"][0]["status"][0]["enabled"], true);
            assert_eq!(prod["account_status"], "ready");
        } else {
            let accounts = document["accounts"].as_array().unwrap();
            assert_eq!(accounts.len(), 4);
            let prod = accounts
                .iter()
                .find(|a| a["metadata"]["account_number"] == "555555555555")
                .unwrap();
            assert_eq!(prod["name"], "prod");
            assert_eq!(prod["services"]["aardvark"]["enabled"], true);
        }
        let missing = s3
            .get_object()
            .bucket("swag-data")
            .key("nope.json")
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(missing.is_no_such_key(), "{missing:?}");
        let no_bucket = s3
            .get_object()
            .bucket("other")
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(no_bucket.raw_response().unwrap().status().as_u16(), 404);
    }
}

#[tokio::test]
async fn unknown_actions_answer_like_aws() {
    let sim = aws_sim::start(Scenario::generated(1, 1, 1)).await.unwrap();
    let client = reqwest::Client::new();
    let reply = client
        .post(&sim.base_url)
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIDHUB/20261124/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=DeleteEverything&Version=2010-05-08")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 400);
    let text = reply.text().await.unwrap();
    assert!(
        text.contains("<Code>InvalidAction</Code>")
            && text.contains("Could not find operation DeleteEverything"),
        "{text}"
    );
    let unsigned = client
        .post(&sim.base_url)
        .body("Action=ListRoles")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 403);
    assert!(unsigned
        .text()
        .await
        .unwrap()
        .contains("MissingAuthenticationToken"));
}

#[tokio::test]
async fn served_data_equals_the_expected_data() {
    let mut scenario = Scenario::generated(11, 2, 12);
    scenario.defaults.page_size = Some(5);
    let sim = aws_sim::start(scenario).await.unwrap();
    let mut collected = std::collections::BTreeMap::new();
    for account in [A, B] {
        let iam = iam_in(&sim, account, false).await;
        let mut arns: Vec<String> = Vec::new();
        arns.extend(
            iam.list_roles()
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .unwrap()
                .iter()
                .map(|r| r.arn().to_owned()),
        );
        arns.extend(
            iam.list_users()
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .unwrap()
                .iter()
                .map(|r| r.arn().to_owned()),
        );
        arns.extend(
            iam.list_groups()
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .unwrap()
                .iter()
                .map(|r| r.arn().to_owned()),
        );
        arns.extend(
            iam.list_policies()
                .scope(PolicyScopeType::Local)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .unwrap()
                .iter()
                .map(|r| r.arn().unwrap().to_owned()),
        );
        for arn in arns {
            let job = iam
                .generate_service_last_accessed_details()
                .arn(&arn)
                .send()
                .await
                .unwrap();
            let mut services = Vec::new();
            let mut marker = None;
            loop {
                let page = iam
                    .get_service_last_accessed_details()
                    .job_id(job.job_id().unwrap())
                    .set_marker(marker)
                    .send()
                    .await
                    .unwrap();
                services.extend(page.services_last_accessed().iter().map(|s| {
                    aws_sim::ExpectedService {
                        service_namespace: s.service_namespace().to_owned(),
                        service_name: s.service_name().to_owned(),
                        last_authenticated: s
                            .last_authenticated()
                            .map_or(0, |t| t.to_millis().unwrap()),
                        last_authenticated_entity: s.last_authenticated_entity().map(str::to_owned),
                        total_authenticated_entities: i64::from(
                            s.total_authenticated_entities().unwrap_or(0),
                        ),
                    }
                }));
                if !page.is_truncated() {
                    break;
                }
                marker = page.marker().map(str::to_owned);
            }
            services.sort();
            collected.insert(arn, services);
        }
    }
    assert_eq!(&collected, sim.expected());
}

#[tokio::test]
async fn scenario_files_load_and_bad_ones_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.yaml");
    std::fs::write(
        &path,
        "seed: 9\ngenerated: {count: 2, principals: {roles: 2, users: 1}}\ndefaults: {latency_ms: 1}\naccount_faults:\n  '100000000001': {assume_role: scp_deny}\nswag: {bucket: b, key: k, schema_version: 1}\n",
    )
    .unwrap();
    let scenario = Scenario::from_file(&path).unwrap();
    assert_eq!(scenario.seed, 9);
    let sim = aws_sim::start(scenario).await.unwrap();
    assert_eq!(
        sim.expected().len(),
        4,
        "own role + 3 in the one reachable account"
    );
    std::fs::write(&path, "seed: 9\nacounts: []\n").unwrap();
    let err = Scenario::from_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("acounts") && err.contains("scenario.yaml"),
        "{err}"
    );
    std::fs::write(&path, "accounts: [{id: '12'}]\n").unwrap();
    let err = aws_sim::start(Scenario::from_file(&path).unwrap())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not 12 digits"), "{err}");
}

#[tokio::test]
async fn identity_details_page_and_decode_like_aws() {
    let sim = aws_sim::start(Scenario::generated(3, 1, 12)).await.unwrap();
    let iam = iam_in(&sim, A, false).await;
    let world = sim.scenario().world().unwrap();
    let account = &world[0];
    // Pages of 2 through every entity; then a filter of roles only.
    let mut pages = iam
        .get_account_authorization_details()
        .max_items(2)
        .into_paginator()
        .send();
    let (mut users, mut groups, mut roles, mut policies, mut count) = (0, 0, 0, 0, 0);
    let mut role_last_used = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        count += 1;
        users += page.user_detail_list().len();
        groups += page.group_detail_list().len();
        policies += page.policies().len();
        for role in page.role_detail_list() {
            roles += 1;
            let document = role.role_policy_list().first().map(|p| {
                percent_encoding::percent_decode_str(p.policy_document().unwrap())
                    .decode_utf8()
                    .unwrap()
                    .into_owned()
            });
            let expected = account
                .principals
                .iter()
                .find(|p| Some(p.arn.as_str()) == role.arn())
                .unwrap();
            assert_eq!(document, expected.policies.first().map(|(_, d)| d.clone()));
            assert!(role.tags().iter().any(|t| t.key() == "team"));
            role_last_used.push((
                role.role_last_used()
                    .and_then(|used| used.last_used_date())
                    .map(|d| d.to_millis().unwrap()),
                expected.identity.last_used_ms,
            ));
        }
    }
    let of = |kind: PrincipalKind| account.principals.iter().filter(|p| p.kind == kind).count();
    assert_eq!(
        (users, groups, roles),
        (
            of(PrincipalKind::User),
            of(PrincipalKind::Group),
            of(PrincipalKind::Role)
        )
    );
    // The account's policies, and AWS's SecurityAudit that its collector role attaches.
    assert_eq!(policies, of(PrincipalKind::Policy) + 1);
    assert_eq!(count, (users + groups + roles + policies).div_ceil(2));
    assert!(role_last_used.iter().all(|(got, want)| got == want));
    assert!(role_last_used.iter().any(|(got, _)| got.is_some()));
    let only_roles = iam
        .get_account_authorization_details()
        .filter(aws_sdk_iam::types::EntityType::Role)
        .send()
        .await
        .unwrap();
    assert!(only_roles.user_detail_list().is_empty() && only_roles.policies().is_empty());
    assert_eq!(only_roles.role_detail_list().len(), of(PrincipalKind::Role));
}

#[tokio::test]
async fn credential_reports_start_complete_and_list_every_user() {
    let sim = aws_sim::start(Scenario::generated(3, 1, 40)).await.unwrap();
    let iam = iam_in(&sim, A, false).await;
    let early = iam.get_credential_report().send().await.unwrap_err();
    assert_eq!(code_and_message(&early).0, "ReportNotPresent");
    let first = iam.generate_credential_report().send().await.unwrap();
    assert_eq!(first.state().unwrap().as_str(), "STARTED");
    let waiting = iam.get_credential_report().send().await.unwrap_err();
    assert_eq!(code_and_message(&waiting).0, "ReportInProgress");
    let second = iam.generate_credential_report().send().await.unwrap();
    assert_eq!(second.state().unwrap().as_str(), "COMPLETE");
    let report = iam.get_credential_report().send().await.unwrap();
    let csv = String::from_utf8(report.content().unwrap().as_ref().to_vec()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("user,arn,user_creation_time,password_enabled,password_last_used"));
    assert!(lines[1].starts_with("<root_account>,arn:aws:iam::100000000000:root,"));
    let world = sim.scenario().world().unwrap();
    let users: Vec<_> = world[0]
        .principals
        .iter()
        .filter(|p| p.kind == PrincipalKind::User)
        .collect();
    assert_eq!(lines.len(), 2 + users.len());
    assert!(lines.iter().all(|line| line.split(',').count() == 22));
    // The world holds every case the findings need.
    assert!(users.iter().any(|u| u.identity.password.is_none()));
    assert!(users.iter().any(|u| u
        .identity
        .password
        .as_ref()
        .is_some_and(|p| p.last_used_ms.is_none())));
    assert!(users.iter().any(|u| u.identity.access_keys.len() == 2));
    assert!(users
        .iter()
        .flat_map(|u| &u.identity.access_keys)
        .any(|k| !k.active));
    assert!(users
        .iter()
        .flat_map(|u| &u.identity.access_keys)
        .any(|k| k.last_used_ms.is_none()));
    assert!(csv.contains(",no_information,") && csv.contains(",N/A,"));
    let with_keys = users
        .iter()
        .find(|u| u.identity.access_keys.len() == 2)
        .unwrap();
    let keys = iam
        .list_access_keys()
        .user_name(&with_keys.name)
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = keys
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id())
        .collect();
    let expected: Vec<&str> = with_keys
        .identity
        .access_keys
        .iter()
        .filter_map(|k| k.id.as_deref())
        .collect();
    assert_eq!(ids, expected);
    let missing = iam
        .list_access_keys()
        .user_name("nobody")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_message(&missing).0, "NoSuchEntity");
}

/// The state `GenerateCredentialReport` answers.
async fn generated(iam: &aws_sdk_iam::Client) -> String {
    let out = iam.generate_credential_report().send().await.unwrap();
    out.state().unwrap().as_str().to_owned()
}

#[tokio::test]
async fn identity_faults_deny_limit_and_expire() {
    use aws_sim::identity::{IdentityCall, IdentityFaults};
    let scenario = Scenario::generated(3, 2, 8).with_account_faults(
        B,
        AccountFaults {
            identity: IdentityFaults {
                deny: vec![
                    IdentityCall::GetAccountAuthorizationDetails,
                    IdentityCall::ListAccessKeys,
                ],
                generate_limit_exceeded: 1,
                report_in_progress: 1,
                report_expired: 1,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let sim = aws_sim::start(scenario).await.unwrap();
    let iam = iam_in(&sim, B, false).await;
    let denied = iam
        .get_account_authorization_details()
        .send()
        .await
        .unwrap_err();
    let (code, message) = code_and_message(&denied);
    assert_eq!(code, "AccessDenied");
    assert!(
        message.contains("iam:GetAccountAuthorizationDetails"),
        "{message}"
    );
    let keys = iam
        .list_access_keys()
        .user_name("user-0000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_message(&keys).0, "AccessDenied");
    let limited = iam.generate_credential_report().send().await.unwrap_err();
    assert_eq!(code_and_message(&limited).0, "LimitExceeded");
    assert_eq!(generated(&iam).await, "STARTED");
    assert_eq!(generated(&iam).await, "COMPLETE");
    let busy = iam.get_credential_report().send().await.unwrap_err();
    assert_eq!(code_and_message(&busy).0, "ReportInProgress");
    let expired = iam.get_credential_report().send().await.unwrap_err();
    assert_eq!(code_and_message(&expired).0, "ReportExpired");
    // Expired: generated again, then read.
    assert_eq!(generated(&iam).await, "STARTED");
    assert_eq!(generated(&iam).await, "COMPLETE");
    assert!(iam.get_credential_report().send().await.is_ok());
    // The other account is untouched.
    let fine = iam_in(&sim, A, false).await;
    assert!(fine
        .get_account_authorization_details()
        .send()
        .await
        .is_ok());
}
