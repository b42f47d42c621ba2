//! Wiring keyward into a host (`keyward install`) and taking it out again (`keyward uninstall`).
//!
//! This decides who can get a shell, so it is careful in the way sshd is: the decisions (where
//! sshd reads keyward's directives, where the PAM hook goes, what the schedule files say, what
//! the manifest records) are pure functions over file text, and a thin engine applies them,
//! records every original byte for byte before changing it, validates with sshd itself, and
//! puts everything back when anything fails. It must never leave a host half-wired, never
//! change a line of the admin's files outside keyward's marked blocks, and never treat a file
//! that already holds keyward's block as the admin's original.
//!
//! Both jobs have sync's shape, one module per part: `snapshot::read_host` reads everything
//! they decide on into a `HostSnapshot`; the pure `plan::plan_install` and
//! `plan::plan_uninstall` turn it into a list of typed steps; `describe` words a plan the same
//! way for `--dry-run` and for the real run; `apply` carries out exactly those steps with an
//! undo journal; `engine` strings the four together.

pub mod apply;
pub mod blocks;
pub mod cache;
pub mod describe;
pub mod engine;
pub mod host;
pub mod jump;
pub mod manifest;
pub mod pam;
pub mod plan;
pub mod schedule;
pub mod snapshot;
pub mod sshd;
pub mod system;

use std::path::{Path, PathBuf};

use crate::process::CommandError;

pub use engine::{install, uninstall, Outcome};
pub use plan::{
    plan_install, plan_uninstall, InstallOptions, InstallPlan, UninstallOptions, UninstallPlan,
};
pub use schedule::SchedulerChoice;
pub use snapshot::{read_host, HostSnapshot};

/// The system user sshd runs `keyward authorized-keys` as.
pub const USER: &str = "keyward";

/// `/etc/keyward/chain.toml`: the AuthorizedKeysCommand that was in effect before keyward,
/// which `authorized-keys` keeps working.
pub const CHAIN_PATH: &str = "/etc/keyward/chain.toml";
/// First line of every file keyward owns whole (drop-in, units, cron, chain).
pub const MANAGED_MARK: &str = "# Managed by keyward install";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    InFile {
        path: String,
        source: Box<InstallError>,
    },
    #[error(
        "keyward's marked block is damaged at line {line}: {reason}; fix or remove it by hand"
    )]
    DamagedBlock { line: usize, reason: String },
    #[error("{0}: no auth line found to put keyward's account-creation hook before")]
    NoAuthLine(String),
    #[error("{path} does not exist: {why}")]
    Missing { path: String, why: String },
    #[error("{0} is not UTF-8 text; keyward will not edit it")]
    NotText(String),
    #[error(
        "sshd is not installed (neither /usr/sbin/sshd nor sshd on PATH): there is nothing to wire keyward into"
    )]
    NoSshd,
    #[error("{0} must run as root (it changes sshd, PAM and system users); use --root DIR to work on a copy")]
    NotRoot(&'static str),
    #[error(
        "sshd would refuse {path} as AuthorizedKeysCommand: {reason}. Copy keyward to /usr/local/bin and run install from there: \
         install -o root -g root -m 0755 {path} /usr/local/bin/keyward && /usr/local/bin/keyward install"
    )]
    UnsafeBinary { path: String, reason: String },
    #[error(
        "the keyward binary path {0:?} has characters sshd or PAM would split or expand; put keyward at a path of letters, digits and / . _ + - (e.g. /usr/local/bin/keyward)"
    )]
    BadBinaryPath(String),
    /// A command that had to succeed before anything changed (`context` says so).
    #[error("`{command}` failed: {source}{context}")]
    Command {
        command: String,
        #[source]
        source: Box<CommandError>,
        context: &'static str,
    },
    /// A step's command failed (its `what` names the step).
    #[error(transparent)]
    Run(Box<CommandError>),
    #[error(transparent)]
    NotEffective(#[from] sshd::NotEffective),
    #[error("user {0} does not exist after useradd")]
    NoUser(&'static str),
    #[error("{what} failed: {cause}. Every file was put back as it was; nothing was changed")]
    RolledBack {
        what: String,
        #[source]
        cause: Box<InstallError>,
    },
    #[error(
        "{what} failed: {cause}. Putting the files back ALSO failed: {failures}. The originals are in {originals}"
    )]
    RollbackFailed {
        what: String,
        #[source]
        cause: Box<InstallError>,
        failures: String,
        originals: String,
    },
    #[error(
        "changed since keyward install: {}; nothing was touched. `keyward uninstall --force` restores the originals anyway (losing those changes)",
        .0.join(", ")
    )]
    Changed(Vec<String>),
    #[error("{path}: {source}")]
    Manifest {
        path: String,
        #[source]
        source: manifest::ParseError,
    },
    #[error("{path} is a symlink: {}; nothing was changed", crate::keys::cache::symlink_fix(Path::new(.path)))]
    CacheSymlink { path: String },
    #[error("{path} is a {kind}, which keyward's cache never holds: rm {path} && keyward install; nothing was changed")]
    CacheSpecial { path: String, kind: &'static str },
    #[error("the saved original of {path} ({copy}) is missing or does not match the manifest; restore {path} by hand")]
    BadBackup { path: String, copy: String },
    #[error(
        "--ca needs the CA's public key: set ssh_ca_public_key in the config (`keyward ca public-key` prints it) or pass --ca-public-key FILE; nothing was changed"
    )]
    NoCaKey,
    #[error("{from}: {problem}; nothing was changed")]
    BadCaKey { from: &'static str, problem: String },
    #[error(
        "--jump (or the jump rule an earlier --jump installed) needs a [jump] table in the config (group, destinations, and optionally port and admin_groups; see docs/hosts.md); --no-jump takes the rule out; nothing was changed"
    )]
    NoJumpConfig,
    #[error("[jump] destinations: {0}; nothing was changed")]
    BadJump(String),
    #[error(
        "[jump] group {group}: no such Linux group, so sshd's Match Group would match nobody and its members would get shells; run keyward sync first (it makes {group} from the IAM group {prefix}{group}); nothing was changed"
    )]
    NoJumpGroup { group: String, prefix: String },
    #[error(
        "[jump] group {group}: a local group keyward does not manage (sync has no record of it), so sync would never add the IAM members of {prefix}{group} to it and they would get shells; remove that group and run keyward sync, or name it in adopt_groups and run keyward sync; nothing was changed"
    )]
    ForeignJumpGroup { group: String, prefix: String },
}

