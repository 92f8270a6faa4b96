//! The simulator's HTTP server: routes each request to STS, IAM, Organizations or S3 by its
//! shape (as AWS endpoints would), works out the calling account from the SigV4 access key, and
//! applies the account's faults before answering. Also keeps the counters tests read.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::scenario::{ExpectedService, ResolvedAccount, Scenario, ScenarioError};
use crate::{iam, organizations, s3, sts, xml};

/// An answer: status, content type and body.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn xml(status: StatusCode, body: String) -> Self {
        Self {
            status,
            content_type: "text/xml",
            body,
        }
    }

    pub fn query_error(
        status: StatusCode,
        namespace: &str,
        code: &str,
        message: &str,
        request_id: &str,
    ) -> Self {
        let kind = if status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        Self::xml(
            status,
            xml::error(namespace, kind, code, message, request_id),
        )
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, self.content_type)],
            self.body,
        )
            .into_response()
    }
}

/// Marker payload of the unwind that drops a connection without an answer.
struct DroppedConnection;

/// A token bucket of one account.
struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

/// An account and its run-time state.
pub(crate) struct AccountState {
    pub account: ResolvedAccount,
    /// Principal index by ARN.
    pub by_arn: HashMap<String, usize>,
    bucket: Option<Mutex<TokenBucket>>,
    iam_calls: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

/// An Access Advisor job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub account: String,
    pub principal: usize,
    pub action_level: bool,
    pub created_ms: i64,
    pub polls: u32,
}

/// Counters of what the simulator was asked and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls per (account, operation), faults and throttled calls included.
    pub calls: BTreeMap<(String, String), u64>,
    /// Throttling errors answered, per account.
    pub throttles: BTreeMap<String, u64>,
    /// Most requests in flight at once, per account (IAM calls acting in it).
    pub peak_in_flight: BTreeMap<String, u64>,
    /// Most requests in flight at once over all accounts.
    pub peak_in_flight_total: u64,
    /// Every request, in arrival order: how many were in flight when it arrived (itself included).
    pub in_flight_history: Vec<u32>,
    pub requests: u64,
}

impl Stats {
    /// Calls of `operation` in `account`.
    pub fn calls_of(&self, account: &str, operation: &str) -> u64 {
        self.calls
            .get(&(account.to_owned(), operation.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Calls of `operation` over all accounts.
    pub fn total_calls_of(&self, operation: &str) -> u64 {
        self.calls
            .iter()
            .filter(|((_, op), _)| op == operation)
            .map(|(_, n)| n)
            .sum()
    }

    /// Calls in `account`, all operations.
    pub fn calls_in(&self, account: &str) -> u64 {
        self.calls
            .iter()
            .filter(|((acc, _), _)| acc == account)
            .map(|(_, n)| n)
            .sum()
    }
}

#[derive(Default)]
struct Counters {
    calls: Mutex<HashMap<(String, &'static str), u64>>,
    throttles: Mutex<HashMap<String, u64>>,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    history: Mutex<Vec<u32>>,
    requests: AtomicU64,
}

/// Everything the handlers share.
pub(crate) struct SimState {
    pub scenario: Scenario,
    pub accounts: HashMap<String, AccountState>,
    /// Account ids in scenario order.
    pub order: Vec<String>,
    pub jobs: Mutex<HashMap<String, Job>>,
    next_id: AtomicU64,
    next_key: AtomicU64,
    counters: Counters,
    expected: BTreeMap<String, Vec<ExpectedService>>,
    started: Instant,
}

impl SimState {
    fn new(scenario: Scenario) -> Result<Self, ScenarioError> {
        let world = scenario.world()?;
        let expected = scenario.expected()?;
        let order = world.iter().map(|a| a.id.clone()).collect();
        let accounts = world
            .into_iter()
            .map(|account| {
                let by_arn = account
                    .principals
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.arn.clone(), i))
                    .collect();
                let bucket = account.faults.rate_limit.map(|limit| {
                    Mutex::new(TokenBucket {
                        tokens: f64::from(limit.burst),
                        updated: Instant::now(),
                    })
                });
                let state = AccountState {
                    account,
                    by_arn,
                    bucket,
                    iam_calls: AtomicU64::new(0),
                    in_flight: AtomicU64::new(0),
                    peak_in_flight: AtomicU64::new(0),
                };
                (state.account.id.clone(), state)
            })
            .collect();
        Ok(Self {
            scenario,
            accounts,
            order,
            jobs: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            next_key: AtomicU64::new(1),
            counters: Counters::default(),
            expected,
            started: Instant::now(),
        })
    }

    /// A fresh request or job id in AWS's UUID shape.
    pub fn new_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.scenario.seed;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (h >> 32) as u32,
            (h >> 16) as u16,
            h as u16,
            n as u16,
            n
        )
    }

