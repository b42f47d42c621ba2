//! `keyward delete-key`: remove a key from IAM for good.

use super::key_status::KeyTarget;
use super::{laptop, Context, Exit};

#[derive(Debug, clap::Args)]
pub struct DeleteKey {
    #[command(flatten)]
    target: KeyTarget,
}

impl DeleteKey {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        let iam = laptop::client().await;
        let (spec, user) = self.target.into_parts();
        let user = laptop::resolve_user(&iam, user).await?;
        let key = laptop::find_key(&iam, &user, &spec).await?;
        iam.delete_key(&user, &key.meta.id).await?;
        println!("deleted key {} of IAM user {user}", key.meta.id);
        Ok(Exit::Ok)
    }
}