impl From<CommandError> for InstallError {
    fn from(e: CommandError) -> InstallError {
        InstallError::Run(Box::new(e))
    }
}

impl InstallError {
    pub(crate) fn io(path: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstallError {
        let path = path.into();
        move |source| InstallError::Io { path, source }
    }

    pub(crate) fn in_file(path: &str) -> impl FnOnce(InstallError) -> InstallError + '_ {
        move |source| InstallError::InFile {
            path: path.to_owned(),
            source: Box::new(source),
        }
    }
}

/// Renders a template file: `##` lines are maintainers' notes and are dropped; lines starting
/// with `@IF_CREATE_ON_LOGIN@` are kept (without the marker) only when `create_on_login`;
/// every `(placeholder, value)` is substituted.
pub fn render_template(template: &str, values: &[(&str, &str)], create_on_login: bool) -> String {
    let mut out = String::with_capacity(template.len());
    for line in template.lines() {
        if line.starts_with("##") {
            continue;
        }
        let line = match line.strip_prefix("@IF_CREATE_ON_LOGIN@") {
            Some(_) if !create_on_login => continue,
            Some(rest) => rest,
            None => line,
        };
        let mut line = line.to_owned();
        for (placeholder, value) in values {
            line = line.replace(placeholder, value);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// fnmatch(3) without flags, for one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_from(&p, &n)
}

fn glob_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| glob_from(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && glob_from(&p[1..], &n[1..]),
        Some('[') => {
            let Some(c) = n.first() else { return false };
            let Some(close) = p.iter().skip(2).position(|&x| x == ']').map(|i| i + 2) else {
                return *c == '[' && glob_from(&p[1..], &n[1..]);
            };
            let set = &p[1..close];
            let (negate, set) = match set.first() {
                Some('!') | Some('^') => (true, &set[1..]),
                _ => (false, set),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= set[i] <= *c && *c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == *c;
                    i += 1;
                }
            }
            hit != negate && glob_from(&p[close + 1..], &n[1..])
        }
        Some(x) => n.first() == Some(x) && glob_from(&p[1..], &n[1..]),
    }
}

