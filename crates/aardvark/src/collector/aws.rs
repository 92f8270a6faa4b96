//! The AWS side of the collector: SDK clients built from the default credential chain (or
//! overrides), endpoint overrides, retry and timeout configuration, and the classification of
//! SDK errors into a code and message the operator can act on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::config::retry::RetryPartition;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::config::Credentials;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{tls, Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority, RetryReason,
};
use aws_smithy_types::retry::ErrorKind;
use tokio::sync::Semaphore;

use super::calls::AwsMetrics;
use crate::config::Settings;
use crate::error_text::{cause_of, one_line};

/// The most idle connections the HTTP client keeps to one endpoint.
const IDLE_CONNECTIONS_PER_HOST: usize = 128;

/// The most AWS calls a run has on the wire at once. Each holds tens of kB (the SDK's state of
/// the call, a connection and its buffers) until its answer is read. Every account's pacer
/// sends on its own clock, so when the process cannot read answers as fast as a thousand
/// accounts' pacers send (its CPU is the brake), calls would pile up on the wire: about 6,000
/// sockets open at once at 1,000 accounts on 2 cores, and a heap profile put 230 MB in the
/// calls and their connections. 256 per core is more than a core can sign and read while AWS
/// answers (about 0.25 ms of CPU per call, 100 ms or more per answer), so the turns only bind
/// when the CPU is the brake anyway.
fn calls_on_the_wire() -> usize {
    256 * std::thread::available_parallelism().map_or(1, usize::from)
}

/// What to use instead of the environment's endpoint and credentials (the demo and tests).
#[derive(Debug, Clone, Default)]
pub struct AwsOverrides {
    pub endpoint_url: Option<String>,
    pub credentials: Option<Credentials>,
}

/// Why an AWS call failed: AWS's error code (or ours for transport failures) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The code and message of an SDK error, after the SDK's own retries.
    pub fn from_sdk<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let context = || one_line(err);
        match err {
            SdkError::ServiceError(service) => {
                let inner = service.err();
                let status = service.raw().status();
                match inner.code() {
                    Some(code) => {
                        Self::new(code, inner.message().map_or_else(context, str::to_owned))
                    }
                    // A success status whose body the SDK could not read is a malformed answer.
                    None if status.is_success() => Self::new("MalformedResponse", context()),
                    None => Self::new(format!("HTTP{}", status.as_u16()), context()),
                }
            }
            // The attempt's timeout or the connection's read timeout, whichever fired first.
            SdkError::TimeoutError(_) => Self::new("Timeout", context()),
            SdkError::DispatchFailure(failure) if failure.is_timeout() => {
                Self::new("Timeout", context())
            }
            SdkError::DispatchFailure(_) => Self::new("ConnectionError", context()),
            SdkError::ResponseError(_) => Self::new("MalformedResponse", context()),
            _ => Self::new("RequestError", context()),
        }
    }

    /// The same failure, its message saying which operation it came from.
    pub fn during(self, operation: &str) -> Self {
        Self::new(self.code, format!("{operation}: {}", self.message))
    }

    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// SDK configuration shared by every client of a run.
#[derive(Debug, Clone)]
pub struct AwsContext {
    base: SdkConfig,
    endpoints: BTreeMap<String, String>,
    /// S3 must address buckets by path on endpoints other than AWS's own.
    path_style_s3: bool,
    /// What every client's calls add to.
    metrics: AwsMetrics,
    /// Whether accounts are paced (their pacers then send throttled calls again, not the SDK).
    paced: bool,
    /// Turns for a call on the wire, shared by every account (`on_the_wire`).
    wire: Arc<Semaphore>,
}

