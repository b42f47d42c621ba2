//! `keyward host-cert`: get or renew SSH host certificates for this instance's host keys.
//!
//! Run as root at boot (cloud-init) and daily, with the instance-profile credentials. Only
//! argument handling, file reads and writes live here: what to keep is
//! [`cert::existing_host_cert`], what to accept is [`check_host_cert`] (its signature verified
//! against the CA key), and the issuer decides what to certify (`issuer::host`). Idempotent: a
//! certificate with more than a third of its life left is kept. A certificate is written only after the check passed, atomically,
//! mode 0644, next to its key (`ssh_host_ed25519_key-cert.pub`); nothing else on the host is
//! changed (sshd's `HostCertificate` line is `keyward install --ca`'s).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};

use super::{Context, Exit};
use crate::files;
use crate::issuer::client::{self, CertificateRequest};
use crate::issuer::proof::ProofSigner;
use crate::issuer::CertKind;
use crate::keys::cert::{self, HostCertState};
use crate::keys::cert_check::check_host_cert;
use crate::keys::PublicKey;

/// The host keys certified unless `--key` names others, those present.
const DEFAULT_KEYS: [&str; 2] = [
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/ssh/ssh_host_ecdsa_key.pub",
];
/// A public key or certificate line is far below this.
const MAX_FILE_LEN: u64 = 64 * 1024;
/// Bound on one request to the issuer (which asks STS, EC2, IAM and KMS in turn).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
#[command(after_help = "\
For each host key it asks the issuer (with this instance's role credentials, from the AWS \
credential chain: IMDS on EC2) for a host certificate, checks it (a host certificate for that \
very key, valid now, its signature verified against the CA's public key) and writes \
KEY-cert.pub next to the key (root-owned, 0644, atomically). A certificate with more than a \
third of its life left is kept. The issuer certifies only the names EC2 reports for this \
instance (instance id, private/public IP and DNS), never its Name tag. sshd serves the \
certificate once sshd_config has a HostCertificate line for it (`keyward install --ca` adds \
one for each certificate present) and after a reload.")]
pub struct HostCert {
    /// The issuer's URL (https://…; http:// only to a loopback address)
    #[arg(long, env = "KEYWARD_ISSUER", value_name = "URL")]
    issuer: String,
    /// A host public key to certify (repeatable) [default: /etc/ssh/ssh_host_ed25519_key.pub
    /// and /etc/ssh/ssh_host_ecdsa_key.pub, those present]
    #[arg(long = "key", value_name = "PATH")]
    keys: Vec<PathBuf>,
    /// Lifetime to ask for (the issuer keeps it between 1h and 90d) [default: the issuer's, 30d]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    validity: Option<Duration>,
    /// Ask for a new certificate even when the one there has more than a third of its life left
    #[arg(long)]
    force: bool,
    /// The CA's public key (what `keyward ca public-key` prints) [default: ssh_ca_public_key
    /// from the config]: a certificate is written only when its signature verifies against it
    #[arg(long, value_name = "FILE")]
    ca_public_key: Option<PathBuf>,
}