/// sshd's rule for an AuthorizedKeysCommand (`safe_path`): the file and every directory above
/// it owned by root and not writable by group or others. `ancestry` is each path with its owner
/// and mode, the file first. Returns the first problem in words.
pub fn sshd_path_problem(ancestry: &[(PathBuf, u32, u32)]) -> Option<String> {
    ancestry.iter().find_map(|(path, uid, mode)| {
        if *uid != 0 {
            Some(format!(
                "{} is owned by uid {uid}, not root",
                path.display()
            ))
        } else if mode & 0o022 != 0 {
            Some(format!(
                "{} is writable by group or others (mode {:o})",
                path.display(),
                mode & 0o7777
            ))
        } else {
            None
        }
    })
}

/// A binary path that survives sshd's and PAM's word splitting and sshd's `%` expansion.
pub fn is_plain_path(path: &str) -> bool {
    Path::new(path).is_absolute()
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b))
}

/// Lines removed and added between two texts, for humans: the differing middle part, with
/// the line number where it starts.
pub fn line_diff(before: &str, after: &str) -> Vec<String> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = Vec::new();
    let removed = &a[prefix..a.len() - suffix];
    let added = &b[prefix..b.len() - suffix];
    if removed.is_empty() && added.is_empty() {
        if before != after {
            out.push("  (only the final newline differs)".to_owned());
        }
        return out;
    }
    out.push(format!("  @@ line {}", prefix + 1));
    out.extend(removed.iter().map(|l| format!("  - {l}")));
    out.extend(added.iter().map(|l| format!("  + {l}")));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn templates_drop_notes_and_substitute() {
        let t = "## note\n# kept @X@\n@IF_CREATE_ON_LOGIN@only when on\nlast @X@\n";
        assert_eq!(
            render_template(t, &[("@X@", "v")], true),
            "# kept v\nonly when on\nlast v\n"
        );
        assert_eq!(
            render_template(t, &[("@X@", "v")], false),
            "# kept v\nlast v\n"
        );
    }

    #[test]
    fn glob_matches_like_fnmatch() {
        assert!(glob_match("*.conf", "00-keyward.conf"));
        assert!(!glob_match("*.conf", "x.conf.bak"));
        assert!(glob_match("?0-*", "50-cloud-init.conf"));
        assert!(glob_match("[0-9]*", "5x"));
        assert!(!glob_match("[!0-9]*", "5x"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a", "b"));
    }

    #[test]
    fn sshd_path_rule_wants_root_and_no_group_or_world_write() {
        let ok = |p: &str| (PathBuf::from(p), 0, 0o100755);
        assert_eq!(
            sshd_path_problem(&[ok("/usr/local/bin/keyward"), ok("/usr/local/bin"), ok("/")]),
            None
        );
        let home = [
            ok("/home/a/keyward"),
            (PathBuf::from("/home/a"), 1000, 0o40755),
            ok("/"),
        ];
        assert!(sshd_path_problem(&home)
            .unwrap()
            .contains("/home/a is owned by uid 1000"));
        let tmp = [
            ok("/tmp/keyward"),
            (PathBuf::from("/tmp"), 0, 0o41777),
            ok("/"),
        ];
        assert!(sshd_path_problem(&tmp)
            .unwrap()
            .contains("/tmp is writable"));
    }

    #[test]
    fn only_plain_absolute_paths_are_accepted() {
        assert!(is_plain_path("/usr/local/bin/keyward"));
        assert!(is_plain_path("/opt/keyward-1.2_x+y/keyward"));
        assert!(!is_plain_path("keyward"));
        assert!(!is_plain_path("/opt/my dir/keyward"));
        assert!(!is_plain_path("/opt/%u/keyward"));
        assert!(!is_plain_path("/opt/\"x\"/keyward"));
    }

    #[test]
    fn diff_shows_the_changed_middle() {
        assert_eq!(
            line_diff("a\nb\nc\n", "a\nX\nY\nc\n"),
            ["  @@ line 2", "  - b", "  + X", "  + Y"]
        );
        assert!(line_diff("a\n", "a\n").is_empty());
        assert_eq!(
            line_diff("a", "a\n"),
            ["  (only the final newline differs)"]
        );
    }
}
