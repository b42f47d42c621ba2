//! `keyward ssh-cert`: get a short-lived SSH user certificate for the caller's key from the
//! keyward issuer, check it, and put it where ssh and the agent use it.
//!
//! Only the PUBLIC key is read and sent. The certificate is used only after
//! [`check_user_cert`] accepted it against the CA key this laptop was configured with; it is
//! written next to the private key as `<key>-cert.pub` (atomically, mode 0644, replacing a
//! symlink rather than following it) and the private key is given to the agent with a lifetime
//! that ends with the certificate (`ssh-add -t`). `--known-hosts` adds the CA's
//! `@cert-authority` line so that hosts with keyward host certificates are trusted.
//!
//! Settings: `--issuer`/`KEYWARD_ISSUER`, `--ca-public-key`/`KEYWARD_CA_PUBLIC_KEY` (a key
//! line) or `--ca-public-key-file`/`KEYWARD_CA_PUBLIC_KEY_FILE`, each falling back to
//! `~/.config/keyward/laptop.toml` (parsed strictly). The issuer URL must be https, except on
//! loopback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context as _};
use serde::Deserialize;

use super::{laptop, Context, Exit};
use crate::clock::unix_secs;
use crate::files;
use crate::issuer::client::{self, CertificateRequest, ClientError};
use crate::issuer::proof::ProofSigner;
use crate::issuer::CertKind;
use crate::keys::cert::known_hosts_line;
use crate::keys::cert_check::{check_user_cert, CheckedCert};
use crate::keys::{KeyType, PublicKey};

/// Where the laptop settings file lives, under `$XDG_CONFIG_HOME` or `~/.config`.
const SETTINGS_FILE: &str = "keyward/laptop.toml";
/// The validity asked for when `--validity` is not given; the issuer clamps it to its maximum.
const DEFAULT_VALIDITY: &str = "1h";
/// One request to the issuer, a Lambda cold start and a KMS signature included.
const ISSUER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The issuer and CA settings `ssh-cert` and `ssh` share.
#[derive(Debug, Clone, clap::Args)]
pub struct IssuerArgs {
    /// The keyward issuer's URL (https; http only on loopback)
    #[arg(long, env = "KEYWARD_ISSUER", value_name = "URL")]
    issuer: Option<String>,
    /// The audience the proof is bound to [default: the issuer URL]
    #[arg(long, env = "KEYWARD_AUDIENCE", value_name = "TEXT")]
    audience: Option<String>,
    /// The CA's public key line (`ecdsa-sha2-nistp256 AAAA…`), as `keyward ca public-key` prints it
    #[arg(
        long,
        env = "KEYWARD_CA_PUBLIC_KEY",
        value_name = "KEY",
        conflicts_with = "ca_public_key_file"
    )]
    ca_public_key: Option<String>,
    /// A file holding the CA's public key line
    #[arg(long, env = "KEYWARD_CA_PUBLIC_KEY_FILE", value_name = "FILE")]
    ca_public_key_file: Option<PathBuf>,
}

/// `~/.config/keyward/laptop.toml`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsFile {
    issuer: Option<String>,
    audience: Option<String>,
    ca_public_key: Option<String>,
    /// `[reach]`: how `proxy`, `hosts`, `ssh-config`, `open` and `close` reach hosts.
    #[serde(default)]
    pub(crate) reach: crate::reach::settings::ReachSettings,
}

/// Where the issuer is and which CA its certificates must come from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub issuer: String,
    pub audience: String,
    pub ca: PublicKey,
}

impl IssuerArgs {
    /// Flags and environment first, then the settings file.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let (file, path) = match settings_path() {
            Some(path) => (read_settings_file(&path)?, path.display().to_string()),
            None => (
                SettingsFile::default(),
                format!("~/.config/{SETTINGS_FILE}"),
            ),
        };
        let ca_line = match (self.ca_public_key, self.ca_public_key_file) {
            (Some(line), _) => Some(line),
            (None, Some(file)) => Some(read_small_text(&file)?),
            (None, None) => file.ca_public_key,
        };
        resolve(
            self.issuer.or(file.issuer),
            self.audience.or(file.audience),
            ca_line,
            &path,
        )
    }
}

