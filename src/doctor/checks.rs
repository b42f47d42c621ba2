//! The verdicts of `keyward doctor`, as pure functions of the facts `gather` collected.
//!
//! Each function turns what was found into ok / problem (with the one-line fix) / skip. They
//! never read the host or call IAM, so every verdict is tested with made-up facts, and they
//! reuse install's own rules (sshd's path rule, the PAM block, the sshd directives) so that
//! doctor and install can never disagree about what "installed" means.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::Check;
use crate::config::{Config, ConfigError, Source};
use crate::iam::IamError;
use crate::install::{self, blocks, pam, schedule, sshd};
use crate::keys::cache;

/// Above this, clocks are far enough apart to matter (SigV4 refuses 15 minutes; TLS and
/// credential expiry suffer before that).
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

pub const NTP_FIX: &str = "enable NTP: timedatectl set-ntp true (or install chrony)";

/// Check 1: the config file parses, validates, is trusted, and lets someone in.
pub fn config(loaded: &Result<(Config, Source), ConfigError>) -> Check {
    const NAME: &str = "config";
    match loaded {
        Ok((config, source)) if config.allowed_groups.is_empty() => {
            let path = match source {
                Source::File(p) | Source::Defaults(p) => p.display().to_string(),
            };
            Check::problem(
                NAME,
                format!("{source}: allowed_groups is empty, nobody may log in"),
                format!("set allowed_groups = [\"YOUR-IAM-GROUP\"] in {path}"),
            )
        }
        Ok((_, source)) => Check::ok(NAME, format!("{source}: parsed, trusted")),
        Err(e @ (ConfigError::Parse { path, .. } | ConfigError::Invalid { path, .. })) => {
            Check::problem(
                NAME,
                one_line(&e.to_string()),
                format!(
                    "correct that line in {} (keyward config prints the result)",
                    path.display()
                ),
            )
        }
        Err(e @ ConfigError::Untrusted { path, reason }) => Check::problem(
            NAME,
            e.to_string(),
            reason.fix().unwrap_or_else(|| {
                format!(
                    "make {} and every directory above it root-owned and not group/world-writable",
                    path.display()
                )
            }),
        ),
        Err(e @ ConfigError::Read { path, .. }) => Check::problem(
            NAME,
            e.to_string(),
            format!(
                "create {} or point --config / KEYWARD_CONFIG at the right file",
                path.display()
            ),
        ),
    }
}

/// A TOML error on one line: its position and its message, without the source excerpt
/// (`4 | max_stal = ...`, `  | ^^^`) and without the list of every valid key.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            let after_number = l
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            !l.is_empty() && !after_number.starts_with('|')
        })
        .map(|l| l.split(", expected one of").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join(": ")
}

/// What the AWS SDK's chain resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFacts {
    pub region: Option<String>,
    /// The provider's name ("Environment", "ProfileFile", "IMDSv2"...), or why none worked.
    pub provider: Result<String, String>,
    pub aws_config_file: Option<PathBuf>,
    pub role_arn: Option<String>,
    pub is_root: bool,
}

/// Check 2: region and credentials resolve, and from where.
pub fn credentials(facts: &CredentialFacts) -> Check {
    const NAME: &str = "credentials";
    let region = facts
        .region
        .as_deref()
        .unwrap_or("us-east-1 (IAM's default)");
    match &facts.provider {
        Ok(provider) => {
            let mut detail = format!(
                "region {region}; credentials from {}",
                describe_provider(provider, facts.aws_config_file.as_deref())
            );
            if let Some(arn) = &facts.role_arn {
                detail.push_str(&format!(" (iam_role_arn {arn})"));
            }
            Check::ok(NAME, detail)
        }
        Err(e) => {
            let fix = match &facts.aws_config_file {
                Some(file) if !facts.is_root => format!(
                    "run doctor as root (or as keyward) to read aws_config_file {}",
                    file.display()
                ),
                Some(file) => format!(
                    "put credentials (or a role_arn/credential_source) under [default] in aws_config_file {}",
                    file.display()
                ),
                None => "attach an instance profile to this instance, or set aws_config_file in keyward.toml (sshd runs keyward with a bare environment)".into(),
            };
            Check::problem(NAME, format!("region {region}; {e}"), fix)
        }
    }
}

/// Where the SDK's credentials provider chain found credentials, in an admin's words.
pub fn describe_provider(provider: &str, aws_config_file: Option<&Path>) -> String {
    match provider {
        "EnvironmentVariable" | "Environment" => {
            "environment variables (AWS_ACCESS_KEY_ID; sshd and PAM do not pass them on to keyward)"
                .into()
        }
        "ProfileFile" => match aws_config_file {
            Some(f) => format!("aws_config_file {}", f.display()),
            None => "the shared AWS config files (~/.aws, AWS_PROFILE)".into(),
        },
        "IMDSv2" | "IMDS" => "the instance profile (instance metadata service)".into(),
        "AssumeRoleProvider" => match aws_config_file {
            Some(f) => format!("a role assumed per aws_config_file {}", f.display()),
            None => "a role assumed per the shared AWS config (role_arn)".into(),
        },
        "WebIdentityToken" => "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)".into(),
        "EcsContainer" => "the container credentials endpoint (ECS/EKS)".into(),
        "SSO" | "Login" => "an SSO / console login session".into(),
        "CredentialProcess" => "a credential_process".into(),
        other => format!("provider {other}"),
    }
}

/// Check 3: one IAM read keyward needs was tried: allowed, or denied (naming the action). A probe
/// of a deliberately missing user/group/key answered with NoSuchEntity was allowed.
/// `needed` is false for an action this config never makes (ListUsers without `["*"]`).
pub fn iam_action(
    action: &'static str,
    target: &str,
    tried: &Result<(), IamError>,
    needed: bool,
) -> Check {
    match tried {
        Ok(()) => Check::ok(action, format!("allowed ({target})")),
        Err(IamError::NotFound(_)) => Check::ok(
            action,
            format!("allowed ({target} does not exist: IAM said NoSuchEntity)"),
        ),
        Err(IamError::AccessDenied { .. }) if !needed => Check::ok(
            action,
            "denied; only needed with allowed_groups = [\"*\"]".to_owned(),
        ),
        Err(IamError::AccessDenied { message, .. }) => Check::problem(
            action,
            format!("denied ({target}): {message}"),
            format!(
                "allow \"{action}\" in the IAM policy of this host's role (keyward policy --host prints it)"
            ),
        ),
        Err(e @ IamError::Unreachable(_)) => Check::problem(
            action,
            e.to_string(),
            "check the network path to IAM (a VPC without internet needs a NAT or proxy; IAM has no VPC endpoint)",
        ),
        Err(e @ IamError::NoCredentials(_)) => Check::problem(
            action,
            e.to_string(),
            "fix the credentials (see the credentials check)",
        ),
        Err(e) => Check::problem(
            action,
            e.to_string(),
            "see the message; keyward policy --host prints what keyward needs",
        ),
    }
}

