//! `keyward authorized-keys USER [FINGERPRINT] [KEY]`: sshd's AuthorizedKeysCommand.
//!
//! stdout goes to sshd and carries validated key lines only; every decision is logged with
//! structured fields. The whole run is bounded by `lookup_timeout`: when IAM cannot answer in
//! time, the last verified key set is served if it is younger than `max_stale`, else nothing.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use super::{Context, Exit};
use crate::accounts::local::SystemAccounts;
use crate::accounts::names;
use crate::config::{Config, DEFAULT_PATH};
use crate::files;
use crate::iam::{AwsIam, ClientOptions};
use crate::keys::answer::{self, Event};
use crate::keys::cache::Cache;
use crate::keys::chain::{self, ChainEvent};
use crate::keys::lookup::{Offer, Refusal};
use crate::keys::PublicKey;
use crate::logging::{message_id, untrusted};

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct AuthorizedKeys {
    /// Linux user name being authenticated (sshd's %u)
    // Names come from the network via sshd: one starting with '-' is still a name to refuse,
    // not an option.
    #[arg(allow_hyphen_values = true)]
    user: String,
    /// Fingerprint of the key the client offered (sshd's %f); only that key is printed
    #[arg(allow_hyphen_values = true)]
    fingerprint: Option<String>,
    /// Base64 blob of the key the client offered (sshd's %k); only that key is printed
    #[arg(allow_hyphen_values = true)]
    key: Option<String>,
}

impl AuthorizedKeys {
    pub async fn run(self, ctx: &Context, out: &mut impl Write) -> anyhow::Result<Exit> {
        let started = Instant::now();
        let (config, _) = ctx.load_config()?;
        let offer = match self.offer() {
            Ok(offer) => offer,
            Err(e) => {
                tracing::warn!(
                    linux_user = untrusted(&self.user),
                    "offered key is not valid: {e}"
                );
                return Ok(Exit::Ok);
            }
        };
        if !names::is_valid_linux_name(&self.user) {
            tracing::info!(
                message_id = message_id::LOOKUP_REFUSED,
                linux_user = untrusted(&self.user),
                "not a valid Linux user name"
            );
            return Ok(Exit::Ok);
        }
        let iam = self.iam_keys(&config, &offer, started).await?;
        let remaining = config.lookup_timeout.saturating_sub(started.elapsed());
        let chained = self.chained_keys(ctx, &offer, remaining).await;
        let (keys, outage) = answer::serve(iam.keys, iam.unavailable, chained);
        let text: String = keys.iter().map(|k| format!("{}\n", k.to_line())).collect();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .context("cannot write keys to stdout")?;
        Ok(outage.as_ref().map_or(Exit::Ok, Exit::of_iam))
    }

    /// The offered (or all) keys IAM allows for this user (`keys::answer`, where every decision
    /// lives), its events logged.
    async fn iam_keys(
        &self,
        config: &Config,
        offer: &Offer,
        started: Instant,
    ) -> anyhow::Result<answer::Answer> {
        let local = SystemAccounts::new(&config.state_dir);
        // Opened only once the gate has let the name through.
        let cache = std::cell::OnceCell::new();
        let open_cache = || {
            cache
                .get_or_init(|| match Cache::open(&config.cache_dir) {
                    Ok(cache) => Some(cache),
                    Err(e) => {
                        tracing::warn!("key cache unusable, asking IAM only: {e}");
                        None
                    }
                })
                .as_ref()
        };
        let options = ClientOptions::for_host(config)?;
        let answer = answer::answer(
            config,
            &self.user,
            offer,
            &local,
            open_cache,
            AwsIam::new(&options),
            SystemTime::now(),
        )
        .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let iam_user = answer.iam_user.as_deref().unwrap_or_default();
        let linux_user = untrusted(&self.user);
        for event in &answer.events {
            log_event(event, iam_user, &linux_user, elapsed_ms);
        }
        Ok(answer)
    }

