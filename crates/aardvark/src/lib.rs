//! aardvark: collects AWS IAM Access Advisor data across accounts, stores it in upstream
//! Netflix Aardvark's schema, and serves it over upstream's JSON API.
//! See ARCHITECTURE.md for the map of modules.

mod allocator;
pub mod api;
pub mod arn;
pub mod auth;
pub mod cli;
pub mod collector;
pub mod config;
pub mod db;
pub mod error_text;
pub mod findings;
pub mod hosts;
mod named;
pub mod policy;
pub mod recommend;
pub mod service;
mod slow_lane;
pub mod time;
pub mod unused;