/// Check 9: the local clock against IAM's `Date` header. `date` is the header and the local time
/// its answer arrived; `None` when no answer came.
pub fn clock(date: Option<(&str, SystemTime)>) -> Check {
    const NAME: &str = "clock";
    let Some((header, received)) = date else {
        return Check::skip(
            NAME,
            "IAM gave no answer with a Date header to compare with",
        );
    };
    let server = match aws_smithy_types::DateTime::from_str(
        header,
        aws_smithy_types::date_time::Format::HttpDate,
    ) {
        Ok(t) => t,
        Err(e) => return Check::skip(NAME, format!("IAM's Date header {header:?}: {e}")),
    };
    let local = aws_smithy_types::DateTime::from(received);
    // The Date header has whole seconds: anything under a second is noise.
    let skew = server.secs() - local.secs();
    let words = |secs: i64| humantime::format_duration(Duration::from_secs(secs.unsigned_abs()));
    let detail = match skew {
        0 => "in step with IAM (within a second)".to_owned(),
        s if s > 0 => format!("{} behind IAM", words(s)),
        s => format!("{} ahead of IAM", words(s)),
    };
    if skew.unsigned_abs() > MAX_SKEW.as_secs() {
        Check::problem(
            NAME,
            format!("{detail} (more than 5 minutes; AWS refuses signatures 15 minutes off)"),
            NTP_FIX,
        )
    } else {
        Check::ok(NAME, detail)
    }
}

/// What `sshd -T` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshdDump {
    NotRoot,
    NoSshd,
    Failed(String),
    Dump(String),
}

/// The AuthorizedKeysCommand sshd would run, per `sshd -T` (`None` for `none` or missing).
pub fn effective_command(dump: &str) -> Option<String> {
    sshd::effective_from_dump(&sshd::parse_dump(dump))
        .command
        .map(|s| s.value)
}

/// The program of an AuthorizedKeysCommand when it is a keyward `authorized-keys` call.
pub fn keyward_program(command: &str) -> Option<&str> {
    let mut words = command.split_ascii_whitespace();
    let program = words.next()?;
    (program.rsplit('/').next() == Some("keyward") && words.next() == Some("authorized-keys"))
        .then_some(program)
}

/// Check 4: the effective sshd config runs keyward's command as the keyward user (and lets PAM
/// create accounts when `create_on_login`).
pub fn sshd(dump: &SshdDump, binary: &str, create_on_login: bool) -> Check {
    const NAME: &str = "sshd";
    let text = match dump {
        SshdDump::NotRoot => return Check::skip(NAME, "run as root (sshd -T reads the host keys)"),
        SshdDump::NoSshd => {
            return Check::problem(
                NAME,
                "sshd is not installed (neither /usr/sbin/sshd nor sshd on PATH)",
                "install openssh-server",
            )
        }
        SshdDump::Failed(why) if why.contains("privilege separation directory") => {
            return Check::problem(
                NAME,
                format!("sshd -T failed: {why}"),
                "install -d -m 0755 /run/sshd (sshd's service creates it when it starts)",
            )
        }
        SshdDump::Failed(why) => {
            return Check::problem(
                NAME,
                format!("sshd -T failed: {why}"),
                "fix sshd's configuration until `sshd -T` prints it (sshd -t names the line)",
            )
        }
        SshdDump::Dump(text) => text,
    };
    let eff = sshd::effective_from_dump(&sshd::parse_dump(text));
    let want = sshd::authorized_keys_command(binary);
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    match eff.command.as_ref().map(|s| s.value.as_str()) {
        None => problems.push("no AuthorizedKeysCommand is in effect".to_owned()),
        Some(cmd) if cmd == want => {}
        Some(cmd) => match keyward_program(cmd) {
            Some(program) if cmd == sshd::authorized_keys_command(program) => {
                notes.push(format!("runs {program}, not this binary {binary}"));
            }
            _ => problems.push(format!("AuthorizedKeysCommand is {cmd:?}, not {want:?}")),
        },
    }
    match eff.command_user.as_ref().map(|s| s.value.as_str()) {
        Some(sshd::COMMAND_USER) => {}
        other => problems.push(format!(
            "AuthorizedKeysCommandUser is {:?}, not {:?}",
            other.unwrap_or("none"),
            sshd::COMMAND_USER
        )),
    }
    if create_on_login {
        for (setting, what) in [
            (&eff.kbd_interactive, "KbdInteractiveAuthentication"),
            (&eff.use_pam, "UsePAM"),
        ] {
            let value = setting.as_ref().map_or("no", |s| s.value.as_str());
            if !value.eq_ignore_ascii_case("yes") {
                problems.push(format!(
                    "{what} is {value:?}, and create_on_login needs \"yes\""
                ));
            }
        }
    }
    if problems.is_empty() {
        let mut detail = format!(
            "AuthorizedKeysCommand {} as user {}",
            eff.command.map(|s| s.value).unwrap_or_default(),
            sshd::COMMAND_USER
        );
        for note in notes {
            detail.push_str(&format!(" ({note})"));
        }
        Check::ok(NAME, detail)
    } else {
        Check::problem(
            NAME,
            problems.join("; "),
            "keyward install (it puts keyward's directives where sshd reads them first)",
        )
    }
}

/// Check 5: sshd's ownership and mode rule for the AuthorizedKeysCommand binary and every directory
/// above it. `ancestry` is each path with owner and mode, the file first.
pub fn command_path(binary: &str, ancestry: &Result<Vec<(PathBuf, u32, u32)>, String>) -> Check {
    const NAME: &str = "command path";
    let fix = format!(
        "install -o root -g root -m 0755 {binary} /usr/local/bin/keyward && /usr/local/bin/keyward install"
    );
    if !install::is_plain_path(binary) {
        return Check::problem(
            NAME,
            format!("{binary:?} has characters sshd or PAM would split or expand"),
            fix,
        );
    }
    match ancestry {
        Err(e) => Check::problem(NAME, format!("{binary}: {e}"), fix),
        Ok(ancestry) => match install::sshd_path_problem(ancestry) {
            Some(problem) => Check::problem(
                NAME,
                format!("sshd refuses {binary} as AuthorizedKeysCommand: {problem}"),
                fix,
            ),
            None => Check::ok(
                NAME,
                format!(
                    "{binary} and every directory above it: root-owned, not group/world-writable"
                ),
            ),
        },
    }
}

/// Check 6: keyward's pam_exec hook is in /etc/pam.d/sshd (`pam` is its text, `None`: missing)
/// exactly as install writes it for `binary`.
pub fn pam(create_on_login: bool, text: Option<&str>, binary: &str) -> Check {
    const NAME: &str = "pam";
    let path = pam::PAM_PATH;
    let Some(text) = text else {
        return if create_on_login {
            Check::problem(
                NAME,
                format!("{path} does not exist: create_on_login has no PAM stack to hook into"),
                "install sshd's PAM configuration (openssh-server), or set create_on_login = false",
            )
        } else {
            Check::skip(NAME, "create_on_login = false: no hook needed")
        };
    };
    if !create_on_login {
        return if blocks::has_block(text) {
            Check::problem(
                NAME,
                format!("{path} still has keyward's hook, but create_on_login = false"),
                "keyward install (it removes the hook)",
            )
        } else {
            Check::skip(NAME, "create_on_login = false: no hook needed")
        };
    }
    match pam::desired(text, binary, true) {
        Ok(want) if want == text => Check::ok(
            NAME,
            format!("{path}: pam_exec {binary} pam-create-account before the first auth line"),
        ),
        Ok(_) if blocks::has_block(text) => Check::problem(
            NAME,
            format!("{path}: keyward's block is not what install writes for {binary} (edited, moved, or another binary)"),
            "keyward install",
        ),
        Ok(_) => Check::problem(
            NAME,
            format!("{path} has no keyward hook: first-time users get no account until the next sync"),
            "keyward install",
        ),
        Err(e) => Check::problem(NAME, format!("{path}: {e}"), "keyward install"),
    }
}

