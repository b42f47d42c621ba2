//! `keyward pam-create-account`: the pam_exec hook that creates a first-time IAM user's account.
//!
//! sshd resolves the user before any key is checked, so an IAM user without a local account
//! cannot log in at all. This hook runs in sshd's PAM auth stack (as root, for anyone who can
//! reach sshd, with PAM_USER straight from the network): it validates the name before anything
//! else, bounds the IAM load, and creates the account only for an IAM user with an Active key in
//! `allowed_groups`. Under PAM it always exits non-zero, so it can never make authentication
//! succeed by itself; the user connects again and logs in with their key.

use std::process::ExitCode;
use std::time::SystemTime;

use tokio::time::timeout;

use super::Context;
use crate::accounts::create::{self, AccountDb, IamFacts, ShadowUtils};
use crate::accounts::local::{LocalAccounts, SystemAccounts};
use crate::accounts::throttle::Throttle;
use crate::iam::{AwsIam, Directory, IamError, Identity};
use crate::keys::lookup;
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
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let under_pam = std::env::var_os("PAM_TYPE").is_some();
        if !under_pam {
            let Some(name) = self.user else {
                anyhow::bail!("no user: pass USER, or run from pam_exec (which sets PAM_USER)");
            };
            return match create_for(ctx, &name).await? {
                Created::Now(msg) => {
                    println!("{msg}");
                    Ok(ExitCode::SUCCESS)
                }
                Created::Nothing => Ok(ExitCode::SUCCESS),
            };
        }
        if std::env::var("PAM_TYPE").as_deref() != Ok("auth") {
            return Ok(ExitCode::FAILURE);
        }
        // Under PAM nothing but PAM_MESSAGE reaches the client and nothing is returned as an
        // error (main would print it to the client).
        let name = self
            .user
            .map(std::ffi::OsString::from)
            .or_else(|| std::env::var_os("PAM_USER"));
        match name.as_ref().map(|n| n.to_str()) {
            Some(Some(name)) => {
                if let Err(e) = create_for(ctx, name).await {
                    tracing::error!(pam_user = untrusted(name), "{e:#}");
                }
            }
            Some(None) => tracing::info!(
                pam_user = untrusted(&name.unwrap_or_default().to_string_lossy()),
                "no account created: PAM_USER is not UTF-8"
            ),
            None => tracing::error!("no account created: pam_exec set no PAM_USER"),
        }
        println!("{PAM_MESSAGE}");
        // Never success under PAM: the hook must not be able to let anyone in.
        Ok(ExitCode::FAILURE)
    }
}

async fn create_for(ctx: &Context, name: &str) -> anyhow::Result<Created> {
    let (config, _) = ctx.load_config()?;
    let shown = untrusted(name);
    if !config.create_on_login {
        tracing::debug!(pam_user = shown, "create_on_login is off");
        return Ok(Created::Nothing);
    }
    let local = SystemAccounts::new(&config.state_dir);
    let gate = match lookup::gate(&config, name, &local) {
        Ok(gate) => gate,
        Err(refusal) => {
            tracing::info!(pam_user = shown, "no account created: {refusal}");
            return Ok(Created::Nothing);
        }
    };
    match local.uid(name) {
        Ok(None) => {}
        Ok(Some(_)) => return Ok(Created::Nothing),
        Err(e) => anyhow::bail!("no account created: {e}"),
    }
    let iam_user = gate.iam_user.as_str();
    let throttle = Throttle::open(&config.state_dir).map_err(anyhow::Error::msg)?;
    let now = SystemTime::now();
    if throttle.recently_refused(name, now) {
        tracing::debug!(pam_user = shown, "refused recently; IAM not asked again");
        return Ok(Created::Nothing);
    }
    if !throttle.take_budget(now) {
        tracing::warn!(
            pam_user = shown,
            "account lookups over budget; IAM not asked"
        );
        return Ok(Created::Nothing);
    }

    let options = super::host_client_options(&config)?;
    let facts = timeout(config.lookup_timeout, async {
        let iam = AwsIam::new(&options).await;
        iam_facts(&iam, iam_user).await
    })
    .await
    .unwrap_or_else(|_| {
        Err(IamError::Unreachable(
            "no answer within lookup_timeout".into(),
        ))
    });
    let (identity, facts) = match facts {
        Ok(facts) => facts,
        Err(IamError::NotFound(_)) => {
            throttle.remember_refused(name, now);
            tracing::info!(pam_user = shown, "no account created: no such IAM user");
            return Ok(Created::Nothing);
        }
        Err(e) => return Err(e.into()),
    };
    if let Err(why) = lookup::check_identity(&config, name, None, &identity) {
        throttle.remember_refused(name, now);
        tracing::warn!(
            iam_user,
            linux_user = untrusted(name),
            "no account created: {why}"
        );
        return Ok(Created::Nothing);
    }

    let db = ShadowUtils::new(&config.state_dir);
    let uid = create::uid_for(&config, &facts.user_id);
    let account = match create::plan(
        &config,
        name,
        iam_user,
        &facts,
        &db.local_facts(&config, name, uid),
    ) {
        Ok(account) => account,
        Err(refused) => {
            throttle.remember_refused(name, now);
            tracing::warn!(
                iam_user,
                linux_user = untrusted(name),
                "no account created: {refused}"
            );
            return Ok(Created::Nothing);
        }
    };
    db.create(&account, now).map_err(anyhow::Error::msg)?;
    tracing::info!(
        iam_user,
        linux_user = untrusted(name),
        uid = account.uid,
        iam_user_id = account.iam_user_id,
        "account created for IAM user"
    );
    Ok(Created::Now(format!(
        "keyward: created account {name} for IAM user {iam_user}. Connect again to log in with your SSH key."
    )))
}

/// The three reads every attempt makes, concurrently, whatever the name: an absent user costs
/// the same calls as an allowed one.
async fn iam_facts(iam: &AwsIam, iam_user: &str) -> Result<(Identity, IamFacts), IamError> {
    let (identity, keys, groups) = tokio::join!(
        iam.identity(iam_user),
        iam.list_keys(iam_user),
        // Read even when every IAM user is allowed: the new account joins its managed groups.
        iam.groups_for_user(iam_user),
    );
    let (identity, keys, groups) = match (identity, keys, groups) {
        (Err(e @ IamError::NotFound(_)), _, _)
        | (_, Err(e @ IamError::NotFound(_)), _)
        | (_, _, Err(e @ IamError::NotFound(_))) => return Err(e),
        (Ok(i), Ok(k), Ok(g)) => (i, k, g),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(e),
    };
    let facts = IamFacts {
        user_id: identity.user_id.clone(),
        has_active_key: keys.iter().any(|k| k.active),
        groups: Some(groups),
    };
    Ok((identity, facts))
}
