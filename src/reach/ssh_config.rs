//! `keyward ssh-config`: the `Host` blocks a person `Include`s once from `~/.ssh/config`.
//! Nothing in them lists hosts: each block hands the name to `keyward proxy` at connect time,
//! so the snippet never goes stale as instances come and go.
//!
//! One block per `[[reach.environments]]` (its `hosts` patterns, with `--env NAME`), then a
//! default block for instance ids (`i-????????` and `i-?????????????????`). Each sets
//! - `ProxyCommand <absolute keyward> proxy --known-hosts <dir> [--env NAME] '%n' %p` (`%n`:
//!   the name as typed, case kept, since EC2 Name tags are case-sensitive; `--known-hosts`: the
//!   directory `UserKnownHostsFile` names, so the proxy re-points the very links ssh reads,
//!   whatever `HOME` or `XDG_STATE_HOME` ssh runs it with);
//! - `UserKnownHostsFile <state>/keyward/known_hosts/%n`, the per-name link the proxy points at
//!   the instance's key file (see [`super::known_hosts`]);
//! - `StrictHostKeyChecking ask`: an unknown instance is asked about, never trusted silently
//!   (keyward never writes `no` or `accept-new`).
//!
//! Invariants: every value printed is checked first, so that no setting can add an ssh option,
//! a second pattern or a shell word: environment names are `[A-Za-z0-9_-]`, patterns are
//! `[A-Za-z0-9.*?_:[]-]` (a leading `!` negates), paths are absolute and `[A-Za-z0-9/._+-]`
//! (ProxyCommand goes through the user's shell). When an environment's jump host would match
//! its own patterns, it is excluded (`!bastion`) so that `ssh -W` to it does not loop.

use std::fmt::Write as _;
use std::path::Path;

use super::settings::ReachSettings;

/// The default block's patterns: instance ids, old and new.
pub const INSTANCE_ID_PATTERNS: &[&str] = &["i-????????", "i-?????????????????"];

#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    #[error("[[reach.environments]] name {0:?} is not usable: give 1 to 64 of [A-Za-z0-9_-], not starting with '-'")]
    BadEnvName(String),
    #[error("environment {env}: host pattern {pattern:?} is not usable: give ssh patterns of [A-Za-z0-9.*?_:[]-], optionally starting with '!'")]
    BadPattern { env: String, pattern: String },
    #[error("environment {0} has no hosts patterns: add hosts = [\"*.example\"]")]
    NoPatterns(String),
    #[error("no environment {0:?} in [[reach.environments]]{1}")]
    NoSuchEnv(String, String),
    #[error("{0} cannot be written into an ssh config: use a path of [A-Za-z0-9/._+-] only")]
    BadPath(String),
}

/// Whether `name` may be an environment name (printed after `--env`).
pub fn check_env_name(name: &str) -> Result<(), SshConfigError> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SshConfigError::BadEnvName(crate::logging::untrusted(name)))
    }
}

fn check_pattern(env: &str, pattern: &str) -> Result<(), SshConfigError> {
    let body = pattern.strip_prefix('!').unwrap_or(pattern);
    let ok = (1..=255).contains(&body.len())
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-*?:[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SshConfigError::BadPattern {
            env: env.to_owned(),
            pattern: crate::logging::untrusted(pattern),
        })
    }
}

/// A path as ssh config text (unquoted: the charset needs no quoting, for ssh or a shell).
pub fn config_path(path: &Path) -> Result<&str, SshConfigError> {
    let bad = || SshConfigError::BadPath(crate::logging::untrusted(&path.to_string_lossy()));
    let text = path.to_str().ok_or_else(bad)?;
    let ok = path.is_absolute()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b));
    ok.then_some(text).ok_or_else(bad)
}

/// The host part of an ssh destination (`alice@bastion:2222` → `bastion`), when it is a plain
/// name that can be a negated pattern.
fn jump_host(jump: &str) -> Option<&str> {
    let host = jump.rsplit('@').next()?;
    let host = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next()?,
        None => host.split(':').next()?,
    };
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    plain.then_some(host)
}

