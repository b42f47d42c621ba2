//! `keyward doctor`: check that this host can let IAM users in, and say how to fix what is not.
//!
//! The checks and their verdicts live in `crate::doctor`; this file prints them and maps any
//! problem to exit 1. It never changes the host.

use super::{Context, Exit};
use crate::doctor;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Checks: the config (which file, trusted); AWS region and credentials (and their source); each \
IAM read keyward makes (ListUsers, ListSSHPublicKeys, GetSSHPublicKey, ListGroupsForUser, \
GetUser, ListGroups, GetGroup), naming a denied action; the clock against IAM's Date header; \
sshd's effective AuthorizedKeysCommand and its user (sshd -T, root only); sshd's ownership rule \
for the command's path; the PAM hook (create_on_login); the sync timer or cron entry; the \
cache directory; keymaker's remnants; the errors the sync plan would report now. Each prints ok, problem (with the fix) or skip (with the reason). \
Exit codes: 0 no problem, 1 at least one problem.")]
pub struct Doctor {
    /// Print the checks as a JSON array of {name, status, detail, fix}
    #[arg(long)]
    json: bool,
}

impl Doctor {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let checks = doctor::gather::run(ctx.config_path.as_deref()).await;
        if self.json {
            print!("{}", doctor::render_json(&checks));
        } else {
            print!("{}", doctor::render_human(&checks));
        }
        Ok(if doctor::has_problem(&checks) {
            Exit::Failure
        } else {
            Exit::Ok
        })
    }
}