/// What systemd says about the timer and the last sync it ran.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimerState {
    /// `systemctl is-enabled keyward-sync.timer`
    pub enabled: String,
    /// `systemctl is-active keyward-sync.timer`
    pub active: String,
    /// `systemctl show keyward-sync.service -p Result -p ExecMainStatus -p ExecMainStartTimestamp`
    pub result: String,
    pub exec_main_status: String,
    pub last_start: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScheduleFacts {
    /// /etc/cron.d/keyward's text.
    pub cron: Option<String>,
    pub timer_installed: bool,
    /// `None` when systemd is not the running init.
    pub systemd: Option<TimerState>,
}

/// Check 7: `keyward sync` is scheduled, and (under systemd) its last run succeeded.
pub fn schedule(facts: &ScheduleFacts) -> Check {
    const NAME: &str = "sync schedule";
    let timer = schedule::TIMER_UNIT;
    if facts.timer_installed {
        let Some(state) = &facts.systemd else {
            return Check::problem(
                NAME,
                format!("{timer} is installed but systemd is not running, so it never fires"),
                "keyward install --scheduler cron",
            );
        };
        if state.enabled != "enabled" {
            return Check::problem(
                NAME,
                format!("{timer} is {:?}, not enabled", state.enabled),
                format!("systemctl enable --now {timer}"),
            );
        }
        if state.active != "active" {
            return Check::problem(
                NAME,
                format!("{timer} is {:?}, not active", state.active),
                format!("systemctl start {timer}"),
            );
        }
        if state.last_start.is_empty() || state.last_start == "n/a" {
            return Check::ok(
                NAME,
                format!("{timer} enabled and active; sync has not run yet"),
            );
        }
        if state.result != "success" {
            return Check::problem(
                NAME,
                format!(
                    "{timer} enabled and active, but the last sync ({}) failed: Result={}, exit status {}",
                    state.last_start, state.result, state.exec_main_status
                ),
                "journalctl -u keyward-sync.service shows why; keyward sync --dry-run tries it",
            );
        }
        return Check::ok(
            NAME,
            format!(
                "{timer} enabled and active; last sync ({}) succeeded",
                state.last_start
            ),
        );
    }
    match &facts.cron {
        Some(text) if cron_sync_line(text).is_some() => Check::ok(
            NAME,
            format!(
                "cron entry present in {} ({}); last run unknown: sync records no result (cron logs to syslog)",
                schedule::CRON_PATH,
                cron_sync_line(text).unwrap_or_default()
            ),
        ),
        Some(_) => Check::problem(
            NAME,
            format!("{} has no `keyward sync` line", schedule::CRON_PATH),
            "keyward install",
        ),
        None => Check::problem(
            NAME,
            format!(
                "keyward sync is not scheduled (no {timer}, no {})",
                schedule::CRON_PATH
            ),
            "keyward install",
        ),
    }
}

/// The cron line that runs `keyward sync` as root.
fn cron_sync_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let words: Vec<&str> = l.split_ascii_whitespace().collect();
            words.len() >= 8
                && words[5] == "root"
                && words[6].rsplit('/').next() == Some("keyward")
                && words[7] == "sync"
        })
        .map(|l| l.split(" >").next().unwrap_or(l).to_owned())
}

/// Owner and mode of the cache directory and what is around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFacts {
    pub dir: PathBuf,
    /// (uid, mode incl. file type bits, from lstat) of the directory; `None` when it does not
    /// exist.
    pub meta: Result<Option<(u32, u32)>, String>,
    pub keyward_uid: Option<u32>,
    /// `files::check_trusted` of the parent directory: the problem and its fix.
    pub parent: Result<(), (String, Option<String>)>,
    /// (path, uid, mode incl. file type bits, from lstat) of `keys/` and `users/` where they
    /// exist.
    pub subdirs: Vec<(PathBuf, u32, u32)>,
    /// Files in `keys/` and `users/` with more than one name (`st_nlink`), and that number:
    /// keyward writes by rename, so a hard link was made by someone else and another file may
    /// be behind it.
    pub hard_links: Vec<(PathBuf, u64)>,
}

/// Check 8: the key cache is the keyward user's and nobody else can write it (or its parents).
pub fn cache_dir(facts: &CacheFacts) -> Check {
    const NAME: &str = "cache dir";
    let dir = facts.dir.display();
    let Some(uid) = facts.keyward_uid else {
        return Check::problem(
            NAME,
            "there is no system user keyward (sshd runs authorized-keys as it)",
            "keyward install",
        );
    };
    let meta = match &facts.meta {
        Err(e) => return Check::problem(NAME, format!("{dir}: {e}"), "keyward install"),
        Ok(None) => {
            return Check::problem(
                NAME,
                format!("{dir} does not exist: keys are not cached, so every login asks IAM and an IAM outage locks everyone out"),
                "keyward install (creates it, owned by keyward)",
            )
        }
        Ok(Some(meta)) => *meta,
    };
    let entries =
        std::iter::once((facts.dir.clone(), meta.0, meta.1)).chain(facts.subdirs.iter().cloned());
    // The fixes are the cache's own (`keys::cache`), so doctor and `authorized-keys` agree.
    for (path, owner, mode) in entries {
        let p = path.display();
        if mode & 0o170000 == 0o120000 {
            return Check::problem(
                NAME,
                format!("{p} is a symlink: keyward refuses a symlinked cache directory"),
                cache::symlink_fix(&path),
            );
        }
        if mode & 0o170000 != 0o040000 {
            return Check::problem(
                NAME,
                format!("{p} is not a directory"),
                format!("rm {p} && keyward install"),
            );
        }
        if owner != uid {
            return Check::problem(
                NAME,
                format!("{p} is owned by uid {owner}, not keyward ({uid})"),
                cache::ownership_fix(&facts.dir),
            );
        }
        if mode & 0o022 != 0 {
            return Check::problem(
                NAME,
                format!(
                    "{p} is writable by group or others (mode {:o})",
                    mode & 0o7777
                ),
                format!("chmod go-w {p}"),
            );
        }
    }
    if let Some((path, names)) = facts.hard_links.first() {
        let more = match facts.hard_links.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Check::problem(
            NAME,
            format!(
                "{} is a hard link ({names} names){more}: keyward never writes one, and another file may be behind it",
                path.display()
            ),
            cache::file_fix(path),
        );
    }
    if let Err((reason, fix)) = &facts.parent {
        return Check::problem(
            NAME,
            format!("a directory above {dir} is not trusted: {reason}"),
            fix.clone().unwrap_or_else(|| {
                "make the parents root-owned and not group/world-writable".into()
            }),
        );
    }
    Check::ok(
        NAME,
        format!("{dir}: owned by keyward, mode {:o}", meta.1 & 0o7777),
    )
}