    /// A number for the next issued access key.
    pub fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Milliseconds of the simulated clock: the scenario's reference time plus time since start.
    pub fn now_ms(&self) -> i64 {
        self.scenario.reference_time_ms + self.started.elapsed().as_millis() as i64
    }

    pub fn count(&self, account: &str, operation: &'static str) {
        *self
            .counters
            .calls
            .lock()
            .unwrap()
            .entry((account.to_owned(), operation))
            .or_default() += 1;
    }

    fn stats(&self) -> Stats {
        let calls = self
            .counters
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|((account, op), n)| ((account.clone(), (*op).to_owned()), *n))
            .collect();
        let throttles = self
            .counters
            .throttles
            .lock()
            .unwrap()
            .iter()
            .map(|(a, n)| (a.clone(), *n))
            .collect();
        let peak_in_flight = self
            .accounts
            .iter()
            .map(|(id, state)| (id.clone(), state.peak_in_flight.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        Stats {
            calls,
            throttles,
            peak_in_flight,
            peak_in_flight_total: self.counters.peak_in_flight.load(Ordering::Relaxed),
            in_flight_history: self.counters.history.lock().unwrap().clone(),
            requests: self.counters.requests.load(Ordering::Relaxed),
        }
    }
}

/// Decrements an in-flight counter when a request ends, also when it unwinds.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    /// Counts one more request in flight, raising `peak` if needed; returns the new count.
    fn enter(counter: &'a AtomicU64, peak: &AtomicU64) -> (Self, u64) {
        let now = counter.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(now, Ordering::Relaxed);
        (Self(counter), now)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The identity a request's credentials stand for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The base credentials: the hub account.
    Hub { access_key: String },
    /// Credentials `AssumeRole` issued for an account.
    Assumed { account: String, access_key: String },
}

/// Access keys `AssumeRole` issues: `ASIA`, the account id, four hex digits.
pub(crate) fn issued_key(account: &str, n: u64) -> String {
    format!("ASIA{account}{:04X}", n & 0xFFFF)
}

/// The access key and service of a SigV4 `Authorization` header.
fn credential_scope(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let credential = value
        .split("Credential=")
        .nth(1)?
        .split([',', ' '])
        .next()?;
    let mut parts = credential.split('/');
    let key = parts.next()?.to_owned();
    let service = parts.nth(2)?.to_owned();
    Some((key, service))
}

async fn handle(
    state: axum::extract::State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state = state.0;
    let counters = &state.counters;
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let (_guard, in_flight) = InFlight::enter(&counters.in_flight, &counters.peak_in_flight);
    counters.history.lock().unwrap().push(in_flight as u32);
    let request_id = state.new_id();
    if method == Method::GET {
        return s3::get_object(&state, &uri, &request_id).into_response();
    }
    if method != Method::POST {
        return Reply::query_error(
            StatusCode::METHOD_NOT_ALLOWED,
            xml::IAM_NAMESPACE,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            &request_id,
        )
        .into_response();
    }
    let scope = credential_scope(&headers);
    let Some((access_key, service)) = scope else {
        return Reply::query_error(
            StatusCode::FORBIDDEN,
            xml::IAM_NAMESPACE,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
            &request_id,
        )
        .into_response();
    };
    let caller = if let Some(rest) = access_key.strip_prefix("ASIA") {
        let account = rest.get(..12).unwrap_or_default();
        if state.accounts.contains_key(account) && rest.len() == 16 {
            Caller::Assumed {
                account: account.to_owned(),
                access_key: access_key.clone(),
            }
        } else {
            let namespace = if service == "sts" {
                xml::STS_NAMESPACE
            } else {
                xml::IAM_NAMESPACE
            };
            return Reply::query_error(
                StatusCode::FORBIDDEN,
                namespace,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
                &request_id,
            )
            .into_response();
        }
    } else {
        Caller::Hub { access_key }
    };
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return organizations::handle(&state, &caller, target, &body).into_response();
    }
    let params: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let action = params.get("Action").cloned().unwrap_or_default();
    match service.as_str() {
        "sts" => sts::handle(&state, &caller, &action, &params, &request_id).into_response(),
        _ => iam_with_faults(&state, &caller, &action, &params, &request_id).await,
    }
}

