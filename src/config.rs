//! The keyward configuration file (`/etc/keyward/keyward.toml`).
//!
//! The config decides who may log in, so it is parsed strictly (unknown keys are errors that
//! name the key and line), validated as a whole before anything uses it, and only read from a
//! file that nobody but root (or the user running keyward) could have written.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::accounts::ids::{IdRange, UidScheme, DEFAULT_UID_RANGE};
use crate::accounts::names::{self, NameMapping};
use crate::files;
use crate::keys::{KeyType, PublicKey};

pub const DEFAULT_PATH: &str = "/etc/keyward/keyward.toml";
pub const ENV_VAR: &str = "KEYWARD_CONFIG";

/// Accounts that keyward never maps, whatever the config says. Every other local account that
/// keyward did not create is protected too, by the ownership check in `accounts::local`.
/// The same names (and `reserved_users`) are reserved as group names: `keyward` is also the
/// service group that may read the AWS credentials file.
pub const BUILTIN_RESERVED: &[&str] = &["root", "keyward"];

/// Group names that sudoers files, polkit or distributions give privileges to (Ubuntu's
/// `%admin` and `%sudo`, RHEL's `%wheel`, `docker`, `lxd`, `disk`, `shadow`, ...). Where such a
/// group does not exist, keyward never creates it: not from an IAM group (`keyward_admin`) and
/// not as a new account's private group (so no account gets one of these names). An existing
/// one is a system group, managed only when `adopt_groups` names it.
pub const PRIVILEGED_GROUPS: &[&str] = &[
    "admin",
    "adm",
    "disk",
    "docker",
    "kvm",
    "libvirt",
    "lxd",
    "shadow",
    "staff",
    "sudo",
    "sys",
    "systemd-journal",
    "wheel",
];

