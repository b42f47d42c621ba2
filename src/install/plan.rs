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
use super::jump::JUMP_PATH;
use super::manifest::{self, sha256_hex, Manifest};
use super::schedule::{self, Scheduler, SchedulerChoice};
use super::snapshot::{HostSnapshot, Layout, SshdDump};
use super::sshd::{self, CaWiring, Directives, CA_KEY_PATH, DROPIN_PATH, MAIN_CONFIG};
use super::{blocks, pam, InstallError, CHAIN_PATH, MANAGED_MARK};
use crate::config::{self, Config};
use crate::keys::PublicKey;

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
    /// `--ca`: sshd accepts keyward user certificates (see [`ca_wiring`]).
    pub ca: bool,
    /// The text of `--ca-public-key FILE`; else config `ssh_ca_public_key`.
    pub ca_public_key: Option<String>,
    /// `--jump`: the `[jump]` rule goes in (see [`super::jump`]); without it, a rule an
    /// earlier `--jump` installed stays (re-rendered from `[jump]`).
    pub jump: bool,
    /// `--no-jump`: the jump rule comes out.
    pub no_jump: bool,
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
    /// A missing directory (root, `mode`), its parent already there or created by the step
    /// before: the state directory, its install record, the cache's parent, the directory of
    /// a file install writes. `record`: uninstall removes it (when empty).
    CreateDir {
        path: String,
        mode: u32,
        record: bool,
    },
    /// Create the cache, give it to keyward, take group/world write off its directories.
    FixCache {
        dir: String,
        plan: cache::Plan,
    },
    /// systemctl disable --now the timer (the scheduler became cron). `enabled`: it was
    /// enabled, so a rollback enables it again (else nothing would run `sync`).
    DisableTimer {
        enabled: bool,
    },
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
    /// sshd is wired for keyward user certificates (checked in `sshd -T` too).
    pub ca: bool,
    /// The jump rule is in (its Match must not show in the global `sshd -T`).
    pub jump: bool,
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
    /// systemctl disable --now the timer; a failure is a warning. `enabled`: it was enabled,
    /// so a rollback enables it again.
    DisableTimer {
        enabled: bool,
    },
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
    let ca = ca_wiring(snap, config, opts, old)?;
    if let Some((wiring, key)) = &ca {
        notes.extend(ca_notes(
            wiring,
            key,
            dumped.as_ref().unwrap_or(&parsed),
            bin,
        ));
    }
    let jump = jump_rule(snap, config, opts, old)?;
    if let (Some(_), Some(j)) = (&jump, &config.jump) {
        notes.push(format!(
            "jump host: members of Linux group {} get no shell or command{} and may only forward to port {} of {}",
            j.group,
            if j.admin_groups.is_empty() {
                String::new()
            } else {
                format!(" (unless in {})", j.admin_groups.join(", "))
            },
            j.port,
            j.destinations.join(", ")
        ));
    }
    let directives = Directives {
        binary: bin,
        create_on_login,
        ca: ca.as_ref().map(|(wiring, _)| wiring),
        jump: jump.is_some(),
    };
    let sshd_plan = sshd::plan(&clean_main, &events, &directives);
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
        (
            CA_KEY_PATH,
            Want::from_option(ca.as_ref().map(|(_, key)| render_ca_key(key))),
        ),
        (JUMP_PATH, Want::from_option(jump.clone())),
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
    let sshd_changed = changes.iter().any(|c| is_sshd_file(&c.path));
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

    // Every directory the run creates is a step, each once, parents first.
    let mut made = std::collections::BTreeSet::new();
    let mut create_dirs = |dir: &str, mode: u32, record: bool| -> Vec<InstallStep> {
        snap.missing_dirs(dir)
            .into_iter()
            .filter(|d| made.insert(d.clone()))
            .map(|path| InstallStep::CreateDir { path, mode, record })
            .collect()
    };
    let mut steps = Vec::new();
    if snap.user.is_none() {
        steps.push(InstallStep::CreateUser {
            prefix: snap.root.clone(),
        });
    }
    steps.extend(create_dirs(&layout.state_dir, 0o755, false));
    if !cache_plan.is_empty() {
        if let Some(parent) = std::path::Path::new(&layout.cache_dir)
            .parent()
            .filter(|_| cache_plan.create_dir)
        {
            steps.extend(create_dirs(&parent.to_string_lossy(), 0o755, false));
        }
        steps.push(InstallStep::FixCache {
            dir: layout.cache_dir.clone(),
            plan: cache_plan,
        });
    }
    if disable_timer {
        steps.push(InstallStep::DisableTimer {
            enabled: snap.timer_enabled == Some(true),
        });
    }
    if !steps.is_empty() || !changes.is_empty() || enable_timer {
        // The manifest and the saved originals: root's alone.
        steps.extend(create_dirs(&layout.originals, 0o700, false));
        for change in changes {
            if change.desired.is_some() {
                if let Some(parent) = std::path::Path::new(&change.path).parent() {
                    steps.extend(create_dirs(&parent.to_string_lossy(), 0o755, true));
                }
            }
            steps.push(InstallStep::WriteFile(file_step(snap, old, change)?));
        }
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
        ca: ca.is_some(),
        jump: jump.is_some(),
        manifest,
        systemctl,
    })
}

/// A file sshd reads: a change means `sshd -t` and a reload.
fn is_sshd_file(path: &str) -> bool {
    [MAIN_CONFIG, DROPIN_PATH, JUMP_PATH].contains(&path)
}