/// IAM calls act in the caller's account and suffer its faults first.
async fn iam_with_faults(
    state: &SimState,
    caller: &Caller,
    action: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Response {
    let account_id = match caller {
        Caller::Hub { .. } => state.scenario.hub_account.clone(),
        Caller::Assumed { account, .. } => account.clone(),
    };
    let operation = iam::operation_name(action);
    state.count(&account_id, operation);
    let Some(account) = state.accounts.get(&account_id) else {
        // The hub account holds no principals of its own unless the scenario lists it.
        return iam::handle_empty(state, action, params, request_id).into_response();
    };
    let (_guard, _) = InFlight::enter(&account.in_flight, &account.peak_in_flight);
    let faults = &account.account.faults;
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if let (Some(bucket), Some(limit)) = (&account.bucket, faults.rate_limit) {
        let allowed = {
            let mut bucket = bucket.lock().unwrap();
            let now = Instant::now();
            let refill = now.duration_since(bucket.updated).as_secs_f64() * limit.per_second;
            bucket.tokens = (bucket.tokens + refill).min(f64::from(limit.burst));
            bucket.updated = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                true
            } else {
                false
            }
        };
        if !allowed {
            *state
                .counters
                .throttles
                .lock()
                .unwrap()
                .entry(account_id.clone())
                .or_default() += 1;
            return Reply::query_error(
                StatusCode::BAD_REQUEST,
                xml::IAM_NAMESPACE,
                "Throttling",
                "Rate exceeded",
                request_id,
            )
            .into_response();
        }
    }
    let n = account.iam_calls.fetch_add(1, Ordering::Relaxed) + 1;
    if faults
        .dropped_connections
        .is_some_and(|burst| burst.hits(n))
    {
        // Unwinding without the panic hook ends this connection's task: the socket closes with
        // no answer, as a dropped connection would.
        std::panic::resume_unwind(Box::new(DroppedConnection));
    }
    if let Some(burst) = faults.server_errors.filter(|burst| burst.hits(n)) {
        let (status, code, message) = match burst.status {
            Some(503) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Service Unavailable",
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                "An internal error has occurred",
            ),
        };
        return Reply::query_error(status, xml::IAM_NAMESPACE, code, message, request_id)
            .into_response();
    }
    iam::handle(state, account, action, params, request_id).into_response()
}

/// A running simulator.
pub struct SimHandle {
    /// `http://127.0.0.1:PORT`, the endpoint URL for every SDK client.
    pub base_url: String,
    pub address: SocketAddr,
    state: Arc<SimState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl SimHandle {
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// What a correct collector must have stored (see [`Scenario::expected`]).
    pub fn expected(&self) -> &BTreeMap<String, Vec<ExpectedService>> {
        &self.state.expected
    }

    pub fn scenario(&self) -> &Scenario {
        &self.state.scenario
    }

    /// Account ids in scenario order.
    pub fn account_ids(&self) -> &[String] {
        &self.state.order
    }

    /// Stops serving and waits for the server to end.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the simulator on `address` (port 0 for an ephemeral one).
pub async fn start_on(scenario: Scenario, address: SocketAddr) -> Result<SimHandle, StartError> {
    let state = Arc::new(SimState::new(scenario)?);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind { address, source })?;
    let address = listener
        .local_addr()
        .map_err(|source| StartError::Bind { address, source })?;
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    Ok(SimHandle {
        base_url: format!("http://{address}"),
        address,
        state,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// Starts the simulator on an ephemeral port of 127.0.0.1.
pub async fn start(scenario: Scenario) -> Result<SimHandle, StartError> {
    start_on(scenario, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}