/// The longest `max_stale`. While IAM is unreachable a revoked key keeps working for up to
/// `max_stale`; a week rides out any IAM or network incident seen so far (hours) and a long
/// weekend of a cut-off site, and a host cut off for longer must stop honouring keys that may
/// have been revoked meanwhile.
pub const MAX_MAX_STALE: Duration = Duration::from_secs(7 * 86_400);
/// The longest `group_cache_ttl`. Leaving an allowed group reaches logins only after this long
/// (a re-created IAM user's new keys are checked at once: they trigger GetUser): an hour matches the hourly
/// `sync` that locks the account, so a removal is in force at login and on the host within
/// the same hour.
pub const MAX_GROUP_CACHE_TTL: Duration = Duration::from_secs(3600);
/// The longest `outage_hold`: IAM is not asked during it, so a revocation takes at most this
/// much longer to reach logins during an outage that has already ended.
pub const MAX_OUTAGE_HOLD: Duration = Duration::from_secs(600);
/// The most IAM GetGroup calls one `sync` makes at once. Past a handful the read no longer
/// gets faster against IAM, and every host of a fleet syncs at the top of the hour: more would
/// only buy throttling.
pub const MAX_SYNC_CONCURRENCY: u8 = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// IAM groups whose members may log in; `["*"]` means every IAM user, empty means nobody.
    pub allowed_groups: Vec<String>,
    /// IAM groups with this prefix become Linux groups (used by `sync`).
    pub group_prefix: String,
    #[serde(
        serialize_with = "serialize_mapping",
        deserialize_with = "deserialize_mapping"
    )]
    pub name_mapping: NameMapping,
    pub uid_scheme: UidScheme,
    #[serde(
        serialize_with = "serialize_range",
        deserialize_with = "deserialize_range"
    )]
    pub uid_range: IdRange,
    pub cache_dir: PathBuf,
    /// Where keyward records the accounts it owns.
    pub state_dir: PathBuf,
    /// How old a cached key set may be and still be served while IAM cannot be reached
    /// (at most `MAX_MAX_STALE`).
    #[serde(
        serialize_with = "human_duration::serialize",
        deserialize_with = "deserialize_max_stale"
    )]
    pub max_stale: Duration,
    /// Hard bound on one `authorized-keys` run, IAM retries included.
    #[serde(with = "human_duration")]
    pub lookup_timeout: Duration,
    /// How long a user's IAM group membership is trusted before it is read again (at most
    /// `MAX_GROUP_CACHE_TTL`).
    #[serde(
        serialize_with = "human_duration::serialize",
        deserialize_with = "deserialize_group_cache_ttl"
    )]
    pub group_cache_ttl: Duration,
    /// Once a lookup found IAM unreachable (the key list did not answer), lookups serve the
    /// cache without asking IAM for this long (at most `MAX_OUTAGE_HOLD`, never beyond
    /// `max_stale`), so logins during an outage do not each wait for timeouts and retries.
    #[serde(
        serialize_with = "human_duration::serialize",
        deserialize_with = "deserialize_outage_hold"
    )]
    pub outage_hold: Duration,
    pub iam_role_arn: Option<String>,
    pub reserved_users: Vec<String>,
    /// Create a first-time IAM user's account when they log in (pam_exec hook + sshd's
    /// keyboard-interactive); they connect again to get in.
    pub create_on_login: bool,
    /// Login shell of the accounts keyward creates.
    pub account_shell: PathBuf,
    /// An AWS shared config file (profile `default`, or `AWS_PROFILE`) for hosts that cannot
    /// use the standard chain as sshd runs keyward: sshd and PAM give it a bare environment,
    /// so on-premises hosts and emulators put region, credentials and `endpoint_url` here.
    pub aws_config_file: Option<PathBuf>,
    /// `sync` creates an account for every allowed IAM user who has none yet.
    pub create_accounts: bool,
    /// IAM groups whose members get `NAME ALL=(ALL) NOPASSWD:ALL` in /etc/sudoers.d/keyward
    /// (written by `sync`). keyward's accounts have no password, so sudo cannot ask for one.
    pub sudo_groups: Vec<String>,
    /// Existing local groups (sudo, docker…) that a prefixed IAM group may manage: only
    /// keyward's own accounts are added to or removed from them, and they are never deleted.
    pub adopt_groups: Vec<String>,
    /// `sync` kills the processes of an account it locks (`pkill -KILL -u`, `loginctl
    /// terminate-user`), instead of letting open sessions run until they end.
    pub end_sessions: bool,
    /// `sync` deletes a locked account this long after locking it; none = never delete.
    #[serde(with = "human_duration_opt", skip_serializing_if = "Option::is_none")]
    pub delete_after: Option<Duration>,
    /// Deleting an account also deletes its home directory and mail spool (`userdel --remove`).
    pub remove_home: bool,
    /// A `sync` plan with more removals than this (accounts locked or deleted, groups deleted,
    /// memberships removed from accounts that stay; a departure counts once), or one that
    /// removes every account or every group keyward manages, is refused unless run with
    /// `--force`.
    pub max_removals: u32,
    /// With `uid_scheme = "keymaker"`: existing local accounts (and groups) whose id is the
    /// keymaker hash of their IAM user (group) become keyward's, so `sync` manages them.
    pub adopt_keymaker_accounts: bool,
    /// IAM UserIds whose keymaker account is adopted (or renamed) without the date evidence
    /// (`sync::plan::keymaker_evidence`): for an account /etc/shadow gives no day for, or one
    /// older than its IAM user, after the admin checked that this IAM identity is the person
    /// the account was made for. Name and UID must still match.
    pub adopt_keymaker_user_ids: Vec<String>,
    /// RSA keys with fewer bits are not served, uploaded or rotated to; never below 2048
    /// (`PublicKey::MIN_RSA_BITS`), which every parsed key already meets.
    #[serde(deserialize_with = "deserialize_min_rsa_bits")]
    pub min_rsa_bits: u32,
    /// IAM GetGroup calls `sync` has in flight at once (1 to `MAX_SYNC_CONCURRENCY`).
    #[serde(deserialize_with = "deserialize_sync_concurrency")]
    pub sync_concurrency: u8,
    /// The certificate issuer's own settings (`keyward ca serve`, `keyward ca lambda`); hosts
    /// and laptops leave it out. Who may get a certificate (`allowed_groups`) and under which
    /// Linux name (`name_mapping`, `reserved_users`) come from the settings above, as on hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<IssuerConfig>,
    /// The user CA's public key (an OpenSSH `ecdsa-sha2-nistp256`/`nistp384` line, what
    /// `keyward ca public-key` prints) that `keyward install --ca` makes sshd trust.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_ca_public_key: Option<String>,
    /// This host's EC2 instance id (`i-…`), for the per-instance certificate principal
    /// `NAME@i-…`; when unset, cloud-init's /var/lib/cloud/data/instance-id is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The `[jump]` table: what `keyward install --jump` makes of this host (a jump-only host
    /// for one Linux group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jump: Option<JumpConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            allowed_groups: Vec::new(),
            group_prefix: "keyward_".into(),
            name_mapping: NameMapping::Escape,
            uid_scheme: UidScheme::Hash,
            uid_range: DEFAULT_UID_RANGE,
            cache_dir: "/var/cache/keyward".into(),
            state_dir: "/var/lib/keyward".into(),
            // Long enough to ride out a regional IAM or network incident (they have lasted
            // hours) without locking everyone out; short enough that a host cut off from IAM
            // for longer stops honouring keys that may have been revoked meanwhile.
            max_stale: Duration::from_secs(12 * 3600),
            lookup_timeout: Duration::from_secs(4),
            group_cache_ttl: Duration::from_secs(300),
            // Long enough that a burst of logins during an outage pays the timeout once, short
            // enough that the end of the outage is noticed within half a minute.
            outage_hold: Duration::from_secs(30),
            iam_role_arn: None,
            reserved_users: Vec::new(),
            create_on_login: true,
            account_shell: "/bin/bash".into(),
            aws_config_file: None,
            create_accounts: true,
            sudo_groups: Vec::new(),
            adopt_groups: Vec::new(),
            end_sessions: false,
            delete_after: None,
            remove_home: false,
            // Above a normal hour of departures (a few a week, even in a fleet of thousands),
            // below the size of a team: deleting or renaming one team's IAM group, or a typo
            // in allowed_groups, stops for a human instead of locking the team out.
            max_removals: 10,
            adopt_keymaker_accounts: false,
            adopt_keymaker_user_ids: Vec::new(),
            min_rsa_bits: PublicKey::MIN_RSA_BITS,
            // Overlaps the round trips (a no-op sync is little else) while staying far from
            // IAM's per-account request rate when a fleet syncs at once.
            sync_concurrency: 4,
            issuer: None,
            ssh_ca_public_key: None,
            jump: None,
            instance_id: None,
        }
    }
}