/// What keymaker 1.1's `install` left on this host (`keymaker_facts` in gather reads it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeymakerFacts {
    /// /usr/sbin/keymaker-get-public-keys exists.
    pub get_public_keys: bool,
    /// /etc/ssh/sshd_config, where keymaker appended its lines.
    pub sshd_config: Option<String>,
    /// /etc/pam.d/sshd.
    pub pam: Option<String>,
    /// /etc/cron.d/keymaker-group-sync exists.
    pub cron: bool,
    /// The local user `keymaker` (its AuthorizedKeysCommandUser) exists.
    pub user: bool,
}

/// The sshd_config lines `keymaker install` appends, each with why it matters after the move.
const KEYMAKER_SSHD_LINES: [(&str, &str); 3] = [
    ("AuthorizedKeysCommand /usr/sbin/keymaker-get-public-keys", "keymaker's key lookup"),
    ("AuthorizedKeysCommandUser keymaker", "keymaker's lookup user"),
    (
        "AuthenticationMethods publickey keyboard-interactive:pam,publickey",
        "re-activated by KbdInteractiveAuthentication yes: a login may go through PAM keyboard-interactive before its key",
    ),
];

/// Check: keymaker's remnants (its key script, sshd lines, PAM hook, cron job, user), each named
/// with the command that removes it. keyward never removes them itself.
pub fn keymaker(facts: &KeymakerFacts) -> Check {
    const NAME: &str = "keymaker remnants";
    let mut found = Vec::new();
    let mut fixes = Vec::new();
    if facts.get_public_keys {
        found.push("/usr/sbin/keymaker-get-public-keys".to_owned());
        fixes.push("rm -f /usr/sbin/keymaker-get-public-keys".to_owned());
    }
    let sshd_lines: Vec<&(&str, &str)> = KEYMAKER_SSHD_LINES
        .iter()
        .filter(|(line, _)| {
            facts
                .sshd_config
                .as_deref()
                .is_some_and(|t| t.lines().any(|l| l.trim() == *line))
        })
        .collect();
    for (line, why) in &sshd_lines {
        found.push(format!("sshd_config line \"{line}\" ({why})"));
    }
    if !sshd_lines.is_empty() {
        fixes.push("delete keymaker's lines at the end of /etc/ssh/sshd_config (AuthorizedKeysCommand, AuthorizedKeysCommandUser, ChallengeResponseAuthentication yes, AuthenticationMethods)".into());
    }
    if facts
        .pam
        .as_deref()
        .is_some_and(|t| t.contains("keymaker-create-account-for-iam-user"))
    {
        found.push("the pam_exec line running keymaker-create-account-for-iam-user in /etc/pam.d/sshd (creates accounts on first login)".into());
        fixes.push("sed -i '/keymaker-create-account-for-iam-user/d' /etc/pam.d/sshd".into());
    }
    if facts.cron {
        found.push("/etc/cron.d/keymaker-group-sync (keymaker sync_groups every 5 minutes)".into());
        fixes.push("rm -f /etc/cron.d/keymaker-group-sync".into());
    }
    if facts.user {
        found.push("local user keymaker".into());
        fixes.push("userdel keymaker".into());
    }
    if found.is_empty() {
        return Check::ok(NAME, "none found");
    }
    Check::problem(
        NAME,
        format!("keymaker left: {}", found.join("; ")),
        format!(
            "{}; before `keyward install` if you can (docs/keymaker-migration.md)",
            fixes.join("; ")
        ),
    )
}

/// Check: what `keyward sync` would report as errors now (the plan, computed read-only), so
/// that an hourly sync exiting 1 is explained here. `Err` when IAM or the local accounts
/// could not be read (the checks above say why).
pub fn sync_plan(config: &Config, plan: &Result<crate::sync::plan::Plan, String>) -> Check {
    const NAME: &str = "sync plan";
    let plan = match plan {
        Ok(plan) => plan,
        Err(why) => return Check::skip(NAME, format!("not computed: {why}")),
    };
    let errors: Vec<String> = plan
        .skipped
        .iter()
        .filter(|s| s.error)
        .map(|s| format!("{}: {}", s.subject, s.reason))
        .collect();
    if errors.is_empty() {
        return Check::ok(
            NAME,
            format!("{} change(s) pending, no errors", plan.actions.len()),
        );
    }
    let each = "run `keyward sync --dry-run` and act on each error: line";
    let fix = if plan.unadopted_groups.is_empty() {
        each.to_owned()
    } else {
        let line = crate::sync::plan::adopt_groups_line(config, &plan.unadopted_groups);
        if errors.len() > plan.unadopted_groups.len() {
            format!("add to keyward.toml: {line}; for the others, {each}")
        } else {
            format!("add to keyward.toml: {line}")
        }
    };
    Check::problem(
        NAME,
        format!(
            "every sync exits 1 with {} error(s): {}",
            errors.len(),
            errors.join(" | ")
        ),
        fix,
    )
}

/// What the certificate check looks at besides `sshd -T`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaFacts {
    /// config `ssh_ca_public_key`.
    pub config_key: Option<String>,
    /// The text of `sshd::CA_KEY_PATH`, when it exists.
    pub ca_file: Option<String>,
    /// Files matching `sshd::HOST_CERT_GLOB`.
    pub host_certificates: Vec<String>,
}