/// The text of [`JUMP_PATH`] with `--jump`, or when an earlier `--jump` wrote it (which needs
/// the config's `[jump]` table); `None` with `--no-jump` or when neither. A plain re-install
/// keeps the rule: dropping it silently would give every member of the jump group a shell.
fn jump_rule(
    snap: &HostSnapshot,
    config: &Config,
    opts: &InstallOptions,
    old: Option<&Manifest>,
) -> Result<Option<String>, InstallError> {
    let installed = old
        .and_then(|m| m.record(JUMP_PATH))
        .is_some_and(|r| r.written_sha256.is_some());
    if opts.no_jump || !(opts.jump || installed) {
        return Ok(None);
    }
    let table = config.jump.as_ref().ok_or(InstallError::NoJumpConfig)?;
    if snap.jump_group_missing {
        return Err(InstallError::NoJumpGroup {
            group: table.group.clone(),
            prefix: config.group_prefix.clone(),
        });
    }
    if snap.jump_group_foreign {
        return Err(InstallError::ForeignJumpGroup {
            group: table.group.clone(),
            prefix: config.group_prefix.clone(),
        });
    }
    super::jump::render(table)
        .map(Some)
        .map_err(InstallError::BadJump)
}

/// Whether sshd is to accept keyward user certificates, and with which CA key: with `--ca`,
/// or when an earlier `install --ca` wrote the CA file (so a plain re-install keeps the
/// wiring). The key is `--ca-public-key`'s, else config `ssh_ca_public_key`, else (a
/// re-install) the one installed; it must be ECDSA P-256 or P-384. The host certificates are
/// those present now that hold an OpenSSH certificate.
pub fn ca_wiring(
    snap: &HostSnapshot,
    config: &Config,
    opts: &InstallOptions,
    old: Option<&Manifest>,
) -> Result<Option<(CaWiring, PublicKey)>, InstallError> {
    let installed = old
        .and_then(|m| m.record(CA_KEY_PATH))
        .is_some_and(|r| r.written_sha256.is_some());
    if !opts.ca && !installed {
        return Ok(None);
    }
    let (line, source) = if let Some(text) = &opts.ca_public_key {
        (text.clone(), "--ca-public-key")
    } else if let Some(line) = &config.ssh_ca_public_key {
        (line.clone(), "ssh_ca_public_key")
    } else if let Some(line) = snap.file(CA_KEY_PATH).and_then(installed_ca_line) {
        (line, CA_KEY_PATH)
    } else {
        return Err(InstallError::NoCaKey);
    };
    let key = config::ca_public_key(&line).map_err(|problem| InstallError::BadCaKey {
        from: source,
        problem,
    })?;
    let host_certificates = snap
        .host_certificates
        .iter()
        .filter(|(path, text)| super::is_plain_path(path) && is_certificate(text))
        .map(|(path, _)| path.clone())
        .collect();
    Ok(Some((CaWiring { host_certificates }, key)))
}

/// The key line of the CA file install wrote: its first line that is not a comment.
fn installed_ca_line(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes)
        .ok()?
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
}

/// An OpenSSH certificate line: its type ends in `-cert-v01@openssh.com`.
fn is_certificate(text: &str) -> bool {
    text.split_ascii_whitespace()
        .next()
        .is_some_and(|t| t.ends_with("-cert-v01@openssh.com"))
}

/// The CA file sshd reads (`TrustedUserCAKeys`): keyward's mark, then the key line.
pub fn render_ca_key(key: &PublicKey) -> String {
    format!(
        "{MANAGED_MARK}: the user CA sshd trusts (TrustedUserCAKeys).\n\
         # keyward uninstall removes this file; `keyward install --ca` rewrites it.\n{}\n",
        key.to_line()
    )
}

