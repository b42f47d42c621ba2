//! Local accounts: how IAM names and ids become Linux names and ids.

pub mod create;
pub mod ids;
pub mod local;
pub mod login_defs;
pub mod names;
pub mod on_login;
pub mod ownership;
pub mod principals;
pub mod throttle;