/// Check: keyward user certificates, when this host is wired for them (`install --ca`):
/// sshd trusts keyward's CA file and asks `keyward authorized-principals` as the keyward user,
/// the file holds an ECDSA CA key (the one in the config, when the config names one), and each
/// host certificate in /etc/ssh is presented. A host never wired for them is skipped.
pub fn certificates(dump: &SshdDump, binary: &str, facts: &CaFacts) -> Check {
    const NAME: &str = "certificates";
    const FIX: &str = "keyward install --ca";
    let SshdDump::Dump(text) = dump else {
        return Check::skip(NAME, "no sshd -T output (see the sshd check)");
    };
    let eff = sshd::effective_from_dump(&sshd::parse_dump(text));
    let trusted = eff.trusted_ca.as_ref().map(|s| s.value.as_str());
    let command = eff.principals_command.as_ref().map(|s| s.value.clone());
    let keywards = command
        .as_deref()
        .is_some_and(|c| c.split_ascii_whitespace().nth(1) == Some("authorized-principals"));
    if trusted != Some(sshd::CA_KEY_PATH) && !keywards {
        return match &facts.config_key {
            Some(_) => Check::problem(
                NAME,
                "ssh_ca_public_key is set, but sshd does not trust keyward's CA",
                FIX,
            ),
            None => Check::skip(
                NAME,
                "not wired for keyward user certificates (keyward install --ca)",
            ),
        };
    }
    let mut problems = Vec::new();
    if trusted != Some(sshd::CA_KEY_PATH) {
        problems.push(format!(
            "TrustedUserCAKeys is {:?}, not {:?}",
            trusted.unwrap_or("none"),
            sshd::CA_KEY_PATH
        ));
    }
    let program = command
        .as_deref()
        .and_then(|c| c.split_ascii_whitespace().next())
        .unwrap_or(binary);
    let want = sshd::authorized_principals_command(program);
    if command.as_deref() != Some(want.as_str()) {
        problems.push(format!(
            "AuthorizedPrincipalsCommand is {:?}, not {want:?}",
            command.as_deref().unwrap_or("none")
        ));
    }
    let user = dump_setting(text, sshd::APC_USER);
    if user.as_deref() != Some(sshd::COMMAND_USER) {
        problems.push(format!(
            "AuthorizedPrincipalsCommandUser is {:?}, not {:?}",
            user.as_deref().unwrap_or("none"),
            sshd::COMMAND_USER
        ));
    }
    let key = facts.ca_file.as_deref().and_then(|text| {
        text.lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .and_then(|l| crate::config::ca_public_key(l).ok())
    });
    match (&key, &facts.config_key) {
        (None, _) => problems.push(format!(
            "{} holds no ECDSA P-256/P-384 CA key",
            sshd::CA_KEY_PATH
        )),
        (Some(key), Some(line)) => {
            let wanted = crate::config::ca_public_key(line)
                .ok()
                .map(|k| k.fingerprint());
            if wanted.as_deref() != Some(key.fingerprint().as_str()) {
                problems.push(format!(
                    "{} holds CA {}, not ssh_ca_public_key's",
                    sshd::CA_KEY_PATH,
                    key.fingerprint()
                ));
            }
        }
        (Some(_), None) => {}
    }
    let presented: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("hostcertificate "))
        .map(str::trim)
        .collect();
    let missing: Vec<&str> = facts
        .host_certificates
        .iter()
        .map(String::as_str)
        .filter(|c| !presented.contains(c))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "host certificates not presented by sshd: {}",
            missing.join(", ")
        ));
    }
    if problems.is_empty() {
        Check::ok(
            NAME,
            format!(
                "user CA {} in {}, principals from {want} as {}; {} host certificate(s) presented",
                key.map(|k| k.fingerprint()).unwrap_or_default(),
                sshd::CA_KEY_PATH,
                sshd::COMMAND_USER,
                presented.len()
            ),
        )
    } else {
        Check::problem(NAME, problems.join("; "), FIX)
    }
}

/// What the jump-host check looks at besides the config and `sshd -T`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JumpFacts {
    /// The text of `jump::JUMP_PATH`, when it exists.
    pub rule: Option<String>,
    /// The `[jump]` group and admin groups the group database does not know.
    pub missing_groups: Vec<String>,
}

/// Check: a host with a `[jump]` table is a jump host (`install --jump`), its rule is the one
/// the table makes, sshd applies it only inside its Match, and its groups exist (sync makes
/// them from prefixed IAM groups). A host with neither table nor rule is skipped.
pub fn jump(config: &Config, dump: &SshdDump, facts: &JumpFacts) -> Check {
    use crate::install::jump::{self as rule, JUMP_PATH};
    const NAME: &str = "jump host";
    let table = match (&config.jump, &facts.rule) {
        (None, None) => {
            return Check::skip(
                NAME,
                "not a jump host (no [jump] table, no keyward install --jump)",
            )
        }
        (None, Some(_)) => {
            return Check::problem(
                NAME,
                format!("{JUMP_PATH} is installed, but the config has no [jump] table"),
                "keyward install --no-jump takes the rule out; or add the [jump] table back",
            )
        }
        (Some(_), None) => {
            return Check::problem(
                NAME,
                "the config has a [jump] table, but this host is not a jump host",
                "keyward install --jump",
            )
        }
        (Some(table), Some(_)) => table,
    };
    let mut problems = Vec::new();
    let mut fix = "keyward sync";
    if rule::render(table).ok().as_ref() != facts.rule.as_ref() {
        problems.push(format!(
            "{JUMP_PATH} is not what the [jump] table makes (changed since install)"
        ));
        fix = "keyward install --jump";
    }
    if let SshdDump::Dump(text) = dump {
        if let Err(e) = rule::verify_scoped(&sshd::parse_dump(text)) {
            problems.push(e.to_string());
            fix = "keyward install --jump";
        }
    }
    if !facts.missing_groups.is_empty() {
        problems.push(format!(
            "no Linux group {} (keyward sync makes each from the IAM group {}NAME)",
            facts.missing_groups.join(", "),
            config.group_prefix
        ));
    }
    if problems.is_empty() {
        Check::ok(
            NAME,
            format!(
                "members of {} get no shell and forward only to port {} of {}",
                rule::match_line(table).trim_start_matches("Match Group "),
                table.port,
                table.destinations.join(", ")
            ),
        )
    } else {
        Check::problem(NAME, problems.join("; "), fix)
    }
}

