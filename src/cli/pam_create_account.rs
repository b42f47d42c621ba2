//! `keyward pam-create-account`: the pam_exec hook that creates a first-time IAM user's account.
//!
//! sshd resolves the user before any key is checked, so an IAM user without a local account
//! cannot log in at all. This hook runs in sshd's PAM auth stack (as root, for anyone who can
//! reach sshd, with PAM_USER straight from the network): it validates the name before anything
//! else, bounds the IAM load, and creates the account only for an IAM user with an Active key in
//! `allowed_groups`. Under PAM it always exits non-zero, so it can never make authentication
//! succeed by itself; the user connects again and logs in with their key.

use std::time::SystemTime;

use super::{Context, Exit};
use crate::accounts::create::ShadowUtils;
use crate::accounts::local::SystemAccounts;
use crate::accounts::on_login::{self, Invocation, LoginFailure, OnLogin, PamUserProblem};
use crate::accounts::throttle::Throttle;
use crate::iam::{AwsIam, ClientOptions};
use crate::logging::untrusted;

#[derive(Debug, clap::Args)]
pub struct PamCreateAccount {
    /// Linux user name to create [default: $PAM_USER, as pam_exec sets it]
    #[arg(allow_hyphen_values = true)]
    user: Option<String>,
}

/// What the hook says to every client under PAM, whatever happened: pam_exec's `stdout` option
/// shows it to the unauthenticated client, so it must not depend on whether the name is an IAM
/// user, allowed, or created just now (C3).
pub const PAM_MESSAGE: &str =
    "keyward: if you may log in here, your account is ready or being prepared: connect again with your SSH key.";

/// What happened, for an admin running the hook by hand.
enum Created {
    Now(String),
    Nothing,
}

impl PamCreateAccount {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let invocation = Invocation::new(
            self.user,
            std::env::var_os("PAM_TYPE"),
            std::env::var_os("PAM_USER"),
        );
        match &invocation {
            Invocation::ByHand(None) => {
                anyhow::bail!("no user: pass USER, or run from pam_exec (which sets PAM_USER)")
            }
            Invocation::ByHand(Some(name)) => {
                if let Created::Now(msg) = create_for(ctx, name).await? {
                    println!("{msg}");
                }
            }
            Invocation::PamOther => {}
            // Under PAM nothing but PAM_MESSAGE reaches the client and nothing is returned as
            // an error (main would print it to the client).
            Invocation::PamAuth(name) => {
                match name {
                    Ok(name) => {
                        if let Err(e) = create_for(ctx, name).await {
                            tracing::error!(pam_user = untrusted(name), "{e:#}");
                        }
                    }
                    Err(why @ PamUserProblem::NotUtf8(lossy)) => {
                        tracing::info!(pam_user = untrusted(lossy), "no account created: {why}")
                    }
                    Err(why) => tracing::error!("no account created: {why}"),
                }
                println!("{PAM_MESSAGE}");
            }
        }
        Ok(if invocation.exits_ok() {
            Exit::Ok
        } else {
            Exit::Failure
        })
    }
}

async fn create_for(ctx: &Context, name: &str) -> anyhow::Result<Created> {
    let (config, _) = ctx.load_config()?;
    let options = ClientOptions::for_host(&config)?;
    let outcome = on_login::create_on_login(
        &config,
        name,
        &SystemAccounts::new(&config.state_dir),
        || Throttle::open(&config.state_dir),
        AwsIam::new(&options),
        &ShadowUtils::new(&config.state_dir),
        SystemTime::now(),
    )
    .await;
    let shown = untrusted(name);
    let linux_user = shown.as_str();
    match outcome {
        OnLogin::Created(account) => {
            tracing::info!(
                iam_user = account.iam_user,
                linux_user,
                uid = account.uid,
                iam_user_id = account.iam_user_id,
                "account created for IAM user"
            );
            return Ok(Created::Now(format!(
                "keyward: created account {name} for IAM user {}. Connect again to log in with your SSH key.",
                account.iam_user
            )));
        }
        // An IAM failure keeps its own exit code (3, 4), as in every command.
        OnLogin::Failed(LoginFailure::Iam(e)) => {
            return Err(anyhow::Error::new(e).context("no account created"))
        }
        OnLogin::Failed(e) => return Err(anyhow::Error::new(e).context("no account created")),
        OnLogin::Off => tracing::debug!(pam_user = linux_user, "create_on_login is off"),
        OnLogin::Exists => {}
        OnLogin::Refused(refusal) => {
            tracing::info!(pam_user = linux_user, "no account created: {refusal}")
        }
        OnLogin::RecentlyRefused => tracing::debug!(
            pam_user = linux_user,
            "refused recently; IAM not asked again"
        ),
        OnLogin::OverBudget => tracing::warn!(
            pam_user = linux_user,
            "account lookups over budget; IAM not asked"
        ),
        OnLogin::NoSuchUser => {
            tracing::info!(
                pam_user = linux_user,
                "no account created: no such IAM user"
            )
        }
        OnLogin::WrongIdentity(why) => {
            tracing::warn!(linux_user, "no account created: {why}")
        }
        OnLogin::NotCreated(refused) => {
            tracing::warn!(linux_user, "no account created: {refused}")
        }
    }
    Ok(Created::Nothing)
}
