//! `keyward rotate-key`: upload a new key, then disable the old one, in one step.
//!
//! Nothing is changed until the whole plan is known to work (old key identified, room under
//! IAM's key limit), and re-running after a partial failure finishes the job.

use std::path::PathBuf;

use anyhow::bail;

use super::upload_key::IAM_KEY_LIMIT;
use super::{laptop, Context, Exit};

#[derive(Debug, clap::Args)]
pub struct RotateKey {
    /// The new public key file [default: first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub]
    #[arg(short, long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// The key to disable (IAM key id or SHA256 fingerprint) [default: the only other active key]
    #[arg(long, value_name = "KEY")]
    old: Option<String>,
    /// IAM user [default: the user your AWS credentials belong to]
    #[arg(short, long, value_name = "NAME")]
    user: Option<String>,
}

impl RotateKey {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let path = laptop::identity_path(self.identity)?;
        let new = laptop::read_public_key(&path, laptop::min_rsa_bits(ctx)?)?;
        let iam = laptop::client().await;
        let user = laptop::resolve_user(&iam, self.user).await?;
        let keys = laptop::keys_with_bodies(&iam, &user).await?;
        let is_new = |k: &laptop::KeyInfo| k.key.as_ref().is_ok_and(|p| p.blob() == new.blob());
        let present = keys.iter().find(|k| is_new(k));

        let old = match &self.old {
            Some(spec) => keys.iter().find(|k| k.is_named(spec)).ok_or_else(|| {
                anyhow::anyhow!("IAM user {user} has no key {spec}: see `keyward list-keys`")
            })?,
            None => {
                let others: Vec<&laptop::KeyInfo> = keys
                    .iter()
                    .filter(|k| k.meta.active && !is_new(k))
                    .collect();
                match others.as_slice() {
                    [one] => *one,
                    // Run again after it succeeded: the new key is already the only active one.
                    [] if present.is_some_and(|k| k.meta.active) => {
                        println!(
                            "{} is already the only active key of IAM user {user}: nothing to rotate",
                            new.fingerprint()
                        );
                        return Ok(Exit::Ok);
                    }
                    [] => bail!("IAM user {user} has no other active key to replace: use `keyward upload-key`"),
                    many => bail!(
                        "IAM user {user} has {} other active keys; say which to disable with --old KEY ({})",
                        many.len(),
                        many.iter().map(|k| k.meta.id.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                }
            }
        };
        if is_new(old) {
            bail!(
                "--old names the new key itself ({}): nothing to rotate",
                old.meta.id
            );
        }
        if present.is_none() && keys.len() >= IAM_KEY_LIMIT {
            bail!(
                "IAM user {user} already has {IAM_KEY_LIMIT} SSH keys, IAM's limit: delete one first with `keyward delete-key KEY`"
            );
        }

        let new_id = match present {
            Some(k) if k.meta.active => k.meta.id.clone(),
            Some(k) => {
                iam.set_key_active(&user, &k.meta.id, true).await?;
                k.meta.id.clone()
            }
            None => iam.upload_key(&user, &new.to_line()).await?.id,
        };
        println!("new key  {new_id} {} (Active)", new.fingerprint());
        if old.meta.active {
            iam.set_key_active(&user, &old.meta.id, false).await?;
        }
        println!("old key  {} {} (Inactive)", old.meta.id, old.fingerprint());
        println!(
            "Log in with the new key to check it works, then remove the old one: keyward delete-key {}",
            old.meta.id
        );
        Ok(Exit::Ok)
    }
}
