//! `keyward upload-key`: put the caller's SSH public key on their IAM user.

use std::path::PathBuf;

use anyhow::bail;

use super::{laptop, Context, Exit};

/// IAM's hard limit of SSH public keys per user.
pub const IAM_KEY_LIMIT: usize = 5;

#[derive(Debug, clap::Args)]
pub struct UploadKey {
    /// Public key file [default: first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub]
    #[arg(short, long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// IAM user [default: the user your AWS credentials belong to]
    #[arg(short, long, value_name = "NAME")]
    user: Option<String>,
}

impl UploadKey {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let path = laptop::identity_path(self.identity)?;
        let key = laptop::read_public_key(&path, laptop::min_rsa_bits(ctx)?)?;
        let iam = laptop::client().await;
        let user = laptop::resolve_user(&iam, self.user).await?;
        let existing = laptop::keys_with_bodies(&iam, &user).await?;
        if let Some(dup) = existing
            .iter()
            .find(|k| k.key.as_ref().is_ok_and(|p| p.blob() == key.blob()))
        {
            if dup.meta.active {
                println!(
                    "{} is already uploaded to IAM user {user} as {} (Active): nothing to do",
                    key.fingerprint(),
                    dup.meta.id
                );
                return Ok(Exit::Ok);
            }
            bail!(
                "{} is already uploaded to IAM user {user} as {} but disabled: run `keyward enable-key {}`",
                key.fingerprint(),
                dup.meta.id,
                dup.meta.id
            );
        }
        if existing.len() >= IAM_KEY_LIMIT {
            let ids: Vec<&str> = existing.iter().map(|k| k.meta.id.as_str()).collect();
            bail!(
                "IAM user {user} already has {IAM_KEY_LIMIT} SSH keys, IAM's limit: delete one first with `keyward delete-key KEY` ({})",
                ids.join(", ")
            );
        }
        let uploaded = iam.upload_key(&user, &key.to_line()).await?;
        println!(
            "uploaded {} {} ({} {}) to IAM user {user} as {}",
            path.display(),
            key.fingerprint(),
            key.bits(),
            key.key_type().label(),
            uploaded.id
        );
        Ok(Exit::Ok)
    }
}
