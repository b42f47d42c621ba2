//! The install and uninstall plans: pure functions of a `HostSnapshot`, the config and the
//! command's options.
//!
//! `plan_install` decides everything `keyward install` does and says, `plan_uninstall`
//! everything `keyward uninstall` does; `describe` words the plan and `apply` carries it out,
//! so `--dry-run` and the real run cannot disagree. Rules the planners must never break:
//! - only keyward's marked blocks change in the admin's files (sshd_config, PAM); a file
//!   keyward owns whole starts with `MANAGED_MARK`, and a file neither recorded nor marked is
//!   never removed (it is left alone with a warning);
//! - the original recorded for uninstall is the host before keyward: a file holding
//!   keyward's block is never an original, and a saved original whose hash does not match the
//!   manifest stops the plan (`BadBackup`) rather than restore the wrong bytes;
//! - uninstall refuses, changing nothing, when a file changed since install (unless `--force`);
//! - a refusal (unsafe binary path, missing sshd_config or PAM file, damaged block, a symlink
//!   in the cache) is an `Err`, never a partial plan;
//! - an empty `steps` means nothing to do, and applying a plan then planning again from the new
//!   snapshot gives an empty plan.

use std::path::PathBuf;

use super::cache;
use super::manifest::{self, sha256_hex, Manifest};
use super::schedule::{self, Scheduler, SchedulerChoice};
use super::snapshot::{HostSnapshot, Layout, SshdDump};
use super::sshd::{self, DROPIN_PATH, MAIN_CONFIG};
use super::{blocks, pam, InstallError, CHAIN_PATH, MANAGED_MARK};
use crate::config::Config;

/// `keyward install`'s options.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// `--root DIR`: work on DIR/etc, DIR/var...; `None` is the running host.
    pub root: Option<PathBuf>,
    /// Absolute, canonical path of the keyward binary sshd and PAM will run.
    pub binary: String,
    pub dry_run: bool,
    /// Drop an existing AuthorizedKeysCommand instead of chaining to it.
    pub replace: bool,
    pub scheduler: SchedulerChoice,
    /// Reload sshd after a successful change.
    pub reload: bool,
}

/// `keyward uninstall`'s options.
#[derive(Debug, Clone)]
pub struct UninstallOptions {
    pub root: Option<PathBuf>,
    pub dry_run: bool,
    /// Restore the originals even over changes made since install.
    pub force: bool,
}

/// One file to change: `None` means absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub current: Option<Vec<u8>>,
    pub desired: Option<Vec<u8>>,
}

/// What happens to the saved original of a file install changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyChange {
    Keep,
    /// Saved before the file changes.
    Write(Vec<u8>),
    /// The file is back to its original (or had none): the copy goes after the file changed.
    Remove,
}

/// A file install writes or removes, with what uninstall must put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStep {
    pub change: FileChange,
    /// The host's bytes before keyward (`None`: the file did not exist).
    pub original: Option<Vec<u8>>,
    pub copy: CopyChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallStep {
    /// useradd the keyward system user (`prefix`: useradd's `--prefix` for a `--root` tree).
    CreateUser {
        prefix: Option<String>,
    },
    /// The state directory (root, 0755).
    CreateStateDir {
        path: String,
    },
    /// Create the cache, give it to keyward, take group/world write off its directories.
    FixCache {
        dir: String,
        plan: cache::Plan,
    },
    /// systemctl disable --now the timer (the scheduler became cron).
    DisableTimer,
    WriteFile(FileStep),
    /// Write the manifest (also after each file) so it names the account and scheduler.
    RecordManifest,
    /// sshd -t, then sshd -T must show keyward's directives; else everything is put back.
    CheckSshd {
        sshd: String,
    },
    /// systemctl daemon-reload; systemctl enable --now the timer.
    EnableTimer,
    DaemonReload,
    ReloadSshd,
}

#[derive(Debug, Clone)]
pub struct InstallPlan {
    /// Warnings and facts about the host, shown before the steps.
    pub notes: Vec<String>,
    /// In the order `apply` runs them; empty: already installed.
    pub steps: Vec<InstallStep>,
    pub layout: Layout,
    pub binary: String,
    pub create_on_login: bool,
    /// The record to start from: the previous one (or a new one) naming this binary and
    /// scheduler, and whether keyward created its user.
    pub manifest: Manifest,
    /// systemctl is used (real host, systemd the init): units changed before a failure are
    /// reloaded after the rollback.
    pub systemctl: bool,
}