/// The pure part of [`IssuerArgs::resolve`]: every setting present and valid.
fn resolve(
    issuer: Option<String>,
    audience: Option<String>,
    ca_line: Option<String>,
    settings_path: &str,
) -> anyhow::Result<Settings> {
    let issuer = issuer.ok_or_else(|| {
        anyhow!(
            "no issuer configured: pass --issuer URL, set KEYWARD_ISSUER, or put \
             issuer = \"https://…\" in {settings_path} (your admin has the URL)"
        )
    })?;
    // https, or http to a loopback address; no user info, query or fragment: the URL is
    // where the proof of identity goes.
    client::certificate_url(&issuer)
        .map_err(|e| anyhow!("the issuer URL {issuer:?} is not usable: {e}"))?;
    let ca_line = ca_line.ok_or_else(|| {
        anyhow!(
            "no CA public key configured: pass --ca-public-key \"KEY\" or --ca-public-key-file \
             FILE, set KEYWARD_CA_PUBLIC_KEY, or put ca_public_key = \"ecdsa-sha2-nistp256 AAAA…\" \
             in {settings_path} (`keyward ca public-key` prints it)"
        )
    })?;
    let ca = PublicKey::parse(&ca_line)
        .map_err(|e| anyhow!("the configured CA public key is not a usable SSH key: {e}"))?;
    if !matches!(ca.key_type(), KeyType::EcdsaP256 | KeyType::EcdsaP384) {
        bail!(
            "the configured CA public key is {}; a keyward CA is ECDSA P-256 or P-384 \
             (`keyward ca public-key` prints it)",
            ca.key_type().label()
        );
    }
    let audience = match audience {
        Some(audience) => audience,
        None => client::audience_for(&issuer)
            .map_err(|e| anyhow!("the issuer URL {issuer:?} is not usable: {e}"))?,
    };
    // What the issuer accepts as its `audience` (config `[issuer]`).
    if !(1..=256).contains(&audience.len()) || !audience.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("the audience must be 1 to 256 printable ASCII characters without spaces");
    }
    Ok(Settings {
        issuer,
        audience,
        ca,
    })
}

/// The `[reach]` table of the settings file (defaults when there is no file).
pub(crate) fn reach_settings() -> anyhow::Result<crate::reach::settings::ReachSettings> {
    match settings_path() {
        Some(path) => Ok(read_settings_file(&path)?.reach),
        None => Ok(Default::default()),
    }
}

pub(crate) fn settings_path() -> Option<PathBuf> {
    Some(files::xdg_base("XDG_CONFIG_HOME", ".config")?.join(SETTINGS_FILE))
}

/// The settings file decides which CA the laptop trusts, so it is read the way keyward reads
/// every file that decides access: owned by the user (or root), writable by nobody else.
pub(crate) fn read_settings_file(path: &Path) -> anyhow::Result<SettingsFile> {
    let Some(bytes) = files::read_trusted(path, files::MAX_TEXT_LEN)? else {
        return Ok(SettingsFile::default());
    };
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("{} is not UTF-8", path.display()))?;
    parse_settings(&text).with_context(|| format!("{} is not usable", path.display()))
}

fn parse_settings(text: &str) -> anyhow::Result<SettingsFile> {
    Ok(toml::from_str(text)?)
}

fn read_small_text(path: &Path) -> anyhow::Result<String> {
    let bytes = files::read_trusted(path, 64 * 1024)?
        .ok_or_else(|| anyhow!("{} does not exist", path.display()))?;
    String::from_utf8(bytes).map_err(|_| anyhow!("{} is not UTF-8", path.display()))
}