/// A keyword's first value in `sshd -T` output (`None` for `none` or missing).
fn dump_setting(dump: &str, keyword: &str) -> Option<String> {
    sshd::parse_dump(dump)
        .into_iter()
        .find(|(k, _)| k == keyword)
        .map(|(_, v)| v)
        .filter(|v| v != "none")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    const BIN: &str = "/usr/local/bin/keyward";

    fn load(text: &str) -> Result<(Config, Source), ConfigError> {
        let path = Path::new("/etc/keyward/keyward.toml");
        Config::from_toml(text, path).map(|c| (c, Source::File(path.into())))
    }

    #[test]
    fn config_typo_is_a_problem_naming_key_and_line() {
        let c = config(&load("allowed_groups = [\"ops\"]\nmax_stal = \"1h\"\n"));
        assert_eq!(c.status, Status::Problem);
        assert!(
            c.detail.contains("max_stal") && c.detail.contains("line 2"),
            "{c:?}"
        );
        assert!(c.fix.unwrap().contains("/etc/keyward/keyward.toml"));
    }

    #[test]
    fn config_that_lets_nobody_in_is_a_problem() {
        let c = config(&load(""));
        assert_eq!(c.status, Status::Problem);
        assert!(c.detail.contains("allowed_groups is empty"), "{c:?}");
        let ok = config(&load("allowed_groups = [\"ops\"]"));
        assert_eq!(ok.status, Status::Ok);
        assert!(ok.detail.contains("/etc/keyward/keyward.toml"), "{ok:?}");
    }

    #[test]
    fn untrusted_config_gets_the_suggested_command_as_fix() {
        let c = config(&Err(ConfigError::Untrusted {
            path: "/etc/keyward/keyward.toml".into(),
            reason: crate::files::TrustError::Writable {
                path: "/etc/keyward".into(),
                mode: 0o777,
            },
        }));
        assert_eq!(c.status, Status::Problem);
        assert_eq!(c.fix.as_deref(), Some("chmod go-w /etc/keyward"));
    }

    fn creds(provider: Result<&str, &str>) -> CredentialFacts {
        CredentialFacts {
            region: Some("eu-west-1".into()),
            provider: provider.map(str::to_owned).map_err(str::to_owned),
            aws_config_file: None,
            role_arn: None,
            is_root: true,
        }
    }

    #[test]
    fn credentials_say_where_they_came_from() {
        let c = credentials(&creds(Ok("IMDSv2")));
        assert_eq!(c.status, Status::Ok);
        assert!(c.detail.contains("region eu-west-1"), "{c:?}");
        assert!(c.detail.contains("instance profile"), "{c:?}");
        let mut f = creds(Ok("ProfileFile"));
        f.aws_config_file = Some("/etc/keyward/aws-config".into());
        assert!(credentials(&f)
            .detail
            .contains("aws_config_file /etc/keyward/aws-config"));
        assert!(credentials(&creds(Ok("Environment")))
            .detail
            .contains("environment"));
    }

    #[test]
    fn missing_credentials_are_a_problem_with_a_fix_for_the_setup() {
        let c = credentials(&creds(Err("no providers in chain")));
        assert_eq!(c.status, Status::Problem);
        assert!(c.fix.unwrap().contains("instance profile"));
        let mut f = creds(Err("permission denied"));
        f.aws_config_file = Some("/etc/keyward/aws-config".into());
        f.is_root = false;
        assert!(credentials(&f).fix.unwrap().contains("run doctor as root"));
    }

    #[test]
    fn iam_denial_names_the_missing_action() {
        let denied = Err(IamError::AccessDenied {
            action: "iam:GetGroup",
            message: "not authorized".into(),
        });
        let c = iam_action("iam:GetGroup", "group ops", &denied, true);
        assert_eq!(c.status, Status::Problem);
        assert!(c.fix.unwrap().contains("allow \"iam:GetGroup\""));
        let c = iam_action("iam:ListUsers", "first user", &denied, false);
        assert_eq!(c.status, Status::Ok, "not needed without [\"*\"]");
        assert!(c.detail.contains("denied"));
    }

    #[test]
    fn iam_no_such_entity_means_the_call_was_allowed() {
        let c = iam_action(
            "iam:GetUser",
            "user keyward-doctor-probe",
            &Err(IamError::NotFound("no user".into())),
            true,
        );
        assert_eq!(c.status, Status::Ok);
        assert!(c.detail.contains("NoSuchEntity"));
        assert_eq!(
            iam_action("iam:GetUser", "u", &Ok(()), true).status,
            Status::Ok
        );
        let c = iam_action(
            "iam:GetUser",
            "u",
            &Err(IamError::Unreachable("timeout".into())),
            true,
        );
        assert_eq!(c.status, Status::Problem);
    }

    fn at(header: &str, local_secs: u64) -> Check {
        clock(Some((
            header,
            SystemTime::UNIX_EPOCH + Duration::from_secs(local_secs),
        )))
    }

    #[test]
    fn clock_skew_over_five_minutes_is_a_problem() {
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let c = at(date, 784111777);
        assert_eq!(c.status, Status::Ok);
        assert!(c.detail.contains("in step"), "{c:?}");
        let c = at(date, 784111777 - 120);
        assert_eq!(c.status, Status::Ok);
        assert!(c.detail.contains("2m behind"), "{c:?}");
        let c = at(date, 784111777 + 301);
        assert_eq!(c.status, Status::Problem);
        assert!(c.detail.contains("ahead"), "{c:?}");
        assert_eq!(c.fix.as_deref(), Some(NTP_FIX));
        assert_eq!(at("yesterday", 0).status, Status::Skip);
        assert_eq!(clock(None).status, Status::Skip);
    }

    fn dump(akc: &str, user: &str, kbd: &str) -> SshdDump {
        SshdDump::Dump(format!(
            "port 22\nusepam yes\nkbdinteractiveauthentication {kbd}\nauthorizedkeyscommand {akc}\nauthorizedkeyscommanduser {user}\n"
        ))
    }

    #[test]
    fn sshd_with_keywards_command_and_user_is_ok() {
        let c = sshd(
            &dump(
                "/usr/local/bin/keyward authorized-keys %u %f %k",
                "keyward",
                "yes",
            ),
            BIN,
            true,
        );
        assert_eq!(c.status, Status::Ok, "{c:?}");
        let other = sshd(
            &dump("/opt/keyward authorized-keys %u %f %k", "keyward", "yes"),
            BIN,
            true,
        );
        assert_eq!(other.status, Status::Ok, "{other:?}");
        assert!(other.detail.contains("not this binary"), "{other:?}");
    }

    #[test]
    fn sshd_without_keyward_is_a_problem_naming_what_is_in_effect() {
        let c = sshd(&dump("none", "nobody", "no"), BIN, true);
        assert_eq!(c.status, Status::Problem);
        assert!(c.detail.contains("no AuthorizedKeysCommand"), "{c:?}");
        assert!(
            c.detail.contains("AuthorizedKeysCommandUser is \"nobody\""),
            "{c:?}"
        );
        assert!(c.detail.contains("KbdInteractiveAuthentication"), "{c:?}");
        let c = sshd(
            &dump(
                "/usr/share/ec2-instance-connect/eic_run_authorized_keys %u %f",
                "ec2-instance-connect",
                "no",
            ),
            BIN,
            false,
        );
        assert!(c.detail.contains("eic_run_authorized_keys"), "{c:?}");
        assert!(!c.detail.contains("Kbd"), "{c:?}");
        assert_eq!(sshd(&SshdDump::NotRoot, BIN, true).status, Status::Skip);
        assert_eq!(
            sshd(&SshdDump::Failed("x".into()), BIN, true).status,
            Status::Problem
        );
    }

    #[test]
    fn command_path_follows_sshds_rule() {
        let ok = |p: &str| (PathBuf::from(p), 0, 0o40755);
        let good = Ok(vec![
            (PathBuf::from(BIN), 0, 0o100755),
            ok("/usr/local/bin"),
            ok("/usr/local"),
            ok("/usr"),
            ok("/"),
        ]);
        assert_eq!(command_path(BIN, &good).status, Status::Ok);
        let home = Ok(vec![
            (PathBuf::from("/home/a/keyward"), 1000, 0o100755),
            (PathBuf::from("/home/a"), 1000, 0o40755),
            ok("/home"),
            ok("/"),
        ]);
        let c = command_path("/home/a/keyward", &home);
        assert_eq!(c.status, Status::Problem);
        assert!(c.detail.contains("owned by uid 1000"), "{c:?}");
        assert!(c.fix.unwrap().contains("install -o root -g root -m 0755"));
        assert_eq!(
            command_path("/opt/my dir/keyward", &good).status,
            Status::Problem
        );
    }

    #[test]
    fn pam_hook_must_be_there_as_install_writes_it() {
        let debian = "# PAM\n@include common-auth\naccount required pam_nologin.so\n";
        let installed = pam::desired(debian, BIN, true).unwrap();
        assert_eq!(pam(true, Some(&installed), BIN).status, Status::Ok);
        let c = pam(true, Some(debian), BIN);
        assert_eq!(c.status, Status::Problem);
        assert!(c.detail.contains("no keyward hook"), "{c:?}");
        let other = pam::desired(debian, "/opt/keyward", true).unwrap();
        assert!(pam(true, Some(&other), BIN)
            .detail
            .contains("not what install writes"));
        assert_eq!(pam(false, Some(debian), BIN).status, Status::Skip);
        assert_eq!(pam(false, Some(&installed), BIN).status, Status::Problem);
        assert_eq!(pam(true, None, BIN).status, Status::Problem);
    }

    fn timer(result: &str) -> ScheduleFacts {
        ScheduleFacts {
            cron: None,
            timer_installed: true,
            systemd: Some(TimerState {
                enabled: "enabled".into(),
                active: "active".into(),
                result: result.into(),
                exec_main_status: if result == "success" { "0" } else { "3" }.into(),
                last_start: "Mon 2026-01-05 10:00:00 UTC".into(),
            }),
        }
    }

    #[test]
    fn timer_verdict_follows_systemd_and_the_last_run() {
        let c = schedule(&timer("success"));
        assert_eq!(c.status, Status::Ok, "{c:?}");
        let c = schedule(&timer("exit-code"));
        assert_eq!(c.status, Status::Problem);
        assert!(c.detail.contains("exit status 3"), "{c:?}");
        assert!(c
            .fix
            .unwrap()
            .contains("journalctl -u keyward-sync.service"));
        let mut disabled = timer("success");
        disabled.systemd.as_mut().unwrap().enabled = "disabled".into();
        assert!(schedule(&disabled)
            .fix
            .unwrap()
            .contains("systemctl enable --now"));
        let mut no_systemd = timer("success");
        no_systemd.systemd = None;
        assert_eq!(schedule(&no_systemd).status, Status::Problem);
        let mut never = timer("success");
        never.systemd.as_mut().unwrap().last_start = String::new();
        assert!(schedule(&never).detail.contains("not run yet"));
    }

    #[test]
    fn cron_entry_is_ok_with_last_run_unknown() {
        let cron = crate::install::schedule::render_cron(BIN, 17);
        let c = schedule(&ScheduleFacts {
            cron: Some(cron),
            ..ScheduleFacts::default()
        });
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(
            c.detail
                .contains("17 * * * * root /usr/local/bin/keyward sync"),
            "{c:?}"
        );
        assert!(c.detail.contains("last run unknown"), "{c:?}");
        let c = schedule(&ScheduleFacts {
            cron: Some("# nothing\n".into()),
            ..ScheduleFacts::default()
        });
        assert_eq!(c.status, Status::Problem);
        let c = schedule(&ScheduleFacts::default());
        assert_eq!(c.status, Status::Problem);
        assert_eq!(c.fix.as_deref(), Some("keyward install"));
    }

    fn cache(meta: Option<(u32, u32)>) -> CacheFacts {
        CacheFacts {
            dir: "/var/cache/keyward".into(),
            meta: Ok(meta),
            keyward_uid: Some(998),
            parent: Ok(()),
            subdirs: vec![],
            hard_links: vec![],
        }
    }

    #[test]
    fn i9_cache_doctor_names_a_hard_link_in_the_cache() {
        let mut linked = cache(Some((998, 0o40755)));
        linked.hard_links = vec![("/var/cache/keyward/keys/APKA1".into(), 2)];
        let c = cache_dir(&linked);
        assert_eq!(c.status, Status::Problem, "{c:?}");
        assert!(
            c.detail
                .contains("/var/cache/keyward/keys/APKA1 is a hard link (2 names)"),
            "{}",
            c.detail
        );
        assert_eq!(
            c.fix.unwrap(),
            cache::file_fix(Path::new("/var/cache/keyward/keys/APKA1"))
        );
    }

    #[test]
    fn cache_dir_must_be_keywards_and_not_writable_by_others() {
        assert_eq!(cache_dir(&cache(Some((998, 0o40755)))).status, Status::Ok);
        let c = cache_dir(&cache(Some((0, 0o40755))));
        assert!(c.detail.contains("owned by uid 0, not keyward"), "{c:?}");
        assert_eq!(
            c.fix.unwrap(),
            cache::ownership_fix(Path::new("/var/cache/keyward"))
        );
        let c = cache_dir(&cache(Some((998, 0o40775))));
        assert!(c.detail.contains("writable by group"), "{c:?}");
        assert_eq!(cache_dir(&cache(None)).status, Status::Problem);
        let mut sub = cache(Some((998, 0o40755)));
        sub.subdirs = vec![("/var/cache/keyward/keys".into(), 0, 0o40755)];
        assert!(cache_dir(&sub).detail.contains("keys is owned by uid 0"));
        let mut parent = cache(Some((998, 0o40755)));
        parent.parent = Err((
            "/var/cache is owned by uid 5, not root".into(),
            Some("chown root /var/cache".into()),
        ));
        assert_eq!(
            cache_dir(&parent).fix.as_deref(),
            Some("chown root /var/cache")
        );
        let mut nouser = cache(Some((998, 0o40755)));
        nouser.keyward_uid = None;
        assert_eq!(cache_dir(&nouser).status, Status::Problem);
    }

    #[test]
    fn cache_doctor_gives_the_fixes_authorized_keys_and_install_give() {
        let mut link = cache(Some((998, 0o40755)));
        link.subdirs = vec![("/var/cache/keyward/keys".into(), 998, 0o120777)];
        let c = cache_dir(&link);
        assert!(c.detail.contains("keys is a symlink"), "{c:?}");
        assert_eq!(
            c.fix.unwrap(),
            cache::symlink_fix(Path::new("/var/cache/keyward/keys"))
        );
        let mut rooted = cache(Some((998, 0o40755)));
        rooted.subdirs = vec![("/var/cache/keyward/users".into(), 0, 0o40755)];
        assert_eq!(
            cache_dir(&rooted).fix.unwrap(),
            cache::ownership_fix(Path::new("/var/cache/keyward"))
        );
    }

    #[test]
    fn keyward_program_is_found_in_any_keyward_command() {
        assert_eq!(
            keyward_program("/opt/keyward authorized-keys %u"),
            Some("/opt/keyward")
        );
        assert_eq!(keyward_program("/usr/bin/other authorized-keys"), None);
        assert_eq!(
            effective_command("authorizedkeyscommand /k/keyward authorized-keys %u %f %k\n"),
            Some("/k/keyward authorized-keys %u %f %k".into())
        );
        assert_eq!(effective_command("authorizedkeyscommand none\n"), None);
    }

    const CA_LINE: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDIxSjUJea8/R7sZtXTplF4QlTq8TGgD1NvPUIiZrbFXj/JxFiqiXmla5naP/j/t2h7HhOXofya5Mqc0yDw+bHI= alias/keyward-ca";

    fn ca_dump(extra: &str) -> SshdDump {
        SshdDump::Dump(format!(
            "port 22\ntrustedusercakeys /etc/ssh/keyward_user_ca.pub\nauthorizedprincipalscommand {BIN} authorized-principals %u %i\nauthorizedprincipalscommanduser keyward\n{extra}"
        ))
    }

    fn ca_facts() -> CaFacts {
        CaFacts {
            config_key: Some(CA_LINE.into()),
            ca_file: Some(format!("# Managed by keyward install\n{CA_LINE}\n")),
            host_certificates: vec!["/etc/ssh/ssh_host_ed25519_key-cert.pub".into()],
        }
    }

    #[test]
    fn certificates_wired_by_install_ca_are_ok_and_each_gap_is_named() {
        let good = ca_dump("hostcertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\n");
        let c = certificates(&good, BIN, &ca_facts());
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(
            c.detail.contains("1 host certificate(s) presented"),
            "{c:?}"
        );

        let c = certificates(&ca_dump(""), BIN, &ca_facts());
        assert_eq!(c.status, Status::Problem);
        assert!(
            c.detail.contains("host certificates not presented"),
            "{c:?}"
        );
        assert_eq!(c.fix.as_deref(), Some("keyward install --ca"));

        let mut other = ca_facts();
        other.host_certificates.clear();
        other.ca_file = Some(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPem771ZO7qVqfB6sb1dtjWpvcaaJt9MPCab5sOrPxrF x\n"
                .into(),
        );
        let c = certificates(&good, BIN, &other);
        assert!(
            c.detail.contains("holds no ECDSA P-256/P-384 CA key"),
            "{c:?}"
        );

        let wrong_user = SshdDump::Dump(format!(
            "trustedusercakeys /etc/ssh/keyward_user_ca.pub\nauthorizedprincipalscommand {BIN} authorized-principals %u %i\nauthorizedprincipalscommanduser nobody\n"
        ));
        let c = certificates(&wrong_user, BIN, &ca_facts());
        assert!(
            c.detail
                .contains("AuthorizedPrincipalsCommandUser is \"nobody\""),
            "{c:?}"
        );
    }

    #[test]
    fn certificates_are_skipped_on_a_host_never_wired_unless_the_config_names_a_ca() {
        let plain = SshdDump::Dump("port 22\n".into());
        let none = CaFacts::default();
        assert_eq!(certificates(&plain, BIN, &none).status, Status::Skip);
        let c = certificates(&plain, BIN, &ca_facts());
        assert_eq!(c.status, Status::Problem);
        assert!(c.detail.contains("ssh_ca_public_key is set"), "{c:?}");
        assert_eq!(
            certificates(&SshdDump::NotRoot, BIN, &ca_facts()).status,
            Status::Skip
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod keymaker_tests {
    use super::*;
    use crate::doctor::Status;
    use crate::sync::plan::Plan;

    const KEYMAKER_SSHD: &str = "PasswordAuthentication no\n\
        AuthorizedKeysCommand /usr/sbin/keymaker-get-public-keys\n\
        AuthorizedKeysCommandUser keymaker\n\
        ChallengeResponseAuthentication yes\n\
        AuthenticationMethods publickey keyboard-interactive:pam,publickey\n";

    #[test]
    fn k4_doctor_names_every_keymaker_remnant_and_how_to_remove_it() {
        let facts = KeymakerFacts {
            get_public_keys: true,
            sshd_config: Some(KEYMAKER_SSHD.into()),
            pam: Some("auth optional pam_exec.so stdout /usr/local/bin/keymaker-create-account-for-iam-user\n@include common-auth\n".into()),
            cron: true,
            user: true,
        };
        let c = keymaker(&facts);
        assert_eq!(c.status, Status::Problem, "{c:?}");
        for part in [
            "/usr/sbin/keymaker-get-public-keys",
            "AuthenticationMethods publickey keyboard-interactive:pam,publickey",
            "AuthorizedKeysCommandUser keymaker",
            "keymaker-create-account-for-iam-user",
            "/etc/cron.d/keymaker-group-sync",
            "local user keymaker",
        ] {
            assert!(c.detail.contains(part), "{part:?} not in {c:?}");
        }
        assert!(
            c.detail
                .contains("re-activated by KbdInteractiveAuthentication yes"),
            "{c:?}"
        );
        let fix = c.fix.unwrap();
        assert!(fix.contains("docs/keymaker-migration.md"), "{fix}");
        assert!(
            fix.contains("rm -f /usr/sbin/keymaker-get-public-keys"),
            "{fix}"
        );
    }

    #[test]
    fn k4_a_host_without_keymaker_is_ok() {
        let facts = KeymakerFacts {
            sshd_config: Some(
                "PasswordAuthentication no\nChallengeResponseAuthentication yes\n".into(),
            ),
            pam: Some("@include common-auth\n".into()),
            ..KeymakerFacts::default()
        };
        assert_eq!(keymaker(&facts).status, Status::Ok);
    }

    #[test]
    fn k2_doctor_flags_a_reused_group_with_the_exact_adopt_groups_line() {
        let cfg = Config {
            adopt_groups: vec!["docker".into()],
            ..Config::default()
        };
        let mut plan = Plan::default();
        plan.skipped.push(crate::sync::plan::Skipped {
            subject: "web".into(),
            reason: "IAM group keymaker_web maps to local group web (GID 3000) ...".into(),
            error: true,
        });
        plan.unadopted_groups = vec!["web".into()];
        let plan_with_web = plan.clone();
        let c = sync_plan(&cfg, &Ok(plan));
        assert_eq!(c.status, Status::Problem, "{c:?}");
        assert!(c.detail.contains("web: IAM group keymaker_web"), "{c:?}");
        assert_eq!(
            c.fix.as_deref(),
            Some(r#"add to keyward.toml: adopt_groups = ["docker", "web"]"#)
        );
        let mut more = plan_with_web.clone();
        more.skipped.push(crate::sync::plan::Skipped {
            subject: "Erin".into(),
            reason: "keymaker account Erin ...".into(),
            error: true,
        });
        let fix = sync_plan(&cfg, &Ok(more)).fix.unwrap();
        assert!(
            fix.ends_with(
                "; for the others, run `keyward sync --dry-run` and act on each error: line"
            ),
            "{fix}"
        );
        assert_eq!(sync_plan(&cfg, &Ok(Plan::default())).status, Status::Ok);
        assert_eq!(sync_plan(&cfg, &Err("no IAM".into())).status, Status::Skip);
    }

    #[test]
    fn jump_host_is_checked_against_its_table_and_skipped_elsewhere() {
        use crate::install::jump;
        let table = crate::config::JumpConfig {
            group: "bastion".into(),
            destinations: vec!["10.0.0.0/30".into()],
            port: 22,
            admin_groups: vec!["ops".into()],
        };
        let with = Config {
            jump: Some(table.clone()),
            ..Config::default()
        };
        let dump = SshdDump::Dump("forcecommand none\n".into());
        let installed = JumpFacts {
            rule: Some(jump::render(&table).unwrap()),
            missing_groups: Vec::new(),
        };
        let c = jump(&with, &dump, &installed);
        assert_eq!(c.status, Status::Ok, "{}", c.detail);
        assert!(c.detail.contains("bastion,!ops"), "{}", c.detail);
        let plain = Config::default();
        assert_eq!(
            jump(&plain, &dump, &JumpFacts::default()).status,
            Status::Skip
        );
        for (config, facts, says) in [
            (&plain, installed.clone(), "no [jump] table"),
            (&with, JumpFacts::default(), "not a jump host"),
            (
                &with,
                JumpFacts {
                    rule: Some("# edited\n".into()),
                    missing_groups: Vec::new(),
                },
                "changed since install",
            ),
            (
                &with,
                JumpFacts {
                    missing_groups: vec!["bastion".into()],
                    ..installed.clone()
                },
                "no Linux group bastion (keyward sync makes each from the IAM group keyward_NAME)",
            ),
        ] {
            let c = jump(config, &dump, &facts);
            assert_eq!(c.status, Status::Problem, "{says}");
            assert!(c.detail.contains(says), "{}", c.detail);
        }
        let leaked = SshdDump::Dump(format!(
            "forcecommand {}\n",
            jump::forced_command("bastion")
        ));
        let c = jump(&with, &leaked, &installed);
        assert!(c.detail.contains("not scoped"), "{}", c.detail);
    }
}
