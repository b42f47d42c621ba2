//! The host's process runner and its programs: the commands install, uninstall and doctor run
//! (useradd/userdel, sshd -t/-T, systemctl, kill -HUP) and where sshd is.
//!
//! A trait, so that the decisions around these commands are tested with a fake that records
//! what would run; the real adapter only spawns programs with fixed argument lists (never a
//! shell, stdin closed, through `crate::process`) and must never be used by tests on a
//! developer's machine. `doctor` runs `sshd -T` and `systemctl` through the same `RealSystem`
//! and finds sshd with the same `find_sshd`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{CommandError, CommandOutput};

/// Runs `program` with `args` through `sys`; `Ok` is its stdout when it succeeded.
pub fn run_checked(
    sys: &mut dyn System,
    program: &str,
    args: &[&str],
) -> Result<String, CommandError> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    match sys.run(program, &args) {
        Ok(out) => out.checked(program),
        Err(source) => Err(CommandError::Spawn {
            program: program.to_owned(),
            source,
        }),
    }
}

/// The sshd binary: /usr/sbin/sshd, else the first `sshd` on PATH.
pub fn find_sshd() -> Option<PathBuf> {
    let standard = Path::new("/usr/sbin/sshd");
    if standard.is_file() {
        return Some(standard.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("sshd"))
        .find(|p| p.is_file())
}

pub trait System {
    /// Runs `program` with `args` and waits for it.
    fn run(&mut self, program: &str, args: &[String]) -> io::Result<CommandOutput>;
    /// The uid and gid of a user of the running system (NSS), if it exists.
    fn lookup_user(&self, name: &str) -> Option<(u32, u32)>;
    /// Whether a group of the running system (NSS) exists.
    fn group_exists(&self, name: &str) -> bool;
}

/// The running host.
pub struct RealSystem;

impl System for RealSystem {
    fn run(&mut self, program: &str, args: &[String]) -> io::Result<CommandOutput> {
        crate::process::output(Command::new(program).args(args))
    }

    fn lookup_user(&self, name: &str) -> Option<(u32, u32)> {
        uzers::get_user_by_name(name).map(|u| (u.uid(), u.primary_group_id()))
    }

    fn group_exists(&self, name: &str) -> bool {
        uzers::get_group_by_name(name).is_some()
    }
}

/// Whether group(5) text has a group `name` (for `--root` trees).
pub fn group_lookup(group: &str, name: &str) -> bool {
    group
        .lines()
        .any(|line| line.split(':').next() == Some(name))
}

/// A user's uid and gid in passwd(5) text (for `--root` trees, which NSS does not see).
pub fn passwd_lookup(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next() != Some(name) {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// `useradd` arguments for keyward's system user: locked, no shell, no home. `--no-log-init`
/// keeps useradd away from lastlog/faillog, which `--prefix` does not redirect.
pub fn useradd_args(prefix: Option<&str>, user: &str) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if let Some(p) = prefix {
        args.extend(["--prefix".into(), p.to_owned()]);
    }
    args.extend(
        [
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            "--no-log-init",
            user,
        ]
        .map(String::from),
    );
    args
}

pub fn userdel_args(prefix: Option<&str>, user: &str) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if let Some(p) = prefix {
        args.extend(["--prefix".into(), p.to_owned()]);
    }
    args.push(user.to_owned());
    args
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup_finds_the_exact_name() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nkeywardx:x:5:5::/:/bin/sh\nkeyward:x:999:995::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(passwd_lookup(passwd, "keyward"), Some((999, 995)));
        assert_eq!(passwd_lookup(passwd, "nobody"), None);
        assert_eq!(passwd_lookup("keyward:x:bad:1::/:/\n", "keyward"), None);
        assert!(group_lookup("root:x:0:\nkeyward:x:995:\n", "keyward"));
        assert!(!group_lookup("keywards:x:995:\n", "keyward"));
    }

    #[test]
    fn useradd_makes_a_locked_system_user_without_home_or_shell() {
        assert_eq!(
            useradd_args(Some("/tmp/t"), "keyward").join(" "),
            "--prefix /tmp/t --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group --no-log-init keyward"
        );
        assert_eq!(userdel_args(None, "keyward"), vec!["keyward"]);
    }
}
