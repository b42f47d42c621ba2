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
use crate::iam::{AwsIam, Directory, IamError};
use crate::keys::lookup;

#[derive(Debug, clap::Args)]
pub struct PamCreateAccount {
    /// Linux user name to create [default: $PAM_USER, as pam_exec sets it]
    #[arg(allow_hyphen_values = true)]
    user: Option<String>,
}

/// What happened, for the exit code and the message the user sees.
enum Created {
    Now(String),
    Nothing,
}

impl PamCreateAccount {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let under_pam = std::env::var_os("PAM_TYPE").is_some();
        if under_pam && std::env::var("PAM_TYPE").as_deref() != Ok("auth") {
            return Ok(ExitCode::FAILURE);
        }
        let name = match self.user.or_else(|| std::env::var("PAM_USER").ok()) {
            Some(n) => n,
            None => anyhow::bail!("no user: pass USER or run from pam_exec (PAM_USER)"),
        };
        let outcome = create_for(ctx, &name).await;
        match (&outcome, under_pam) {
            (Ok(Created::Now(msg)), _) => println!("{msg}"),
            (Err(e), false) => return Err(anyhow::anyhow!("{e:#}")),
            (Err(e), true) => tracing::error!(pam_user = %name.escape_debug(), "{e:#}"),
            (Ok(Created::Nothing), _) => {}
        }
        // Never success under PAM: the hook must not be able to let anyone in.
        Ok(if under_pam {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}

async fn create_for(ctx: &Context, name: &str) -> anyhow::Result<Created> {
    let (config, _) = ctx.load_config()?;
    let shown = name.escape_debug().to_string();
    if !config.create_on_login {
        tracing::debug!(pam_user = shown, "create_on_login is off");
        return Ok(Created::Nothing);
    }
    let local = SystemAccounts::new(&config.state_dir);
    let iam_user = match lookup::gate(&config, name, &local) {
        Ok(iam_user) => iam_user,
        Err(refusal) => {
            tracing::info!(pam_user = shown, "no account created: {refusal}");
            return Ok(Created::Nothing);
        }
    };
    if local.exists(name) {
        return Ok(Created::Nothing);
    }
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
        iam_facts(&iam, &iam_user).await
    })
    .await
    .unwrap_or_else(|_| {
        Err(IamError::Unreachable(
            "no answer within lookup_timeout".into(),
        ))
    });
    let facts = match facts {
        Ok(facts) => facts,
        Err(IamError::NotFound(_)) => {
            throttle.remember_refused(name, now);
            tracing::info!(pam_user = shown, "no account created: no such IAM user");
            return Ok(Created::Nothing);
        }
        Err(e) => return Err(e.into()),
    };

    let db = ShadowUtils::new(&config.state_dir);
    let uid = create::uid_for(&config, &facts.user_id);
    let account = match create::plan(
        &config,
        name,
        &iam_user,
        &facts,
        &db.local_facts(&config, name, uid),
    ) {
        Ok(account) => account,
        Err(refused) => {
            throttle.remember_refused(name, now);
            tracing::warn!(iam_user, linux_user = name, "no account created: {refused}");
            return Ok(Created::Nothing);
        }
    };
    db.create(&account, now).map_err(anyhow::Error::msg)?;
    tracing::info!(
        iam_user,
        linux_user = name,
        uid = account.uid,
        "account created for IAM user"
    );
    Ok(Created::Now(format!(
        "keyward: created account {name} for IAM user {iam_user}. Connect again to log in with your SSH key."
    )))
}

async fn iam_facts(iam: &AwsIam, iam_user: &str) -> Result<IamFacts, IamError> {
    let user_id = iam.user_id(iam_user).await?;
    let keys = iam.list_keys(iam_user).await?;
    // Read even when every IAM user is allowed: the new account joins its managed groups.
    let groups = Some(iam.groups_for_user(iam_user).await?);
    Ok(IamFacts {
        user_id,
        has_active_key: keys.iter().any(|k| k.active),
        groups,
    })
}