    /// Keys from the AuthorizedKeysCommand keyward replaced, if install chained one.
    async fn chained_keys(&self, ctx: &Context, offer: &Offer, limit: Duration) -> Vec<PublicKey> {
        let path = chain::chain_path(
            ctx.config_path
                .as_deref()
                .unwrap_or(Path::new(DEFAULT_PATH)),
        );
        // It names a command keyward runs: read once, not through a symlink, and checked on
        // the open file.
        let bytes = match files::read_trusted(&path, files::MAX_TEXT_LEN) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::warn!("chained command in {} not run: {e}", path.display());
                return Vec::new();
            }
        };
        let tokens = chain::Tokens {
            user: &self.user,
            fingerprint: offer.fingerprint.as_deref(),
            key: offer.key.as_ref(),
        };
        let chained = chain::chained_keys(bytes, &tokens, offer, limit).await;
        let linux_user = untrusted(&self.user);
        for event in &chained.events {
            match event {
                ChainEvent::NotRun(e) => {
                    tracing::warn!("chained command in {} not run: {e}", path.display())
                }
                ChainEvent::Failed(e) => {
                    tracing::warn!(linux_user, "chained command failed: {e}")
                }
                ChainEvent::Dropped(dropped) => tracing::warn!(
                    linux_user,
                    dropped,
                    "chained command printed lines that are not plain keys; dropped"
                ),
            }
        }
        for k in &chained.keys {
            tracing::info!(
                message_id = message_id::KEY_SERVED,
                linux_user,
                fingerprint = k.fingerprint(),
                source = "chain",
                "key served to sshd"
            );
        }
        chained.keys
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

/// One event of a lookup as a log line, with the audit fields `keyward audit` reads.
fn log_event(event: &Event, iam_user: &str, linux_user: &str, elapsed_ms: u64) {
    match event {
        Event::Refused(refusal @ (Refusal::NobodyAllowed | Refusal::AccountDatabase(_))) => {
            tracing::warn!(
                message_id = message_id::LOOKUP_REFUSED,
                linux_user,
                "{refusal}"
            )
        }
        Event::Refused(refusal) => tracing::info!(
            message_id = message_id::LOOKUP_REFUSED,
            linux_user,
            "not looked up in IAM: {refusal}"
        ),
        Event::StoodIn { part, error } => tracing::warn!(
            message_id = message_id::IAM_UNAVAILABLE,
            iam_user,
            linux_user,
            "{part} failed; the cached answer (younger than max_stale) stands in for it: {error}"
        ),
        Event::OutageKnown(ago) => tracing::warn!(
            message_id = message_id::IAM_UNAVAILABLE,
            iam_user,
            linux_user,
            "IAM was unreachable {ago}s ago: answered from the cache without asking (outage_hold)"
        ),
        Event::TimedOut(error) => tracing::warn!(
            message_id = message_id::IAM_UNAVAILABLE,
            iam_user,
            linux_user,
            "{error}"
        ),
        Event::Rejected { key_id, reason } => tracing::warn!(
            message_id = message_id::KEY_REJECTED,
            iam_user,
            linux_user,
            key_id = untrusted(key_id),
            "key not served: {reason}"
        ),
        Event::Served {
            key_id,
            fingerprint,
            source,
        } => tracing::info!(
            message_id = message_id::KEY_SERVED,
            iam_user,
            linux_user,
            key_id = untrusted(key_id),
            fingerprint,
            source = source.as_str(),
            elapsed_ms,
            "key served to sshd"
        ),
        Event::NotAllowed => tracing::info!(
            message_id = message_id::LOOKUP_REFUSED,
            iam_user,
            linux_user,
            "IAM user is in none of allowed_groups"
        ),
        Event::NoSuchUser => tracing::info!(
            message_id = message_id::LOOKUP_REFUSED,
            iam_user,
            linux_user,
            "no such IAM user"
        ),
        Event::WrongIdentity(why) => tracing::warn!(
            message_id = message_id::LOOKUP_REFUSED,
            iam_user,
            linux_user,
            "no keys served: {why}"
        ),
        Event::Unavailable(error) => tracing::error!(
            message_id = message_id::IAM_UNAVAILABLE,
            iam_user,
            linux_user,
            "no keys served: IAM unavailable and no cached key set younger than max_stale ({error})"
        ),
    }
}
