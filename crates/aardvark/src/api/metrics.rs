//! `GET /metrics` in Prometheus text format (0.0.4), written by `prometheus-client`:
//! - this process's HTTP requests by route, method and status, with a latency histogram (label
//!   values come from the server, never from the client: a route's template or `unmatched`, a
//!   standard method or `other`, so that no request can add a series);
//! - from the database at each scrape, so true whichever process collected: each account's
//!   status, last success and principals stored, the latest run's counts and duration;
//! - where this process collects, its AWS calls ([`crate::collector::calls`]).
//!
//! Every server has registries of its own, never a global one, so that two servers in one
//! process (the tests) count apart. The middleware that counts requests also writes the access
//! log: one line per request at info (target `aardvark::access`), without query or headers, so
//! never a token.

use std::sync::Arc;
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::ApiError;
use crate::collector::calls::AwsMetrics;
use crate::db::runs::RunStatus;
use crate::db::Reader;
use crate::time::epoch_seconds;

/// The route label of requests no route matched (so that scanners cannot grow the series).
const UNMATCHED: &str = "unmatched";

/// The method label of methods outside HTTP's standard ones.
const OTHER_METHOD: &str = "other";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

/// A standard method's name, or [`OTHER_METHOD`].
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT",
    ];
    STANDARD
        .iter()
        .find(|standard| **standard == method.as_str())
        .copied()
        .unwrap_or(OTHER_METHOD)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// This server's own metrics: its HTTP requests, and its collector's AWS calls if it has one.
#[derive(Clone)]
pub struct Telemetry(Arc<TelemetryInner>);

struct TelemetryInner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    access_log: bool,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Telemetry {
    /// Metrics of a server, with its collector's AWS calls if it has one, and an access log
    /// line per request if `access_log`.
    pub fn new(aws: Option<&AwsMetrics>, access_log: bool) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = HistogramFamily::new_with_constructor(latency_histogram);
        registry.register(
            "aardvark_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "aardvark_http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            latency.clone(),
        );
        if let Some(aws) = aws {
            aws.register(&mut registry);
        }
        Self(Arc::new(TelemetryInner {
            registry,
            requests,
            latency,
            access_log,
        }))
    }
}

/// The longest path written to the access log.
const LOGGED_PATH_BYTES: usize = 256;

