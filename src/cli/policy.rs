//! `keyward policy`: print the least-privilege IAM policy keyward needs, ready for
//! `aws iam create-policy --policy-document file://...`.
//!
//! The documents come from `doctor::policy`, the same lists `keyward doctor` probes. stdout
//! carries the JSON document only; notes go to stderr so the output can be redirected to a file.

use super::{Context, Exit};
use crate::doctor::policy;

#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("kind").args(["host", "user", "assume_role", "issuer", "ca_admin", "open"])),
    after_help = "\
--host (the default): the IAM reads of authorized-keys, pam-create-account and sync, for the \
hosts' instance role (or the role in iam_role_arn). --user: upload/list/enable/disable/delete \
keys of the caller's own IAM user only (${aws:username}), for a group of people. \
--assume-role: with iam_role_arn set, what the host's own role needs to assume that role. \
--issuer: the certificate issuer's role (kms:Sign on the CA key, the callers' IAM groups, EC2 \
instances for host certificates); --ca-admin: whoever runs `keyward ca init` (no kms:Sign, \
but kms:PutKeyPolicy on the CA key, which can grant it: as trusted as the issuer). \
Both name the CA key by --key-arn, or else by its alias (the [issuer] table's ca_key_alias, or \
alias/keyward-ca) through the kms:ResourceAliases condition. Restrict kms:Sign in the CA key's \
own key policy too: a key policy granting the account root leaves IAM policies in charge. \
--open: for people who run `keyward open` / `close` / `open --sweep`: EC2 reads on *, ingress \
changes only in security groups carrying the marker tag ([reach.open] group_tag of the laptop \
settings, default keyward:open), rule tags only keyward:owner and keyward:expires; IAM cannot \
scope revocation by a rule's tags, so its holders may revoke any rule in the marked groups. \
The tests' emulator (moto) enforces neither key policies nor conditions: these documents are \
reviewed, not tested."
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
    /// The policy for the certificate issuer's role (the only holder of kms:Sign)
    #[arg(long)]
    issuer: bool,
    /// The policy for whoever creates and manages the CA key (as trusted as the issuer)
    #[arg(long)]
    ca_admin: bool,
    /// The policy for people who open security groups for themselves (`keyward open`)
    #[arg(long)]
    open: bool,
    /// The CA key's ARN, to name it instead of its alias (with --issuer or --ca-admin)
    #[arg(long, value_name = "ARN")]
    key_arn: Option<String>,
}

impl Policy {
    pub fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let document = if self.issuer || self.ca_admin {
            let alias = match ctx.load_config() {
                Ok((config, _)) => config
                    .issuer
                    .map_or_else(|| crate::ca::DEFAULT_ALIAS.to_owned(), |i| i.ca_key_alias),
                Err(e) if ctx.config_path.is_some() => return Err(e.into()),
                Err(_) => crate::ca::DEFAULT_ALIAS.to_owned(),
            };
            if let Some(arn) = &self.key_arn {
                if !arn.starts_with("arn:") || !arn.contains(":key/") {
                    anyhow::bail!("--key-arn {arn:?} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)");
                }
            }
            if self.issuer {
                policy::issuer_policy(self.key_arn.as_deref(), &alias)
            } else {
                policy::ca_admin_policy(self.key_arn.as_deref(), &alias)
            }
        } else if self.open {
            let settings = super::ssh_cert::reach_settings()?;
            let group_tag = crate::reach::open::Settings::from_reach(&settings.open)?.group_tag;
            policy::open_policy(&group_tag)
        } else if self.user {
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