/// Where the config came from, for `keyward config` and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// The default path does not exist: built-in defaults (nobody may log in).
    Defaults(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Defaults(p) => write!(f, "built-in defaults ({} does not exist)", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is not trusted: {reason}")]
    Untrusted {
        path: PathBuf,
        reason: files::TrustError,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {setting}")]
    Invalid {
        path: PathBuf,
        setting: InvalidSetting,
    },
}

/// A setting whose value keyward refuses: which key, and why (with the accepted values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct InvalidSetting {
    pub key: &'static str,
    pub problem: String,
}

fn invalid(key: &'static str, problem: impl Into<String>) -> InvalidSetting {
    InvalidSetting {
        key,
        problem: problem.into(),
    }
}

impl Config {
    /// Parses and validates config text. `path` only labels errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate().map_err(|setting| ConfigError::Invalid {
            path: path.to_owned(),
            setting,
        })?;
        Ok(config)
    }

    /// Loads the config: an explicit path (flag or `KEYWARD_CONFIG`) must exist; the default
    /// path may be missing, which means built-in defaults. The file is opened once, not through
    /// a symlink, and checked on the open descriptor before a byte of it is used.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Source), ConfigError> {
        let (path, required) = match explicit {
            Some(p) => (p.to_owned(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        let bytes = match files::read_trusted(&path, files::MAX_TEXT_LEN) {
            Ok(Some(bytes)) => bytes,
            Ok(None) if !required => return Ok((Config::default(), Source::Defaults(path))),
            Ok(None) => {
                return Err(ConfigError::Read {
                    path,
                    source: std::io::ErrorKind::NotFound.into(),
                })
            }
            Err(files::TrustError::Io { error, .. }) => {
                return Err(ConfigError::Read {
                    path,
                    source: error,
                })
            }
            Err(reason) => return Err(ConfigError::Untrusted { path, reason }),
        };
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
            path: path.clone(),
            message: "not UTF-8 text".into(),
        })?;
        let config = Config::from_toml(&text, &path)?;
        Ok((config, Source::File(path)))
    }

    /// Every IAM user may log in.
    pub fn allows_everyone(&self) -> bool {
        self.allowed_groups.iter().any(|g| g == "*")
    }

    /// The one rule of who may log in, for every job (lookup, account creation, doctor): any
    /// IAM user when `allowed_groups` is `["*"]`, else a member of one of `allowed_groups`.
    /// `groups` is the user's IAM groups, `None` when they were not read (allowed only by `*`).
    /// Names compare exactly: IAM group names are case-sensitive in policies and here.
    pub fn allows(&self, groups: Option<&[String]>) -> bool {
        self.allows_everyone()
            || groups.is_some_and(|gs| gs.iter().any(|g| self.allowed_groups.contains(g)))
    }

    /// Account names keyward never maps: root, keyward, `reserved_users`, and the privileged
    /// group names (an account's private group carries its name).
    pub fn is_reserved(&self, linux_name: &str) -> bool {
        self.is_reserved_group(linux_name) || PRIVILEGED_GROUPS.contains(&linux_name)
    }

    /// Group names keyward never creates, fills or adopts: root, keyward (its own service
    /// group) and `reserved_users` (a user's private group carries its name). The privileged
    /// names ([`PRIVILEGED_GROUPS`]) are never created but may be adopted.
    pub fn is_reserved_group(&self, linux_name: &str) -> bool {
        BUILTIN_RESERVED.contains(&linux_name)
            || self.reserved_users.iter().any(|r| r == linux_name)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        if self.allows_everyone() && self.allowed_groups.len() > 1 {
            return Err(invalid("allowed_groups", "\"*\" must be the only entry"));
        }
        for g in self.allowed_groups.iter().filter(|g| *g != "*") {
            if !is_valid_iam_group_name(g) {
                return Err(invalid(
                    "allowed_groups",
                    format!("{g:?} is not a valid IAM group name"),
                ));
            }
        }
        if self.group_prefix.is_empty() || !is_valid_iam_group_name(&self.group_prefix) {
            return Err(invalid(
                "group_prefix",
                format!(
                    "{:?} must be a non-empty run of IAM group-name characters",
                    self.group_prefix
                ),
            ));
        }
        let mut paths = vec![
            ("cache_dir", &self.cache_dir),
            ("state_dir", &self.state_dir),
            ("account_shell", &self.account_shell),
        ];
        paths.extend(
            self.aws_config_file
                .as_ref()
                .map(|p| ("aws_config_file", p)),
        );
        for (key, dir) in paths {
            if !dir.is_absolute() {
                return Err(invalid(
                    key,
                    format!("{} must be an absolute path", dir.display()),
                ));
            }
        }
        if self.lookup_timeout.is_zero() || self.lookup_timeout > Duration::from_secs(30) {
            return Err(invalid(
                "lookup_timeout",
                "must be between 1ms and 30s (sshd waits for it)",
            ));
        }
        for r in &self.reserved_users {
            if !names::is_valid_linux_name(r) {
                return Err(invalid(
                    "reserved_users",
                    format!("{r:?} is not a valid Linux user name"),
                ));
            }
        }
        for g in &self.sudo_groups {
            if !is_valid_iam_group_name(g) {
                return Err(invalid(
                    "sudo_groups",
                    format!("{g:?} is not a valid IAM group name"),
                ));
            }
        }
        for g in &self.adopt_groups {
            if !names::is_valid_linux_name(g) {
                return Err(invalid(
                    "adopt_groups",
                    format!("{g:?} is not a valid Linux group name"),
                ));
            }
            if self.is_reserved_group(g) {
                return Err(invalid(
                    "adopt_groups",
                    format!(
                        "{g:?} is reserved: root, keyward (keyward's own service group) and \
                         the reserved_users are never managed"
                    ),
                ));
            }
        }
        if self.delete_after.is_some_and(|d| d.is_zero()) {
            return Err(invalid(
                "delete_after",
                "must be longer than 0s (leave it out to never delete accounts)",
            ));
        }
        if self.adopt_keymaker_accounts && self.uid_scheme != UidScheme::Keymaker {
            return Err(invalid(
                "adopt_keymaker_accounts",
                "only meaningful with uid_scheme = \"keymaker\"",
            ));
        }
        if !self.adopt_keymaker_user_ids.is_empty() && !self.adopt_keymaker_accounts {
            return Err(invalid(
                "adopt_keymaker_user_ids",
                "only meaningful with adopt_keymaker_accounts = true",
            ));
        }
        if let Some(id) = self
            .adopt_keymaker_user_ids
            .iter()
            .find(|id| !crate::accounts::ownership::is_plausible_user_id(id))
        {
            return Err(invalid(
                "adopt_keymaker_user_ids",
                format!("{id:?} is not an IAM UserId (AIDA…)"),
            ));
        }
        if let Some(line) = &self.ssh_ca_public_key {
            if let Err(problem) = ca_public_key(line) {
                return Err(invalid("ssh_ca_public_key", problem));
            }
        }
        if let Some(id) = &self.instance_id {
            if !crate::ec2::is_instance_id(id) {
                return Err(invalid(
                    "instance_id",
                    format!(
                        "{id:?} is not an EC2 instance id (i- and 8 or 17 lower-case hex digits)"
                    ),
                ));
            }
        }
        if let Some(arn) = &self.iam_role_arn {
            if !arn.starts_with("arn:") || !arn.contains(":role/") {
                return Err(invalid(
                    "iam_role_arn",
                    format!("{arn:?} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
                ));
            }
        }
        if let Some(issuer) = &self.issuer {
            issuer.validate()?;
        }
        if let Some(jump) = &self.jump {
            jump.validate()?;
        }
        Ok(())
    }
}

