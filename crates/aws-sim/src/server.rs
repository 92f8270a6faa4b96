//! The simulator's HTTP server, on top of the services: routes each request to STS, IAM,
//! Organizations or S3 by its shape (as AWS endpoints would), works out who is calling from
//! the SigV4 access key, and lets IAM calls meet their account's faults first. Starting and
//! stopping the simulator.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::reply::Reply;
use crate::scenario::{ExpectedService, PrincipalKind, Scenario, ScenarioError};
use crate::state::{Caller, SimState};
use crate::stats::Stats;
use crate::{details, faults, iam, iam_writes, organizations, s3, sts, xml};

/// The access key, region and service of a SigV4 `Authorization` header.
fn credential_scope(headers: &HeaderMap) -> Option<(String, String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let credential = value
        .split("Credential=")
        .nth(1)?
        .split([',', ' '])
        .next()?;
    let mut parts = credential.split('/');
    let key = parts.next()?.to_owned();
    let region = parts.nth(1)?.to_owned();
    let service = parts.next()?.to_owned();
    Some((key, region, service))
}

async fn handle(
    state: axum::extract::State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state = state.0;
    let _in_flight = state.counters.arrive();
    let request_id = state.new_id();
    let scope = credential_scope(&headers);
    if let Some((_, region, service)) = &scope {
        state.counters.signed_in(service, region);
    }
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
    let Some((access_key, _, service)) = scope else {
        return Reply::query_error(
            StatusCode::FORBIDDEN,
            xml::IAM_NAMESPACE,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
            &request_id,
        )
        .into_response();
    };
    let caller = match caller(&state, access_key, &service, &request_id) {
        Ok(caller) => caller,
        Err(reply) => return reply.into_response(),
    };
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return organizations::handle(&state, &caller, target, &body).into_response();
    }
    let params: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let action = params.get("Action").cloned().unwrap_or_default();
    match service.as_str() {
        "sts" => sts::handle(&state, &caller, &action, &params, &request_id).into_response(),
        _ => iam(&state, &caller, &action, &params, &request_id).await,
    }
}

/// Who `access_key` stands for: an account `AssumeRole` issued it for (`ASIA` + account id +
/// four hex digits), or else the hub. An `ASIA` key of no known account is refused.
fn caller(
    state: &SimState,
    access_key: String,
    service: &str,
    request_id: &str,
) -> Result<Caller, Reply> {
    let Some(rest) = access_key.strip_prefix("ASIA") else {
        return Ok(Caller::Hub { access_key });
    };
    let namespace = if service == "sts" {
        xml::STS_NAMESPACE
    } else {
        xml::IAM_NAMESPACE
    };
    let refused = |code: &str, message: &str| {
        Reply::query_error(StatusCode::FORBIDDEN, namespace, code, message, request_id)
    };
    let account = rest.get(..12).unwrap_or_default();
    if !state.accounts.contains_key(account) || rest.len() != 16 {
        return Err(refused(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
    }
    if state.session_expired(&access_key) {
        state.counters.expired(account);
        return Err(refused(
            "ExpiredToken",
            "The security token included in the request is expired",
        ));
    }
    Ok(Caller::Assumed {
        account: account.to_owned(),
        access_key,
    })
}

/// IAM calls act in the caller's account and meet its faults first.
async fn iam(
    state: &SimState,
    caller: &Caller,
    action: &str,
    params: &HashMap<String, String>,
    request_id: &str,
) -> Response {
    let account_id = state.caller_account(caller);
    state.count(account_id, iam::operation_name(action));
    let Some(account) = state.accounts.get(account_id) else {
        // The hub account holds no principals of its own unless the scenario lists it.
        return iam::handle_empty(action, params, request_id).into_response();
    };
    let _in_flight = account.counters.enter();
    if let Err(reply) = faults::before_iam_call(state, account, request_id).await {
        return reply.into_response();
    }
    // The identity calls first, then the listings and Access Advisor (which answer any other
    // action as AWS answers an unknown one).
    details::handle(state, account, action, params, request_id)
        .or_else(|| iam_writes::handle(state, account, action, params, request_id))
        .unwrap_or_else(|| iam::handle(state, account, action, params, request_id))
        .into_response()
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

    /// Each service a role or user used after `since_ms` that its policies, as IAM's write
    /// calls left them, no longer allow: `"ARN namespace"`, by the simulator's own evaluator.
    pub fn denied_uses(&self, since_ms: i64) -> Vec<String> {
        let mut denied = Vec::new();
        for account in self.state.accounts.values() {
            let principals = &account.account.principals;
            let book = account.policies.lock().unwrap();
            for (index, principal) in principals.iter().enumerate() {
                if !matches!(principal.kind, PrincipalKind::Role | PrincipalKind::User) {
                    continue;
                }
                let documents = book.effective(principals, index);
                for service in &principal.services {
                    let used = service
                        .last_authenticated_ms
                        .is_some_and(|ms| ms > since_ms);
                    let probe = format!("{}:AardvarkSimProbe", service.namespace);
                    if used && !crate::policy_book::allows(&documents, &probe) {
                        denied.push(format!("{} {}", principal.arn, service.namespace));
                    }
                }
            }
        }
        denied.sort();
        denied
    }

    /// What a correct collector must have stored (see [`Scenario::expected`]).
    pub fn expected(&self) -> &BTreeMap<String, Vec<ExpectedService>> {
        self.state.expected()
    }

    /// A principal of `account` that used a service whose actions AWS tracks (its
    /// `/api/1/actions` answer is not empty once collected at action level).
    pub fn principal_with_tracked_actions(&self, account: &str) -> Option<&str> {
        let prefix = format!("arn:{}:iam::{account}:", self.state.scenario.partition);
        self.expected()
            .iter()
            .filter(|(arn, _)| arn.starts_with(&prefix))
            .find(|(_, services)| {
                services.iter().any(|service| {
                    service.last_authenticated > 0
                        && !crate::catalog::tracked_actions(&service.service_namespace).is_empty()
                })
            })
            .map(|(arn, _)| arn.as_str())
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
