//! aws-sim: a wire-compatible stand-in for the AWS endpoints aardvark uses (STS, IAM,
//! Organizations, S3), with per-account and per-principal fault injection and counters, so that
//! the official SDK clients can be exercised end to end without a network.
//!
//! ```no_run
//! # async fn demo() {
//! let scenario = aws_sim::Scenario::generated(42, 10, 20);
//! let sim = aws_sim::start(scenario).await.unwrap();
//! // point every SDK client's endpoint_url at sim.base_url
//! println!("{} principals expected", sim.expected().len());
//! # }
//! ```

mod catalog;
mod iam;
mod organizations;
mod s3;
pub mod scenario;
mod server;
mod sts;
mod xml;

pub use catalog::SERVICES;
pub use scenario::{
    AccountFaults, AssumeRoleFault, Burst, ExpectedService, PrincipalFaults, PrincipalKind,
    RateLimit, Scenario,
};
pub use server::{start, start_on, SimHandle, StartError, Stats};

/// `2026-10-27T05:33:20Z`
pub(crate) fn iso8601_seconds(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `2026-10-27T05:33:20.466Z`
pub(crate) fn iso8601_millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