impl InstallPlan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn file_steps(&self) -> impl Iterator<Item = &FileStep> {
        self.steps.iter().filter_map(|s| match s {
            InstallStep::WriteFile(f) => Some(f),
            _ => None,
        })
    }

    /// A systemd unit file changes.
    pub fn units_changed(&self) -> bool {
        self.file_steps().any(|f| {
            f.change.path == schedule::TIMER_PATH || f.change.path == schedule::SERVICE_PATH
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UninstallStep {
    /// systemctl disable --now the timer; a failure is a warning.
    DisableTimer,
    /// Put a file back as it was before install (or remove it); rolled back on failure.
    RestoreFile(FileChange),
    /// sshd -t on the restored config; everything is put back if it fails.
    CheckSshd {
        sshd: String,
    },
    DaemonReload,
    ReloadSshd,
    /// userdel (and groupdel when the group outlives it); a failure is a warning.
    RemoveUser {
        prefix: Option<String>,
    },
    /// Remove `state_dir/install` and the directories install created, when empty.
    RemoveRecord {
        install_dir: String,
        created_dirs: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct UninstallPlan {
    /// `false`: there is no manifest, nothing to do.
    pub installed: bool,
    pub notes: Vec<String>,
    pub steps: Vec<UninstallStep>,
    pub layout: Layout,
}

impl UninstallPlan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn files_restored(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, UninstallStep::RestoreFile(_)))
            .count()
    }
}

/// What every file keyward manages should hold.
enum Want {
    Content(String),
    /// Leave the file as it is.
    Keep,
    /// Must not exist: removed if keyward's (or `always`), else left alone with a warning.
    Absent {
        always: bool,
    },
}

impl Want {
    fn from_option(text: Option<String>) -> Want {
        text.map_or(Want::Absent { always: false }, Want::Content)
    }
}

/// Everything `keyward install` does on the host in `snap`, or why it refuses.
pub fn plan_install(
    snap: &HostSnapshot,
    config: &Config,
    opts: &InstallOptions,
) -> Result<InstallPlan, InstallError> {
    let bin = opts.binary.as_str();
    let create_on_login = config.create_on_login;
    let layout = snap.layout.clone();
    let mut notes = Vec::new();

    if !super::is_plain_path(bin) {
        return Err(InstallError::BadBinaryPath(bin.to_owned()));
    }
    if let Some(reason) = &snap.binary_problem {
        if snap.root.is_none() {
            return Err(InstallError::UnsafeBinary {
                path: bin.to_owned(),
                reason: reason.clone(),
            });
        }
        notes.push(format!(
            "warning: sshd would refuse {bin} as AuthorizedKeysCommand ({reason}); on a real host put keyward at /usr/local/bin/keyward (root:root, 0755)"
        ));
    }
    if !snap.services {
        notes.push(format!(
            "--root {}: only files under it change; sshd -t/-T, the sshd reload and systemctl are skipped",
            snap.root.as_deref().unwrap_or("/")
        ));
    }
    if snap.sshd_dump == SshdDump::NoRunDir {
        notes.push(
            "note: /run/sshd is missing and a dry run does not create it; sshd -T is not consulted"
                .into(),
        );
    }

    let main = text(snap, MAIN_CONFIG)?.ok_or_else(|| InstallError::Missing {
        path: MAIN_CONFIG.into(),
        why: "keyward is wired into sshd through it".into(),
    })?;
    let clean_main = blocks::remove_block(&main).map_err(InstallError::in_file(MAIN_CONFIG))?;
    let events = sshd::walk(&clean_main, &|pattern: &str| snap.resolve(pattern));
    let parsed = sshd::effective(&events);
    for origin in &parsed.match_overrides {
        notes.push(format!(
            "warning: {origin}: a Match block sets AuthorizedKeysCommand(User); it overrides keyward for the connections it matches"
        ));
    }
    let dumped = match &snap.sshd_dump {
        SshdDump::Dump(dump) => Some(sshd::effective_from_dump(dump)),
        _ => None,
    };
    let foreign = foreign_command(dumped.as_ref(), &parsed, bin);
    if create_on_login {
        let use_pam = dumped.as_ref().unwrap_or(&parsed).use_pam.clone();
        if use_pam
            .as_ref()
            .is_none_or(|s| !s.value.eq_ignore_ascii_case("yes"))
        {
            notes.push("warning: sshd does not have UsePAM yes: accounts cannot be created on login until it does".into());
        }
    }
    let old = snap.manifest.as_ref();
    let sshd_plan = sshd::plan(&clean_main, &events, bin, create_on_login);
    notes.push(match &sshd_plan.placement {
        sshd::Placement::DropIn => format!(
            "sshd: keyward's directives go in {DROPIN_PATH}, read before anything else sets them"
        ),
        sshd::Placement::Block { reason } => format!(
            "sshd: keyward's directives go in a block at the top of {MAIN_CONFIG}: {reason}"
        ),
    });
    let scheduler = schedule::choose(opts.scheduler, snap.systemd_running);

    let mut wants: Vec<(&str, Want)> = vec![
        (MAIN_CONFIG, Want::Content(sshd_plan.main)),
        (DROPIN_PATH, Want::from_option(sshd_plan.dropin)),
    ];
    match text(snap, pam::PAM_PATH)? {
        Some(text) => wants.push((
            pam::PAM_PATH,
            Want::Content(
                pam::desired(&text, bin, create_on_login)
                    .map_err(InstallError::in_file(pam::PAM_PATH))?,
            ),
        )),
        None if create_on_login => {
            return Err(InstallError::Missing {
                path: pam::PAM_PATH.into(),
                why: "create_on_login needs sshd's PAM stack for the account-creation hook (set create_on_login = false to install without it)".into(),
            })
        }
        None => {}
    }
    let chain = match (&foreign, opts.replace) {
        (Some((command, _)), true) => {
            notes.push(format!(
                "--replace: the AuthorizedKeysCommand in effect now ({command}) will no longer be used"
            ));
            Want::Absent { always: true }
        }
        (Some((command, user)), false) => {
            notes.push(format!(
                "chaining: keyward will also print the keys of the AuthorizedKeysCommand in effect now ({command}, user {user:?}); --replace drops it"
            ));
            Want::Content(render_chain(command, user))
        }
        (None, true) => Want::Absent { always: true },
        (None, false) => Want::Keep,
    };
    wants.push((CHAIN_PATH, chain));
    let minute = schedule::cron_minute(&snap.host_identity);
    for (path, text) in
        schedule::desired_files(scheduler, bin, &layout.state_dir, &layout.cache_dir, minute)
    {
        wants.push((path, Want::from_option(text)));
    }

    let mut changes = Vec::new();
    for (path, want) in wants {
        let current = snap.file(path).map(<[u8]>::to_vec);
        let desired = match want {
            Want::Content(text) => Some(text.into_bytes()),
            Want::Keep => current.clone(),
            Want::Absent { always } => {
                let ours = always
                    || old.is_some_and(|m| m.record(path).is_some())
                    || current.as_deref().is_some_and(is_managed);
                if current.is_some() && !ours {
                    notes.push(format!(
                        "warning: {path} exists and is not keyward's; left alone"
                    ));
                    current.clone()
                } else {
                    None
                }
            }
        };
        if desired != current {
            changes.push(FileChange {
                path: path.to_owned(),
                current,
                desired,
            });
        }
    }

    let cache_plan = cache::plan(&layout.cache_dir, snap.cache.as_deref(), snap.user)?;
    let sshd_changed = changes
        .iter()
        .any(|c| c.path == MAIN_CONFIG || c.path == DROPIN_PATH);
    let units_changed = changes
        .iter()
        .any(|c| c.path == schedule::TIMER_PATH || c.path == schedule::SERVICE_PATH);
    let timer_wanted = scheduler == Scheduler::Systemd;
    let systemctl = snap.services && snap.systemd_running;
    let enable_timer =
        systemctl && timer_wanted && (units_changed || snap.timer_enabled != Some(true));
    let disable_timer = systemctl && !timer_wanted && units_changed;

    let mut manifest = old.cloned().unwrap_or_else(|| Manifest::new(bin));
    manifest.binary = bin.to_owned();
    manifest.scheduler = Some(scheduler);
    manifest.created_user |= snap.user.is_none();

    let mut steps = Vec::new();
    if snap.user.is_none() {
        steps.push(InstallStep::CreateUser {
            prefix: snap.root.clone(),
        });
    }
    if !snap.state_dir_exists {
        steps.push(InstallStep::CreateStateDir {
            path: layout.state_dir.clone(),
        });
    }
    if !cache_plan.is_empty() {
        steps.push(InstallStep::FixCache {
            dir: layout.cache_dir.clone(),
            plan: cache_plan,
        });
    }
    if disable_timer {
        steps.push(InstallStep::DisableTimer);
    }
    for change in changes {
        steps.push(InstallStep::WriteFile(file_step(snap, old, change)?));
    }
    if !steps.is_empty() || enable_timer {
        steps.push(InstallStep::RecordManifest);
        if let Some(sshd) = &snap.sshd {
            steps.push(InstallStep::CheckSshd { sshd: sshd.clone() });
        }
        if timer_wanted && snap.services && !snap.systemd_running {
            notes.push(format!(
                "note: systemd is not the running init; {} is written but not enabled",
                schedule::TIMER_UNIT
            ));
        }
        if enable_timer {
            steps.push(InstallStep::EnableTimer);
        } else if disable_timer {
            steps.push(InstallStep::DaemonReload);
        }
        if sshd_changed {
            if !opts.reload {
                notes.push(
                    "--no-reload: sshd is not reloaded; the change applies when sshd next reloads"
                        .into(),
                );
            } else if snap.services {
                steps.push(InstallStep::ReloadSshd);
            }
        }
    }
    Ok(InstallPlan {
        notes,
        steps,
        layout,
        binary: bin.to_owned(),
        create_on_login,
        manifest,
        systemctl,
    })
}

/// Everything `keyward uninstall` does on the host in `snap`, or why it refuses.
pub fn plan_uninstall(
    snap: &HostSnapshot,
    opts: &UninstallOptions,
) -> Result<UninstallPlan, InstallError> {
    let layout = snap.layout.clone();
    let Some(manifest) = &snap.manifest else {
        return Ok(UninstallPlan {
            installed: false,
            notes: Vec::new(),
            steps: Vec::new(),
            layout,
        });
    };
    let mut notes = Vec::new();
    if !snap.services {
        notes.push(format!(
            "--root {}: only files under it change; sshd -t, the sshd reload and systemctl are skipped",
            snap.root.as_deref().unwrap_or("/")
        ));
    }

    // Refuse before touching anything when someone changed what install wrote.
    let mut changed = Vec::new();
    let mut changes = Vec::new();
    for record in &manifest.files {
        let current = snap.file(&record.path).map(<[u8]>::to_vec);
        if manifest::check_unchanged(record, current.as_deref()).is_err() {
            changed.push(record.path.clone());
        }
        let original = match &record.original_sha256 {
            None => None,
            Some(sha) => Some(saved_original(snap, &record.path, sha)?),
        };
        if current != original {
            changes.push(FileChange {
                path: record.path.clone(),
                current,
                desired: original,
            });
        }
    }
    if !changed.is_empty() {
        if !opts.force {
            return Err(InstallError::Changed(changed));
        }
        notes.push(format!(
            "--force: restoring the originals over changes made since install: {}",
            changed.join(", ")
        ));
    }

    let systemctl = snap.services && snap.systemd_running;
    let timer_installed = manifest.record(schedule::TIMER_PATH).is_some();
    let sshd_changed = changes
        .iter()
        .any(|c| c.path == MAIN_CONFIG || c.path == DROPIN_PATH);
    let mut steps = Vec::new();
    if systemctl && timer_installed {
        steps.push(UninstallStep::DisableTimer);
    }
    steps.extend(changes.into_iter().map(UninstallStep::RestoreFile));
    if snap.services && sshd_changed {
        if let Some(sshd) = &snap.sshd {
            steps.push(UninstallStep::CheckSshd { sshd: sshd.clone() });
        }
    }
    if systemctl && timer_installed {
        steps.push(UninstallStep::DaemonReload);
    }
    if snap.services && sshd_changed {
        steps.push(UninstallStep::ReloadSshd);
    }
    if manifest.created_user && snap.user.is_some() {
        steps.push(UninstallStep::RemoveUser {
            prefix: snap.root.clone(),
        });
    }
    steps.push(UninstallStep::RemoveRecord {
        install_dir: layout.install_dir.clone(),
        created_dirs: manifest.created_dirs.iter().cloned().collect(),
    });
    Ok(UninstallPlan {
        installed: true,
        notes,
        steps,
        layout,
    })
}

/// A file's text; `None` when absent.
fn text(snap: &HostSnapshot, path: &str) -> Result<Option<String>, InstallError> {
    snap.file(path)
        .map(|bytes| {
            String::from_utf8(bytes.to_vec()).map_err(|_| InstallError::NotText(path.to_owned()))
        })
        .transpose()
}

/// The saved original of `path`, which must hash to `sha` (what the manifest recorded).
fn saved_original(snap: &HostSnapshot, path: &str, sha: &str) -> Result<Vec<u8>, InstallError> {
    match snap.saved.get(path).and_then(|b| b.as_deref()) {
        Some(bytes) if sha256_hex(bytes) == sha => Ok(bytes.to_vec()),
        _ => Err(InstallError::BadBackup {
            path: path.to_owned(),
            copy: snap.layout.copy_of(path),
        }),
    }
}

fn file_step(
    snap: &HostSnapshot,
    old: Option<&Manifest>,
    change: FileChange,
) -> Result<FileStep, InstallError> {
    let original = original_for(snap, old, &change)?;
    let saved = snap.saved.get(&change.path).and_then(|b| b.as_deref());
    let keeps_record =
        original.as_deref().map(sha256_hex) != change.desired.as_deref().map(sha256_hex);
    let copy = match &original {
        Some(bytes) if keeps_record => {
            if saved == Some(bytes.as_slice()) {
                CopyChange::Keep
            } else {
                CopyChange::Write(bytes.clone())
            }
        }
        _ if saved.is_some() => CopyChange::Remove,
        _ => CopyChange::Keep,
    };
    Ok(FileStep {
        change,
        original,
        copy,
    })
}

/// The bytes uninstall must put back for a file about to change: the saved original when the
/// file is still what keyward wrote; otherwise what is there now minus keyward's parts (a
/// file holding keyward's block is never an original).
fn original_for(
    snap: &HostSnapshot,
    old: Option<&Manifest>,
    c: &FileChange,
) -> Result<Option<Vec<u8>>, InstallError> {
    if let Some(record) = old.and_then(|m| m.record(&c.path)) {
        if c.current.as_deref().map(sha256_hex) == record.written_sha256 {
            return match &record.original_sha256 {
                None => Ok(None),
                Some(sha) => saved_original(snap, &c.path, sha).map(Some),
            };
        }
    }
    Ok(match &c.current {
        None => None,
        Some(bytes) if c.path == MAIN_CONFIG || c.path == pam::PAM_PATH => {
            let text =
                std::str::from_utf8(bytes).map_err(|_| InstallError::NotText(c.path.clone()))?;
            Some(
                blocks::remove_block(text)
                    .map_err(InstallError::in_file(&c.path))?
                    .into_bytes(),
            )
        }
        Some(bytes) if is_managed(bytes) => None,
        Some(bytes) => Some(bytes.clone()),
    })
}

/// Files keyward owns whole start with its mark.
fn is_managed(bytes: &[u8]) -> bool {
    bytes.starts_with(MANAGED_MARK.as_bytes())
}

/// `/etc/keyward/chain.toml` for the command keyward keeps working.
pub fn render_chain(command: &str, user: &str) -> String {
    format!(
        "{MANAGED_MARK}: the AuthorizedKeysCommand that was in effect before keyward.\n\
         # keyward authorized-keys runs it and prints its valid key lines too. keyward uninstall removes this file.\n\
         command = {}\nuser = {}\n",
        toml::Value::String(command.to_owned()),
        toml::Value::String(user.to_owned()),
    )
}

/// The AuthorizedKeysCommand (and its user) in effect that is not keyward's. sshd -T is the
/// authority; when it shows keyward's own command (a re-install), the config without
/// keyward's parts tells what is underneath.
fn foreign_command(
    dumped: Option<&sshd::Effective>,
    parsed: &sshd::Effective,
    bin: &str,
) -> Option<(String, String)> {
    let pick = |e: &sshd::Effective| {
        e.command
            .as_ref()
            .filter(|c| !sshd::is_keywards(&c.value, bin))
            .map(|c| {
                (
                    c.value.clone(),
                    e.command_user
                        .as_ref()
                        .map(|u| u.value.clone())
                        .unwrap_or_default(),
                )
            })
    };
    match dumped {
        Some(d)
            if d.command
                .as_ref()
                .is_some_and(|c| sshd::is_keywards(&c.value, bin)) =>
        {
            pick(parsed)
        }
        Some(d) => pick(d),
        None => pick(parsed),
    }
}