impl AwsContext {
    pub async fn new(settings: &Settings, overrides: AwsOverrides) -> Self {
        // Standard, not adaptive, when accounts are paced: each account's pacer is then the one
        // brake on its IAM calls (`pacer.rs` says why). Unpaced, the SDK's adaptive mode is the
        // only brake there is.
        let paced = settings.updater_account_rate_limit > 0.0;
        let retry = if paced {
            RetryConfig::standard()
        } else {
            RetryConfig::adaptive()
        };
        let retry = retry
            .with_max_attempts(settings.updater_max_attempts)
            .with_initial_backoff(Duration::from_millis(200))
            .with_max_backoff(Duration::from_secs(10));
        let attempt = settings.updater_request_timeout;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(attempt.min(Duration::from_secs(10)))
            .read_timeout(attempt)
            .operation_attempt_timeout(attempt)
            .operation_timeout(
                attempt * (settings.updater_max_attempts + 1) + Duration::from_secs(30),
            )
            .build();
        // One HTTP client (one connection pool, one TLS configuration) for every service
        // client: left to itself the SDK builds one per client, that is one per account, and
        // 1,000 accounts then held about 1 GB of idle connections.
        // Built as the SDK builds its default (rustls with aws-lc, proxies from the environment).
        let http_client = Builder::new().build_with_connector_fn(|settings, components| {
            let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ));
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            // A burst of requests (every account's first calls at once) opens a connection
            // each, about 30 kB apiece, and the pool would keep them all idle for 90 s (2,540
            // connections, 72 MB, at 300 accounts). Past this many idle ones, a connection is
            // closed when its request is done; the steady state needs about rate x latency.
            connector.set_pool_max_idle_per_host(Some(IDLE_CONNECTIONS_PER_HOST));
            connector.build()
        });
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .region(Region::new(settings.aws_region.clone()))
            .retry_config(retry)
            .timeout_config(timeouts);
        let endpoint = overrides
            .endpoint_url
            .or_else(|| settings.aws_endpoint_url.clone());
        if let Some(url) = &endpoint {
            loader = loader.endpoint_url(url);
        }
        if let Some(credentials) = overrides.credentials {
            loader = loader.credentials_provider(credentials);
        }
        let base = loader.load().await;
        let path_style_s3 = endpoint.is_some()
            || settings.aws_endpoints.contains_key("s3")
            || std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        Self {
            base,
            endpoints: settings.aws_endpoints.clone(),
            path_style_s3,
            metrics: AwsMetrics::default(),
            paced,
            wire: Arc::new(Semaphore::new(calls_on_the_wire())),
        }
    }

    /// The ARN the hub's credentials stand for (STS `GetCallerIdentity`). A run checks it
    /// once before it starts: missing or refused credentials would otherwise fail every
    /// account, one long error each.
    pub async fn hub_identity(&self) -> Result<String, String> {
        let err = match self.sts().get_caller_identity().send().await {
            Ok(identity) => return Ok(identity.arn().unwrap_or("an unnamed identity").to_owned()),
            Err(err) => err,
        };
        if let Some(missing) = cause_of::<CredentialsError>(&err) {
            return Err(format!(
                "no AWS credentials found: {} (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance or task role is available)",
                one_line(missing)
            ));
        }
        let failure = Failure::from_sdk(&err);
        Err(match &err {
            SdkError::ServiceError(_) => {
                format!("AWS refused the hub's credentials (STS GetCallerIdentity): {failure}")
            }
            _ => format!("cannot reach AWS STS to check the hub's credentials: {failure}"),
        })
    }

    /// The turns for a call on the wire: an account's calls take one each while they are made
    /// (`Pacer::send`, `AssumeRole`).
    pub fn wire(&self) -> &Arc<Semaphore> {
        &self.wire
    }

    /// The counts of this context's AWS calls.
    pub fn metrics(&self) -> &AwsMetrics {
        &self.metrics
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        let mut config =
            aws_sdk_sts::config::Builder::from(&self.base).interceptor(self.metrics.interceptor());
        if let Some(url) = self.endpoints.get("sts") {
            config = config.endpoint_url(url);
        }
        aws_sdk_sts::Client::from_conf(config.build())
    }

    /// An S3 client, in `region` when given (SWAG's bucket may live elsewhere than the run's
    /// region: upstream's `SWAG.opts.region`).
    pub fn s3(&self, region: Option<&str>) -> aws_sdk_s3::Client {
        let mut config = aws_sdk_s3::config::Builder::from(&self.base)
            .force_path_style(self.path_style_s3)
            .interceptor(self.metrics.interceptor());
        if let Some(url) = self.endpoints.get("s3") {
            config = config.endpoint_url(url);
        }
        if let Some(region) = region {
            config = config.region(Region::new(region.to_owned()));
        }
        aws_sdk_s3::Client::from_conf(config.build())
    }

    pub fn organizations(&self) -> aws_sdk_organizations::Client {
        let mut config = aws_sdk_organizations::config::Builder::from(&self.base)
            .interceptor(self.metrics.interceptor());
        if let Some(url) = self.endpoints.get("organizations") {
            config = config.endpoint_url(url);
        }
        aws_sdk_organizations::Client::from_conf(config.build())
    }

    /// An IAM client acting in `account` with credentials `AssumeRole` returned. Each account
    /// has a retry partition of its own, so one throttled account cannot use up the retry
    /// quota of the others. When accounts are paced, its throttled calls are not retried by
    /// the SDK: the account's pacer sends them again.
    pub fn iam_for(&self, account: &str, credentials: Credentials) -> aws_sdk_iam::Client {
        let mut config = aws_sdk_iam::config::Builder::from(&self.base)
            .credentials_provider(credentials)
            .retry_partition(RetryPartition::new(format!("aardvark-iam-{account}")))
            .interceptor(self.metrics.interceptor());
        if self.paced {
            config = config.retry_classifier(PacerRetriesThrottles);
        }
        if let Some(url) = self.endpoints.get("iam") {
            config = config.endpoint_url(url);
        }
        aws_sdk_iam::Client::from_conf(config.build())
    }
}

/// Turns the SDK's retries of throttled answers off, for the clients whose calls go through an
/// account's pacer (`pacer.rs`): it sends them again itself, on its own slots. Runs after every
/// other classifier.
#[derive(Debug, Default)]
pub struct PacerRetriesThrottles;

impl ClassifyRetry for PacerRetriesThrottles {
    fn classify_retry(&self, _ctx: &InterceptorContext) -> RetryAction {
        RetryAction::NoActionIndicated
    }

    fn classify_retry_v2(&self, _ctx: &InterceptorContext, previous: &RetryAction) -> RetryAction {
        match previous {
            RetryAction::RetryIndicated(RetryReason::RetryableError {
                kind: ErrorKind::ThrottlingError,
                ..
            }) => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "throttles are the pacer's"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}
