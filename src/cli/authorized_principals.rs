//! `keyward authorized-principals USER KEY_ID`: sshd's AuthorizedPrincipalsCommand (`%u %i`).
//!
//! stdout goes to sshd and carries principal lines only; the decision is
//! `accounts::principals`, from local files alone (never IAM), and every refusal is logged
//! with validated values only. Anything doubtful prints nothing, and the exit code is 0 either
//! way: sshd treats a failing command as "no principals", which is what nothing printed says.

use std::io::Write;

use anyhow::Context as _;

use super::{Context, Exit};
use crate::accounts::local::SystemAccounts;
use crate::accounts::principals::{self, LockRecords, Refusal};
use crate::logging::{message_id, untrusted};

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct AuthorizedPrincipals {
    /// Linux user name being logged in to (sshd's %u)
    // Both come through sshd from the network (the key id from a CA-signed certificate): a
    // value starting with '-' is a value to judge, not an option.
    #[arg(allow_hyphen_values = true)]
    user: String,
    /// The certificate's key id (sshd's %i): keyward:<iam user>:<UserId>:<serial>
    #[arg(allow_hyphen_values = true)]
    key_id: String,
}

impl AuthorizedPrincipals {
    pub fn run(self, ctx: &Context, out: &mut impl Write) -> anyhow::Result<Exit> {
        let (config, _) = ctx.load_config()?;
        let local = SystemAccounts::new(&config.state_dir);
        let locks = LockRecords::new(&config.state_dir);
        let instance = principals::instance_id(&config);
        let linux_user = untrusted(&self.user);
        match principals::principals(
            &config,
            &self.user,
            &self.key_id,
            &local,
            &locks,
            instance.as_ref(),
        ) {
            Ok(accepted) => {
                let text: String = accepted
                    .principals
                    .iter()
                    .map(|p| format!("{p}\n"))
                    .collect();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .context("cannot write principals to stdout")?;
                tracing::info!(
                    message_id = message_id::KEY_SERVED,
                    iam_user = accepted.iam_user,
                    linux_user,
                    user_id = accepted.user_id,
                    serial = accepted.serial,
                    source = "certificate",
                    "certificate principals served to sshd"
                );
            }
            Err(refusal) => {
                // A key id that parsed is made of IAM's own alphabet; one that did not is
                // logged escaped and capped, never in the message text.
                let key_id = untrusted(&self.key_id);
                match &refusal {
                    Refusal::AccountDatabase(_) | Refusal::LockDoubtful => tracing::warn!(
                        message_id = message_id::LOOKUP_REFUSED,
                        linux_user,
                        key_id,
                        "certificate refused: {refusal}"
                    ),
                    _ => tracing::info!(
                        message_id = message_id::LOOKUP_REFUSED,
                        linux_user,
                        key_id,
                        "certificate refused: {refusal}"
                    ),
                }
            }
        }
        Ok(Exit::Ok)
    }
}
