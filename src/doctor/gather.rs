//! The thin adapters of `keyward doctor`: read the host, run `sshd -T` and `systemctl`, try
//! the IAM reads, and hand the facts to the verdicts in `checks`.
//!
//! Everything here only reads. IAM is probed with the host's own client options (the same
//! `aws_config_file`, role and timeout sshd's `authorized-keys` gets), on real names when a
//! list is allowed, else on names that cannot exist, whose NoSuchEntity proves the call was
//! allowed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::checks::{self, CacheFacts, CredentialFacts, ScheduleFacts, SshdDump, TimerState};
use super::Check;
use crate::config::Config;
use crate::iam::{AwsIam, Directory, IamError};
use crate::install::system::{find_sshd, run_checked, RealSystem, System};
use crate::install::{self, host, manifest::Manifest, pam, schedule};
use crate::process::CommandError;

/// Names no IAM user, group or key has (IAM key ids are upper-case alphanumerics).
pub const PROBE_USER: &str = "keyward-doctor-probe";
pub const PROBE_GROUP: &str = "keyward-doctor-probe";
pub const PROBE_KEY_ID: &str = "APKAKEYWARDDOCTORPROBE";

/// Runs every check, in the order an admin fixes things.
pub async fn run(config_path: Option<&Path>) -> Vec<Check> {
    let loaded = Config::load(config_path);
    let mut out = vec![checks::config(&loaded)];
    let Ok((config, _)) = loaded else {
        for name in [
            "credentials",
            "iam",
            "clock",
            "sshd",
            "certificates",
            "jump host",
            "command path",
            "pam",
            "sync schedule",
            "cache dir",
            "keymaker remnants",
            "sync plan",
        ] {
            out.push(Check::skip(name, "the config did not load"));
        }
        return out;
    };
    let is_root = nix::unistd::geteuid().is_root();
    out.extend(iam_checks(&config, is_root).await);

    let this_binary = current_binary();
    let dump = sshd_dump(is_root);
    out.push(checks::sshd(&dump, &this_binary, config.create_on_login));
    out.push(checks::certificates(
        &dump,
        &this_binary,
        &ca_facts(&config),
    ));
    out.push(checks::jump(&config, &dump, &jump_facts(&config)));
    // The binary sshd runs is the one whose path must pass sshd's rule and that PAM and cron
    // should run too; without sshd's word, what install recorded, else this binary.
    let installed = match &dump {
        SshdDump::Dump(text) => checks::effective_command(text)
            .as_deref()
            .and_then(checks::keyward_program)
            .map(str::to_owned),
        _ => None,
    }
    .or_else(|| manifest_binary(&config))
    .unwrap_or_else(|| this_binary.clone());
    let ancestry = host::ancestry(Path::new(&installed)).map_err(|e| e.to_string());
    out.push(checks::command_path(&installed, &ancestry));
    let pam_text = std::fs::read(pam::PAM_PATH)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    out.push(checks::pam(
        config.create_on_login,
        pam_text.as_deref(),
        &installed,
    ));
    out.push(checks::schedule(&schedule_facts()));
    out.push(checks::cache_dir(&cache_facts(&config.cache_dir)));
    out.push(checks::keymaker(&keymaker_facts(pam_text)));
    out.push(checks::sync_plan(&config, &sync_plan(&config).await));
    out
}

