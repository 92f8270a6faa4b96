//! Counts of the AWS calls a collecting process makes, for `/metrics`: calls by service,
//! operation and outcome (`ok`, AWS's error code, or a transport failure), attempts the SDK's
//! retry strategy added, throttling answers, and session renewals. An SDK interceptor sees every
//! attempt, retries included, which the collector's own code never does.

use aws_sdk_iam::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_iam::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The labels of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OperationLabels {
    pub service: String,
    pub operation: String,
}

/// The labels of one call's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub service: String,
    pub operation: String,
    pub outcome: String,
}

/// The AWS counters of one process (cheap to clone: the counters are shared).
#[derive(Debug, Clone, Default)]
pub struct AwsMetrics {
    pub calls: Family<OutcomeLabels, Counter>,
    pub retries: Family<OperationLabels, Counter>,
    pub throttles: Family<OperationLabels, Counter>,
    pub session_renewals: Counter,
}

impl AwsMetrics {
    /// Adds the counters to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "aardvark_aws_calls",
            "AWS calls by service, operation and outcome (ok, AWS's error code, or Timeout, ConnectionError, ...), after the SDK's retries; a throttled call its account's pacer sends again counts each time",
            self.calls.clone(),
        );
        registry.register(
            "aardvark_aws_retries",
            "Attempts the SDK's retry strategy added to AWS calls",
            self.retries.clone(),
        );
        registry.register(
            "aardvark_aws_throttles",
            "AWS answers that said the caller was throttled",
            self.throttles.clone(),
        );
        registry.register(
            "aardvark_aws_session_renewals",
            "Assumed-role sessions renewed before they expired, or after AWS said they had",
            self.session_renewals.clone(),
        );
    }

    /// The interceptor that counts every client's calls.
    pub(crate) fn interceptor(&self) -> CallCounter {
        CallCounter(self.clone())
    }
}

/// Counts calls as the SDK makes them (see the module's doc).
#[derive(Debug)]
pub(crate) struct CallCounter(AwsMetrics);

fn operation(cfg: &ConfigBag) -> OperationLabels {
    let metadata = cfg.load::<Metadata>();
    OperationLabels {
        service: metadata
            .map_or("unknown", Metadata::service)
            .to_ascii_lowercase(),
        operation: metadata.map_or("unknown", Metadata::name).to_owned(),
    }
}

/// AWS's error code in a response: the `<Code>` of the XML protocols (IAM, STS, S3), the
/// `x-amzn-ErrorType` header or `__type` of the JSON ones (Organizations).
fn error_code(response: &HttpResponse) -> Option<String> {
    if response.status().is_success() {
        return None;
    }
    let clean = |code: &str| -> Option<String> {
        // `aws.protocoltests#Code:http://...` forms: the code is between `#` and `:`.
        let code = code.rsplit('#').next()?.split(':').next()?.trim();
        let valid = !code.is_empty()
            && code.len() <= 64
            && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
        valid.then(|| code.to_owned())
    };
    if let Some(code) = response.headers().get("x-amzn-errortype") {
        return clean(code);
    }
    let body = response.body().bytes()?;
    if let Some(start) = memchr::memmem::find(body, b"<Code>") {
        let rest = &body[start + 6..];
        let end = memchr::memchr(b'<', rest)?;
        return clean(std::str::from_utf8(&rest[..end]).ok()?);
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    json.get("__type")
        .or_else(|| json.get("code"))
        .and_then(serde_json::Value::as_str)
        .and_then(clean)
}

/// Whether an answer with `status` and AWS's error `code` says the caller was throttled (the
/// SDK's own list of throttling codes); each account's pacer (`pacer.rs`) asks the same.
pub(super) fn is_throttled(status: u16, code: Option<&str>) -> bool {
    status == 429
        || code.is_some_and(|code| {
            aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code)
        })
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "aardvark call counter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg
            .load::<RequestAttempts>()
            .is_some_and(|attempts| attempts.attempts() > 1)
        {
            self.0.retries.get_or_create(&operation(cfg)).inc();
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let throttled = context.response().is_some_and(|response| {
            is_throttled(response.status().as_u16(), error_code(response).as_deref())
        });
        if throttled {
            self.0.throttles.get_or_create(&operation(cfg)).inc();
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let outcome = match context.output_or_error() {
            Some(Ok(_)) => "ok".to_owned(),
            Some(Err(err)) => match context.response().and_then(error_code) {
                Some(code) => code,
                None if err.is_timeout_error() => "Timeout".to_owned(),
                None if err.is_connector_error() => "ConnectionError".to_owned(),
                None if err.is_response_error() => "MalformedResponse".to_owned(),
                None => match context.response() {
                    Some(response) => format!("HTTP{}", response.status().as_u16()),
                    None => "RequestError".to_owned(),
                },
            },
            None => "RequestError".to_owned(),
        };
        let OperationLabels { service, operation } = operation(cfg);
        self.0
            .calls
            .get_or_create(&OutcomeLabels {
                service,
                operation,
                outcome,
            })
            .inc();
        Ok(())
    }
}
