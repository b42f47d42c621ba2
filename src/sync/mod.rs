//! Sync: IAM groups and users become Linux groups and accounts (`keyward sync`, hourly).
//!
//! `read` takes one complete IAM snapshot (or fails as a whole), `local` reads the account
//! database and keyward's records, `plan` decides as a pure function of both, and `apply`
//! carries the plan out through shadow-utils, one whole action at a time. It must never lock
//! out or delete anyone because IAM was unreachable, throttled or answered in part, and never
//! touch an account or group keyward did not create.

pub mod apply;
pub mod local;
pub mod plan;
pub mod read;
pub mod rename;

#[cfg(test)]
mod tests;
