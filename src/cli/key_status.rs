//! `keyward enable-key` / `disable-key`: switch whether IAM (and so every host) accepts a key.

use super::{laptop, Context, Exit};

#[derive(Debug, clap::Args)]
pub struct KeyTarget {
    /// IAM SSH key id (APKA…) or SHA256 fingerprint
    key: String,
    /// IAM user [default: the user your AWS credentials belong to]
    #[arg(short, long, value_name = "NAME")]
    user: Option<String>,
}

impl KeyTarget {
    pub fn into_parts(self) -> (String, Option<String>) {
        (self.key, self.user)
    }
}

#[derive(Debug, clap::Args)]
pub struct EnableKey {
    #[command(flatten)]
    target: KeyTarget,
}

#[derive(Debug, clap::Args)]
pub struct DisableKey {
    #[command(flatten)]
    target: KeyTarget,
}

impl EnableKey {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        set_active(self.target, true).await
    }
}

impl DisableKey {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        set_active(self.target, false).await
    }
}

async fn set_active(target: KeyTarget, active: bool) -> anyhow::Result<Exit> {
    let iam = laptop::client().await;
    let user = laptop::resolve_user(&iam, target.user).await?;
    let key = laptop::find_key(&iam, &user, &target.key).await?;
    let word = if active { "enabled" } else { "disabled" };
    if key.meta.active == active {
        println!("key {} of IAM user {user} is already {word}", key.meta.id);
        return Ok(Exit::Ok);
    }
    iam.set_key_active(&user, &key.meta.id, active).await?;
    println!("{word} key {} of IAM user {user}", key.meta.id);
    Ok(Exit::Ok)
}
