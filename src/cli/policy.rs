//! `keyward policy`: print the least-privilege IAM policy keyward needs, ready for
//! `aws iam create-policy --policy-document file://...`.
//!
//! The documents come from `doctor::policy`, the same lists `keyward doctor` probes. stdout
//! carries the JSON document only; notes go to stderr so the output can be redirected to a file.

use super::{Context, Exit};
use crate::doctor::policy;

#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("kind").args(["host", "user", "assume_role"])),
    after_help = "\
--host (the default): the IAM reads of authorized-keys, pam-create-account and sync, for the \
hosts' instance role (or the role in iam_role_arn). --user: upload/list/enable/disable/delete \
keys of the caller's own IAM user only (${aws:username}), for a group of people. \
--assume-role: with iam_role_arn set, what the host's own role needs to assume that role."
)]
pub struct Policy {
    /// The read-only policy for hosts [default]
    #[arg(long)]
    host: bool,
    /// The policy for people managing the SSH keys of their own IAM user
    #[arg(long)]
    user: bool,
    /// The sts:AssumeRole statement for the host's own role (needs iam_role_arn in the config)
    #[arg(long)]
    assume_role: bool,
}

impl Policy {
    pub fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let document = if self.user {
            policy::user_policy()
        } else if self.assume_role {
            let (config, source) = ctx.load_config()?;
            let Some(arn) = config.iam_role_arn else {
                anyhow::bail!(
                    "iam_role_arn is not set in {source}: the host reads IAM with its own role, which needs only `keyward policy --host`"
                );
            };
            policy::assume_role_policy(&arn)
        } else {
            match ctx.load_config() {
                Ok((config, source)) => {
                    if let Some(arn) = &config.iam_role_arn {
                        eprintln!(
                            "keyward: iam_role_arn is set ({source}): attach this policy to {arn}; \
                             this host's own role needs `keyward policy --assume-role`, and {arn} must trust it"
                        );
                    }
                }
                Err(e) if ctx.config_path.is_some() => return Err(e.into()),
                Err(e) => eprintln!(
                    "keyward: note: {e}; if it sets iam_role_arn, see `keyward policy --assume-role`"
                ),
            }
            policy::host_policy()
        };
        print!("{}", policy::render(&document));
        Ok(Exit::Ok)
    }
}