impl HostCert {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let (config, _) = ctx.load_config()?;
        let ca_line = match (&self.ca_public_key, &config.ssh_ca_public_key) {
            (Some(path), _) => read_text(path)?
                .with_context(|| format!("--ca-public-key {} does not exist", path.display()))?,
            (None, Some(line)) => line.clone(),
            (None, None) => bail!(
                "host-cert needs the CA's public key to check the certificate it is given: set \
                 ssh_ca_public_key in the config or pass --ca-public-key FILE (`keyward ca \
                 public-key` prints it)"
            ),
        };
        let ca = crate::config::ca_public_key(&ca_line)
            .map_err(|problem| anyhow::anyhow!("the CA's public key: {problem}"))?;
        let signer = ProofSigner::load(&super::laptop::interactive_options(), None)
            .await
            .context("AWS credentials for the proof")?;
        let audience = client::audience_for(&self.issuer)?;
        let keys = self.key_paths()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_secs();
        let mut written = 0;
        for key_path in &keys {
            let host_key = read_key(key_path)?;
            let (dir, cert_name) = cert_path(key_path)?;
            let cert_file = dir.join(&cert_name);
            let existing = read_text(&cert_file)?;
            match cert::existing_host_cert(existing.as_deref(), &host_key, &ca, now) {
                HostCertState::Current { valid_before } if !self.force => {
                    eprintln!(
                        "keyward: {} is valid until {} with more than a third of its life left; kept",
                        cert_file.display(),
                        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(valid_before))
                    );
                    continue;
                }
                HostCertState::Current { .. } => {
                    tracing::info!(file = %cert_file.display(), "renewing: --force");
                }
                HostCertState::Renew { why } => {
                    tracing::info!(file = %cert_file.display(), "renewing: {why}");
                }
            }
            let request = CertificateRequest {
                kind: CertKind::Host,
                public_key: &host_key,
                validity_secs: self.validity.map(|d| d.as_secs()),
                source_addresses: Vec::new(),
                host_scope: None,
            };
            let answer = match client::request_certificate(
                &self.issuer,
                &audience,
                &request,
                &signer,
                REQUEST_TIMEOUT,
            )
            .await
            {
                Ok(answer) => answer,
                Err(err) => {
                    eprintln!(
                        "keyward: no host certificate for {}: {err}",
                        key_path.display()
                    );
                    return Ok(Exit::of_issuer(&err));
                }
            };
            let checked = check_host_cert(&answer, &host_key, &ca, now).with_context(|| {
                format!(
                    "the issuer's certificate for {} was not written",
                    key_path.display()
                )
            })?;
            let line = checked.to_line();
            files::write_atomic(&dir, &cert_name, format!("{line}\n").as_bytes(), 0o644)
                .map_err(files::IoError::at("write", &cert_file))?;
            written += 1;
            eprintln!(
                "keyward: wrote {} (host certificate for {}; valid until {})",
                cert_file.display(),
                checked.principals().join(", "),
                humantime::format_rfc3339_seconds(
                    UNIX_EPOCH + Duration::from_secs(checked.valid_before())
                )
            );
        }
        if written > 0 {
            eprintln!(
                "keyward: sshd serves a host certificate once sshd_config names it in a \
                 HostCertificate line: run `keyward install --ca` (it adds one for each \
                 certificate present), or reload sshd (`systemctl reload ssh`) if it already has one"
            );
        }
        Ok(Exit::Ok)
    }

    /// `--key`, or the default host keys that exist.
    fn key_paths(&self) -> anyhow::Result<Vec<PathBuf>> {
        if !self.keys.is_empty() {
            return Ok(self.keys.clone());
        }
        let present: Vec<PathBuf> = DEFAULT_KEYS
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect();
        if present.is_empty() {
            bail!(
                "no host key to certify: none of {} exists (generate them with `ssh-keygen -A`, \
                 or name one with --key)",
                DEFAULT_KEYS.join(", ")
            );
        }
        Ok(present)
    }
}

/// The host key in a `.pub` file that sshd's own trust rules would accept: root-owned, not
/// writable by others (whoever could replace it would get their key certified as this host).
fn read_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text = read_text(path)?.with_context(|| format!("{} does not exist", path.display()))?;
    PublicKey::parse(text.trim())
        .with_context(|| format!("{} is not a usable public key", path.display()))
}

fn read_text(path: &Path) -> anyhow::Result<Option<String>> {
    let Some(bytes) = files::read_trusted(path, MAX_FILE_LEN)? else {
        return Ok(None);
    };
    String::from_utf8(bytes)
        .map(Some)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// `DIR/ssh_host_ed25519_key.pub` -> (`DIR`, `ssh_host_ed25519_key-cert.pub`), as sshd and
/// ssh-keygen name a key's certificate.
fn cert_path(key: &Path) -> anyhow::Result<(PathBuf, String)> {
    let name = key
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".pub"))
        .filter(|n| !n.is_empty())
        .with_context(|| format!("{} is not a KEY.pub file", key.display()))?;
    let dir = match key.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, format!("{name}-cert.pub")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_sits_next_to_its_key_as_sshd_names_it() {
        let (dir, name) =
            cert_path(Path::new("/etc/ssh/ssh_host_ed25519_key.pub")).unwrap_or_default();
        assert_eq!(dir, Path::new("/etc/ssh"));
        assert_eq!(name, "ssh_host_ed25519_key-cert.pub");
        assert!(cert_path(Path::new("/etc/ssh/ssh_host_ed25519_key")).is_err());
        assert!(cert_path(Path::new("/etc/ssh/.pub")).is_err());
    }
}
