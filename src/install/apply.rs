//! Carrying out an install or uninstall plan, with an undo journal.
//!
//! `apply_install` and `apply_uninstall` run the plan's steps in order and decide nothing the
//! plan did not: every line they print beyond the plan's description is a result (sshd
//! accepted, how sshd was reloaded, a warning) or the rollback.
//!
//! Invariants: every original is saved (under `state_dir/install/originals/`) before its file
//! changes, the manifest is rewritten after each change, and any failure after the first change
//! puts every touched file back byte for byte with its owner and mode (and removes the
//! directories and the user this run created). A rollback also gives systemd the restored
//! units and enables the timer again when this run disabled an enabled one, so a failed run
//! never leaves a host with neither the timer nor cron running `sync`. sshd itself judges the
//! result (`sshd -t`, `sshd -T`) before it is reloaded: a config sshd has not accepted is never
//! reloaded. Failures that leave the host consistent (disabling the old timer, reloading sshd,
//! removing the user on uninstall) are warnings, never rollbacks.

use std::io::Write;

use super::host::{Host, Meta};
use super::plan::{CopyChange, InstallPlan, InstallStep, UninstallPlan, UninstallStep};
use super::schedule;
use super::snapshot::{ensure_run_sshd, lookup_user, Layout, Target};
use super::sshd;
use super::system::{self, run_checked, System};
use super::{cache, InstallError, USER};
use crate::process::CommandError;

/// Why sshd was not reloaded (a warning: the change applies at sshd's next reload).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{}. A socket-activated sshd reads the new config at each connection; otherwise reload sshd yourself", .0.join("; "))]
    Systemctl(Vec<String>),
    #[error("sshd does not seem to be running (no systemd, no /run/sshd.pid); reload or start it yourself")]
    NotRunning,
    #[error("/run/sshd.pid holds {0:?}, not a pid; reload sshd yourself")]
    BadPid(String),
    #[error("/run/sshd.pid names pid {pid}, which is not sshd ({comm:?}); reload sshd yourself")]
    NotSshd { pid: u32, comm: String },
    #[error("kill -HUP {pid}: {source}")]
    Kill {
        pid: u32,
        #[source]
        source: CommandError,
    },
}

/// A failed command of the account steps, named with its arguments.
#[derive(Debug, thiserror::Error)]
#[error("{command}: {source}")]
pub struct AccountError {
    pub command: String,
    #[source]
    pub source: CommandError,
}

/// A step that failed: what it was, and why.
struct Failure {
    what: String,
    cause: InstallError,
}

fn failed(what: impl Into<String>) -> impl FnOnce(InstallError) -> Failure {
    let what = what.into();
    move |cause| Failure { what, cause }
}

/// Progress output is for humans; a closed stdout must not stop an install half-way.
fn say(out: &mut dyn Write, line: impl std::fmt::Display) {
    let _ = writeln!(out, "{line}");
}

/// Carries out `plan` on `target`. On a failure after the first change, everything in `undo`
/// is put back before the error returns.
pub fn apply_install(
    plan: &InstallPlan,
    target: &Target,
    sys: &mut dyn System,
    undo: &mut Undo,
    out: &mut dyn Write,
) -> Result<(), InstallError> {
    let host = &target.host;
    let dirs = &plan.layout;
    let mut manifest = plan.manifest.clone();
    // Unit files put back by a rollback are read again by systemd.
    undo.reload_units = plan.systemctl && plan.units_changed();
    for step in &plan.steps {
        let result = match step {
            InstallStep::CreateUser { prefix } => {
                let args = system::useradd_args(prefix.as_deref(), USER);
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                if let Err(source) = run_checked(sys, "useradd", &argv) {
                    let err = InstallError::Command {
                        command: format!("useradd {}", args.join(" ")),
                        source: Box::new(source),
                        context: "; nothing was changed",
                    };
                    return Err(if undo.is_empty() {
                        err
                    } else {
                        undo.fail(host, sys, dirs, out, "useradd".into(), err)
                    });
                }
                undo.user_prefix = Some(prefix.clone());
                Ok(())
            }
            InstallStep::CreateDir { path, mode, record } => undo
                .create_dir(host, path, *mode, None)
                .map(|created| {
                    if created && *record {
                        manifest.created_dirs.insert(path.clone());
                    }
                })
                .map_err(failed("writing files")),
            InstallStep::FixCache {
                dir,
                plan: cache_plan,
            } => fix_cache(host, sys, undo, dir, cache_plan).map_err(failed("writing files")),
            InstallStep::DisableTimer { enabled } => {
                undo.enable_timer |= disable_timer(sys, out) && *enabled;
                Ok(())
            }
            InstallStep::WriteFile(f) => {
                write_file(host, undo, dirs, &mut manifest, f).map_err(failed("writing files"))
            }
            InstallStep::RecordManifest => {
                record_manifest(host, undo, dirs, &manifest).map_err(failed("writing files"))
            }
            InstallStep::CheckSshd { sshd } => check_sshd(sys, sshd, plan).inspect(|()| {
                say(out, "sshd -t and sshd -T accept the new configuration");
            }),
            InstallStep::EnableTimer => run_checked(sys, "systemctl", &["daemon-reload"])
                .and_then(|_| {
                    run_checked(sys, "systemctl", &["enable", "--now", schedule::TIMER_UNIT])
                })
                .map(drop)
                .map_err(|e| Failure {
                    what: format!("systemctl enable --now {}", schedule::TIMER_UNIT),
                    cause: e.into(),
                }),
            InstallStep::DaemonReload => run_checked(sys, "systemctl", &["daemon-reload"])
                .map(drop)
                .map_err(|e| Failure {
                    what: "systemctl daemon-reload".into(),
                    cause: e.into(),
                }),
            InstallStep::ReloadSshd => {
                match reload_sshd(host, sys) {
                    Ok(how) => say(out, how),
                    Err(why) => say(
                        out,
                        format!("warning: installed, but sshd was not reloaded: {why}"),
                    ),
                }
                Ok(())
            }
        };
        if let Err(Failure { what, cause }) = result {
            return Err(undo.fail(host, sys, dirs, out, what, cause));
        }
    }
    let changed = plan.file_steps().count();
    say(
        out,
        format!(
            "installed: {} (keyward's record: {})",
            if changed == 0 {
                "files were already in place".to_owned()
            } else {
                format!("{changed} file(s) changed")
            },
            dirs.manifest
        ),
    );
    Ok(())
}

