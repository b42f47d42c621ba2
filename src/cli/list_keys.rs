//! `keyward list-keys`: the SSH keys of an IAM user, with fingerprints as `ssh-keygen -lf`
//! prints them so a person can match them to the files on their laptop.

use super::{laptop, Context, Exit};

#[derive(Debug, clap::Args)]
pub struct ListKeys {
    /// IAM user [default: the user your AWS credentials belong to]
    #[arg(short, long, value_name = "NAME")]
    user: Option<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

impl ListKeys {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        let iam = laptop::client().await;
        let user = laptop::resolve_user(&iam, self.user).await?;
        let keys = laptop::keys_with_bodies(&iam, &user).await?;
        if self.json {
            let rows: Vec<serde_json::Value> = keys
                .iter()
                .map(|k| {
                    let key = k.key.as_ref().ok();
                    serde_json::json!({
                        "id": k.meta.id,
                        "status": k.status(),
                        "uploaded": k.meta.uploaded,
                        "fingerprint": k.known_fingerprint(),
                        "type": key.map(|p| p.key_type().name()),
                        "bits": key.map(|p| p.bits()),
                        "comment": key.map(|p| p.comment()),
                        "error": k.key.as_ref().err().map(ToString::to_string),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(Exit::Ok);
        }
        if keys.is_empty() {
            println!("IAM user {user} has no SSH keys: upload one with `keyward upload-key`");
            return Ok(Exit::Ok);
        }
        println!(
            "{:<24} {:<8} {:<20} {:<51} COMMENT",
            "ID", "STATUS", "UPLOADED", "FINGERPRINT"
        );
        for k in &keys {
            let comment = match &k.key {
                Ok(p) => format!("{} ({})", p.comment(), p.key_type().label()),
                Err(e) => format!("unusable: {e}"),
            };
            println!(
                "{:<24} {:<8} {:<20} {:<51} {}",
                k.meta.id,
                k.status(),
                k.meta.uploaded,
                k.fingerprint(),
                comment
            );
        }
        Ok(Exit::Ok)
    }
}
