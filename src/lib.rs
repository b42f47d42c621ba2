//! keyward: AWS IAM as the source of truth for SSH logins.
//!
//! The library holds every decision (name mapping, id hashing, key validation, cache freshness)
//! as pure functions, and thin adapters for IAM and the local system. The binary only parses
//! arguments and maps results to exit codes. Nothing here may panic on the login path.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod accounts;
pub mod audit;
pub mod ca;
pub mod cli;
pub mod clock;
pub mod config;
pub mod doctor;
pub mod ec2;
pub mod files;
pub mod http;
pub mod iam;
pub mod install;
pub mod issuer;
pub mod keys;
pub mod logging;
pub mod process;
pub mod reach;
pub mod sigv4;
pub mod state;
pub mod sync;