/// The `[jump]` table: `keyward install --jump` makes members of `group` use this host only as
/// a way through (`ssh -J`), to port `port` of `destinations`; members of `admin_groups` keep
/// their shells. Groups are Linux groups (what sshd's `Match Group` sees), such as the ones
/// `sync` makes from `group_prefix`ed IAM groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JumpConfig {
    pub group: String,
    /// IPv4 addresses and CIDR ranges (the VPC's), at most
    /// [`crate::install::jump::MAX_ADDRESSES`] addresses in all, or `["*"]` for any host.
    pub destinations: Vec<String>,
    #[serde(default = "default_jump_port")]
    pub port: u16,
    #[serde(default)]
    pub admin_groups: Vec<String>,
}

fn default_jump_port() -> u16 {
    22
}

impl JumpConfig {
    fn validate(&self) -> Result<(), InvalidSetting> {
        if !names::is_valid_linux_name(&self.group) {
            return Err(invalid(
                "jump.group",
                format!("{:?} is not a valid Linux group name", self.group),
            ));
        }
        for g in &self.admin_groups {
            if !names::is_valid_linux_name(g) {
                return Err(invalid(
                    "jump.admin_groups",
                    format!("{g:?} is not a valid Linux group name"),
                ));
            }
            if *g == self.group {
                return Err(invalid(
                    "jump.admin_groups",
                    format!("{g:?} is the jump group itself: its members would all keep shells"),
                ));
            }
        }
        if self.port == 0 {
            return Err(invalid("jump.port", "must be 1 to 65535"));
        }
        crate::install::jump::permit_open(&self.destinations, self.port)
            .map_err(|problem| invalid("jump.destinations", problem))?;
        Ok(())
    }
}

/// The longest certificate lifetime an issuer may be configured to give.
pub const MAX_ISSUER_VALIDITY: Duration = Duration::from_secs(crate::keys::cert::MAX_VALIDITY_SECS);

/// The `[issuer]` table: what only the certificate issuer reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// What a proof's `x-keyward-audience` header must be: by convention the issuer's public
    /// URL (`https://issuer.example.com`), which clients sign into every proof.
    pub audience: String,
    /// The KMS alias of the CA key.
    #[serde(default = "default_ca_key_alias")]
    pub ca_key_alias: String,
    /// Where proofs are replayed; none = STS's global endpoint `https://sts.amazonaws.com`, what
    /// clients sign for unless `AWS_ENDPOINT_URL_STS` says otherwise. Plain `http://` only on
    /// loopback (emulators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_endpoint: Option<String>,
    /// Lifetime of a certificate whose request names none.
    #[serde(
        default = "default_validity",
        serialize_with = "human_duration::serialize",
        deserialize_with = "deserialize_issuer_validity"
    )]
    pub default_validity: Duration,
    /// Longest lifetime the issuer grants (requests are clamped to it); at most 24h.
    #[serde(
        default = "default_max_validity",
        serialize_with = "human_duration::serialize",
        deserialize_with = "deserialize_issuer_validity"
    )]
    pub max_validity: Duration,
    /// IAM role names whose sessions may ask for host certificates.
    #[serde(default)]
    pub host_roles: Vec<String>,
    /// Longest lifetime of a host certificate (requests are clamped to it); 1h to 90d. Host
    /// certificates name addresses that outlive an instance: keep this near the renewal period.
    #[serde(
        default = "default_max_host_validity",
        serialize_with = "human_duration::serialize",
        deserialize_with = "deserialize_host_validity"
    )]
    pub max_host_validity: Duration,
    /// PEM certificate chain and private key for `ca serve` on a non-loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

fn default_ca_key_alias() -> String {
    crate::ca::DEFAULT_ALIAS.to_owned()
}

/// Short enough that a certificate outlives a departure by at most about the sync interval.
fn default_validity() -> Duration {
    Duration::from_secs(3600)
}

/// `keyward host-cert`'s default request: renewed daily, a certificate ends within a month of
/// its instance.
fn default_max_host_validity() -> Duration {
    Duration::from_secs(crate::keys::cert::DEFAULT_HOST_VALIDITY_SECS)
}

fn deserialize_host_validity<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    use serde::de::Error;
    let max = Duration::from_secs(crate::keys::cert::MAX_HOST_VALIDITY_SECS);
    let value = bounded_duration(d, "max_host_validity", max)?;
    if value < Duration::from_secs(crate::issuer::host::MIN_HOST_VALIDITY_SECS) {
        return Err(D::Error::custom("max_host_validity must be at least 1h"));
    }
    Ok(value)
}

/// A working day: a person asks once in the morning at most.
fn default_max_validity() -> Duration {
    Duration::from_secs(12 * 3600)
}

fn deserialize_issuer_validity<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    use serde::de::Error;
    let value = bounded_duration(d, "validity", MAX_ISSUER_VALIDITY)?;
    if value < Duration::from_secs(60) {
        return Err(D::Error::custom(
            "a certificate validity must be at least 1m",
        ));
    }
    Ok(value)
}