/// What keymaker's `install` left; each file is only looked at.
fn keymaker_facts(pam: Option<String>) -> checks::KeymakerFacts {
    let read = |p: &str| {
        std::fs::read(p)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    checks::KeymakerFacts {
        get_public_keys: Path::new("/usr/sbin/keymaker-get-public-keys").exists(),
        sshd_config: read("/etc/ssh/sshd_config"),
        pam,
        cron: Path::new("/etc/cron.d/keymaker-group-sync").exists(),
        user: read("/etc/passwd").is_some_and(|t| t.lines().any(|l| l.starts_with("keymaker:"))),
    }
}

/// The plan `keyward sync` would make now: the same IAM read and local read, nothing applied.
async fn sync_plan(config: &Config) -> Result<crate::sync::plan::Plan, String> {
    let options = crate::iam::ClientOptions::for_host(config).map_err(|e| e.to_string())?;
    let iam = AwsIam::new(&options).await;
    let snapshot = crate::sync::read::read(config, &iam)
        .await
        .map_err(|e| format!("IAM could not be read completely: {e}"))?;
    let now = crate::clock::unix_secs(std::time::SystemTime::now());
    let local = crate::sync::local::SystemState::new(&config.state_dir)
        .read(now)
        .map_err(|e| e.to_string())?;
    Ok(crate::sync::plan::plan(config, &snapshot, &local, now))
}

/// Checks 2, 3 and 9: credentials, each IAM read, the clock.
async fn iam_checks(config: &Config, is_root: bool) -> Vec<Check> {
    let mut out = Vec::new();
    let options = match crate::iam::ClientOptions::for_host(config) {
        Ok(options) => options,
        Err(e) => {
            out.push(Check::problem(
                "credentials",
                e.to_string(),
                "make aws_config_file root-owned and not group/world-writable (0640 root:keyward when it holds credentials)",
            ));
            out.push(Check::skip("iam", "no usable credentials"));
            out.push(Check::skip("clock", "no usable credentials"));
            return out;
        }
    };
    let (region, provider) = AwsIam::resolve_credentials(&options).await;
    let resolved = provider.is_ok();
    out.push(checks::credentials(&CredentialFacts {
        region,
        provider: provider.map_err(|e| e.to_string()),
        aws_config_file: config.aws_config_file.clone(),
        role_arn: config.iam_role_arn.clone(),
        is_root,
    }));
    if !resolved {
        out.push(Check::skip("iam", "no usable credentials"));
        out.push(Check::skip("clock", "no usable credentials"));
        return out;
    }

    let iam = AwsIam::new(&options).await;
    let first_user = iam.first_user().await;
    let user = first_user
        .as_ref()
        .ok()
        .cloned()
        .flatten()
        .unwrap_or_else(|| PROBE_USER.to_owned());
    let user_target = format!("user {user}");
    out.push(checks::iam_action(
        "iam:ListUsers",
        "first user",
        &tried(first_user),
        config.allows_everyone() || config.adopt_keymaker_accounts,
    ));
    let keys = iam.list_keys(&user).await;
    let key_id = keys
        .as_ref()
        .ok()
        .and_then(|k| k.first())
        .map_or_else(|| PROBE_KEY_ID.to_owned(), |k| k.id.clone());
    out.push(checks::iam_action(
        "iam:ListSSHPublicKeys",
        &user_target,
        &tried(keys),
        true,
    ));
    let body = iam
        .get_keys(&user, std::slice::from_ref(&key_id))
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(IamError::Other("no answer".into())));
    out.push(checks::iam_action(
        "iam:GetSSHPublicKey",
        &format!("{user_target}, key {key_id}"),
        &tried(body),
        true,
    ));
    out.push(checks::iam_action(
        "iam:ListGroupsForUser",
        &user_target,
        &tried(iam.groups_for_user(&user).await),
        true,
    ));
    out.push(checks::iam_action(
        "iam:GetUser",
        &user_target,
        &tried(iam.identity(&user).await),
        true,
    ));
    let (first_group, date) = iam.first_group().await;
    let group = first_group
        .as_ref()
        .ok()
        .cloned()
        .flatten()
        .unwrap_or_else(|| PROBE_GROUP.to_owned());
    out.push(checks::iam_action(
        "iam:ListGroups",
        "first group",
        &tried(first_group),
        true,
    ));
    out.push(checks::iam_action(
        "iam:GetGroup",
        &format!("group {group}"),
        &tried(iam.get_group(&group).await),
        true,
    ));
    out.push(checks::clock(
        date.as_ref().map(|d| (d.header.as_str(), d.received)),
    ));
    out
}

fn tried<T>(result: Result<T, IamError>) -> Result<(), IamError> {
    result.map(|_| ())
}

/// The jump rule install wrote, and which `[jump]` groups the group database lacks.
fn jump_facts(config: &Config) -> checks::JumpFacts {
    let groups = config
        .jump
        .iter()
        .flat_map(|j| std::iter::once(&j.group).chain(&j.admin_groups));
    checks::JumpFacts {
        rule: std::fs::read(install::jump::JUMP_PATH)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        missing_groups: groups
            .filter(|g| matches!(nix::unistd::Group::from_name(g), Ok(None)))
            .cloned()
            .collect(),
    }
}