/// The key a certificate is for: the private key file ssh and ssh-add use, and its public half.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl Identity {
    /// `--identity` names either half (`~/.ssh/id_ed25519` or `~/.ssh/id_ed25519.pub`); without
    /// it, the first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub.
    pub fn find(identity: Option<PathBuf>) -> anyhow::Result<Identity> {
        let public = match identity {
            Some(path) if path.extension().is_some_and(|e| e == "pub") => path,
            Some(path) => {
                let mut name = path.clone().into_os_string();
                name.push(".pub");
                PathBuf::from(name)
            }
            None => laptop::identity_path(None)?,
        };
        let private = public.with_extension("");
        Ok(Identity { private, public })
    }

    /// `<key>-cert.pub`, where ssh and ssh-add look for the key's certificate.
    pub fn cert_path(&self) -> PathBuf {
        let mut name = self.private.clone().into_os_string();
        name.push("-cert.pub");
        PathBuf::from(name)
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Sends only the public key and a signed AWS STS request that proves who you are (your AWS \
credentials, as for `upload-key`). The certificate is checked against the configured CA key \
before it is used, written to <key>-cert.pub next to the key, and the key is added to \
ssh-agent until the certificate expires. See docs/laptop.md.")]
pub struct SshCert {
    /// Key file, private or .pub [default: first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa]
    #[arg(short, long, value_name = "KEY")]
    identity: Option<PathBuf>,
    /// How long the certificate should be valid (the issuer caps it)
    #[arg(long, default_value = DEFAULT_VALIDITY, value_parser = humantime::parse_duration)]
    validity: std::time::Duration,
    /// Accept logins with the certificate only from these addresses (IP or CIDR; repeatable)
    #[arg(long = "source-address", value_name = "CIDR")]
    source_addresses: Vec<String>,
    /// A certificate valid on this instance only
    #[arg(long, value_name = "i-…")]
    host: Option<String>,
    /// Also trust keyward host certificates: add the CA's @cert-authority line to known_hosts
    #[arg(long)]
    known_hosts: bool,
    /// The known_hosts file for --known-hosts [default: ~/.ssh/known_hosts]
    #[arg(long, value_name = "FILE", requires = "known_hosts")]
    known_hosts_file: Option<PathBuf>,
    /// Do not add the key to ssh-agent
    #[arg(long)]
    no_agent: bool,
    #[command(flatten)]
    settings: IssuerArgs,
}

impl SshCert {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let settings = self.settings.resolve()?;
        let identity = Identity::find(self.identity)?;
        let key = laptop::read_public_key(&identity.public, laptop::min_rsa_bits(ctx)?)?;
        let request = Request {
            validity_secs: Some(self.validity.as_secs()),
            source_addresses: self.source_addresses,
            host_scope: self.host,
        };
        let cert = match obtain(&settings, &key, &request).await {
            Ok(cert) => cert,
            Err(err) => return Ok(report(&err)),
        };
        save(&identity, &cert)?;
        let now = unix_secs(SystemTime::now());
        println!(
            "{}: certificate for {} (principals {}, key id {}, valid until {}), from {}",
            identity.cert_path().display(),
            key.fingerprint(),
            cert.principals().join(","),
            cert.key_id(),
            humantime::format_rfc3339_seconds(crate::clock::from_unix_secs(cert.valid_before())),
            settings.issuer
        );
        if !self.no_agent {
            add_to_agent(&identity, cert.seconds_left(now));
        }
        if self.known_hosts {
            let path = match self.known_hosts_file {
                Some(path) => path,
                None => default_known_hosts()?,
            };
            add_known_hosts_line(&path, &settings.ca)?;
        }
        Ok(Exit::Ok)
    }
}

/// What `ssh-cert` asks the issuer for beyond the key.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub validity_secs: Option<u64>,
    pub source_addresses: Vec<String>,
    pub host_scope: Option<String>,
}

/// Why `obtain` got no usable certificate; the variant decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum ObtainError {
    #[error("no certificate from the issuer at {issuer}: {error}")]
    Issuer { issuer: String, error: ClientError },
    #[error(
        "the issuer at {issuer} returned a certificate keyward does not use: {error}; check the \
         configured CA public key with your admin (`keyward ca public-key`)"
    )]
    Unusable {
        issuer: String,
        error: crate::keys::cert_check::CertCheckError,
    },
}

impl ObtainError {
    /// The issuer's failures as [`Exit::of_issuer`] says; a certificate keyward does not use is 1.
    pub fn exit(&self) -> Exit {
        match self {
            ObtainError::Issuer { error, .. } => Exit::of_issuer(error),
            ObtainError::Unusable { .. } => Exit::Failure,
        }
    }
}

/// Asks the issuer for a certificate for `key` and checks it.
pub async fn obtain(
    settings: &Settings,
    key: &PublicKey,
    request: &Request,
) -> Result<CheckedCert, ObtainError> {
    let issuer_error = |error| ObtainError::Issuer {
        issuer: settings.issuer.clone(),
        error,
    };
    let signer = ProofSigner::load(&laptop::interactive_options(), None)
        .await
        .map_err(|e| issuer_error(ClientError::Credentials(e.to_string())))?;
    let line = client::request_certificate(
        &settings.issuer,
        &settings.audience,
        &CertificateRequest {
            kind: CertKind::User,
            public_key: key,
            validity_secs: request.validity_secs,
            source_addresses: request.source_addresses.clone(),
            host_scope: request.host_scope.clone(),
        },
        &signer,
        ISSUER_TIMEOUT,
    )
    .await
    .map_err(issuer_error)?;
    let now = unix_secs(SystemTime::now());
    check_user_cert(&line, key, &settings.ca, now).map_err(|error| ObtainError::Unusable {
        issuer: settings.issuer.clone(),
        error,
    })
}

/// Prints why no certificate came and gives the exit code for it.
pub fn report(err: &ObtainError) -> Exit {
    eprintln!("keyward: {err}");
    err.exit()
}