impl IssuerConfig {
    /// The STS endpoint proofs are replayed to: `sts_endpoint`, else STS's global endpoint
    /// ([`crate::issuer::DEFAULT_STS_ENDPOINT`], the clients' default too). Never the SDK's
    /// endpoint settings: where proofs go is the config's decision alone.
    pub fn sts_endpoint(&self) -> &str {
        self.sts_endpoint
            .as_deref()
            .unwrap_or(crate::issuer::DEFAULT_STS_ENDPOINT)
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        let audience_ok = (1..=256).contains(&self.audience.len())
            && self.audience.bytes().all(|b| b.is_ascii_graphic());
        if !audience_ok {
            return Err(invalid(
                "issuer.audience",
                "must be 1 to 256 printable characters without spaces (the issuer's URL)",
            ));
        }
        if !crate::ca::is_valid_alias(&self.ca_key_alias) {
            return Err(invalid(
                "issuer.ca_key_alias",
                format!("{:?} is not a KMS alias (alias/NAME)", self.ca_key_alias),
            ));
        }
        if let Some(endpoint) = &self.sts_endpoint {
            if !is_acceptable_endpoint(endpoint) {
                return Err(invalid(
                    "issuer.sts_endpoint",
                    format!(
                        "{endpoint:?} must be an https:// URL (http:// only on 127.0.0.1, \
                         [::1] or localhost) with no path, query or user"
                    ),
                ));
            }
        }
        if self.default_validity > self.max_validity {
            return Err(invalid(
                "issuer.default_validity",
                "must not be longer than issuer.max_validity",
            ));
        }
        if let Some(role) = self.host_roles.iter().find(|r| {
            !((1..=64).contains(&r.len())
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)))
        }) {
            return Err(invalid(
                "issuer.host_roles",
                format!("{role:?} is not an IAM role name"),
            ));
        }
        match (&self.tls_certificate, &self.tls_key) {
            (Some(cert), Some(key)) => {
                for (key_name, path) in [("issuer.tls_certificate", cert), ("issuer.tls_key", key)]
                {
                    if !path.is_absolute() {
                        return Err(invalid(
                            key_name,
                            format!("{} must be an absolute path", path.display()),
                        ));
                    }
                }
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "issuer.tls_certificate",
                    "tls_certificate and tls_key go together",
                ))
            }
        }
        Ok(())
    }
}

/// `https://host[:port]`, or `http://` to a loopback host; nothing after the authority.
fn is_acceptable_endpoint(url: &str) -> bool {
    let (secure, authority) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return false,
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let host = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((host, port)) if port.is_empty() || port.starts_with(':') => host,
            _ => return false,
        },
        None => authority.split(':').next().unwrap_or(""),
    };
    let plain = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    plain && !host.is_empty() && (secure || ["127.0.0.1", "::1", "localhost"].contains(&host))
}

/// A user CA public key sshd may trust: one OpenSSH line that keyward's key parser accepts,
/// of type ECDSA P-256 or P-384 (the curves a keyward CA in KMS has; no RSA CA). The error
/// says what is wrong without quoting the line.
pub fn ca_public_key(line: &str) -> Result<PublicKey, String> {
    let key =
        PublicKey::parse(line.trim()).map_err(|e| format!("not an OpenSSH public key: {e}"))?;
    match key.key_type() {
        KeyType::EcdsaP256 | KeyType::EcdsaP384 => Ok(key),
        other => Err(format!(
            "a {} key; a keyward CA is ECDSA P-256 or P-384 (`keyward ca public-key` prints it)",
            other.name()
        )),
    }
}

/// IAM group names: `[\w+=,.@-]{1,128}`.
pub fn is_valid_iam_group_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn deserialize_max_stale<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, "max_stale", MAX_MAX_STALE)
}

fn deserialize_group_cache_ttl<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, "group_cache_ttl", MAX_GROUP_CACHE_TTL)
}

fn deserialize_outage_hold<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, "outage_hold", MAX_OUTAGE_HOLD)
}

/// Checked while parsing, not in `validate`, so that the error carries the line (toml adds the
/// span of the value).
fn bounded_duration<'de, D: Deserializer<'de>>(
    d: D,
    key: &str,
    max: Duration,
) -> Result<Duration, D::Error> {
    use serde::de::Error;
    let value = human_duration::deserialize(d)?;
    if value > max {
        return Err(D::Error::custom(format!(
            "{key}: {} is too long; it may be at most {}",
            humantime::format_duration(value),
            humantime::format_duration(max)
        )));
    }
    Ok(value)
}

fn deserialize_min_rsa_bits<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    use serde::de::Error;
    let bits = u32::deserialize(d)?;
    if !(PublicKey::MIN_RSA_BITS..=PublicKey::MAX_RSA_BITS).contains(&bits) {
        return Err(D::Error::custom(format!(
            "min_rsa_bits: {bits} is out of range; it must be between {} and {}",
            PublicKey::MIN_RSA_BITS,
            PublicKey::MAX_RSA_BITS
        )));
    }
    Ok(bits)
}

fn deserialize_sync_concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    use serde::de::Error;
    let n = i64::deserialize(d)?;
    if !(1..=i64::from(MAX_SYNC_CONCURRENCY)).contains(&n) {
        return Err(D::Error::custom(format!(
            "sync_concurrency: {n} is out of range; it must be between 1 and {MAX_SYNC_CONCURRENCY}"
        )));
    }
    u8::try_from(n).map_err(D::Error::custom)
}

/// `delete_after = "30d"`; absent means never.
mod human_duration_opt {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => human_duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        human_duration::deserialize(d).map(Some)
    }
}

/// `name_mapping = "escape"`, `name_mapping = "identity"`, or
/// `name_mapping = { scheme = "identity", suffix = ".iam" }`.
#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum MappingSetting {
    Scheme(String),
    Table {
        scheme: String,
        #[serde(default)]
        suffix: String,
    },
}