/// The CA file install wrote and the host certificates in /etc/ssh (all world-readable).
fn ca_facts(config: &Config) -> checks::CaFacts {
    checks::CaFacts {
        config_key: config.ssh_ca_public_key.clone(),
        ca_file: std::fs::read(install::sshd::CA_KEY_PATH)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        host_certificates: host::Host::new(None)
            .glob(install::sshd::HOST_CERT_GLOB)
            .into_iter()
            .map(|(path, _)| path)
            .collect(),
    }
}

/// The running binary, as sshd would name it in AuthorizedKeysCommand.
fn current_binary() -> String {
    std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/usr/local/bin/keyward".into())
}

/// The binary `keyward install` wired in, from its manifest (readable by root only).
fn manifest_binary(config: &Config) -> Option<String> {
    let path = crate::state::StateDir::new(&config.state_dir).install_manifest();
    let text = std::fs::read_to_string(path).ok()?;
    Manifest::parse(&text).ok().map(|m| m.binary)
}

fn sshd_dump(is_root: bool) -> SshdDump {
    if !is_root {
        return SshdDump::NotRoot;
    }
    let Some(sshd) = find_sshd() else {
        return SshdDump::NoSshd;
    };
    match run_checked(&mut RealSystem, &sshd.to_string_lossy(), &["-T"]) {
        Ok(stdout) => SshdDump::Dump(stdout),
        // sshd's complaint can run long: its first lines say what is wrong.
        Err(e @ CommandError::Failed { .. }) => SshdDump::Failed(
            e.to_string()
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" / "),
        ),
        Err(e) => SshdDump::Failed(e.to_string()),
    }
}

fn schedule_facts() -> ScheduleFacts {
    let systemd = Path::new(schedule::SYSTEMD_RUNNING)
        .exists()
        .then(timer_state);
    ScheduleFacts {
        cron: std::fs::read(schedule::CRON_PATH)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        timer_installed: Path::new(schedule::TIMER_PATH).exists(),
        systemd,
    }
}

fn timer_state() -> TimerState {
    // `is-enabled` and `is-active` answer on stdout and exit non-zero for "no".
    let word = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        RealSystem
            .run("systemctl", &args)
            .map(|out| out.stdout.trim().to_owned())
            .unwrap_or_else(|e| format!("unknown (systemctl: {e})"))
    };
    let mut state = TimerState {
        enabled: word(&["is-enabled", schedule::TIMER_UNIT]),
        active: word(&["is-active", schedule::TIMER_UNIT]),
        ..TimerState::default()
    };
    let shown = word(&[
        "show",
        "keyward-sync.service",
        "-p",
        "Result",
        "-p",
        "ExecMainStatus",
        "-p",
        "ExecMainStartTimestamp",
    ]);
    for line in shown.lines() {
        match line.split_once('=') {
            Some(("Result", v)) => state.result = v.to_owned(),
            Some(("ExecMainStatus", v)) => state.exec_main_status = v.to_owned(),
            Some(("ExecMainStartTimestamp", v)) => state.last_start = v.to_owned(),
            _ => {}
        }
    }
    state
}

fn cache_facts(dir: &Path) -> CacheFacts {
    // lstat: a symlink is reported as one, as `authorized-keys` and `install` refuse it.
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => Ok(Some((m.uid(), m.mode()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    let subdirs: Vec<(PathBuf, u32, u32)> = crate::keys::cache::SUBDIRS
        .iter()
        .filter_map(|sub| {
            let path = dir.join(sub);
            let m = std::fs::symlink_metadata(&path).ok()?;
            Some((path, m.uid(), m.mode()))
        })
        .collect();
    // Files with more than one name, in the subdirectories that are real directories (lstat).
    let mut hard_links = Vec::new();
    for (sub, _, mode) in &subdirs {
        if mode & 0o170000 != 0o040000 {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(sub) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(m) = std::fs::symlink_metadata(&path) {
                if m.is_file() && m.nlink() > 1 {
                    hard_links.push((path, m.nlink()));
                }
            }
        }
    }
    hard_links.sort();
    let parent = match dir.parent() {
        Some(p) => crate::files::check_trusted(p).map_err(|e| (e.problem(), e.fix())),
        None => Ok(()),
    };
    CacheFacts {
        dir: dir.to_owned(),
        meta,
        keyward_uid: uzers::get_user_by_name(install::USER).map(|u| u.uid()),
        parent,
        subdirs,
        hard_links,
    }
}