/// Creates the cache (keyward's; its parents are steps before this one) and carries out the
/// cache plan with keyward's ids.
fn fix_cache(
    host: &Host,
    sys: &dyn System,
    undo: &mut Undo,
    dir: &str,
    plan: &cache::Plan,
) -> Result<(), InstallError> {
    let owner = lookup_user(host, sys)?.ok_or(InstallError::NoUser(USER))?;
    if plan.create_dir {
        undo.create_dir(host, dir, 0o755, Some(owner))?;
    }
    let created = cache::apply(host, dir, plan, owner)?;
    undo.dirs.extend(created);
    Ok(())
}

/// Saves the original (when it must be kept), changes the file, records it.
fn write_file(
    host: &Host,
    undo: &mut Undo,
    dirs: &Layout,
    manifest: &mut super::manifest::Manifest,
    f: &super::plan::FileStep,
) -> Result<(), InstallError> {
    let path = &f.change.path;
    let copy = dirs.copy_of(path);
    if let CopyChange::Write(bytes) = &f.copy {
        undo.write(host, &copy, bytes, 0o600)?;
    }
    match &f.change.desired {
        Some(bytes) => undo.write(host, path, bytes, 0o644)?,
        None => undo.remove(host, path)?,
    }
    manifest.set(path, f.original.as_deref(), f.change.desired.as_deref());
    if f.copy == CopyChange::Remove {
        undo.remove(host, &copy)?;
    }
    undo.write(host, &dirs.manifest, manifest.render().as_bytes(), 0o600)
}

fn record_manifest(
    host: &Host,
    undo: &mut Undo,
    dirs: &Layout,
    manifest: &super::manifest::Manifest,
) -> Result<(), InstallError> {
    let rendered = manifest.render();
    if host.read(&dirs.manifest).ok().flatten().as_deref() != Some(rendered.as_bytes()) {
        undo.write(host, &dirs.manifest, rendered.as_bytes(), 0o600)?;
    }
    Ok(())
}

/// The old timer stops; a failure is a warning (the unit files go either way). Returns
/// whether it was disabled.
fn disable_timer(sys: &mut dyn System, out: &mut dyn Write) -> bool {
    match run_checked(
        sys,
        "systemctl",
        &["disable", "--now", schedule::TIMER_UNIT],
    ) {
        Ok(_) => true,
        Err(e) => {
            say(
                out,
                format!(
                    "warning: systemctl disable --now {}: {e}",
                    schedule::TIMER_UNIT
                ),
            );
            false
        }
    }
}

/// `sshd -t`: sshd's own check of the configuration as it is now on disk.
fn sshd_accepts(sys: &mut dyn System, sshd: &str) -> Result<(), Failure> {
    run_checked(sys, sshd, &["-t"])
        .map(drop)
        .map_err(|e| Failure {
            what: format!("{sshd} -t (sshd's config check)"),
            cause: e.into(),
        })
}

