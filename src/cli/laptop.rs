//! What the laptop commands share: the IAM client, whose keys they act on, reading a public key
//! file safely, and finding a key by id or fingerprint.
//!
//! A private key must never leave the laptop: files are parsed locally first and only the
//! rebuilt public line is ever sent to IAM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

use super::Context;
use crate::iam::{AwsIam, ClientOptions, Directory, IamError, KeyMeta};
use crate::keys::{KeyError, PublicKey};

/// Laptop commands are interactive: a slow network gets more patience than sshd does.
const TIMEOUT: Duration = Duration::from_secs(30);

pub async fn client() -> AwsIam {
    AwsIam::new(&interactive_options()).await
}

/// The AWS client options of commands a person runs (the laptop commands, `ca`): the standard
/// credential chain, with a laptop's patience.
pub fn interactive_options() -> ClientOptions {
    ClientOptions {
        timeout: Some(TIMEOUT),
        role_arn: None,
        aws_config_file: None,
    }
}

/// `--user` or, by default, the IAM user the credentials belong to.
pub async fn resolve_user(iam: &AwsIam, user: Option<String>) -> anyhow::Result<String> {
    match user {
        Some(u) if crate::accounts::names::is_valid_iam_name(&u) => Ok(u),
        Some(u) => {
            bail!("{u:?} is not a valid IAM user name ([A-Za-z0-9+=,.@_-], 1 to 64 characters)")
        }
        None => Ok(iam
            .caller_user_name()
            .await
            .context("cannot tell which IAM user you are")?),
    }
}

/// `--identity` or the first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub.
pub fn identity_path(identity: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = identity {
        return Ok(p);
    }
    let home =
        std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set: pass --identity FILE"))?;
    let ssh = Path::new(&home).join(".ssh");
    ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"]
        .iter()
        .map(|n| ssh.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "no public key found in {}: create one with `ssh-keygen -t ed25519` or pass --identity FILE",
                ssh.display()
            )
        })
}

/// The RSA floor a key must meet to be uploaded: `min_rsa_bits` of the config when there is
/// one (a key under the hosts' floor would upload fine and then never work), else the 2048
/// bits every key meets. Only an explicit `--config` must load; an unreadable host config on a
/// bastion is noted, and the built-in floor applies.
pub fn min_rsa_bits(ctx: &Context) -> anyhow::Result<u32> {
    match ctx.load_config() {
        Ok((config, _)) => Ok(config.min_rsa_bits),
        Err(e) if ctx.config_path.is_some() => Err(e.into()),
        Err(e) => {
            eprintln!(
                "keyward: note: {e}; RSA keys are checked against the built-in {} bits",
                PublicKey::MIN_RSA_BITS
            );
            Ok(PublicKey::MIN_RSA_BITS)
        }
    }
}

/// Reads and parses a public key file and checks it against `min_rsa_bits`.
pub fn read_public_key(path: &Path, min_rsa_bits: u32) -> anyhow::Result<PublicKey> {
    let key = parse_public_key_file(path)?;
    key.check_min_rsa_bits(min_rsa_bits)
        .map_err(|e| anyhow!("{} is not a usable SSH public key: {e}", path.display()))?;
    Ok(key)
}

fn parse_public_key_file(path: &Path) -> anyhow::Result<PublicKey> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!(
                "{} does not exist: create a key with `ssh-keygen -t ed25519` or pass --identity FILE",
                path.display()
            )
        } else {
            anyhow!("cannot read {}: {e}", path.display())
        }
    })?;
    if meta.len() > 64 * 1024 {
        bail!("{} is too large to be an SSH public key", path.display());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} as text", path.display()))?;
    PublicKey::parse(&text).map_err(|e| match e {
        KeyError::PrivateKey => anyhow!(
            "{} is a PRIVATE key: keyward never uploads it. Pass the public half instead: --identity {}.pub",
            path.display(),
            path.display()
        ),
        other => anyhow!("{} is not a usable SSH public key: {other}", path.display()),
    })
}

/// A key in IAM with its parsed body (or why the body is unusable).
pub struct KeyInfo {
    pub meta: KeyMeta,
    pub key: Result<PublicKey, BodyError>,
    /// The fingerprint of a body keyward refuses, from the line itself (see `fingerprint`).
    pub line_fingerprint: Option<String>,
}

/// Why a key's body is not at hand.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Iam(#[from] IamError),
    #[error(transparent)]
    Invalid(#[from] KeyError),
    /// Only the key list was read (a lookup by key id needs no body).
    #[error("not fetched")]
    NotFetched,
}

impl KeyInfo {
    pub fn status(&self) -> &'static str {
        if self.meta.active {
            "Active"
        } else {
            "Inactive"
        }
    }

    /// As `ssh-keygen -lf` prints it, also for a key keyward refuses (so it can be named for
    /// `rotate-key --old` or `delete-key`); `-` when the body was not read.
    pub fn fingerprint(&self) -> String {
        self.known_fingerprint().unwrap_or_else(|| "-".into())
    }

    pub fn known_fingerprint(&self) -> Option<String> {
        match &self.key {
            Ok(k) => Some(k.fingerprint()),
            Err(_) => self.line_fingerprint.clone(),
        }
    }

    /// Whether `spec` names this key: its IAM key id, or its `SHA256:` fingerprint.
    pub fn is_named(&self, spec: &str) -> bool {
        self.meta.id == spec
            || (spec.starts_with("SHA256:") && self.known_fingerprint().as_deref() == Some(spec))
    }
}

/// Lists the user's keys and fetches every body (concurrently).
pub async fn keys_with_bodies(iam: &AwsIam, user: &str) -> anyhow::Result<Vec<KeyInfo>> {
    let listed = iam.list_keys(user).await?;
    let ids: Vec<String> = listed.iter().map(|k| k.id.clone()).collect();
    let bodies = iam.get_keys(user, &ids).await;
    Ok(listed
        .into_iter()
        .zip(bodies)
        .map(|(meta, body)| {
            let key = body
                .as_ref()
                .map_err(|e| BodyError::from(e.clone()))
                .and_then(|b| Ok(PublicKey::parse(b)?));
            // Only a key keyward refuses needs its fingerprint from the line itself.
            let line_fingerprint = match (&key, &body) {
                (Err(_), Ok(b)) => PublicKey::fingerprint_of_line(b),
                _ => None,
            };
            KeyInfo {
                meta,
                key,
                line_fingerprint,
            }
        })
        .collect())
}

/// Finds a key by IAM key id or by `SHA256:` fingerprint.
pub async fn find_key(iam: &AwsIam, user: &str, spec: &str) -> anyhow::Result<KeyInfo> {
    let keys = if spec.starts_with("SHA256:") {
        keys_with_bodies(iam, user).await?
    } else {
        iam.list_keys(user)
            .await?
            .into_iter()
            .map(|meta| KeyInfo {
                meta,
                key: Err(BodyError::NotFetched),
                line_fingerprint: None,
            })
            .collect()
    };
    keys.into_iter().find(|k| k.is_named(spec)).ok_or_else(|| {
        anyhow!("IAM user {user} has no key {spec}: see `keyward list-keys --user {user}`")
    })
}
