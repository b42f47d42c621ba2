//! `keyward authorized-keys USER [FINGERPRINT] [KEY]`: sshd's AuthorizedKeysCommand.
//!
//! stdout goes to sshd and carries validated key lines only; every decision is logged with
//! structured fields. The whole run is bounded by `lookup_timeout`: when IAM cannot answer in
//! time, the last verified key set is served if it is younger than `max_stale`, else nothing.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use tokio::time::timeout;

use super::Context;
use crate::accounts::local::SystemAccounts;
use crate::iam::{AwsIam, IamError};
use crate::keys::cache::Cache;
use crate::keys::lookup::{self, Offer, Outcome, Refusal};
use crate::keys::PublicKey;
use crate::logging::message_id;

#[derive(Debug, clap::Args)]
pub struct AuthorizedKeys {
    /// Linux user name being authenticated (sshd's %u)
    // Names come from the network via sshd: one starting with '-' is still a name to refuse,
    // not an option.
    #[arg(allow_hyphen_values = true)]
    user: String,
    /// Fingerprint of the key the client offered (sshd's %f); only that key is printed
    fingerprint: Option<String>,
    /// Base64 blob of the key the client offered (sshd's %k); only that key is printed
    key: Option<String>,
}

impl AuthorizedKeys {
    pub async fn run(self, ctx: &Context, out: &mut impl Write) -> anyhow::Result<ExitCode> {
        let started = Instant::now();
        let (config, _) = ctx.load_config()?;
        let offer = match self.offer() {
            Ok(offer) => offer,
            Err(e) => {
                tracing::warn!(linux_user = %self.user.escape_debug(), "offered key is not valid: {e}");
                return Ok(ExitCode::SUCCESS);
            }
        };
        let local = SystemAccounts::new(&config.state_dir);
        let iam_user = match lookup::gate(&config, &self.user, &local) {
            Ok(iam_user) => iam_user,
            Err(refusal) => {
                let level_warn = refusal == Refusal::NobodyAllowed;
                let user = self.user.escape_debug().to_string();
                if level_warn {
                    tracing::warn!(
                        message_id = message_id::LOOKUP_REFUSED,
                        linux_user = user,
                        "{refusal}"
                    );
                } else {
                    tracing::info!(
                        message_id = message_id::LOOKUP_REFUSED,
                        linux_user = user,
                        "not looked up in IAM: {refusal}"
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
        };
        let cache = match Cache::open(&config.cache_dir) {
            Ok(cache) => Some(cache),
            Err(e) => {
                tracing::warn!("key cache unusable, asking IAM only: {e}");
                None
            }
        };

        let now = SystemTime::now();
        let budget = config.lookup_timeout;
        let options = super::host_client_options(&config)?;
        let live = timeout(budget, async {
            let iam = AwsIam::new(&options).await;
            lookup::live(&config, &iam, cache.as_ref(), &self.user, &iam_user, now).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(IamError::Unreachable(format!(
                "no answer within lookup_timeout ({})",
                humantime::format_duration(budget)
            )))
        });

        let outcome = match live {
            Ok(result) => {
                for r in &result.rejected {
                    tracing::warn!(
                        message_id = message_id::KEY_REJECTED,
                        iam_user,
                        key_id = r.id,
                        "key not served: {}",
                        r.reason
                    );
                }
                result.outcome
            }
            Err(e) if e.is_outage() => {
                tracing::warn!(message_id = message_id::IAM_UNAVAILABLE, iam_user, "{e}");
                lookup::stale(&config, cache.as_ref(), &self.user, &iam_user, now, e)
            }
            Err(e) => {
                tracing::error!(iam_user, "{e}");
                Outcome::Unavailable(e)
            }
        };

        let elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Outcome::Keys(keys) => {
                let mut text = String::new();
                for k in keys.iter().filter(|k| offer.matches(&k.key)) {
                    tracing::info!(
                        message_id = message_id::KEY_SERVED,
                        iam_user,
                        linux_user = self.user,
                        key_id = k.id,
                        fingerprint = k.key.fingerprint(),
                        source = k.source.as_str(),
                        elapsed_ms,
                        "key served to sshd"
                    );
                    text.push_str(&k.key.to_line());
                    text.push('\n');
                }
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .context("cannot write keys to stdout")?;
                Ok(ExitCode::SUCCESS)
            }
            Outcome::NotAllowed => {
                tracing::info!(
                    message_id = message_id::LOOKUP_REFUSED,
                    iam_user,
                    "IAM user is in none of allowed_groups"
                );
                Ok(ExitCode::SUCCESS)
            }
            Outcome::NoSuchUser => {
                tracing::info!(
                    message_id = message_id::LOOKUP_REFUSED,
                    iam_user,
                    "no such IAM user"
                );
                Ok(ExitCode::SUCCESS)
            }
            Outcome::Unavailable(e) => {
                tracing::error!(
                    message_id = message_id::IAM_UNAVAILABLE,
                    iam_user,
                    "no keys served: IAM unavailable and no cached key set younger than max_stale ({e})"
                );
                Ok(ExitCode::from(3))
            }
        }
    }

    fn offer(&self) -> Result<Offer, crate::keys::KeyError> {
        let key = self
            .key
            .as_deref()
            .map(PublicKey::from_blob_base64)
            .transpose()?;
        Ok(Offer {
            fingerprint: self.fingerprint.clone().filter(|f| !f.is_empty()),
            key,
        })
    }
}
