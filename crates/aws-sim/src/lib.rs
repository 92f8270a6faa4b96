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

// Layers, each using only those above it in this list: data, then shared state and faults,
// then the services, then the router.
mod catalog;
pub mod identity;
pub mod policy_book;
pub mod scenario;
mod xml;

mod reply;
mod state;
mod stats;

mod faults;

mod details;
mod iam;
mod iam_writes;
mod organizations;
mod s3;
mod sts;

mod server;

pub use catalog::SERVICES;
pub use scenario::{
    AccountFaults, AssumeRoleFault, Burst, ExpectedIdentity, ExpectedService, PrincipalFaults,
    PrincipalKind, RateLimit, Scenario,
};
pub use server::{start, start_on, SimHandle, StartError};
pub use stats::Stats;