/// Middleware: counts and times every request, by the route that matched, and logs it.
pub async fn track(State(telemetry): State<Telemetry>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let inner = &telemetry.0;
    // The path only: a query may carry a secret, and headers carry tokens.
    let logged = inner.access_log.then(|| {
        // A URI's path is ASCII, so the cut falls between characters.
        let path = request.uri().path();
        let path = path.get(..LOGGED_PATH_BYTES).unwrap_or(path);
        let client = request
            .extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip().to_string())
            .unwrap_or_default();
        (path.to_owned(), client)
    });
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if let Some((path, client)) = logged {
        tracing::info!(
            target: "aardvark::access",
            method,
            route = %route,
            path = %path,
            status,
            latency_ms = elapsed.as_micros() as f64 / 1000.0,
            bytes = response.body().size_hint().exact().unwrap_or(0),
            client = %client,
            "request"
        );
    }
    inner
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(elapsed.as_secs_f64());
    inner
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status,
        })
        .inc();
    response
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AccountStatusLabels {
    account: String,
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The metrics read from the database, in a registry of their own made for one scrape.
async fn database_registry(reader: &Reader) -> Result<Registry, ApiError> {
    let outcomes = reader.account_outcomes().await?;
    let stored = reader.principals_per_account().await?;
    let latest = reader.database().run(None).await?;
    let mut registry = Registry::default();
    register_accounts(&mut registry, &outcomes, &stored);
    if let Some(run) = latest {
        register_last_run(&mut registry, &run);
    }
    register_findings(&mut registry, &reader.database().finding_counts().await?);
    let recommendations = reader.database().recommendation_counts().await?;
    let states = gauges([
        (StateLabel { state: "offered" }, recommendations.offered),
        (StateLabel { state: "rejected" }, recommendations.rejected),
    ]);
    registry.register(
        "aardvark_recommendations",
        "Least-privilege recommendations in force: offered, or rejected by their verification",
        states,
    );
    Ok(registry)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FindingLabels {
    finding_type: String,
    status: String,
}

/// Findings by type and status over every account (every pair, zeros included).
fn register_findings(registry: &mut Registry, counts: &crate::db::findings::FindingCounts) {
    use crate::db::findings::{FindingStatus, FindingType};
    let mut totals: std::collections::BTreeMap<(FindingType, FindingStatus), i64> =
        std::collections::BTreeMap::new();
    for kind in FindingType::ALL {
        for status in [
            FindingStatus::Active,
            FindingStatus::Resolved,
            FindingStatus::Archived,
        ] {
            totals.insert((kind, status), 0);
        }
    }
    for ((_, kind), by_status) in counts {
        for (status, count) in by_status {
            *totals.entry((*kind, *status)).or_default() += count;
        }
    }
    let findings = gauges(totals.into_iter().map(|((kind, status), count)| {
        let labels = FindingLabels {
            finding_type: kind.as_str().to_owned(),
            status: status.as_str().to_owned(),
        };
        (labels, count)
    }));
    registry.register("aardvark_findings", "Findings by type and status", findings);
}

/// A gauge per label set, each set to its value.
fn gauges<L>(values: impl IntoIterator<Item = (L, i64)>) -> Family<L, Gauge>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Gauge>::default();
    for (labels, value) in values {
        family.get_or_create(&labels).set(value);
    }
    family
}

fn saturating(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Per account: its latest outcome (`never` for accounts with principals and no record), when
/// it last succeeded, and its principals stored.
fn register_accounts(
    registry: &mut Registry,
    outcomes: &[crate::db::runs::AccountOutcome],
    stored: &std::collections::BTreeMap<String, usize>,
) {
    let last_success = Family::<AccountLabels, FloatGauge>::default();
    for outcome in outcomes {
        if let Some(seconds) = outcome.last_success.as_deref().and_then(epoch_seconds) {
            let account = outcome.latest.account_id.clone();
            last_success
                .get_or_create(&AccountLabels { account })
                .set(seconds);
        }
    }
    let recorded: std::collections::HashSet<&str> = outcomes
        .iter()
        .map(|outcome| outcome.latest.account_id.as_str())
        .collect();
    let never = stored
        .keys()
        .filter(|account| !recorded.contains(account.as_str()))
        .map(|account| (account.clone(), super::runs::LatestStatus::Never.as_str()));
    let status = gauges(
        outcomes
            .iter()
            .map(|o| {
                let status = super::runs::LatestStatus::from(o.latest.status);
                (o.latest.account_id.clone(), status.as_str())
            })
            .chain(never)
            .map(|(account, status)| {
                let status = status.to_owned();
                (AccountStatusLabels { account, status }, 1)
            }),
    );
    let principals = gauges(stored.iter().map(|(account, count)| {
        (
            AccountLabels {
                account: account.clone(),
            },
            saturating(*count),
        )
    }));
    let principals_total = Gauge::<i64>::default();
    principals_total.set(saturating(stored.values().sum::<usize>()));
    registry.register(
        "aardvark_account_last_success_timestamp_seconds",
        "When each account's latest complete collection ended (accounts that never had one are left out)",
        last_success,
    );
    registry.register(
        "aardvark_account_status",
        "Each account's latest outcome: 1 for its status (ok, partial, failed, interrupted, never)",
        status,
    );
    registry.register(
        "aardvark_account_principals",
        "Principals stored per account",
        principals,
    );
    registry.register("aardvark_principals", "Principals stored", principals_total);
}

/// The latest run: its id, status, start, duration (so far, while it runs) and counts.
fn register_last_run(registry: &mut Registry, run: &crate::db::runs::RunRecord) {
    let totals = &run.totals;
    let status = |status: &str| StatusLabels {
        status: status.to_owned(),
    };
    let outcome = |outcome: &str| OutcomeLabels {
        outcome: outcome.to_owned(),
    };
    let run_status = gauges([(status(run.status.as_str()), 1)]);
    let accounts = gauges([
        (status("ok"), totals.accounts_ok),
        (status("partial"), totals.accounts_partial),
        (status("failed"), totals.accounts_failed),
        (status("interrupted"), totals.accounts_interrupted),
    ]);
    let principals = gauges([
        (outcome("collected"), totals.principals_collected),
        (outcome("failed"), totals.principals_failed),
        (outcome("vanished"), totals.principals_vanished),
        (outcome("interrupted"), totals.principals_interrupted),
    ]);
    let id = Gauge::<i64>::default();
    id.set(run.id);
    let started_at = epoch_seconds(&run.started_at);
    // A run in progress has lasted until now.
    let ended_at = match (&run.finished_at, run.status) {
        (Some(finished), status) if status != RunStatus::Running => epoch_seconds(finished),
        _ => Some(chrono::Utc::now().timestamp_millis() as f64 / 1000.0),
    };
    let started = FloatGauge::default();
    started.set(started_at.unwrap_or(0.0));
    let duration = FloatGauge::default();
    duration.set(match (started_at, ended_at) {
        (Some(start), Some(end)) => (end - start).max(0.0),
        _ => 0.0,
    });
    registry.register("aardvark_last_run_id", "The latest run's id", id);
    registry.register(
        "aardvark_last_run_status",
        "The latest run's status: 1 for its status (running, ok, partial, failed, aborted, interrupted)",
        run_status,
    );
    registry.register(
        "aardvark_last_run_start_timestamp_seconds",
        "When the latest run started",
        started,
    );
    registry.register(
        "aardvark_last_run_duration_seconds",
        "How long the latest run took (so far, while it runs)",
        duration,
    );
    registry.register(
        "aardvark_last_run_accounts",
        "The latest run's accounts by outcome",
        accounts,
    );
    registry.register(
        "aardvark_last_run_principals",
        "The latest run's principals by outcome",
        principals,
    );
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Metrics in Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        super::declared::DatabaseUnreachable,
    )
)]
pub async fn metrics(
    State((reader, telemetry)): State<(Reader, Telemetry)>,
) -> Result<Response, ApiError> {
    let database = database_registry(&reader).await?;
    let mut text = String::with_capacity(16 * 1024);
    for registry in [&telemetry.0.registry, &database] {
        prometheus_text::encode(&mut text, registry).expect("writing to a String cannot fail");
    }
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}