fn check_sshd(sys: &mut dyn System, sshd: &str, plan: &InstallPlan) -> Result<(), Failure> {
    sshd_accepts(sys, sshd)?;
    let dump = run_checked(sys, sshd, &["-T"]).map_err(|e| Failure {
        what: format!("{sshd} -T"),
        cause: e.into(),
    })?;
    let dump = sshd::parse_dump(&dump);
    sshd::verify_dump(&dump, &plan.binary, plan.create_on_login, plan.ca)
        .and_then(|()| match plan.jump {
            true => super::jump::verify_scoped(&dump),
            false => Ok(()),
        })
        .map_err(|e| Failure {
            what: format!("{sshd} -T (keyward's directives must be the effective ones)"),
            cause: e.into(),
        })
}

/// Carries out an uninstall plan on `target`; a failure while files are restored puts them
/// all back.
pub fn apply_uninstall(
    plan: &UninstallPlan,
    target: &Target,
    sys: &mut dyn System,
    undo: &mut Undo,
    out: &mut dyn Write,
) -> Result<(), InstallError> {
    let host = &target.host;
    undo.reload_units = plan.steps.contains(&UninstallStep::DaemonReload);
    for step in &plan.steps {
        let result = match step {
            UninstallStep::DisableTimer { enabled } => {
                undo.enable_timer |= disable_timer(sys, out) && *enabled;
                Ok(())
            }
            UninstallStep::RestoreFile(c) => match &c.desired {
                Some(bytes) => undo.write(host, &c.path, bytes, 0o644),
                None => undo.remove(host, &c.path),
            }
            .map_err(failed("restoring files")),
            UninstallStep::CheckSshd { sshd } => ensure_run_sshd(host, false)
                .map_err(failed("creating /run/sshd"))
                .and_then(|_| sshd_accepts(sys, sshd)),
            UninstallStep::DaemonReload => {
                let _ = run_checked(sys, "systemctl", &["daemon-reload"]);
                Ok(())
            }
            UninstallStep::ReloadSshd => {
                match reload_sshd(host, sys) {
                    Ok(how) => say(out, how),
                    Err(why) => say(out, format!("warning: sshd was not reloaded: {why}")),
                }
                Ok(())
            }
            UninstallStep::RemoveUser { prefix } => {
                if let Err(e) = remove_account(host, sys, prefix.as_deref()) {
                    say(
                        out,
                        format!("warning: {e}; remove the {USER} user yourself"),
                    );
                }
                Ok(())
            }
            UninstallStep::RemoveRecord {
                install_dir,
                created_dirs,
            } => {
                host.remove_tree(install_dir)
                    .map_err(InstallError::io(install_dir.as_str()))?;
                for dir in created_dirs.iter().rev() {
                    host.remove_empty_dir(dir);
                }
                Ok(())
            }
        };
        if let Err(Failure { what, cause }) = result {
            return Err(undo.fail(host, sys, &plan.layout, out, what, cause));
        }
    }
    say(
        out,
        format!(
            "uninstalled: {} file(s) restored or removed",
            plan.files_restored()
        ),
    );
    Ok(())
}

/// A file's bytes and mode/owner before this run changed it; `None`: it did not exist.
type Before = Option<(Vec<u8>, Meta)>;

/// The undo journal: the state of every path before its first change in this run.
#[derive(Default)]
pub struct Undo {
    files: Vec<(String, Before)>,
    dirs: Vec<String>,
    /// Set when this run created the keyward user (with useradd's `--prefix`, if any).
    user_prefix: Option<Option<String>>,
    /// This run disabled the timer, which was enabled: a rollback enables it again.
    enable_timer: bool,
    /// systemd reads unit files: a rollback runs daemon-reload after putting files back.
    reload_units: bool,
}