/// Writes `<key>-cert.pub` next to the key.
pub fn save(identity: &Identity, cert: &CheckedCert) -> anyhow::Result<()> {
    let path = identity.cert_path();
    let (dir, name) = dir_and_name(&path)?;
    files::write_atomic(dir, name, format!("{}\n", cert.to_line()).as_bytes(), 0o644)
        .map_err(files::IoError::at("write", &path))?;
    Ok(())
}

/// The directory and file name `files::write_atomic` takes for `path`.
fn dir_and_name(path: &Path) -> anyhow::Result<(&Path, &str)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{} is not a usable file name", path.display()))?;
    Ok((dir, name))
}

/// `ssh-add -t SECONDS KEY` when an agent is running: the agent forgets the key (and the
/// certificate ssh-add loads with it) when the certificate expires. A failure is a warning:
/// the certificate file works without the agent.
pub fn add_to_agent(identity: &Identity, seconds_left: u64) {
    if std::env::var_os("SSH_AUTH_SOCK").is_none_or(|v| v.is_empty()) {
        return;
    }
    let fix = format!(
        "ssh-add -t {seconds_left} {}",
        identity.private.to_string_lossy()
    );
    if !identity.private.is_file() {
        eprintln!(
            "keyward: warning: {} does not exist, so the key was not added to ssh-agent; \
             ssh uses the certificate with the private key that goes with it (`{fix}`)",
            identity.private.display()
        );
        return;
    }
    let status = Command::new("ssh-add")
        .arg("-t")
        .arg(seconds_left.to_string())
        .arg(&identity.private)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!(
            "keyward: warning: ssh-add failed ({s}); the certificate is in place, but not in \
             the agent: run `{fix}`, or use --no-agent"
        ),
        Err(e) => eprintln!(
            "keyward: warning: cannot run ssh-add ({e}); the certificate is in place, but not \
             in the agent: install openssh-client and run `{fix}`, or use --no-agent"
        ),
    }
}

fn default_known_hosts() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow!("HOME is not set: pass --known-hosts-file FILE"))?;
    Ok(Path::new(&home).join(".ssh").join("known_hosts"))
}

/// The `@cert-authority` line that makes ssh trust host certificates from `ca` for every host
/// (the CA key without its comment).
fn cert_authority_line(ca: &PublicKey) -> anyhow::Result<String> {
    Ok(known_hosts_line(
        &ca.clone().with_comment(""),
        &["*".to_owned()],
    )?)
}

/// `existing` (a known_hosts file's text) with the line for `ca` appended, or `None` when a
/// `@cert-authority` line for that key is already there (whatever its host patterns: a
/// narrower pattern the user chose stays).
fn with_cert_authority(existing: &str, ca: &PublicKey) -> anyhow::Result<Option<String>> {
    let present = existing.lines().any(|line| {
        let mut fields = line.split_ascii_whitespace();
        fields.next() == Some("@cert-authority")
            && fields.next().is_some()
            && fields
                .next()
                .zip(fields.next())
                .and_then(|(kind, b64)| PublicKey::parse(&format!("{kind} {b64}")).ok())
                .is_some_and(|key| key.blob() == ca.blob())
    });
    if present {
        return Ok(None);
    }
    let mut text = existing.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&cert_authority_line(ca)?);
    text.push('\n');
    Ok(Some(text))
}

/// Adds the `@cert-authority` line to a known_hosts file, once. The file is read without
/// following a symlink and replaced atomically with its mode kept.
fn add_known_hosts_line(path: &Path, ca: &PublicKey) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let (dir, name) = dir_and_name(path)?;
    let (existing, mode) = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "{} is a symlink, which keyward does not replace: add this line to the file it \
             points to yourself:\n{}",
            path.display(),
            cert_authority_line(ca)?
        ),
        Ok(meta) if meta.len() > files::MAX_TEXT_LEN => {
            bail!("{} is larger than keyward reads", path.display())
        }
        Ok(meta) => {
            let text = std::fs::read_to_string(path)
                .map_err(files::IoError::at("read", path))
                .context("known_hosts")?;
            (text, meta.permissions().mode() & 0o777)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(files::IoError::at("create", dir))?;
            (String::new(), 0o644)
        }
        Err(e) => return Err(files::IoError::at("read", path)(e).into()),
    };
    match with_cert_authority(&existing, ca)? {
        None => println!(
            "{}: already trusts host certificates from {}",
            path.display(),
            ca.fingerprint()
        ),
        Some(text) => {
            files::write_atomic(dir, name, text.as_bytes(), mode)
                .map_err(files::IoError::at("write", path))?;
            println!("{}: added `{}`", path.display(), cert_authority_line(ca)?);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