fn deserialize_mapping<'de, D: Deserializer<'de>>(d: D) -> Result<NameMapping, D::Error> {
    use serde::de::Error;
    let (scheme, suffix) = match MappingSetting::deserialize(d)? {
        MappingSetting::Scheme(s) => (s, String::new()),
        MappingSetting::Table { scheme, suffix } => (scheme, suffix),
    };
    match scheme.as_str() {
        "escape" if suffix.is_empty() => Ok(NameMapping::Escape),
        "escape" => Err(D::Error::custom(
            "suffix is only allowed with scheme \"identity\"",
        )),
        "identity" if names::is_valid_suffix(&suffix) => Ok(NameMapping::Identity { suffix }),
        "identity" => Err(D::Error::custom(format!(
            "suffix {suffix:?} must be at most 16 of [a-z0-9_.-]"
        ))),
        other => Err(D::Error::custom(format!(
            "unknown name_mapping {other:?}, expected \"escape\" or \"identity\""
        ))),
    }
}

fn serialize_mapping<S: Serializer>(m: &NameMapping, s: S) -> Result<S::Ok, S::Error> {
    match m {
        NameMapping::Escape => MappingSetting::Scheme("escape".into()),
        NameMapping::Identity { suffix } if suffix.is_empty() => {
            MappingSetting::Scheme("identity".into())
        }
        NameMapping::Identity { suffix } => MappingSetting::Table {
            scheme: "identity".into(),
            suffix: suffix.clone(),
        },
    }
    .serialize(s)
}

fn deserialize_range<'de, D: Deserializer<'de>>(d: D) -> Result<IdRange, D::Error> {
    use serde::de::Error;
    let [first, last] = <[u32; 2]>::deserialize(d)?;
    IdRange::new(first, last).map_err(D::Error::custom)
}

fn serialize_range<S: Serializer>(r: &IdRange, s: S) -> Result<S::Ok, S::Error> {
    [r.first, r.last].serialize(s)
}