impl Undo {
    /// Nothing was changed yet.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.dirs.is_empty()
            && self.user_prefix.is_none()
            && !self.enable_timer
    }

    fn save(&mut self, host: &Host, path: &str) -> Result<(), InstallError> {
        if self.files.iter().any(|(p, _)| p == path) {
            return Ok(());
        }
        let before = match host.read(path).map_err(InstallError::io(path))? {
            Some(bytes) => {
                let meta = host
                    .meta(path)
                    .map_err(InstallError::io(path))?
                    .ok_or_else(|| InstallError::Missing {
                        path: path.to_owned(),
                        why: "it vanished while keyward was reading it".into(),
                    })?;
                Some((bytes, meta))
            }
            None => None,
        };
        self.files.push((path.to_owned(), before));
        Ok(())
    }

    fn write(
        &mut self,
        host: &Host,
        path: &str,
        bytes: &[u8],
        new_mode: u32,
    ) -> Result<(), InstallError> {
        self.save(host, path)?;
        host.write(path, bytes, new_mode)
            .map_err(InstallError::io(path))
    }

    fn remove(&mut self, host: &Host, path: &str) -> Result<(), InstallError> {
        self.save(host, path)?;
        host.remove(path).map_err(InstallError::io(path))
    }

    /// Creates the directory `path` (its parent exists) with `mode`, root's or `owner`'s;
    /// `false`: it was made meanwhile, and is neither changed nor removed on rollback.
    fn create_dir(
        &mut self,
        host: &Host,
        path: &str,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<bool, InstallError> {
        match host.create_dir(path, mode, owner) {
            Ok(()) => {
                self.dirs.push(path.to_owned());
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(InstallError::io(path)(e)),
        }
    }

    /// Puts everything back, newest first; returns what could not be put back.
    fn rollback(&mut self, host: &Host, sys: &mut dyn System) -> Vec<String> {
        let mut failures = Vec::new();
        for (path, before) in self.files.drain(..).rev() {
            let result = match before {
                Some((bytes, meta)) => host
                    .write(&path, &bytes, meta.mode)
                    .and_then(|()| host.chown(&path, meta.uid, meta.gid)),
                None => host.remove(&path),
            };
            if let Err(e) = result {
                failures.push(format!("{path}: {e}"));
            }
        }
        for dir in self.dirs.drain(..).rev() {
            host.remove_empty_dir(&dir);
        }
        if let Some(prefix) = self.user_prefix.take() {
            if let Err(e) = remove_account(host, sys, prefix.as_deref()) {
                failures.push(e.to_string());
            }
        }
        // The units are back on disk: systemd reads them, then the timer runs again.
        let enable = std::mem::take(&mut self.enable_timer);
        if std::mem::take(&mut self.reload_units) || enable {
            if let Err(e) = run_checked(sys, "systemctl", &["daemon-reload"]) {
                failures.push(format!("systemctl daemon-reload: {e}"));
            }
        }
        if enable {
            if let Err(e) =
                run_checked(sys, "systemctl", &["enable", "--now", schedule::TIMER_UNIT])
            {
                failures.push(format!(
                    "systemctl enable --now {}: {e}",
                    schedule::TIMER_UNIT
                ));
            }
        }
        failures
    }

    fn fail(
        &mut self,
        host: &Host,
        sys: &mut dyn System,
        dirs: &Layout,
        out: &mut dyn Write,
        what: String,
        cause: InstallError,
    ) -> InstallError {
        say(out, format!("{what} failed; putting every file back"));
        let failures = self.rollback(host, sys);
        let cause = Box::new(cause);
        if failures.is_empty() {
            InstallError::RolledBack { what, cause }
        } else {
            InstallError::RollbackFailed {
                what,
                cause,
                failures: failures.join("; "),
                originals: dirs.originals.clone(),
            }
        }
    }
}

/// userdel, then groupdel when the user's group outlived it (userdel removes it only with
/// USERGROUPS_ENAB in login.defs).
fn remove_account(
    host: &Host,
    sys: &mut dyn System,
    prefix: Option<&str>,
) -> Result<(), AccountError> {
    let args = system::userdel_args(prefix, USER);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    run_checked(sys, "userdel", &argv).map_err(|source| AccountError {
        command: format!("userdel {}", args.join(" ")),
        source,
    })?;
    let group_left = super::snapshot::group_exists(host, &*sys, USER);
    if group_left {
        run_checked(sys, "groupdel", &argv).map_err(|source| AccountError {
            command: format!("groupdel {}", args.join(" ")),
            source,
        })?;
    }
    Ok(())
}

/// Makes the running sshd read its config again; `Ok` says how.
fn reload_sshd(host: &Host, sys: &mut dyn System) -> Result<String, ReloadError> {
    if host.exists(schedule::SYSTEMD_RUNNING) {
        let mut complaints = Vec::new();
        for unit in ["ssh.service", "sshd.service"] {
            match run_checked(sys, "systemctl", &["reload", unit]) {
                Ok(_) => return Ok(format!("reloaded sshd: systemctl reload {unit}")),
                Err(e) => complaints.push(format!("{unit}: {e}")),
            }
        }
        return Err(ReloadError::Systemctl(complaints));
    }
    let pid_text = match host.read("/run/sshd.pid") {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        _ => return Err(ReloadError::NotRunning),
    };
    let pid: u32 = pid_text
        .parse()
        .ok()
        .filter(|p| *p > 1)
        .ok_or(ReloadError::BadPid(pid_text))?;
    // A stale pid file must not make keyward signal an unrelated process.
    let comm = host
        .read(&format!("/proc/{pid}/comm"))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    if !comm.starts_with("sshd") {
        return Err(ReloadError::NotSshd { pid, comm });
    }
    run_checked(sys, "kill", &["-HUP", &pid.to_string()])
        .map(|_| format!("reloaded sshd: kill -HUP {pid}"))
        .map_err(|source| ReloadError::Kill { pid, source })
}