/// A simple glob match of ssh's `*` and `?` (ASCII, case-insensitive as ssh matches hosts).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.split_first(), text.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            glob(rest, text) || (!text.is_empty() && glob(pattern, &text[1..]))
        }
        (Some((b'?', rest)), Some((_, tail))) => glob(rest, tail),
        (Some((p, rest)), Some((t, tail))) if p.eq_ignore_ascii_case(t) => glob(rest, tail),
        _ => false,
    }
}

fn block(
    out: &mut String,
    patterns: &[String],
    env: Option<&str>,
    keyward: &str,
    known_hosts: &str,
) {
    let _ = writeln!(out, "Host {}", patterns.join(" "));
    let env_flag = env.map(|e| format!(" --env {e}")).unwrap_or_default();
    let _ = writeln!(
        out,
        "    ProxyCommand {keyward} proxy --known-hosts {known_hosts}{env_flag} '%n' %p"
    );
    let _ = writeln!(out, "    UserKnownHostsFile {known_hosts}/%n");
    let _ = writeln!(out, "    StrictHostKeyChecking ask");
    out.push('\n');
}

/// The whole snippet, or only environment `only`'s block.
pub fn render(
    settings: &ReachSettings,
    keyward: &Path,
    known_hosts_dir: &Path,
    only: Option<&str>,
) -> Result<String, SshConfigError> {
    let keyward = config_path(keyward)?;
    let known_hosts = config_path(known_hosts_dir)?;
    if let Some(name) = only {
        if !settings.environments.iter().any(|e| e.name == name) {
            let names: Vec<&str> = settings
                .environments
                .iter()
                .map(|e| e.name.as_str())
                .collect();
            let known = if names.is_empty() {
                String::new()
            } else {
                format!(" (there are: {})", names.join(", "))
            };
            return Err(SshConfigError::NoSuchEnv(
                crate::logging::untrusted(name),
                known,
            ));
        }
    }
    let mut out = String::from(
        "# keyward ssh-config: Include this file from the top of ~/.ssh/config.\n\
         # Names resolve at connect time (keyward proxy); host keys are kept per instance.\n\n",
    );
    for env in &settings.environments {
        check_env_name(&env.name)?;
        if only.is_some_and(|o| o != env.name) {
            continue;
        }
        if env.hosts.is_empty() {
            return Err(SshConfigError::NoPatterns(env.name.clone()));
        }
        let mut patterns = env.hosts.clone();
        for pattern in &patterns {
            check_pattern(&env.name, pattern)?;
        }
        if !patterns.iter().any(|p| !p.starts_with('!')) {
            return Err(SshConfigError::NoPatterns(env.name.clone()));
        }
        let jump = env.jump.as_deref().or(settings.jump.as_deref());
        if let Some(host) = jump.and_then(jump_host) {
            let caught = patterns
                .iter()
                .any(|p| !p.starts_with('!') && glob(p.as_bytes(), host.as_bytes()));
            if caught {
                patterns.insert(0, format!("!{host}"));
            }
        }
        block(&mut out, &patterns, Some(&env.name), keyward, known_hosts);
    }
    if only.is_none() {
        let patterns: Vec<String> = INSTANCE_ID_PATTERNS
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
        block(&mut out, &patterns, None, keyward, known_hosts);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::reach::settings::Environment;

    fn env(name: &str, hosts: &[&str], jump: Option<&str>) -> Environment {
        Environment {
            name: name.into(),
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            jump: jump.map(str::to_owned),
            ..Environment::default()
        }
    }

    const KEYWARD: &str = "/home/alice/.local/bin/keyward";
    const STATE: &str = "/home/alice/.local/state/keyward/known_hosts";

    fn rendered(settings: &ReachSettings, only: Option<&str>) -> Result<String, SshConfigError> {
        render(settings, Path::new(KEYWARD), Path::new(STATE), only)
    }

    #[test]
    fn one_block_per_environment_then_instance_ids() {
        let settings = ReachSettings {
            environments: vec![
                env("prod", &["*.prod"], Some("alice@bastion.prod:2222")),
                env("lab", &["web-*", "db-?"], None),
            ],
            ..ReachSettings::default()
        };
        assert_eq!(
            rendered(&settings, None).unwrap(),
            "# keyward ssh-config: Include this file from the top of ~/.ssh/config.\n\
             # Names resolve at connect time (keyward proxy); host keys are kept per instance.\n\
             \n\
             Host !bastion.prod *.prod\n    \
                 ProxyCommand /home/alice/.local/bin/keyward proxy --known-hosts /home/alice/.local/state/keyward/known_hosts --env prod '%n' %p\n    \
                 UserKnownHostsFile /home/alice/.local/state/keyward/known_hosts/%n\n    \
                 StrictHostKeyChecking ask\n\
             \n\
             Host web-* db-?\n    \
                 ProxyCommand /home/alice/.local/bin/keyward proxy --known-hosts /home/alice/.local/state/keyward/known_hosts --env lab '%n' %p\n    \
                 UserKnownHostsFile /home/alice/.local/state/keyward/known_hosts/%n\n    \
                 StrictHostKeyChecking ask\n\
             \n\
             Host i-???????? i-?????????????????\n    \
                 ProxyCommand /home/alice/.local/bin/keyward proxy --known-hosts /home/alice/.local/state/keyward/known_hosts '%n' %p\n    \
                 UserKnownHostsFile /home/alice/.local/state/keyward/known_hosts/%n\n    \
                 StrictHostKeyChecking ask\n\n"
        );
        let prod_only = rendered(&settings, Some("prod")).unwrap();
        assert!(prod_only.contains("--env prod"));
        assert!(!prod_only.contains("--env lab") && !prod_only.contains("i-????????"));
        let err = rendered(&settings, Some("qa")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no environment \"qa\" in [[reach.environments]] (there are: prod, lab)"
        );
    }

    #[test]
    fn never_strict_host_key_checking_no() {
        let text = rendered(&ReachSettings::default(), None).unwrap();
        assert!(!text.to_lowercase().contains("stricthostkeychecking no"));
        assert!(!text.to_lowercase().contains("accept-new"));
        assert!(!text.contains("--env"));
    }

    #[test]
    fn a_jump_host_outside_the_patterns_is_not_negated() {
        let settings = ReachSettings {
            jump: Some("bastion.example.com".into()),
            environments: vec![env("prod", &["*.prod"], None)],
            ..ReachSettings::default()
        };
        assert!(rendered(&settings, None).unwrap().contains("Host *.prod\n"));
    }

    #[test]
    fn settings_cannot_inject_config_lines_or_shell_words() {
        for (name, hosts) in [
            ("prod\n    ProxyCommand id", &["*.prod"][..]),
            ("-v", &["*.prod"][..]),
            ("a b", &["*.prod"][..]),
            ("prod", &["*.prod\n    LocalCommand id"][..]),
            ("prod", &["*.prod x"][..]),
            ("prod", &["a\"b"][..]),
            ("prod", &["$(id)"][..]),
            ("prod", &["!*.prod"][..]),
            ("prod", &[][..]),
        ] {
            let settings = ReachSettings {
                environments: vec![env(name, hosts, None)],
                ..ReachSettings::default()
            };
            assert!(rendered(&settings, None).is_err(), "{name:?} {hosts:?}");
        }
        for path in [
            "/home/a b/keyward",
            "relative/keyward",
            "/x/$(id)",
            "/x/%n",
            "/x/\"y",
        ] {
            assert!(
                render(
                    &ReachSettings::default(),
                    Path::new(path),
                    Path::new(STATE),
                    None
                )
                .is_err(),
                "{path:?}"
            );
            assert!(
                render(
                    &ReachSettings::default(),
                    Path::new(KEYWARD),
                    Path::new(path),
                    None
                )
                .is_err(),
                "{path:?}"
            );
        }
    }

    #[test]
    fn ssh_globs_match_like_ssh() {
        assert!(glob(b"*.prod", b"bastion.prod"));
        assert!(glob(b"web-?", b"WEB-1"));
        assert!(!glob(b"web-?", b"web-10"));
        assert!(!glob(b"*.prod", b"bastion.example.com"));
        assert_eq!(jump_host("alice@[fd00::1]:22"), None);
        assert_eq!(jump_host("alice@bastion:22"), Some("bastion"));
    }
}