/// Durations are written the human way: "4s", "500ms", "12h", "7d".
mod human_duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        humantime::format_duration(*d).to_string().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        use serde::de::Error;
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            D::Error::custom(format!(
                "{text:?} is not a duration like \"30s\" or \"12h\": {e}"
            ))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_means_defaults_and_nobody_allowed() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert!(c.allowed_groups.is_empty());
        assert!(!c.allows_everyone());
    }

    #[test]
    fn allows_members_of_allowed_groups_or_everyone_with_star() {
        let groups = |gs: &[&str]| gs.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        let ops = parse("allowed_groups = [\"ops\", \"dev\"]").unwrap();
        assert!(ops.allows(Some(&groups(&["x", "dev"]))));
        assert!(!ops.allows(Some(&groups(&["Ops", "admins"]))));
        assert!(!ops.allows(Some(&[])));
        assert!(!ops.allows(None), "groups not read: not allowed");
        let star = parse("allowed_groups = [\"*\"]").unwrap();
        assert!(star.allows(None) && star.allows(Some(&[])));
        let nobody = parse("").unwrap();
        assert!(!nobody.allows(Some(&groups(&["*", "ops"]))));
    }

    #[test]
    fn jump_table_parses_with_port_22_and_no_admins_by_default() {
        let c = parse("[jump]\ngroup = \"bastion\"\ndestinations = [\"10.0.0.0/24\"]\n").unwrap();
        let jump = c.jump.unwrap();
        assert_eq!(jump.group, "bastion");
        assert_eq!(jump.port, 22);
        assert!(jump.admin_groups.is_empty());
        assert_eq!(parse("").unwrap().jump, None);
    }

    #[test]
    fn jump_table_is_validated() {
        let table = |body: &str| format!("[jump]\n{body}\n");
        for (body, says) in [
            (
                "group = \"b\"\ndestinations = [\"10.0.0.0/24\"]\nextra = 1",
                "extra",
            ),
            ("destinations = [\"10.0.0.0/24\"]", "group"),
            ("group = \"b\"", "destinations"),
            (
                "group = \"Bastion!\"\ndestinations = [\"10.0.0.1\"]",
                "jump.group",
            ),
            (
                "group = \"b,c\"\ndestinations = [\"10.0.0.1\"]",
                "jump.group",
            ),
            (
                "group = \"b\"\ndestinations = [\"10.0.0.1\"]\nadmin_groups = [\"!ops\"]",
                "jump.admin_groups",
            ),
            (
                "group = \"b\"\ndestinations = [\"10.0.0.1\"]\nadmin_groups = [\"b\"]",
                "the jump group itself",
            ),
            (
                "group = \"b\"\ndestinations = [\"10.0.0.0/16\"]",
                "jump.destinations",
            ),
            (
                "group = \"b\"\ndestinations = [\"web-1\"]",
                "jump.destinations",
            ),
            ("group = \"b\"\ndestinations = []", "jump.destinations"),
            (
                "group = \"b\"\ndestinations = [\"10.0.0.1\"]\nport = 0",
                "jump.port",
            ),
            (
                "group = \"b\"\ndestinations = [\"10.0.0.1\"]\nport = 70000",
                "port",
            ),
        ] {
            let err = parse(&table(body)).unwrap_err().to_string();
            assert!(err.contains(says), "{body}: {err}");
        }
        let star = parse(&table("group = \"b\"\ndestinations = [\"*\"]\nport = 2222")).unwrap();
        assert_eq!(star.jump.unwrap().port, 2222);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse("allowed_groups = [\"*\"]\nmax_stal = \"1h\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_stal"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn durations_and_mapping_parse() {
        let c = parse(
            "allowed_groups = [\"ops\"]\nmax_stale = \"0s\"\nlookup_timeout = \"2500ms\"\n\
             name_mapping = { scheme = \"identity\", suffix = \".iam\" }\nuid_scheme = \"keymaker\"\n\
             uid_range = [100000, 200000]\n",
        )
        .unwrap();
        assert_eq!(c.max_stale, Duration::ZERO);
        assert_eq!(c.lookup_timeout, Duration::from_millis(2500));
        assert_eq!(
            c.name_mapping,
            NameMapping::Identity {
                suffix: ".iam".into()
            }
        );
        assert_eq!(c.uid_scheme, UidScheme::Keymaker);
        assert_eq!(c.uid_range, IdRange::new(100000, 200000).unwrap());
    }

    #[test]
    fn printed_config_parses_back_to_itself() {
        let c =
            parse("allowed_groups = [\"ops\", \"dev\"]\nname_mapping = \"identity\"\n").unwrap();
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
        assert_eq!(
            parse(&Config::default().to_toml()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn sync_keys_default_to_creating_accounts_and_never_deleting() {
        let c = parse("").unwrap();
        assert!(c.create_accounts);
        assert!(c.sudo_groups.is_empty() && c.adopt_groups.is_empty());
        assert!(!c.end_sessions && !c.remove_home && !c.adopt_keymaker_accounts);
        assert_eq!(c.delete_after, None);
        assert_eq!(c.max_removals, 10);
    }

    #[test]
    fn sync_keys_parse_and_print_back() {
        let c = parse(
            "create_accounts = false\nsudo_groups = [\"admins\"]\nadopt_groups = [\"docker\"]\n\
             end_sessions = true\ndelete_after = \"30days\"\nremove_home = true\nmax_removals = 3\n\
             uid_scheme = \"keymaker\"\nadopt_keymaker_accounts = true\n",
        )
        .unwrap();
        assert!(!c.create_accounts && c.end_sessions && c.remove_home);
        assert_eq!(c.sudo_groups, vec!["admins"]);
        assert_eq!(c.adopt_groups, vec!["docker"]);
        assert_eq!(c.delete_after, Some(Duration::from_secs(30 * 86400)));
        assert_eq!(c.max_removals, 3);
        assert!(c.adopt_keymaker_accounts);
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn m6_max_stale_and_group_cache_ttl_have_maxima_named_with_key_and_line() {
        for (text, key, line) in [
            ("max_stale = \"100y\"", "max_stale", "line 1"),
            (
                "allowed_groups = []\nmax_stale = \"7days 1s\"",
                "max_stale",
                "line 2",
            ),
            ("group_cache_ttl = \"61m\"", "group_cache_ttl", "line 1"),
            ("\n\ngroup_cache_ttl = \"1y\"", "group_cache_ttl", "line 3"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(line), "{text}: {err}");
            assert!(err.contains("at most"), "{text}: {err}");
        }
        assert!(parse("outage_hold = \"11m\"")
            .unwrap_err()
            .to_string()
            .contains("outage_hold"));
        assert_eq!(
            parse("outage_hold = \"0s\"").unwrap().outage_hold,
            Duration::ZERO
        );
        let c = parse("max_stale = \"7days\"\ngroup_cache_ttl = \"1h\"").unwrap();
        assert_eq!(c.max_stale, MAX_MAX_STALE);
        assert_eq!(c.group_cache_ttl, MAX_GROUP_CACHE_TTL);
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn adopt_keymaker_user_ids_are_user_ids_and_need_adoption() {
        let km = "uid_scheme = \"keymaker\"\nadopt_keymaker_accounts = true\n";
        let c = parse(&format!("{km}adopt_keymaker_user_ids = [\"AIDAERIN0001\"]")).unwrap();
        assert_eq!(c.adopt_keymaker_user_ids, ["AIDAERIN0001"]);
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
        for bad in [
            format!("{km}adopt_keymaker_user_ids = [\"dave@example.com\"]"),
            format!("{km}adopt_keymaker_user_ids = [\"\"]"),
            "uid_scheme = \"keymaker\"\nadopt_keymaker_user_ids = [\"AIDAERIN0001\"]".into(),
        ] {
            let err = parse(&bad).unwrap_err().to_string();
            assert!(err.contains("adopt_keymaker_user_ids"), "{bad}: {err}");
        }
    }

    #[test]
    fn m5_min_rsa_bits_defaults_to_2048_and_never_goes_below() {
        assert_eq!(parse("").unwrap().min_rsa_bits, 2048);
        assert_eq!(parse("min_rsa_bits = 3072").unwrap().min_rsa_bits, 3072);
        for bad in [
            "min_rsa_bits = 1024",
            "\nmin_rsa_bits = 0",
            "min_rsa_bits = 16385",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("min_rsa_bits") && err.contains("line"),
                "{bad}: {err}"
            );
        }
        let c = parse("min_rsa_bits = 4096").unwrap();
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn m2_reserved_names_cannot_be_adopted_but_system_groups_can() {
        for (bad, name) in [
            ("adopt_groups = [\"keyward\"]", "keyward"),
            ("adopt_groups = [\"root\"]", "root"),
            (
                "reserved_users = [\"ec2-user\"]\nadopt_groups = [\"ec2-user\"]",
                "ec2-user",
            ),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("adopt_groups") && err.contains(name), "{err}");
        }
        let c = parse("adopt_groups = [\"sudo\", \"docker\"]").unwrap();
        assert_eq!(c.adopt_groups, ["sudo", "docker"]);
        let c = parse("reserved_users = [\"ec2-user\"]").unwrap();
        assert!(c.is_reserved_group("keyward") && c.is_reserved_group("root"));
        assert!(c.is_reserved_group("ec2-user"));
        assert!(!c.is_reserved_group("docker"));
    }

    #[test]
    fn sync_concurrency_defaults_to_4_and_is_bounded() {
        assert_eq!(Config::default().sync_concurrency, 4);
        assert_eq!(parse("sync_concurrency = 1").unwrap().sync_concurrency, 1);
        let c = parse("sync_concurrency = 16").unwrap();
        assert_eq!(c.sync_concurrency, MAX_SYNC_CONCURRENCY);
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
        let err = parse("sync_concurrency = 17").unwrap_err().to_string();
        assert!(
            err.contains("sync_concurrency") && err.contains("16"),
            "{err}"
        );
    }

    const ISSUER: &str = "[issuer]\naudience = \"https://issuer.example.com\"\n";

    #[test]
    fn issuer_table_is_optional_and_has_defaults() {
        assert_eq!(parse("").unwrap().issuer, None);
        let c = parse(&format!("allowed_groups = [\"ops\"]\n{ISSUER}")).unwrap();
        let issuer = c.issuer.clone().unwrap();
        assert_eq!(issuer.audience, "https://issuer.example.com");
        assert_eq!(issuer.ca_key_alias, crate::ca::DEFAULT_ALIAS);
        assert_eq!(issuer.default_validity, Duration::from_secs(3600));
        assert!(issuer.max_validity <= MAX_ISSUER_VALIDITY);
        assert_eq!(issuer.sts_endpoint(), "https://sts.amazonaws.com");
        assert_eq!(issuer.max_host_validity, Duration::from_secs(30 * 86_400));
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
        let full = parse(&format!(
            "{ISSUER}ca_key_alias = \"alias/ca2\"\nsts_endpoint = \"http://127.0.0.1:5000\"\n\
             default_validity = \"30m\"\nmax_validity = \"24h\"\nhost_roles = [\"web-host\"]\n\
             tls_certificate = \"/etc/keyward/tls.crt\"\ntls_key = \"/etc/keyward/tls.key\"\n"
        ))
        .unwrap();
        let issuer = full.issuer.clone().unwrap();
        assert_eq!(issuer.sts_endpoint(), "http://127.0.0.1:5000");
        assert_eq!(issuer.max_validity, MAX_ISSUER_VALIDITY);
        assert_eq!(issuer.host_roles, ["web-host"]);
        assert_eq!(parse(&full.to_toml()).unwrap(), full);
    }

    #[test]
    fn issuer_table_is_strict() {
        for (bad, key) in [
            ("[issuer]\n", "audience"),
            (&format!("{ISSUER}audiense = \"x\"\n") as &str, "audiense"),
            (&format!("{ISSUER}max_validity = \"25h\"\n"), "at most"),
            (&format!("{ISSUER}default_validity = \"10s\"\n"), "at least"),
            (&format!("{ISSUER}max_host_validity = \"91d\"\n"), "at most"),
            (
                &format!("{ISSUER}max_host_validity = \"30m\"\n"),
                "at least 1h",
            ),
            (
                &format!("{ISSUER}default_validity = \"2h\"\nmax_validity = \"1h\"\n"),
                "default_validity",
            ),
            (
                &format!("{ISSUER}sts_endpoint = \"http://sts.evil.example\"\n"),
                "sts_endpoint",
            ),
            (
                &format!("{ISSUER}sts_endpoint = \"https://sts.x/path\"\n"),
                "sts_endpoint",
            ),
            (
                &format!("{ISSUER}sts_endpoint = \"https://u@sts.x\"\n"),
                "sts_endpoint",
            ),
            (
                &format!("{ISSUER}ca_key_alias = \"keyward\"\n"),
                "ca_key_alias",
            ),
            (
                &format!("{ISSUER}host_roles = [\"a role\"]\n"),
                "host_roles",
            ),
            (&format!("{ISSUER}tls_key = \"/k\"\n"), "tls_certificate"),
            (
                &format!("{ISSUER}tls_certificate = \"c\"\ntls_key = \"/k\"\n"),
                "absolute",
            ),
            ("[issuer]\naudience = \"has space\"\n", "audience"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn star_mixed_with_groups_is_refused() {
        assert!(parse("allowed_groups = [\"*\", \"ops\"]").is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "allowed_groups = [\"bad group\"]",
            "cache_dir = \"relative\"",
            "lookup_timeout = \"0s\"",
            "lookup_timeout = \"5min\"",
            "reserved_users = [\"Bad Name\"]",
            "name_mapping = \"lowercase\"",
            "max_stale = \"soon\"",
            "iam_role_arn = \"role/x\"",
            "uid_range = [0, 100]",
            "sudo_groups = [\"*\"]",
            "adopt_groups = [\"Docker\"]",
            "adopt_groups = [\"root\"]",
            "delete_after = \"0s\"",
            "delete_after = \"later\"",
            "max_removals = -1",
            "adopt_keymaker_accounts = true",
            "sync_concurrency = 0",
            "sync_concurrency = 17",
            "sync_concurrency = -1",
            "sync_concurrency = 1000",
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_ca_key_must_be_an_ecdsa_p256_or_p384_line_and_the_instance_id_an_ec2_id() {
        let p256 = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDIxSjUJea8/R7sZtXTplF4QlTq8TGgD1NvPUIiZrbFXj/JxFiqiXmla5naP/j/t2h7HhOXofya5Mqc0yDw+bHI= alias/keyward-ca";
        let c = parse(&format!(
            "ssh_ca_public_key = \"{p256}\"\ninstance_id = \"i-0123456789abcdef0\""
        ))
        .unwrap();
        assert_eq!(c.ssh_ca_public_key.as_deref(), Some(p256));
        assert_eq!(c.instance_id.as_deref(), Some("i-0123456789abcdef0"));
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
        let ed25519 =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPem771ZO7qVqfB6sb1dtjWpvcaaJt9MPCab5sOrPxrF x";
        for (bad, why) in [
            (
                format!("ssh_ca_public_key = \"{ed25519}\""),
                "a ssh-ed25519 key",
            ),
            (
                "ssh_ca_public_key = \"not a key\"".to_owned(),
                "not an OpenSSH public key",
            ),
            (
                "instance_id = \"i-XYZ\"".to_owned(),
                "not an EC2 instance id",
            ),
        ] {
            let err = parse(&bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