/// What `--ca` means on this host, and what it overrides.
fn ca_notes(
    wiring: &CaWiring,
    key: &PublicKey,
    before: &sshd::Effective,
    bin: &str,
) -> Vec<String> {
    let mut notes = vec![format!(
        "certificates: sshd trusts the user CA {} ({}) in {CA_KEY_PATH}; `keyward authorized-principals` accepts a certificate only for the keyward account of the IAM UserId in its key id",
        key.fingerprint(),
        key.key_type().name()
    )];
    if wiring.host_certificates.is_empty() {
        notes.push("certificates: no host certificate in /etc/ssh (`keyward host-cert` writes them; run install again after)".into());
    } else {
        notes.push(format!(
            "certificates: sshd presents host certificates {}",
            wiring.host_certificates.join(", ")
        ));
    }
    if let Some(s) = &before.trusted_ca {
        if s.value != CA_KEY_PATH {
            notes.push(format!(
                "warning: {}: TrustedUserCAKeys {} is replaced by keyward's (sshd keeps the first value it reads)",
                s.origin, s.value
            ));
        }
    }
    if let Some(s) = &before.principals_command {
        if s.value != sshd::authorized_principals_command(bin) {
            notes.push(format!(
                "warning: {}: AuthorizedPrincipalsCommand {} is replaced by keyward's",
                s.origin, s.value
            ));
        }
    }
    notes
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
    let sshd_changed = changes.iter().any(|c| is_sshd_file(&c.path));
    let mut steps = Vec::new();
    if systemctl && timer_installed {
        steps.push(UninstallStep::DisableTimer {
            enabled: snap.timer_enabled == Some(true),
        });
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::install::cache::{Entry, Kind};
    use crate::install::describe;
    use crate::install::pam::tests::DEBIAN_PAM;
    use crate::install::snapshot::MANAGED_PATHS;
    use crate::install::sshd::tests::{AMAZON_LINUX_SSHD, DEBIAN_SSHD};

    const BIN: &str = "/usr/local/bin/keyward";
    const KEYWARD: (u32, u32) = (998, 997);
    const DROPIN_GLOB: &str = "/etc/ssh/sshd_config.d/*.conf";

    /// A Debian host with systemd, sshd and PAM as shipped, and nothing of keyward's.
    fn fresh() -> HostSnapshot {
        let mut files: BTreeMap<String, Option<Vec<u8>>> = MANAGED_PATHS
            .iter()
            .map(|p| (p.to_string(), None))
            .collect();
        files.insert(MAIN_CONFIG.into(), Some(DEBIAN_SSHD.into()));
        files.insert(pam::PAM_PATH.into(), Some(DEBIAN_PAM.into()));
        let saved = files.keys().map(|p| (p.clone(), None)).collect();
        HostSnapshot {
            root: None,
            services: true,
            sshd: Some("/usr/sbin/sshd".into()),
            layout: Layout::new(&Config::default()),
            files,
            saved,
            includes: [(DROPIN_GLOB.to_owned(), Vec::new())].into(),
            manifest: None,
            user: None,
            cache: None,
            dirs: [
                "/var/lib/keyward",
                "/var/lib/keyward/install",
                "/var/lib/keyward/install/originals",
            ]
            .into_iter()
            .map(|d| (d.to_owned(), false))
            .collect(),
            systemd_running: true,
            timer_enabled: Some(false),
            sshd_dump: SshdDump::Dump(sshd::parse_dump(
                "port 22\nauthorizedkeyscommand none\nauthorizedkeyscommanduser none\nusepam yes\n",
            )),
            host_identity: "4b2d0b0f1c3e4a8f9d6e7c5b4a39281f".into(),
            binary_problem: None,
            host_certificates: Vec::new(),
            jump_group_missing: false,
            jump_group_foreign: false,
        }
    }

    fn opts() -> InstallOptions {
        InstallOptions {
            root: None,
            binary: BIN.into(),
            dry_run: false,
            replace: false,
            scheduler: SchedulerChoice::Auto,
            reload: true,
            ca: false,
            ca_public_key: None,
            jump: false,
            no_jump: false,
        }
    }

    fn uninstall_opts() -> UninstallOptions {
        UninstallOptions {
            root: None,
            dry_run: false,
            force: false,
        }
    }

    fn plan(snap: &HostSnapshot) -> InstallPlan {
        plan_install(snap, &Config::default(), &opts()).unwrap()
    }

    fn dir(rel: &str, (uid, gid): (u32, u32), mode: u32) -> Entry {
        Entry {
            rel: rel.into(),
            uid,
            gid,
            mode,
            kind: Kind::Dir,
            nlink: 2,
        }
    }

    /// The host after `plan` was applied, as `read_host` would see it.
    fn applied(snap: &HostSnapshot, plan: &InstallPlan) -> HostSnapshot {
        let mut s = snap.clone();
        let mut manifest = plan.manifest.clone();
        for step in &plan.steps {
            match step {
                InstallStep::CreateUser { .. } => s.user = Some(KEYWARD),
                InstallStep::CreateDir { path, .. } => {
                    s.dirs.insert(path.clone(), true);
                }
                InstallStep::FixCache { plan: cache, .. } => {
                    let mut entries = s.cache.clone().unwrap_or_default();
                    if cache.create_dir {
                        entries.push(dir("", KEYWARD, 0o755));
                    }
                    entries.extend(cache.create.iter().map(|sub| dir(sub, KEYWARD, 0o755)));
                    entries.retain(|e| !cache.remove.iter().any(|(rel, _)| *rel == e.rel));
                    for e in &mut entries {
                        (e.uid, e.gid) = s.user.unwrap();
                        if let Some((_, mode)) = cache.chmod.iter().find(|(rel, _)| *rel == e.rel) {
                            e.mode = *mode;
                        }
                    }
                    s.cache = Some(entries);
                }
                InstallStep::WriteFile(f) => {
                    let path = f.change.path.clone();
                    s.files.insert(path.clone(), f.change.desired.clone());
                    manifest.set(&path, f.original.as_deref(), f.change.desired.as_deref());
                    match &f.copy {
                        CopyChange::Write(bytes) => {
                            s.saved.insert(path, Some(bytes.clone()));
                        }
                        CopyChange::Remove => {
                            s.saved.insert(path, None);
                        }
                        CopyChange::Keep => {}
                    }
                }
                InstallStep::EnableTimer => s.timer_enabled = Some(true),
                InstallStep::DisableTimer { .. } => s.timer_enabled = Some(false),
                InstallStep::RecordManifest
                | InstallStep::CheckSshd { .. }
                | InstallStep::DaemonReload
                | InstallStep::ReloadSshd => {}
            }
        }
        s.manifest = Some(manifest);
        // sshd now reads keyward's directives (the drop-in is included, or the block is first).
        if let SshdDump::Dump(_) = s.sshd_dump {
            s.sshd_dump = SshdDump::Dump(sshd::parse_dump(&format!(
                "authorizedkeyscommand {}\nauthorizedkeyscommanduser keyward\nusepam yes\n",
                sshd::authorized_keys_command(BIN)
            )));
        }
        s
    }

    fn installed() -> HostSnapshot {
        let snap = fresh();
        applied(&snap, &plan(&snap))
    }

    fn kinds(plan: &InstallPlan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| match s {
                InstallStep::WriteFile(f) => format!("write {}", f.change.path),
                InstallStep::CreateDir { path, mode, .. } => format!("mkdir {path} {mode:04o}"),
                other => format!("{other:?}")
                    .split([' ', '(', '{'])
                    .next()
                    .unwrap()
                    .to_owned(),
            })
            .collect()
    }

    #[test]
    fn fresh_host_gets_user_dirs_files_checked_timer_and_reload_in_that_order() {
        let p = plan(&fresh());
        assert_eq!(
            kinds(&p),
            [
                "CreateUser",
                "mkdir /var/lib/keyward 0755",
                "FixCache",
                "mkdir /var/lib/keyward/install 0700",
                "mkdir /var/lib/keyward/install/originals 0700",
                "write /etc/ssh/sshd_config.d/00-keyward.conf",
                "write /etc/pam.d/sshd",
                "write /etc/systemd/system/keyward-sync.service",
                "write /etc/systemd/system/keyward-sync.timer",
                "RecordManifest",
                "CheckSshd",
                "EnableTimer",
                "ReloadSshd",
            ]
        );
        assert!(p.manifest.created_user);
        assert_eq!(p.manifest.scheduler, Some(Scheduler::Systemd));
        let lines = describe::install(&p, true).join("\n");
        for expected in [
            "sshd: keyward's directives go in /etc/ssh/sshd_config.d/00-keyward.conf",
            "would create system user keyward: useradd --system",
            "would create directory /var/lib/keyward (root, 0755)",
            "would create directory /var/cache/keyward (keyward, 0755)",
            "would create /etc/ssh/sshd_config.d/00-keyward.conf:",
            "would modify /etc/pam.d/sshd:",
            "would check with sshd -t and sshd -T",
            "would run: systemctl daemon-reload; systemctl enable --now keyward-sync.timer",
            "would reload sshd",
        ] {
            assert!(
                lines.contains(expected),
                "missing {expected:?} in:\n{lines}"
            );
        }
        // The PAM original is the file as shipped, saved before it changes.
        let pam_step = p
            .file_steps()
            .find(|f| f.change.path == pam::PAM_PATH)
            .unwrap();
        assert_eq!(pam_step.original.as_deref(), Some(DEBIAN_PAM.as_bytes()));
        assert_eq!(pam_step.copy, CopyChange::Write(DEBIAN_PAM.into()));
    }

    #[test]
    fn applying_the_plan_then_planning_again_gives_an_empty_plan() {
        let again = plan(&installed());
        assert!(again.is_empty(), "{:?}", again.steps);
        let lines = describe::install(&again, false);
        assert_eq!(lines.last().unwrap(), "already installed; nothing changed");
        assert!(describe::install(&again, true)
            .iter()
            .all(|l| !l.starts_with("would ")));
    }

    #[test]
    fn foreign_authorized_keys_command_is_chained_or_replaced() {
        let mut snap = fresh();
        snap.files
            .insert(MAIN_CONFIG.into(), Some(AMAZON_LINUX_SSHD.into()));
        snap.sshd_dump = SshdDump::Dump(sshd::parse_dump(
            "authorizedkeyscommand /opt/aws/bin/eic_run_authorized_keys %u %f\nauthorizedkeyscommanduser ec2-instance-connect\nusepam yes\n",
        ));
        let p = plan(&snap);
        let chain = p
            .file_steps()
            .find(|f| f.change.path == CHAIN_PATH)
            .unwrap();
        assert_eq!(
            chain.change.desired.as_deref(),
            Some(
                render_chain(
                    "/opt/aws/bin/eic_run_authorized_keys %u %f",
                    "ec2-instance-connect"
                )
                .as_bytes()
            )
        );
        assert!(
            p.notes.iter().any(|n| n.starts_with("chaining:")),
            "{:?}",
            p.notes
        );
        // No Include of the drop-in directory: the block at the top of sshd_config.
        let main = p
            .file_steps()
            .find(|f| f.change.path == MAIN_CONFIG)
            .unwrap();
        assert!(
            String::from_utf8_lossy(main.change.desired.as_ref().unwrap())
                .starts_with("# BEGIN keyward")
        );
        assert_eq!(main.original.as_deref(), Some(AMAZON_LINUX_SSHD.as_bytes()));
        // Re-planning after install keeps the chain: sshd -T then shows keyward's command.
        assert!(plan(&applied(&snap, &p)).is_empty());

        let replace = InstallOptions {
            replace: true,
            ..opts()
        };
        let p = plan_install(&snap, &Config::default(), &replace).unwrap();
        assert!(p.file_steps().all(|f| f.change.path != CHAIN_PATH));
        assert!(p.notes.iter().any(|n| n.starts_with("--replace: the AuthorizedKeysCommand in effect now (/opt/aws/bin/eic_run_authorized_keys %u %f)")));
    }

    #[test]
    fn a_foreign_file_in_keywards_place_is_left_alone_and_a_marked_one_removed() {
        let mut snap = fresh();
        snap.files.insert(
            schedule::CRON_PATH.into(),
            Some(b"0 * * * * root /usr/local/bin/admin-job\n".to_vec()),
        );
        let p = plan(&snap);
        assert!(p.file_steps().all(|f| f.change.path != schedule::CRON_PATH));
        assert!(p.notes.contains(
            &"warning: /etc/cron.d/keyward exists and is not keyward's; left alone".into()
        ));

        snap.files.insert(
            schedule::CRON_PATH.into(),
            Some(format!("{MANAGED_MARK}\n0 * * * * root {BIN} sync\n").into_bytes()),
        );
        let p = plan(&snap);
        let cron = p
            .file_steps()
            .find(|f| f.change.path == schedule::CRON_PATH)
            .unwrap();
        assert_eq!(cron.change.desired, None);
        assert_eq!(
            cron.original, None,
            "a file keyward owns whole is never an original"
        );
    }

    #[test]
    fn without_systemd_the_schedule_is_cron_and_systemctl_never_runs() {
        let mut snap = fresh();
        snap.systemd_running = false;
        snap.timer_enabled = None;
        let p = plan(&snap);
        let k = kinds(&p);
        assert!(k.contains(&"write /etc/cron.d/keyward".to_owned()), "{k:?}");
        assert!(
            !k.iter()
                .any(|s| s.contains("systemd") || s.contains("Timer") || s == "DaemonReload"),
            "{k:?}"
        );
        assert_eq!(p.manifest.scheduler, Some(Scheduler::Cron));
        assert!(!p.systemctl);
        assert!(plan(&applied(&snap, &p)).is_empty());

        // --scheduler systemd without systemd running: units written, not enabled, and said so.
        let forced = InstallOptions {
            scheduler: SchedulerChoice::Systemd,
            ..opts()
        };
        let p = plan_install(&snap, &Config::default(), &forced).unwrap();
        assert!(p
            .file_steps()
            .any(|f| f.change.path == schedule::TIMER_PATH));
        assert!(!p.steps.contains(&InstallStep::EnableTimer));
        assert!(p
            .notes
            .iter()
            .any(|n| n.starts_with("note: systemd is not the running init")));
    }

    #[test]
    fn a_timer_that_is_not_enabled_is_enabled_and_an_enabled_one_left_alone() {
        let mut snap = installed();
        snap.timer_enabled = Some(false);
        let p = plan(&snap);
        assert_eq!(kinds(&p), ["RecordManifest", "CheckSshd", "EnableTimer"]);
        assert!(describe::install(&p, false).contains(
            &"run: systemctl daemon-reload; systemctl enable --now keyward-sync.timer".into()
        ));
        snap.timer_enabled = Some(true);
        assert!(plan(&snap).is_empty());
    }

    #[test]
    fn switching_to_cron_disables_the_timer_and_removes_the_units() {
        let snap = installed();
        let cron = InstallOptions {
            scheduler: SchedulerChoice::Cron,
            ..opts()
        };
        let p = plan_install(&snap, &Config::default(), &cron).unwrap();
        let k = kinds(&p);
        assert_eq!(k[0], "DisableTimer", "{k:?}");
        assert!(k.contains(&"write /etc/cron.d/keyward".to_owned()));
        assert!(k.contains(&"DaemonReload".to_owned()));
        let units = p
            .file_steps()
            .filter(|f| f.change.path.starts_with("/etc/systemd/"))
            .count();
        assert_eq!(units, 2);
        assert!(p.units_changed());
        // An enabled timer is enabled again by a rollback, and the description says so; one that
        // was not enabled is not.
        assert_eq!(p.steps[0], InstallStep::DisableTimer { enabled: true });
        assert!(describe::install(&p, true).contains(
            &"would run: systemctl disable --now keyward-sync.timer (enabled again if a later step fails)".into()
        ));
        let mut off = snap.clone();
        off.timer_enabled = Some(false);
        let p = plan_install(&off, &Config::default(), &cron).unwrap();
        assert_eq!(p.steps[0], InstallStep::DisableTimer { enabled: false });
    }

    #[test]
    fn i9_gid_only_cache_mismatch_is_planned_described_and_fixed() {
        let mut snap = installed();
        let cache = snap.cache.as_mut().unwrap();
        cache[1].gid = 0;
        let keys = cache[1].rel.clone();
        let p = plan(&snap);
        let Some(InstallStep::FixCache { plan: fix, .. }) = p.steps.first() else {
            panic!("no cache fix: {:?}", p.steps);
        };
        assert_eq!(fix.chown, [keys]);
        assert!(describe::install(&p, true).contains(&"would give 1 cache directory to keyward (chown, never through a symlink): /var/cache/keyward/keys".into()));
        assert!(plan(&applied(&snap, &p)).is_empty());
    }

    #[test]
    fn i9_group_writable_cache_dir_is_planned_described_and_fixed() {
        let mut snap = installed();
        snap.cache.as_mut().unwrap()[0].mode = 0o777;
        let p = plan(&snap);
        let Some(InstallStep::FixCache { plan: fix, .. }) = p.steps.first() else {
            panic!("no cache fix: {:?}", p.steps);
        };
        assert_eq!(fix.chmod, [(PathBuf::new(), 0o755)]);
        assert!(fix.chown.is_empty());
        assert!(describe::install(&p, true).contains(&"would remove group and world write from 1 cache directory (chmod go-w, never through a symlink): /var/cache/keyward".into()));
        assert!(plan(&applied(&snap, &p)).is_empty());
    }

    #[test]
    fn refusals_are_errors_never_partial_plans() {
        let config = Config::default();
        let bad = InstallOptions {
            binary: "/opt/my dir/keyward".into(),
            ..opts()
        };
        assert!(matches!(
            plan_install(&fresh(), &config, &bad),
            Err(InstallError::BadBinaryPath(_))
        ));

        let mut snap = fresh();
        snap.binary_problem = Some("/home/a is owned by uid 1000, not root".into());
        assert!(matches!(
            plan_install(&snap, &config, &opts()),
            Err(InstallError::UnsafeBinary { .. })
        ));
        // On a --root tree it is a warning: the tree is not where sshd runs it.
        snap.root = Some("/tmp/tree".into());
        let p = plan_install(&snap, &config, &opts()).unwrap();
        assert!(p.notes[0].starts_with("warning: sshd would refuse /usr/local/bin/keyward"));

        let mut snap = fresh();
        snap.files.insert(MAIN_CONFIG.into(), None);
        let err = plan_install(&snap, &config, &opts()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/etc/ssh/sshd_config does not exist"),
            "{err}"
        );

        let mut snap = fresh();
        snap.files.insert(pam::PAM_PATH.into(), None);
        let err = plan_install(&snap, &config, &opts()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/etc/pam.d/sshd does not exist"),
            "{err}"
        );
        let off = Config {
            create_on_login: false,
            ..Config::default()
        };
        assert!(plan_install(&snap, &off, &opts()).is_ok());

        let mut snap = installed();
        let record = snap
            .manifest
            .as_ref()
            .unwrap()
            .record(pam::PAM_PATH)
            .unwrap()
            .clone();
        assert!(record.original_sha256.is_some());
        snap.saved
            .insert(pam::PAM_PATH.into(), Some(b"not the original".to_vec()));
        // Turning the hook off rewrites PAM, whose recorded original no longer matches its copy.
        let err = plan_install(&snap, &off, &opts()).unwrap_err();
        assert!(matches!(err, InstallError::BadBackup { .. }), "{err}");
    }

    #[test]
    fn without_services_nothing_runs_but_files_the_user_and_the_cache() {
        let mut snap = fresh();
        snap.root = Some("/tmp/tree".into());
        snap.services = false;
        snap.sshd = None;
        snap.sshd_dump = SshdDump::NotRun;
        snap.timer_enabled = None;
        let p = plan(&snap);
        let k = kinds(&p);
        assert!(
            !k.iter().any(
                |s| ["CheckSshd", "EnableTimer", "ReloadSshd", "DaemonReload"]
                    .contains(&s.as_str())
            ),
            "{k:?}"
        );
        assert_eq!(
            p.steps[0],
            InstallStep::CreateUser {
                prefix: Some("/tmp/tree".into())
            }
        );
        assert!(p
            .notes
            .iter()
            .any(|n| n.starts_with("--root /tmp/tree: only files under it change")));
    }

    #[test]
    fn uninstall_with_nothing_installed_is_an_empty_plan() {
        let p = plan_uninstall(&fresh(), &uninstall_opts()).unwrap();
        assert!(!p.installed && p.is_empty());
        assert_eq!(
            describe::uninstall(&p, true),
            ["not installed; nothing to do"]
        );
    }

    #[test]
    fn uninstall_restores_every_file_disables_the_timer_and_removes_the_user() {
        let snap = installed();
        let p = plan_uninstall(&snap, &uninstall_opts()).unwrap();
        let restored: Vec<_> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                UninstallStep::RestoreFile(c) => Some((c.path.as_str(), c.desired.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            restored,
            [
                (DROPIN_PATH, None),
                (pam::PAM_PATH, Some(DEBIAN_PAM.into())),
                (schedule::SERVICE_PATH, None),
                (schedule::TIMER_PATH, None),
            ]
        );
        assert_eq!(p.steps[0], UninstallStep::DisableTimer { enabled: true });
        assert!(p.steps.contains(&UninstallStep::CheckSshd {
            sshd: "/usr/sbin/sshd".into()
        }));
        assert!(p
            .steps
            .contains(&UninstallStep::RemoveUser { prefix: None }));
        assert!(matches!(
            p.steps.last(),
            Some(UninstallStep::RemoveRecord { .. })
        ));
        assert_eq!(p.files_restored(), 4);
        let lines = describe::uninstall(&p, true).join("\n");
        assert!(
            lines.contains("would remove /etc/ssh/sshd_config.d/00-keyward.conf"),
            "{lines}"
        );
        assert!(
            lines.contains("would remove system user keyward: userdel keyward"),
            "{lines}"
        );
    }

    #[test]
    fn uninstall_of_a_partial_install_does_only_what_is_left() {
        // install got as far as the cron file, without creating the user (it existed).
        let mut snap = fresh();
        snap.services = false;
        snap.sshd = None;
        snap.user = Some(KEYWARD);
        let cron = format!("{MANAGED_MARK}\n");
        snap.files
            .insert(schedule::CRON_PATH.into(), Some(cron.clone().into_bytes()));
        let mut m = Manifest::new(BIN);
        m.set(schedule::CRON_PATH, None, Some(cron.as_bytes()));
        snap.manifest = Some(m.clone());
        let p = plan_uninstall(&snap, &uninstall_opts()).unwrap();
        assert_eq!(
            p.steps,
            [
                UninstallStep::RestoreFile(FileChange {
                    path: schedule::CRON_PATH.into(),
                    current: Some(cron.clone().into_bytes()),
                    desired: None,
                }),
                UninstallStep::RemoveRecord {
                    install_dir: "/var/lib/keyward/install".into(),
                    created_dirs: Vec::new(),
                },
            ]
        );
        // The user install created is gone already: nothing to remove.
        m.created_user = true;
        snap.manifest = Some(m);
        snap.user = None;
        let p = plan_uninstall(&snap, &uninstall_opts()).unwrap();
        assert!(!p
            .steps
            .iter()
            .any(|s| matches!(s, UninstallStep::RemoveUser { .. })));
    }

    #[test]
    fn uninstall_refuses_a_changed_file_unless_forced_and_a_bad_copy_always() {
        let mut snap = installed();
        snap.files.insert(
            pam::PAM_PATH.into(),
            Some(format!("{DEBIAN_PAM}# admin\n").into_bytes()),
        );
        let err = plan_uninstall(&snap, &uninstall_opts()).unwrap_err();
        assert!(
            matches!(&err, InstallError::Changed(paths) if paths == &[pam::PAM_PATH.to_owned()]),
            "{err}"
        );
        let force = UninstallOptions {
            force: true,
            ..uninstall_opts()
        };
        let p = plan_uninstall(&snap, &force).unwrap();
        assert!(p
            .notes
            .iter()
            .any(|n| n.starts_with("--force: restoring the originals")));
        assert!(p.steps.contains(&UninstallStep::RestoreFile(FileChange {
            path: pam::PAM_PATH.into(),
            current: Some(format!("{DEBIAN_PAM}# admin\n").into_bytes()),
            desired: Some(DEBIAN_PAM.into()),
        })));

        snap.saved.insert(pam::PAM_PATH.into(), None);
        assert!(matches!(
            plan_uninstall(&snap, &force),
            Err(InstallError::BadBackup { .. })
        ));
    }
    const CA_P256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDIxSjUJea8/R7sZtXTplF4QlTq8TGgD1NvPUIiZrbFXj/JxFiqiXmla5naP/j/t2h7HhOXofya5Mqc0yDw+bHI= alias/keyward-ca";
    const HOST_CERT: &str = "/etc/ssh/ssh_host_ed25519_key-cert.pub";

    fn ca_config() -> Config {
        Config {
            ssh_ca_public_key: Some(CA_P256.into()),
            ..Config::default()
        }
    }

    fn ca_opts() -> InstallOptions {
        InstallOptions { ca: true, ..opts() }
    }

    fn desired(p: &InstallPlan, path: &str) -> Option<String> {
        p.file_steps()
            .find(|f| f.change.path == path)
            .and_then(|f| f.change.desired.clone())
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn ca_writes_the_ca_key_and_the_principals_wiring_and_a_rerun_plans_nothing() {
        let snap = fresh();
        let p = plan_install(&snap, &ca_config(), &ca_opts()).unwrap();
        assert!(p.ca);
        let key = desired(&p, CA_KEY_PATH).unwrap();
        assert!(key.starts_with(MANAGED_MARK), "{key}");
        assert!(key.ends_with(&format!("\n{CA_P256}\n")), "{key}");
        let dropin = desired(&p, DROPIN_PATH).unwrap();
        for line in [
            format!("TrustedUserCAKeys {CA_KEY_PATH}"),
            format!("AuthorizedPrincipalsCommand {BIN} authorized-principals %u %i"),
            "AuthorizedPrincipalsCommandUser keyward".to_owned(),
        ] {
            assert!(dropin.lines().any(|l| l == line), "{line:?} in\n{dropin}");
        }
        assert!(!dropin.contains("HostCertificate"), "{dropin}");
        let lines = describe::install(&p, true).join("\n");
        assert!(
            lines.contains("would create /etc/ssh/keyward_user_ca.pub:"),
            "{lines}"
        );
        assert!(
            lines.contains("certificates: sshd trusts the user CA SHA256:"),
            "{lines}"
        );
        assert!(lines.contains("no host certificate in /etc/ssh"), "{lines}");

        // Idempotent, and a plain re-install (no --ca, no key in the config) keeps the wiring.
        let installed = applied(&snap, &p);
        assert!(plan_install(&installed, &ca_config(), &ca_opts())
            .unwrap()
            .is_empty());
        let again = plan_install(&installed, &Config::default(), &opts()).unwrap();
        assert!(again.is_empty(), "{:?}", again.steps);
        assert!(again.ca);

        // Uninstall removes the CA file with the rest.
        let u = plan_uninstall(&installed, &uninstall_opts()).unwrap();
        assert!(u.steps.contains(&UninstallStep::RestoreFile(FileChange {
            path: CA_KEY_PATH.into(),
            current: Some(key.into_bytes()),
            desired: None,
        })));
    }

    #[test]
    fn ca_adds_host_certificates_present_at_plan_time_and_skips_other_files() {
        let mut snap = installed();
        snap.host_certificates = vec![
            (
                "/etc/ssh/ssh_host_ecdsa_key-cert.pub".into(),
                "not a certificate\n".into(),
            ),
            (
                HOST_CERT.into(),
                "ssh-ed25519-cert-v01@openssh.com AAAA host\n".into(),
            ),
        ];
        let p = plan_install(&snap, &ca_config(), &ca_opts()).unwrap();
        let dropin = desired(&p, DROPIN_PATH).unwrap();
        assert!(dropin
            .lines()
            .any(|l| l == format!("HostCertificate {HOST_CERT}")));
        assert_eq!(dropin.matches("HostCertificate").count(), 1, "{dropin}");
        assert!(p.notes.contains(&format!(
            "certificates: sshd presents host certificates {HOST_CERT}"
        )));
        assert!(plan_install(&applied(&snap, &p), &ca_config(), &ca_opts())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn ca_without_a_usable_ecdsa_key_is_refused_before_anything_changes() {
        let err = plan_install(&fresh(), &Config::default(), &ca_opts()).unwrap_err();
        assert!(matches!(err, InstallError::NoCaKey), "{err}");
        assert!(err.to_string().contains("ssh_ca_public_key"), "{err}");
        let ed25519 = InstallOptions {
            ca_public_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPem771ZO7qVqfB6sb1dtjWpvcaaJt9MPCab5sOrPxrF x\n".into()),
            ..ca_opts()
        };
        let err = plan_install(&fresh(), &ca_config(), &ed25519).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--ca-public-key: a ssh-ed25519 key; a keyward CA is ECDSA"),
            "{err}"
        );
        // --ca-public-key wins over the config.
        let file = InstallOptions {
            ca_public_key: Some(format!("{CA_P256}\n")),
            ..ca_opts()
        };
        let p = plan_install(&fresh(), &Config::default(), &file).unwrap();
        assert!(desired(&p, CA_KEY_PATH).unwrap().contains(CA_P256));
    }

    fn jump_config() -> Config {
        Config {
            jump: Some(config::JumpConfig {
                group: "bastion".into(),
                destinations: vec!["10.0.1.0/30".into()],
                port: 22,
                admin_groups: vec!["ops".into()],
            }),
            ..Config::default()
        }
    }

    fn jump_opts() -> InstallOptions {
        InstallOptions {
            jump: true,
            ..opts()
        }
    }

    /// The host's files after `p` (an uninstall plan) restored them.
    fn restored(snap: &HostSnapshot, p: &UninstallPlan) -> BTreeMap<String, Option<Vec<u8>>> {
        let mut files = snap.files.clone();
        for step in &p.steps {
            if let UninstallStep::RestoreFile(c) = step {
                files.insert(c.path.clone(), c.desired.clone());
            }
        }
        files
    }

    #[test]
    fn jump_on_a_fresh_host_writes_the_rule_and_the_include_and_checks_sshd() {
        let p = plan_install(&fresh(), &jump_config(), &jump_opts()).unwrap();
        assert!(p.jump);
        let rule = desired(&p, JUMP_PATH).unwrap();
        assert!(rule.starts_with(MANAGED_MARK), "{rule}");
        assert!(rule.contains("\nMatch Group bastion,!ops\n"), "{rule}");
        assert!(
            rule.contains("\tPermitOpen 10.0.1.0:22 10.0.1.1:22 10.0.1.2:22 10.0.1.3:22\n"),
            "{rule}"
        );
        let dropin = desired(&p, DROPIN_PATH).unwrap();
        assert_eq!(
            dropin.lines().last(),
            Some(format!("Include {JUMP_PATH}").as_str()),
            "{dropin}"
        );
        let steps = kinds(&p);
        let at = |k: &str| steps.iter().position(|s| s == k).unwrap();
        assert!(
            at(&format!("write {JUMP_PATH}")) < at("CheckSshd"),
            "{steps:?}"
        );
        assert!(at("CheckSshd") < at("ReloadSshd"), "{steps:?}");
        let lines = describe::install(&p, true).join("\n");
        assert!(
            lines.contains(&format!("would create {JUMP_PATH}:")),
            "{lines}"
        );
        assert!(
            lines.contains("jump host: members of Linux group bastion get no shell or command (unless in ops) and may only forward to port 22 of 10.0.1.0/30"),
            "{lines}"
        );
    }

    #[test]
    fn jump_installed_then_planned_again_is_empty() {
        let snap = fresh();
        let p = plan_install(&snap, &jump_config(), &jump_opts()).unwrap();
        let installed = applied(&snap, &p);
        let again = plan_install(&installed, &jump_config(), &jump_opts()).unwrap();
        assert!(again.is_empty(), "{:?}", again.steps);
        // On top of a plain install, --jump adds the rule and the Include, and nothing else.
        let plain = installed_plain_then_jump();
        assert_eq!(
            kinds(&plain),
            [
                format!("write {DROPIN_PATH}"),
                format!("write {JUMP_PATH}"),
                "RecordManifest".into(),
                "CheckSshd".into(),
                "ReloadSshd".into(),
            ]
        );
    }

    fn installed_plain_then_jump() -> InstallPlan {
        plan_install(&installed(), &jump_config(), &jump_opts()).unwrap()
    }

    /// The host after `install --jump` on a fresh one.
    fn jump_installed() -> HostSnapshot {
        let snap = fresh();
        applied(
            &snap,
            &plan_install(&snap, &jump_config(), &jump_opts()).unwrap(),
        )
    }

    #[test]
    fn install_with_no_jump_after_jump_takes_the_rule_out() {
        let with = jump_installed();
        let no_jump = InstallOptions {
            no_jump: true,
            ..opts()
        };
        let p = plan_install(&with, &jump_config(), &no_jump).unwrap();
        assert!(!p.jump);
        let rule = p.file_steps().find(|f| f.change.path == JUMP_PATH).unwrap();
        assert_eq!(rule.change.desired, None);
        assert!(!desired(&p, DROPIN_PATH).unwrap().contains("Include"));
        assert!(kinds(&p).contains(&"ReloadSshd".to_owned()));
        // ... which leaves the host as a plain install left it.
        let without = applied(&with, &p);
        assert_eq!(without.files, installed().files);
        assert!(plan_install(&without, &jump_config(), &opts())
            .unwrap()
            .is_empty());
    }

    /// h1: a plain `keyward install` (an upgrade, another scheduler) on a jump host silently
    /// took the jump rule out, giving every member of the jump group a shell.
    #[test]
    fn h1_plain_reinstall_on_a_jump_host_keeps_the_jump_rule() {
        let with = jump_installed();
        let p = plan_install(&with, &jump_config(), &opts()).unwrap();
        assert!(p.jump);
        assert!(p.is_empty(), "{:?}", p.steps);
        // A changed [jump] table is rendered again, still without --jump.
        let mut wider = jump_config();
        if let Some(j) = wider.jump.as_mut() {
            j.destinations = vec!["10.0.2.0/31".into()];
        }
        let p = plan_install(&with, &wider, &opts()).unwrap();
        assert!(p.jump);
        assert!(desired(&p, JUMP_PATH)
            .unwrap()
            .contains("\tPermitOpen 10.0.2.0:22 10.0.2.1:22\n"));
    }

    /// h1: a config pushed without its [jump] table must not open the jump host either.
    #[test]
    fn h1_jump_host_whose_config_lost_its_jump_table_is_refused() {
        let with = jump_installed();
        let err = plan_install(&with, &Config::default(), &opts()).unwrap_err();
        assert!(matches!(err, InstallError::NoJumpConfig), "{err}");
        assert!(err.to_string().contains("--no-jump"), "{err}");
        let no_jump = InstallOptions {
            no_jump: true,
            ..opts()
        };
        let p = plan_install(&with, &Config::default(), &no_jump).unwrap();
        assert!(!p.jump);
    }

    #[test]
    fn uninstall_after_jump_restores_every_file_byte_for_byte() {
        for main in [DEBIAN_SSHD, AMAZON_LINUX_SSHD] {
            let mut snap = fresh();
            snap.files.insert(MAIN_CONFIG.into(), Some(main.into()));
            let p = plan_install(&snap, &jump_config(), &jump_opts()).unwrap();
            if main == AMAZON_LINUX_SSHD {
                // No drop-in directory: the Include is in the block at the top of sshd_config.
                let top = desired(&p, MAIN_CONFIG).unwrap();
                let block: Vec<&str> = top.lines().take_while(|l| *l != blocks::END).collect();
                assert!(
                    block.contains(&format!("Include {JUMP_PATH}").as_str()),
                    "{top}"
                );
            }
            let installed = applied(&snap, &p);
            let u = plan_uninstall(&installed, &uninstall_opts()).unwrap();
            assert!(u.steps.contains(&UninstallStep::CheckSshd {
                sshd: "/usr/sbin/sshd".into()
            }));
            assert_eq!(restored(&installed, &u), snap.files);
        }
    }

    /// h2: with no Linux group for [jump] (before the first sync), `Match Group bastion`
    /// matches nobody and every IAM member of keyward_bastion gets a shell; first-login
    /// accounts join only groups that exist, so they stay outside it too.
    #[test]
    fn h2_jump_before_its_linux_group_exists_is_refused() {
        let mut snap = fresh();
        snap.jump_group_missing = true;
        let err = plan_install(&snap, &jump_config(), &jump_opts()).unwrap_err();
        assert!(matches!(err, InstallError::NoJumpGroup { .. }), "{err}");
        let says = err.to_string();
        assert!(
            says.contains("bastion") && says.contains("keyward sync"),
            "{says}"
        );
        // Without the rule (a plain install, or --no-jump) the group does not matter.
        assert!(plan_install(&snap, &jump_config(), &opts()).is_ok());
    }

    #[test]
    fn jump_group_that_keyward_does_not_manage_is_refused() {
        // A local group of that name that sync did not make or adopt: sync never adds the IAM
        // members to it, so sshd's Match Group would miss them and they would get shells.
        let mut snap = fresh();
        snap.jump_group_foreign = true;
        let err = plan_install(&snap, &jump_config(), &jump_opts()).unwrap_err();
        assert!(
            matches!(err, InstallError::ForeignJumpGroup { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("adopt_groups"), "{err}");
        assert!(plan_install(&snap, &jump_config(), &opts()).is_ok());
    }

    #[test]
    fn jump_without_a_jump_table_is_refused_before_anything_changes() {
        let err = plan_install(&fresh(), &Config::default(), &jump_opts()).unwrap_err();
        assert!(matches!(err, InstallError::NoJumpConfig), "{err}");
        assert!(err.to_string().contains("[jump]"), "{err}");
    }
}
