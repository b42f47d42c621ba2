//! The install and uninstall sequences: read the host, decide with the pure planners, print,
//! then apply with an undo journal.
//!
//! Every original is saved (under `state_dir/install/originals/`) before its file changes, the
//! manifest is rewritten after each change, and any failure after the first change puts every
//! touched file back byte for byte (and removes what was created). sshd itself judges the
//! result (`sshd -t`, `sshd -T`) before it is reloaded. This module must never change a file it
//! has not saved first, and never reload sshd with a config sshd has not accepted.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::host::{self, Host, Meta};
use super::manifest::{self, escape_path, sha256_hex, Manifest};
use super::schedule::{self, Scheduler, SchedulerChoice};
use super::sshd::{self, DROPIN_PATH, MAIN_CONFIG};
use super::system::{self, System};
use super::{blocks, cache, line_diff, pam, InstallError, CHAIN_PATH, MANAGED_MARK};
use crate::config::Config;

/// The system user sshd runs `keyward authorized-keys` as.
pub const USER: &str = "keyward";

#[derive(Debug, Clone)]
pub struct Options {
    /// `--root DIR`: work on DIR/etc, DIR/var...; `None` is the running host.
    pub root: Option<PathBuf>,
    /// Absolute, canonical path of the keyward binary sshd and PAM will run.
    pub binary: String,
    pub dry_run: bool,
    /// install: drop an existing AuthorizedKeysCommand instead of chaining to it.
    pub replace: bool,
    pub scheduler: SchedulerChoice,
    /// install: reload sshd after a successful change.
    pub reload: bool,
    /// uninstall: restore the originals even over changes made since install.
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Changed,
    DryRun,
    NothingToDo,
}

/// Where install works, and whether the host's services (sshd, systemctl, NSS) are real.
struct Env<'a> {
    host: Host,
    /// Run sshd -t/-T, systemctl and reload: only on the real root.
    services: bool,
    sshd: Option<String>,
    out: &'a mut dyn Write,
}

impl Env<'_> {
    fn say(&mut self, line: impl std::fmt::Display) {
        // Progress output is for humans; a closed stdout must not stop an install half-way.
        let _ = writeln!(self.out, "{line}");
    }
}

/// Paths under `state_dir`, as host paths.
struct Layout {
    state_dir: String,
    cache_dir: String,
    install_dir: String,
    originals: String,
    manifest: String,
}

impl Layout {
    fn new(config: &Config) -> Layout {
        let state_dir = config.state_dir.to_string_lossy().into_owned();
        let install_dir = format!("{}/install", state_dir.trim_end_matches('/'));
        Layout {
            cache_dir: config.cache_dir.to_string_lossy().into_owned(),
            originals: format!("{install_dir}/originals"),
            manifest: format!("{install_dir}/manifest.json"),
            install_dir,
            state_dir,
        }
    }

    fn copy_of(&self, path: &str) -> String {
        format!("{}/{}", self.originals, escape_path(path))
    }
}

/// One file to change: `None` means absent.
#[derive(Debug, Clone)]
struct Change {
    path: String,
    current: Option<Vec<u8>>,
    desired: Option<Vec<u8>>,
    new_mode: u32,
}

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

pub fn install(
    opts: &Options,
    config: &Config,
    sys: &mut dyn System,
    out: &mut dyn Write,
) -> Result<Outcome, InstallError> {
    let host = Host::new(opts.root.as_deref());
    let services = host.is_real();
    if services && !nix::unistd::geteuid().is_root() {
        return Err(InstallError::NotRoot("keyward install"));
    }
    let sshd = if services {
        Some(find_sshd().ok_or(InstallError::NoSshd)?)
    } else {
        None
    };
    let mut env = Env {
        host,
        services,
        sshd,
        out,
    };
    install_in(&mut env, opts, config, sys)
}

pub fn uninstall(
    opts: &Options,
    config: &Config,
    sys: &mut dyn System,
    out: &mut dyn Write,
) -> Result<Outcome, InstallError> {
    let host = Host::new(opts.root.as_deref());
    let services = host.is_real();
    if services && !nix::unistd::geteuid().is_root() {
        return Err(InstallError::NotRoot("keyward uninstall"));
    }
    let mut env = Env {
        host,
        services,
        sshd: if services { find_sshd() } else { None },
        out,
    };
    uninstall_in(&mut env, opts, config, sys)
}

fn install_in(
    env: &mut Env<'_>,
    opts: &Options,
    config: &Config,
    sys: &mut dyn System,
) -> Result<Outcome, InstallError> {
    let bin = opts.binary.as_str();
    let create_on_login = config.create_on_login;
    let dirs = Layout::new(config);
    let verb = if opts.dry_run { "would " } else { "" };

    if !super::is_plain_path(bin) {
        return Err(InstallError::BadBinaryPath(bin.to_owned()));
    }
    let problem = match host::ancestry(Path::new(bin)) {
        Ok(ancestry) => super::sshd_path_problem(&ancestry),
        Err(e) => Some(format!("{bin}: {e}")),
    };
    if let Some(reason) = problem {
        if env.host.is_real() {
            return Err(InstallError::UnsafeBinary {
                path: bin.to_owned(),
                reason,
            });
        }
        env.say(format!(
            "warning: sshd would refuse {bin} as AuthorizedKeysCommand ({reason}); on a real host put keyward at /usr/local/bin/keyward (root:root, 0755)"
        ));
    }
    if !env.services {
        env.say(format!(
            "--root {}: only files under it change; sshd -t/-T, the sshd reload and systemctl are skipped",
            env.host.root().display()
        ));
    }

    // Read the host as it is, and what keyward installed before.
    let main = read_text(&env.host, MAIN_CONFIG)?.ok_or_else(|| InstallError::Missing {
        path: MAIN_CONFIG.into(),
        why: "keyward is wired into sshd through it".into(),
    })?;
    let clean_main = blocks::remove_block(&main).map_err(InstallError::in_file(MAIN_CONFIG))?;
    let events = {
        let host = &env.host;
        sshd::walk(&clean_main, &|pattern: &str| host.glob(pattern))
    };
    let parsed = sshd::effective(&events);
    for origin in &parsed.match_overrides {
        env.say(format!(
            "warning: {origin}: a Match block sets AuthorizedKeysCommand(User); it overrides keyward for the connections it matches"
        ));
    }
    let dumped = match env.sshd.clone() {
        Some(sshd) if ensure_run_sshd(env, opts.dry_run)? => {
            let dump = run_ok(sys, &sshd, &["-T"]).map_err(|detail| InstallError::Command {
                command: format!("{sshd} -T"),
                detail: format!("{detail} (on the configuration as it is, before any change)"),
            })?;
            Some(sshd::effective_from_dump(&sshd::parse_dump(&dump)))
        }
        _ => None,
    };
    let foreign = foreign_command(dumped.as_ref(), &parsed, bin);
    if create_on_login {
        let use_pam = dumped.as_ref().unwrap_or(&parsed).use_pam.clone();
        if use_pam
            .as_ref()
            .is_none_or(|s| !s.value.eq_ignore_ascii_case("yes"))
        {
            env.say("warning: sshd does not have UsePAM yes: accounts cannot be created on login until it does");
        }
    }
    let old = read_manifest(&env.host, &dirs.manifest)?;
    let plan = sshd::plan(&clean_main, &events, bin, create_on_login);
    match &plan.placement {
        sshd::Placement::DropIn => env.say(format!(
            "sshd: keyward's directives go in {DROPIN_PATH}, read before anything else sets them"
        )),
        sshd::Placement::Block { reason } => env.say(format!(
            "sshd: keyward's directives go in a block at the top of {MAIN_CONFIG}: {reason}"
        )),
    }
    let systemd_running = env.host.exists(schedule::SYSTEMD_RUNNING);
    let scheduler = schedule::choose(opts.scheduler, systemd_running);

    // What every file keyward manages should hold.
    let mut wants: Vec<(&str, Want)> = vec![
        (MAIN_CONFIG, Want::Content(plan.main)),
        (DROPIN_PATH, Want::from_option(plan.dropin)),
    ];
    match read_text(&env.host, pam::PAM_PATH)? {
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
            env.say(format!(
                "--replace: the AuthorizedKeysCommand in effect now ({command}) will no longer be used"
            ));
            Want::Absent { always: true }
        }
        (Some((command, user)), false) => {
            env.say(format!(
                "chaining: keyward will also print the keys of the AuthorizedKeysCommand in effect now ({command}, user {:?}); --replace drops it",
                user
            ));
            Want::Content(render_chain(command, user))
        }
        (None, true) => Want::Absent { always: true },
        (None, false) => Want::Keep,
    };
    wants.push((CHAIN_PATH, chain));
    let minute = schedule::cron_minute(&host_identity(&env.host));
    for (path, text) in
        schedule::desired_files(scheduler, bin, &dirs.state_dir, &dirs.cache_dir, minute)
    {
        wants.push((path, Want::from_option(text)));
    }

    let mut changes = Vec::new();
    for (path, want) in wants {
        let current = env.host.read(path).map_err(InstallError::io(path))?;
        let desired = match want {
            Want::Content(text) => Some(text.into_bytes()),
            Want::Keep => current.clone(),
            Want::Absent { always } => {
                let ours = always
                    || old.as_ref().is_some_and(|m| m.record(path).is_some())
                    || current.as_deref().is_some_and(is_managed);
                if current.is_some() && !ours {
                    env.say(format!(
                        "warning: {path} exists and is not keyward's; left alone"
                    ));
                    current.clone()
                } else {
                    None
                }
            }
        };
        if desired != current {
            changes.push(Change {
                path: path.to_owned(),
                current,
                desired,
                new_mode: 0o644,
            });
        }
    }

    // The account, its directories, the timer.
    let user = lookup_user(&env.host, sys)?;
    let cache_entries = cache::read(&env.host, &dirs.cache_dir)?;
    let cache_plan = cache::plan(&dirs.cache_dir, cache_entries.as_deref(), user)?;
    let state_missing = !env.host.exists(&dirs.state_dir);
    let sshd_changed = changes
        .iter()
        .any(|c| c.path == MAIN_CONFIG || c.path == DROPIN_PATH);
    let units_changed = changes
        .iter()
        .any(|c| c.path == schedule::TIMER_PATH || c.path == schedule::SERVICE_PATH);
    let timer_wanted = scheduler == Scheduler::Systemd;
    let use_systemctl = env.services && systemd_running;
    let enable_timer = use_systemctl
        && timer_wanted
        && (units_changed
            || run_ok(
                sys,
                "systemctl",
                &["is-enabled", "--quiet", schedule::TIMER_UNIT],
            )
            .is_err());
    let disable_timer = use_systemctl && !timer_wanted && units_changed;

    if changes.is_empty()
        && user.is_some()
        && cache_plan.is_empty()
        && !state_missing
        && !enable_timer
    {
        env.say("already installed; nothing changed");
        return Ok(Outcome::NothingToDo);
    }

    // Say what happens, then do it.
    if user.is_none() {
        let prefix = (!env.host.is_real()).then(|| env.host.root().to_string_lossy().into_owned());
        env.say(format!(
            "{verb}create system user {USER}: useradd {}",
            system::useradd_args(prefix.as_deref(), USER).join(" ")
        ));
    }
    if state_missing {
        env.say(format!(
            "{verb}create directory {} (root, 0755)",
            dirs.state_dir
        ));
    }
    for line in cache::describe(&cache_plan, &dirs.cache_dir, USER, verb) {
        env.say(line);
    }
    for c in &changes {
        describe_change(env, verb, c);
    }
    if disable_timer {
        env.say(format!(
            "{verb}run: systemctl disable --now {}",
            schedule::TIMER_UNIT
        ));
    }
    if env.services {
        env.say(format!(
            "{verb}check with sshd -t and sshd -T, and put every file back if either fails"
        ));
    }
    if timer_wanted && env.services && !systemd_running {
        env.say(format!(
            "note: systemd is not the running init; {} is written but not enabled",
            schedule::TIMER_UNIT
        ));
    }
    if enable_timer {
        env.say(format!(
            "{verb}run: systemctl daemon-reload; systemctl enable --now {}",
            schedule::TIMER_UNIT
        ));
    } else if disable_timer {
        env.say(format!("{verb}run: systemctl daemon-reload"));
    }
    if sshd_changed {
        if !opts.reload {
            env.say("--no-reload: sshd is not reloaded; the change applies when sshd next reloads");
        } else if env.services {
            env.say(format!("{verb}reload sshd"));
        }
    }
    if opts.dry_run {
        env.say("dry run: nothing was changed");
        return Ok(Outcome::DryRun);
    }

    let mut undo = Undo::default();
    if user.is_none() {
        let prefix = (!env.host.is_real()).then(|| env.host.root().to_string_lossy().into_owned());
        let args = system::useradd_args(prefix.as_deref(), USER);
        run_ok(
            sys,
            "useradd",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .map_err(|detail| InstallError::Command {
            command: format!("useradd {}", args.join(" ")),
            detail: format!("{detail}; nothing was changed"),
        })?;
        undo.user_prefix = Some(prefix);
    }
    let step = apply_install(
        env,
        sys,
        &mut undo,
        &dirs,
        old.as_ref(),
        &changes,
        &cache_plan,
        scheduler,
        bin,
        create_on_login,
        disable_timer,
    );
    let step = step.and_then(|()| {
        if enable_timer {
            run_ok(sys, "systemctl", &["daemon-reload"])
                .and_then(|_| run_ok(sys, "systemctl", &["enable", "--now", schedule::TIMER_UNIT]))
                .map(drop)
                .map_err(|d| ("systemctl enable --now keyward-sync.timer".to_owned(), d))
        } else if disable_timer {
            run_ok(sys, "systemctl", &["daemon-reload"])
                .map(drop)
                .map_err(|d| ("systemctl daemon-reload".to_owned(), d))
        } else {
            Ok(())
        }
    });
    if let Err((what, detail)) = step {
        let err = undo.fail(env, sys, &dirs, what, detail);
        if use_systemctl && units_changed {
            let _ = run_ok(sys, "systemctl", &["daemon-reload"]);
        }
        return Err(err);
    }

    if sshd_changed && opts.reload && env.services {
        match reload_sshd(&env.host, sys) {
            Ok(how) => env.say(how),
            Err(why) => env.say(format!(
                "warning: installed, but sshd was not reloaded: {why}"
            )),
        }
    }
    env.say(format!(
        "installed: {} (keyward's record: {})",
        if changes.is_empty() {
            "files were already in place".to_owned()
        } else {
            format!("{} file(s) changed", changes.len())
        },
        dirs.manifest
    ));
    Ok(Outcome::Changed)
}

/// Everything after the account exists; `Err((what, detail))` means roll back.
#[allow(clippy::too_many_arguments)]
fn apply_install(
    env: &mut Env<'_>,
    sys: &mut dyn System,
    undo: &mut Undo,
    dirs: &Layout,
    old: Option<&Manifest>,
    changes: &[Change],
    cache_plan: &cache::Plan,
    scheduler: Scheduler,
    bin: &str,
    create_on_login: bool,
    disable_timer: bool,
) -> Result<(), (String, String)> {
    let writing = |e: InstallError| ("writing files".to_owned(), e.to_string());
    let (uid, gid) = lookup_user(&env.host, sys)
        .map_err(writing)?
        .ok_or_else(|| {
            (
                "useradd".to_owned(),
                format!("user {USER} does not exist after useradd"),
            )
        })?;

    let mut manifest = old.cloned().unwrap_or_else(|| Manifest::new(bin));
    manifest.binary = bin.to_owned();
    manifest.scheduler = Some(scheduler);
    manifest.created_user |= undo.user_prefix.is_some();

    undo.create_dirs(&env.host, &dirs.state_dir, None)
        .map_err(writing)?;
    if cache_plan.create_dir {
        undo.create_dirs(&env.host, &dirs.cache_dir, Some((uid, gid)))
            .map_err(writing)?;
    }
    let created =
        cache::apply(&env.host, &dirs.cache_dir, cache_plan, (uid, gid)).map_err(writing)?;
    undo.dirs.extend(created);
    undo.create_dirs_mode(&env.host, &dirs.originals, 0o700)
        .map_err(writing)?;

    if disable_timer {
        if let Err(d) = run_ok(
            sys,
            "systemctl",
            &["disable", "--now", schedule::TIMER_UNIT],
        ) {
            env.say(format!(
                "warning: systemctl disable --now {}: {d}",
                schedule::TIMER_UNIT
            ));
        }
    }
    for c in changes {
        let original = original_for(&env.host, dirs, old, c).map_err(writing)?;
        let copy = dirs.copy_of(&c.path);
        if let Some(parent) = Path::new(&c.path).parent().and_then(Path::to_str) {
            for created in undo.create_dirs(&env.host, parent, None).map_err(writing)? {
                manifest.created_dirs.insert(created);
            }
        }
        let saved = env
            .host
            .read(&copy)
            .map_err(InstallError::io(&copy))
            .map_err(writing)?;
        if let Some(bytes) = &original {
            if saved.as_ref() != Some(bytes) {
                undo.write(&env.host, &copy, bytes, 0o600)
                    .map_err(writing)?;
            }
        }
        match &c.desired {
            Some(bytes) => undo.write(&env.host, &c.path, bytes, c.new_mode),
            None => undo.remove(&env.host, &c.path),
        }
        .map_err(writing)?;
        manifest.set(&c.path, original.as_deref(), c.desired.as_deref());
        if (manifest.record(&c.path).is_none() || original.is_none()) && saved.is_some() {
            undo.remove(&env.host, &copy).map_err(writing)?;
        }
        undo.write(
            &env.host,
            &dirs.manifest,
            manifest.render().as_bytes(),
            0o600,
        )
        .map_err(writing)?;
    }
    // The manifest also records the account and scheduler when no file changed.
    let rendered = manifest.render();
    if env.host.read(&dirs.manifest).ok().flatten().as_deref() != Some(rendered.as_bytes()) {
        undo.write(&env.host, &dirs.manifest, rendered.as_bytes(), 0o600)
            .map_err(writing)?;
    }

    if let Some(sshd) = env.sshd.clone().filter(|_| env.services) {
        run_ok(sys, &sshd, &["-t"]).map_err(|d| (format!("{sshd} -t (sshd's config check)"), d))?;
        let dump = run_ok(sys, &sshd, &["-T"]).map_err(|d| (format!("{sshd} -T"), d))?;
        sshd::verify_dump(&sshd::parse_dump(&dump), bin, create_on_login).map_err(|d| {
            (
                format!("{sshd} -T (keyward's directives must be the effective ones)"),
                d,
            )
        })?;
        env.say("sshd -t and sshd -T accept the new configuration");
    }
    Ok(())
}

fn uninstall_in(
    env: &mut Env<'_>,
    opts: &Options,
    config: &Config,
    sys: &mut dyn System,
) -> Result<Outcome, InstallError> {
    let dirs = Layout::new(config);
    let verb = if opts.dry_run { "would " } else { "" };
    let Some(manifest) = read_manifest(&env.host, &dirs.manifest)? else {
        env.say("not installed; nothing to do");
        return Ok(Outcome::NothingToDo);
    };
    if !env.services {
        env.say(format!(
            "--root {}: only files under it change; sshd -t, the sshd reload and systemctl are skipped",
            env.host.root().display()
        ));
    }

    // Refuse before touching anything when someone changed what install wrote.
    let mut changed = Vec::new();
    let mut changes = Vec::new();
    for record in &manifest.files {
        let current = env
            .host
            .read(&record.path)
            .map_err(InstallError::io(&record.path))?;
        if manifest::check_unchanged(record, current.as_deref()).is_err() {
            changed.push(record.path.clone());
        }
        let original = match &record.original_sha256 {
            None => None,
            Some(sha) => {
                let copy = dirs.copy_of(&record.path);
                match env.host.read(&copy).map_err(InstallError::io(&copy))? {
                    Some(bytes) if sha256_hex(&bytes) == *sha => Some(bytes),
                    _ => {
                        return Err(InstallError::BadBackup {
                            path: record.path.clone(),
                            copy,
                        })
                    }
                }
            }
        };
        if current != original {
            changes.push(Change {
                path: record.path.clone(),
                current,
                desired: original,
                new_mode: 0o644,
            });
        }
    }
    if !changed.is_empty() {
        if !opts.force {
            return Err(InstallError::Changed(changed));
        }
        env.say(format!(
            "--force: restoring the originals over changes made since install: {}",
            changed.join(", ")
        ));
    }

    let remove_user = manifest.created_user && lookup_user(&env.host, sys)?.is_some();
    let use_systemctl = env.services && env.host.exists(schedule::SYSTEMD_RUNNING);
    let timer_installed = manifest
        .files
        .iter()
        .any(|r| r.path == schedule::TIMER_PATH);
    let sshd_changed = changes
        .iter()
        .any(|c| c.path == MAIN_CONFIG || c.path == DROPIN_PATH);
    let prefix = (!env.host.is_real()).then(|| env.host.root().to_string_lossy().into_owned());

    if use_systemctl && timer_installed {
        env.say(format!(
            "{verb}run: systemctl disable --now {}",
            schedule::TIMER_UNIT
        ));
    }
    for c in &changes {
        describe_change(env, verb, c);
    }
    if env.services && sshd_changed {
        env.say(format!(
            "{verb}check with sshd -t, and put every file back if it fails"
        ));
        env.say(format!("{verb}reload sshd"));
    }
    if remove_user {
        env.say(format!(
            "{verb}remove system user {USER}: userdel {}",
            system::userdel_args(prefix.as_deref(), USER).join(" ")
        ));
    }
    env.say(format!(
        "{verb}remove {} (keyward's cache and account records are kept)",
        dirs.install_dir
    ));
    if opts.dry_run {
        env.say("dry run: nothing was changed");
        return Ok(Outcome::DryRun);
    }

    if use_systemctl && timer_installed {
        if let Err(d) = run_ok(
            sys,
            "systemctl",
            &["disable", "--now", schedule::TIMER_UNIT],
        ) {
            env.say(format!(
                "warning: systemctl disable --now {}: {d}",
                schedule::TIMER_UNIT
            ));
        }
    }
    let mut undo = Undo::default();
    let step = (|| {
        for c in &changes {
            match &c.desired {
                Some(bytes) => undo.write(&env.host, &c.path, bytes, c.new_mode),
                None => undo.remove(&env.host, &c.path),
            }
            .map_err(|e| ("restoring files".to_owned(), e.to_string()))?;
        }
        if sshd_changed && env.services {
            if let Some(sshd) = env.sshd.clone() {
                ensure_run_sshd(env, false)
                    .map_err(|e| ("creating /run/sshd".to_owned(), e.to_string()))?;
                run_ok(sys, &sshd, &["-t"])
                    .map_err(|d| (format!("{sshd} -t (sshd's config check)"), d))?;
            }
        }
        Ok(())
    })();
    if let Err((what, detail)) = step {
        return Err(undo.fail(env, sys, &dirs, what, detail));
    }
    if use_systemctl && timer_installed {
        let _ = run_ok(sys, "systemctl", &["daemon-reload"]);
    }
    if sshd_changed && env.services {
        match reload_sshd(&env.host, sys) {
            Ok(how) => env.say(how),
            Err(why) => env.say(format!("warning: sshd was not reloaded: {why}")),
        }
    }
    if remove_user {
        if let Err(d) = remove_account(&env.host, sys, prefix.as_deref()) {
            env.say(format!("warning: {d}; remove the {USER} user yourself"));
        }
    }
    env.host
        .remove_tree(&dirs.install_dir)
        .map_err(InstallError::io(&dirs.install_dir))?;
    for dir in manifest.created_dirs.iter().rev() {
        env.host.remove_empty_dir(dir);
    }
    env.say(format!(
        "uninstalled: {} file(s) restored or removed",
        changes.len()
    ));
    Ok(Outcome::Changed)
}

/// A file's bytes and mode/owner before this run changed it; `None`: it did not exist.
type Before = Option<(Vec<u8>, Meta)>;

/// The undo journal: the state of every path before its first change in this run.
#[derive(Default)]
struct Undo {
    files: Vec<(String, Before)>,
    dirs: Vec<String>,
    /// Set when this run created the keyward user (with useradd's `--prefix`, if any).
    user_prefix: Option<Option<String>>,
}

impl Undo {
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

    /// Creates `path` and missing parents (root, 0755, or `owner` for `path` itself); returns
    /// the directories created.
    fn create_dirs(
        &mut self,
        host: &Host,
        path: &str,
        owner: Option<(u32, u32)>,
    ) -> Result<Vec<String>, InstallError> {
        let mut missing = Vec::new();
        let mut p = Path::new(path);
        while !host.exists(&p.to_string_lossy()) {
            missing.push(p.to_string_lossy().into_owned());
            match p.parent() {
                Some(parent) => p = parent,
                None => break,
            }
        }
        missing.reverse();
        for dir in &missing {
            let own = if dir == path { owner } else { None };
            host.create_dir(dir, 0o755, own)
                .map_err(InstallError::io(dir.as_str()))?;
            self.dirs.push(dir.clone());
        }
        Ok(missing)
    }

    fn create_dirs_mode(&mut self, host: &Host, path: &str, mode: u32) -> Result<(), InstallError> {
        for dir in self.create_dirs(host, path, None)? {
            std::fs::set_permissions(
                host.path(&dir),
                std::os::unix::fs::PermissionsExt::from_mode(mode),
            )
            .map_err(InstallError::io(dir.as_str()))?;
        }
        Ok(())
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
            if let Err(d) = remove_account(host, sys, prefix.as_deref()) {
                failures.push(d);
            }
        }
        failures
    }

    fn fail(
        &mut self,
        env: &mut Env<'_>,
        sys: &mut dyn System,
        dirs: &Layout,
        what: String,
        detail: String,
    ) -> InstallError {
        env.say(format!("{what} failed; putting every file back"));
        let failures = self.rollback(&env.host, sys);
        if failures.is_empty() {
            InstallError::RolledBack { what, detail }
        } else {
            InstallError::RollbackFailed {
                what,
                detail,
                failures: failures.join("; "),
                originals: dirs.originals.clone(),
            }
        }
    }
}

/// The bytes uninstall must put back for a file about to change: the saved original when the
/// file is still what keyward wrote; otherwise what is there now minus keyward's parts (a
/// file holding keyward's block is never an original).
fn original_for(
    host: &Host,
    dirs: &Layout,
    old: Option<&Manifest>,
    c: &Change,
) -> Result<Option<Vec<u8>>, InstallError> {
    if let Some(record) = old.and_then(|m| m.record(&c.path)) {
        if c.current.as_deref().map(sha256_hex) == record.written_sha256 {
            let Some(sha) = &record.original_sha256 else {
                return Ok(None);
            };
            let copy = dirs.copy_of(&c.path);
            return match host.read(&copy).map_err(InstallError::io(&copy))? {
                Some(bytes) if sha256_hex(&bytes) == *sha => Ok(Some(bytes)),
                _ => Err(InstallError::BadBackup {
                    path: c.path.clone(),
                    copy,
                }),
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

fn describe_change(env: &mut Env<'_>, verb: &str, c: &Change) {
    let text = |b: &Option<Vec<u8>>| {
        b.as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned()
    };
    match (&c.current, &c.desired) {
        (None, Some(_)) => {
            env.say(format!("{verb}create {}:", c.path));
            for line in text(&c.desired).lines() {
                env.say(format!("  + {line}"));
            }
        }
        (Some(_), Some(_)) => {
            env.say(format!("{verb}modify {}:", c.path));
            for line in line_diff(&text(&c.current), &text(&c.desired)) {
                env.say(line);
            }
        }
        (Some(_), None) => env.say(format!("{verb}remove {}", c.path)),
        (None, None) => {}
    }
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

fn read_text(host: &Host, path: &str) -> Result<Option<String>, InstallError> {
    match host.read(path).map_err(InstallError::io(path))? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| InstallError::NotText(path.to_owned())),
    }
}

fn read_manifest(host: &Host, path: &str) -> Result<Option<Manifest>, InstallError> {
    match read_text(host, path)? {
        None => Ok(None),
        Some(text) => Manifest::parse(&text)
            .map(Some)
            .map_err(|message| InstallError::Manifest {
                path: path.to_owned(),
                message,
            }),
    }
}

/// userdel, then groupdel when the user's group outlived it (userdel removes it only with
/// USERGROUPS_ENAB in login.defs). `Err` names the command that failed.
fn remove_account(host: &Host, sys: &mut dyn System, prefix: Option<&str>) -> Result<(), String> {
    let args = system::userdel_args(prefix, USER);
    run_ok(
        sys,
        "userdel",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .map_err(|d| format!("userdel {}: {d}", args.join(" ")))?;
    let group_left = if host.is_real() {
        sys.group_exists(USER)
    } else {
        read_text(host, "/etc/group")
            .ok()
            .flatten()
            .is_some_and(|g| system::group_lookup(&g, USER))
    };
    if group_left {
        run_ok(
            sys,
            "groupdel",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .map_err(|d| format!("groupdel {}: {d}", args.join(" ")))?;
    }
    Ok(())
}

fn lookup_user(host: &Host, sys: &dyn System) -> Result<Option<(u32, u32)>, InstallError> {
    if host.is_real() {
        return Ok(sys.lookup_user(USER));
    }
    Ok(read_text(host, "/etc/passwd")?.and_then(|p| system::passwd_lookup(&p, USER)))
}

/// machine-id, else the hostname: what makes the cron minute differ between hosts.
fn host_identity(host: &Host) -> String {
    for path in [
        "/etc/machine-id",
        "/etc/hostname",
        "/proc/sys/kernel/hostname",
    ] {
        if let Ok(Some(bytes)) = host.read(path) {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            if !text.is_empty() {
                return text;
            }
        }
    }
    "localhost".into()
}

fn find_sshd() -> Option<String> {
    let standard = Path::new("/usr/sbin/sshd");
    if standard.is_file() {
        return Some(standard.to_string_lossy().into_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("sshd"))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
}

/// sshd -t/-T need /run/sshd on some builds. A dry run does not create it, and then does
/// without sshd -T (returns false).
fn ensure_run_sshd(env: &mut Env<'_>, dry_run: bool) -> Result<bool, InstallError> {
    if env.host.exists("/run/sshd") {
        return Ok(true);
    }
    if dry_run {
        env.say(
            "note: /run/sshd is missing and a dry run does not create it; sshd -T is not consulted",
        );
        return Ok(false);
    }
    env.host
        .create_dir("/run/sshd", 0o755, None)
        .map_err(InstallError::io("/run/sshd"))?;
    Ok(true)
}

/// Runs a command; `Err` holds its complaint.
fn run_ok(sys: &mut dyn System, program: &str, args: &[&str]) -> Result<String, String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    match sys.run(program, &args) {
        Ok(out) if out.success => Ok(out.stdout),
        Ok(out) => Err(out.complaint()),
        Err(e) => Err(format!("cannot run {program}: {e}")),
    }
}

/// Makes the running sshd read its config again; `Ok` says how, `Err` why not.
fn reload_sshd(host: &Host, sys: &mut dyn System) -> Result<String, String> {
    if host.exists(schedule::SYSTEMD_RUNNING) {
        let mut complaints = Vec::new();
        for unit in ["ssh.service", "sshd.service"] {
            match run_ok(sys, "systemctl", &["reload", unit]) {
                Ok(_) => return Ok(format!("reloaded sshd: systemctl reload {unit}")),
                Err(d) => complaints.push(format!("{unit}: {d}")),
            }
        }
        return Err(format!(
            "{}. A socket-activated sshd reads the new config at each connection; otherwise reload sshd yourself",
            complaints.join("; ")
        ));
    }
    let pid_text = match host.read("/run/sshd.pid") {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        _ => return Err("sshd does not seem to be running (no systemd, no /run/sshd.pid); reload or start it yourself".into()),
    };
    let pid: u32 = pid_text.parse().ok().filter(|p| *p > 1).ok_or_else(|| {
        format!("/run/sshd.pid holds {pid_text:?}, not a pid; reload sshd yourself")
    })?;
    // A stale pid file must not make keyward signal an unrelated process.
    let comm = host
        .read(&format!("/proc/{pid}/comm"))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    if !comm.starts_with("sshd") {
        return Err(format!(
            "/run/sshd.pid names pid {pid}, which is not sshd ({comm:?}); reload sshd yourself"
        ));
    }
    run_ok(sys, "kill", &["-HUP", &pid.to_string()])
        .map(|_| format!("reloaded sshd: kill -HUP {pid}"))
        .map_err(|d| format!("kill -HUP {pid}: {d}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::install::pam::tests::{AMAZON_LINUX_PAM, DEBIAN_PAM};
    use crate::install::sshd::tests::{AMAZON_LINUX_SSHD, DEBIAN_SSHD};
    use crate::install::system::CommandOutput;

    const BIN: &str = "/usr/local/bin/keyward";
    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n";

    /// Stands in for useradd/userdel (on the tree's /etc/passwd), sshd -t/-T (computed from the
    /// tree's files), systemctl and kill; records every command.
    struct Fake {
        root: PathBuf,
        calls: Vec<String>,
        fail: Vec<&'static str>,
        /// What `sshd -T` prints instead of the tree's effective config.
        dump_override: Option<String>,
    }

    impl Fake {
        fn new(root: &Path) -> Fake {
            Fake {
                root: root.to_owned(),
                calls: Vec::new(),
                fail: Vec::new(),
                dump_override: None,
            }
        }

        fn passwd(&self) -> PathBuf {
            self.root.join("etc/passwd")
        }

        fn group(&self) -> PathBuf {
            self.root.join("etc/group")
        }

        /// `sshd -T` over the tree: Includes inlined (keyward's drop-in included), then sshd's
        /// first-value rule.
        fn dump(&self) -> String {
            let host = Host::new(Some(&self.root));
            let main = fs::read_to_string(self.root.join("etc/ssh/sshd_config")).unwrap();
            let mut inlined = String::new();
            for line in main.lines() {
                match sshd::parse_line(line) {
                    Some((k, v)) if k == "include" => {
                        for pattern in sshd::include_patterns(&v) {
                            for (_, text) in host.glob(&pattern) {
                                inlined.push_str(&text);
                            }
                        }
                    }
                    _ => {
                        inlined.push_str(line);
                        inlined.push('\n');
                    }
                }
            }
            let eff = sshd::effective(&sshd::walk(&inlined, &|_: &str| Vec::new()));
            let v = |s: Option<sshd::Setting>| s.map_or("none".to_owned(), |s| s.value);
            format!(
                "port 22\nauthorizedkeyscommand {}\nauthorizedkeyscommanduser {}\nkbdinteractiveauthentication {}\nusepam {}\n",
                v(eff.command),
                v(eff.command_user),
                v(eff.kbd_interactive).to_lowercase(),
                v(eff.use_pam).to_lowercase()
            )
        }
    }

    impl System for Fake {
        fn run(&mut self, program: &str, args: &[String]) -> std::io::Result<CommandOutput> {
            let line = format!("{program} {}", args.join(" "));
            self.calls.push(line.clone());
            let ok = |stdout: String| {
                Ok(CommandOutput {
                    success: true,
                    stdout,
                    stderr: String::new(),
                })
            };
            if self.fail.iter().any(|f| line.starts_with(f)) {
                return Ok(CommandOutput {
                    success: false,
                    stdout: String::new(),
                    stderr: format!("simulated failure of {line}"),
                });
            }
            match program {
                "useradd" => {
                    assert_eq!(
                        args[..2],
                        [
                            "--prefix".to_owned(),
                            self.root.to_string_lossy().into_owned()
                        ]
                    );
                    let mut text = fs::read_to_string(self.passwd()).unwrap();
                    text.push_str(&format!(
                        "keyward:x:{}:{}::/nonexistent:/usr/sbin/nologin\n",
                        nix::unistd::geteuid(),
                        nix::unistd::getegid()
                    ));
                    fs::write(self.passwd(), text).unwrap();
                    // Like useradd --user-group; userdel without USERGROUPS_ENAB leaves it.
                    let mut group = fs::read_to_string(self.group()).unwrap_or_default();
                    group.push_str(&format!("keyward:x:{}:\n", nix::unistd::getegid()));
                    fs::write(self.group(), group).unwrap();
                    ok(String::new())
                }
                "userdel" | "groupdel" => {
                    let file = if program == "userdel" {
                        self.passwd()
                    } else {
                        self.group()
                    };
                    let text = fs::read_to_string(&file).unwrap_or_default();
                    let kept: String = text
                        .split_inclusive('\n')
                        .filter(|l| !l.starts_with("keyward:"))
                        .collect();
                    fs::write(file, kept).unwrap();
                    ok(String::new())
                }
                "/usr/sbin/sshd" if args == ["-T"] => {
                    ok(self.dump_override.clone().unwrap_or_else(|| self.dump()))
                }
                _ => ok(String::new()),
            }
        }

        fn lookup_user(&self, _name: &str) -> Option<(u32, u32)> {
            panic!("a --root tree is never looked up through NSS")
        }

        fn group_exists(&self, _name: &str) -> bool {
            panic!("a --root tree is never looked up through NSS")
        }
    }

    type Step =
        fn(&mut Env<'_>, &Options, &Config, &mut dyn System) -> Result<Outcome, InstallError>;

    /// Runs install or uninstall against the fake, returning what it printed.
    fn run_step(
        step: Step,
        opts: &Options,
        config: &Config,
        sys: &mut Fake,
        services: bool,
    ) -> (Result<Outcome, InstallError>, String) {
        let mut out = Vec::new();
        let mut env = Env {
            host: Host::new(opts.root.as_deref()),
            services,
            sshd: services.then(|| "/usr/sbin/sshd".to_owned()),
            out: &mut out,
        };
        let result = step(&mut env, opts, config, sys);
        (result, String::from_utf8(out).unwrap())
    }

    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new(sshd_config: &str, pam: Option<&str>) -> Tree {
            let dir = tempfile::tempdir().unwrap();
            let t = Tree { dir };
            t.write("etc/ssh/sshd_config", sshd_config);
            fs::create_dir_all(t.path("etc/ssh/sshd_config.d")).unwrap();
            if let Some(pam) = pam {
                t.write("etc/pam.d/sshd", pam);
            }
            t.write("etc/passwd", PASSWD);
            t.write("etc/group", "root:x:0:\n");
            t.write("etc/machine-id", "4b2d0b0f1c3e4a8f9d6e7c5b4a39281f\n");
            fs::create_dir_all(t.path("var/lib")).unwrap();
            fs::create_dir_all(t.path("var/cache")).unwrap();
            fs::create_dir_all(t.path("run")).unwrap();
            t
        }

        fn debian() -> Tree {
            Tree::new(DEBIAN_SSHD, Some(DEBIAN_PAM))
        }

        fn path(&self, p: &str) -> PathBuf {
            self.dir.path().join(p.trim_start_matches('/'))
        }

        fn write(&self, p: &str, text: &str) {
            let path = self.path(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        fn read(&self, p: &str) -> String {
            fs::read_to_string(self.path(p)).unwrap()
        }

        fn exists(&self, p: &str) -> bool {
            self.path(p).exists()
        }

        /// Every file and directory under `sub`, with content and mode.
        fn snapshot(&self, sub: &str) -> BTreeMap<PathBuf, (Option<Vec<u8>>, u32)> {
            fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (Option<Vec<u8>>, u32)>) {
                for entry in fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    let meta = fs::symlink_metadata(&path).unwrap();
                    if meta.is_dir() {
                        out.insert(path.clone(), (None, meta.mode()));
                        walk(&path, out);
                    } else {
                        out.insert(path.clone(), (Some(fs::read(&path).unwrap()), meta.mode()));
                    }
                }
            }
            let mut out = BTreeMap::new();
            walk(&self.path(sub), &mut out);
            out
        }

        fn opts(&self) -> Options {
            Options {
                root: Some(self.dir.path().to_owned()),
                binary: BIN.into(),
                dry_run: false,
                replace: false,
                scheduler: SchedulerChoice::Auto,
                reload: true,
                force: false,
            }
        }

        /// Runs install; `services` also runs the sshd/systemctl steps against the fake.
        fn install(
            &self,
            opts: &Options,
            config: &Config,
            sys: &mut Fake,
            services: bool,
        ) -> (Result<Outcome, InstallError>, String) {
            run_step(install_in, opts, config, sys, services)
        }

        fn uninstall(
            &self,
            opts: &Options,
            config: &Config,
            sys: &mut Fake,
            services: bool,
        ) -> (Result<Outcome, InstallError>, String) {
            run_step(uninstall_in, opts, config, sys, services)
        }
    }

    fn manifest(t: &Tree) -> Manifest {
        Manifest::parse(&t.read("var/lib/keyward/install/manifest.json")).unwrap()
    }

    #[test]
    fn install_on_debian_writes_the_dropin_pam_hook_cron_and_manifest() {
        let t = Tree::debian();
        let mut sys = Fake::new(t.dir.path());
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::Changed, "{out}");

        assert_eq!(t.read("etc/ssh/sshd_config"), DEBIAN_SSHD);
        let dropin = t.read("etc/ssh/sshd_config.d/00-keyward.conf");
        assert!(dropin.contains("\nAuthorizedKeysCommand /usr/local/bin/keyward authorized-keys %u %f %k\nAuthorizedKeysCommandUser keyward\nKbdInteractiveAuthentication yes\n"), "{dropin}");
        let pam = t.read("etc/pam.d/sshd");
        assert!(pam.contains("# BEGIN keyward\nauth optional pam_exec.so quiet stdout /usr/local/bin/keyward pam-create-account\n# END keyward\n@include common-auth\n"), "{pam}");
        let minute = schedule::cron_minute("4b2d0b0f1c3e4a8f9d6e7c5b4a39281f");
        assert!(t.read("etc/cron.d/keyward").contains(&format!(
            "\n{minute} * * * * root /usr/local/bin/keyward sync >/dev/null 2>&1\n"
        )));
        assert!(!t.exists("etc/systemd/system/keyward-sync.timer"));
        assert!(
            !t.exists("etc/keyward/chain.toml"),
            "nothing to chain on Debian"
        );

        assert!(t.read("etc/passwd").contains("\nkeyward:x:"));
        assert_eq!(sys.calls.len(), 1, "{:?}", sys.calls);
        assert!(sys.calls[0].starts_with("useradd --prefix "));
        let cache = fs::metadata(t.path("var/cache/keyward")).unwrap();
        assert_eq!(cache.uid(), nix::unistd::geteuid().as_raw());
        assert_eq!(cache.mode() & 0o7777, 0o755);
        assert_eq!(
            fs::metadata(t.path("var/lib/keyward")).unwrap().mode() & 0o7777,
            0o755
        );

        let m = manifest(&t);
        assert!(m.created_user);
        assert_eq!(m.scheduler, Some(Scheduler::Cron));
        let paths: Vec<_> = m
            .files
            .iter()
            .map(|r| (r.path.as_str(), r.action))
            .collect();
        assert_eq!(
            paths,
            [
                (DROPIN_PATH, manifest::Action::Created),
                (pam::PAM_PATH, manifest::Action::Modified),
                (schedule::CRON_PATH, manifest::Action::Created),
            ]
        );
        assert_eq!(
            m.files[1].original_sha256.as_deref(),
            Some(sha256_hex(DEBIAN_PAM.as_bytes()).as_str())
        );
        assert_eq!(
            m.files[1].written_sha256.as_deref(),
            Some(sha256_hex(pam.as_bytes()).as_str())
        );
        let copy = t.path("var/lib/keyward/install/originals/etc%2Fpam.d%2Fsshd");
        assert_eq!(fs::read_to_string(&copy).unwrap(), DEBIAN_PAM);
        assert_eq!(fs::metadata(&copy).unwrap().mode() & 0o777, 0o600);
        assert!(
            out.contains("create /etc/ssh/sshd_config.d/00-keyward.conf:"),
            "{out}"
        );
        assert!(out.contains("--root "), "{out}");
    }

    #[test]
    fn cache_install_gives_what_a_root_run_left_to_keyward_and_dry_run_says_so() {
        let t = Tree::debian();
        t.write(
            "etc/passwd",
            &format!("{PASSWD}keyward:x:4242:4242::/nonexistent:/usr/sbin/nologin\n"),
        );
        // What `authorized-keys` run as root before install used to leave.
        fs::create_dir_all(t.path("var/cache/keyward/users")).unwrap();
        t.write("var/cache/keyward/keys/APKA1", "x");
        let owner = |p: &str| fs::symlink_metadata(t.path(p)).unwrap().uid();
        let mut sys = Fake::new(t.dir.path());
        let mut dry = t.opts();
        dry.dry_run = true;
        let (result, out) = t.install(&dry, &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::DryRun, "{out}");
        assert!(out.contains("would give 4 cache entries to keyward (chown, never through a symlink): /var/cache/keyward, /var/cache/keyward/keys, /var/cache/keyward/users, /var/cache/keyward/keys/APKA1\n"), "{out}");
        assert_eq!(owner("var/cache/keyward/keys"), 0, "dry run changed it");

        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::Changed, "{out}");
        assert!(out.contains("give 4 cache entries to keyward"), "{out}");
        for p in ["", "/keys", "/users", "/keys/APKA1"] {
            assert_eq!(owner(&format!("var/cache/keyward{p}")), 4242, "{p}");
        }
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::NothingToDo, "{out}");
    }

    #[test]
    fn cache_install_refuses_a_symlink_in_the_cache_and_changes_nothing() {
        let t = Tree::debian();
        fs::create_dir_all(t.path("var/cache/keyward/keys")).unwrap();
        fs::create_dir_all(t.path("elsewhere")).unwrap();
        std::os::unix::fs::symlink(t.path("elsewhere"), t.path("var/cache/keyward/users")).unwrap();
        let before = t.snapshot("etc");
        let mut sys = Fake::new(t.dir.path());
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, false);
        let err = result.unwrap_err();
        assert!(
            matches!(&err, InstallError::CacheSymlink { path } if path == "/var/cache/keyward/users"),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("/var/cache/keyward/users is a symlink: rm /var/cache/keyward/users && keyward install"),
            "{err}"
        );
        assert_eq!(t.snapshot("etc"), before, "{out}");
        assert!(sys.calls.is_empty(), "{:?}", sys.calls);
    }

    #[test]
    fn second_install_changes_nothing() {
        let t = Tree::debian();
        let mut sys = Fake::new(t.dir.path());
        t.install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        let before = t.snapshot("");
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::NothingToDo);
        assert!(out.contains("already installed; nothing changed"), "{out}");
        assert_eq!(t.snapshot(""), before);
        assert_eq!(sys.calls.len(), 1, "useradd only once: {:?}", sys.calls);
    }

    #[test]
    fn uninstall_gives_back_etc_byte_for_byte() {
        let t = Tree::debian();
        let before = t.snapshot("etc");
        let mut sys = Fake::new(t.dir.path());
        t.install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        assert_ne!(t.snapshot("etc"), before);
        let (result, out) = t.uninstall(&t.opts(), &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::Changed, "{out}");
        assert_eq!(t.snapshot("etc"), before, "{out}");
        assert!(sys
            .calls
            .iter()
            .any(|c| c.ends_with(" keyward") && c.starts_with("userdel --prefix")));
        assert!(
            !t.read("etc/group").contains("keyward"),
            "the group useradd made is gone too"
        );
        assert!(!t.exists("var/lib/keyward/install"));
        assert!(t.exists("var/cache/keyward"), "cache data is kept");
        let (result, out) = t.uninstall(&t.opts(), &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::NothingToDo);
        assert!(out.contains("not installed; nothing to do"));
    }

    #[test]
    fn uninstall_refuses_when_an_admin_edited_a_managed_file_and_force_restores_anyway() {
        let t = Tree::debian();
        let before = t.snapshot("etc");
        let mut sys = Fake::new(t.dir.path());
        t.install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        let edited = format!("{}session optional pam_motd.so\n", t.read("etc/pam.d/sshd"));
        t.write("etc/pam.d/sshd", &edited);
        let during = t.snapshot("");

        let (result, _) = t.uninstall(&t.opts(), &Config::default(), &mut sys, false);
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("/etc/pam.d/sshd") && err.contains("--force"),
            "{err}"
        );
        assert!(
            !err.contains("00-keyward"),
            "only the edited file is named: {err}"
        );
        assert_eq!(t.snapshot(""), during, "a refusal changes nothing");

        let mut force = t.opts();
        force.force = true;
        let (result, out) = t.uninstall(&force, &Config::default(), &mut sys, false);
        result.unwrap();
        assert!(out.contains("--force"), "{out}");
        assert_eq!(t.snapshot("etc"), before);
    }

    #[test]
    fn dry_run_changes_nothing_and_says_what_it_would_do() {
        let t = Tree::debian();
        let before = t.snapshot("");
        let mut sys = Fake::new(t.dir.path());
        let mut opts = t.opts();
        opts.dry_run = true;
        let (result, out) = t.install(&opts, &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::DryRun);
        assert_eq!(t.snapshot(""), before);
        assert!(sys.calls.is_empty(), "{:?}", sys.calls);
        for expected in [
            "would create system user keyward: useradd --prefix",
            "would create /etc/ssh/sshd_config.d/00-keyward.conf:",
            "  + AuthorizedKeysCommand /usr/local/bin/keyward authorized-keys %u %f %k",
            "would modify /etc/pam.d/sshd:",
            "  + auth optional pam_exec.so quiet stdout /usr/local/bin/keyward pam-create-account",
            "would create /etc/cron.d/keyward:",
            "dry run: nothing was changed",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
        }

        t.install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        let installed = t.snapshot("");
        let (result, out) = t.uninstall(&opts, &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::DryRun);
        assert!(
            out.contains("would remove /etc/ssh/sshd_config.d/00-keyward.conf"),
            "{out}"
        );
        assert!(out.contains("would remove system user keyward"), "{out}");
        assert_eq!(t.snapshot(""), installed);
    }

    #[test]
    fn amazon_linux_gets_the_block_and_chains_to_instance_connect() {
        let t = Tree::new(AMAZON_LINUX_SSHD, Some(AMAZON_LINUX_PAM));
        let before = t.snapshot("etc");
        let mut sys = Fake::new(t.dir.path());
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, false);
        result.unwrap();
        let main = t.read("etc/ssh/sshd_config");
        assert!(main.starts_with("# BEGIN keyward (managed by keyward install; remove with keyward uninstall)\nAuthorizedKeysCommand /usr/local/bin/keyward authorized-keys %u %f %k\n"), "{main}");
        assert!(!t.exists("etc/ssh/sshd_config.d/00-keyward.conf"));
        let chain: toml::Table = toml::from_str(&t.read("etc/keyward/chain.toml")).unwrap();
        assert_eq!(
            chain["command"].as_str(),
            Some("/opt/aws/bin/eic_run_authorized_keys %u %f")
        );
        assert_eq!(chain["user"].as_str(), Some("ec2-instance-connect"));
        assert!(out.contains("chaining:"), "{out}");
        assert!(t
            .read("etc/pam.d/sshd")
            .starts_with("#%PAM-1.0\n# BEGIN keyward\n"));

        t.install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        assert!(
            t.exists("etc/keyward/chain.toml"),
            "a re-install keeps the chain"
        );

        t.uninstall(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        assert_eq!(t.snapshot("etc"), before);
        assert!(
            !t.exists("etc/keyward"),
            "the directory install created is gone"
        );
    }

    #[test]
    fn replace_drops_the_existing_command_and_says_so() {
        let t = Tree::new(AMAZON_LINUX_SSHD, Some(AMAZON_LINUX_PAM));
        let mut sys = Fake::new(t.dir.path());
        let mut opts = t.opts();
        opts.replace = true;
        let (result, out) = t.install(&opts, &Config::default(), &mut sys, false);
        result.unwrap();
        assert!(!t.exists("etc/keyward/chain.toml"));
        assert!(out.contains("--replace: the AuthorizedKeysCommand in effect now (/opt/aws/bin/eic_run_authorized_keys %u %f) will no longer be used"), "{out}");
    }

    #[test]
    fn turning_create_on_login_off_updates_in_place_and_keeps_the_first_originals() {
        let t = Tree::debian();
        let before = t.snapshot("etc");
        let mut sys = Fake::new(t.dir.path());
        t.install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        let off = Config {
            create_on_login: false,
            ..Config::default()
        };
        let (result, out) = t.install(&t.opts(), &off, &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::Changed, "{out}");
        assert_eq!(t.read("etc/pam.d/sshd"), DEBIAN_PAM);
        assert!(!t
            .read("etc/ssh/sshd_config.d/00-keyward.conf")
            .contains("KbdInteractive"));
        let m = manifest(&t);
        assert!(
            m.record(pam::PAM_PATH).is_none(),
            "PAM is the admin's again"
        );
        assert!(!t.exists("var/lib/keyward/install/originals/etc%2Fpam.d%2Fsshd"));

        t.install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        assert_eq!(
            manifest(&t).record(pam::PAM_PATH).unwrap().original_sha256,
            Some(sha256_hex(DEBIAN_PAM.as_bytes()))
        );
        t.uninstall(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        assert_eq!(t.snapshot("etc"), before);
    }

    #[test]
    fn a_file_already_holding_keywards_block_is_never_saved_as_the_original() {
        let t = Tree::new(AMAZON_LINUX_SSHD, Some(AMAZON_LINUX_PAM));
        let mut sys = Fake::new(t.dir.path());
        t.install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        // The record is lost (state dir wiped), the blocks are still in the files.
        fs::remove_dir_all(t.path("var/lib/keyward/install")).unwrap();
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, false);
        result.unwrap();
        assert!(out.contains("already installed"), "{out}");
        // A change forces a rewrite: the saved original must be the file without the block.
        let off = Config {
            create_on_login: false,
            ..Config::default()
        };
        t.install(&t.opts(), &off, &mut sys, false).0.unwrap();
        let copy = t.read("var/lib/keyward/install/originals/etc%2Fssh%2Fsshd_config");
        assert_eq!(copy, AMAZON_LINUX_SSHD);
    }

    #[test]
    fn missing_pam_file_is_refused_by_name_and_nothing_is_written() {
        let t = Tree::new(DEBIAN_SSHD, None);
        let before = t.snapshot("");
        let mut sys = Fake::new(t.dir.path());
        let err = t
            .install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap_err();
        assert!(
            err.to_string().contains("/etc/pam.d/sshd does not exist"),
            "{err}"
        );
        assert_eq!(t.snapshot(""), before);
        let off = Config {
            create_on_login: false,
            ..Config::default()
        };
        t.install(&t.opts(), &off, &mut sys, false).0.unwrap();
    }

    #[test]
    fn a_damaged_block_is_refused_naming_the_file() {
        let t = Tree::new(&format!("# BEGIN keyward\n{DEBIAN_SSHD}"), Some(DEBIAN_PAM));
        let mut sys = Fake::new(t.dir.path());
        let err = t
            .install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/etc/ssh/sshd_config: keyward's marked block is damaged at line 1"),
            "{err}"
        );
        assert!(sys.calls.is_empty());
    }

    #[test]
    fn with_services_sshd_validates_and_the_timer_is_enabled_and_sshd_reloaded() {
        let t = Tree::debian();
        fs::create_dir_all(t.path("run/systemd/system")).unwrap();
        let mut sys = Fake::new(t.dir.path());
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, true);
        assert_eq!(result.unwrap(), Outcome::Changed, "{out}");
        let calls = sys.calls.join("\n");
        for expected in [
            "/usr/sbin/sshd -T",
            "/usr/sbin/sshd -t",
            "systemctl daemon-reload",
            "systemctl enable --now keyward-sync.timer",
            "systemctl reload ssh.service",
        ] {
            assert!(calls.contains(expected), "{expected} not run:\n{calls}");
        }
        assert!(t.exists("etc/systemd/system/keyward-sync.timer"));
        assert!(t
            .read("etc/systemd/system/keyward-sync.service")
            .contains("ExecStart=/usr/local/bin/keyward sync\n"));
        assert!(!t.exists("etc/cron.d/keyward"));
        assert!(t.exists("run/sshd"));

        sys.calls.clear();
        t.uninstall(&t.opts(), &Config::default(), &mut sys, true)
            .0
            .unwrap();
        let calls = sys.calls.join("\n");
        assert!(
            calls.starts_with("systemctl disable --now keyward-sync.timer"),
            "{calls}"
        );
        assert!(
            calls.contains(
                "/usr/sbin/sshd -t\nsystemctl daemon-reload\nsystemctl reload ssh.service\nuserdel"
            ),
            "{calls}"
        );
    }

    #[test]
    fn failed_sshd_check_puts_every_file_back_and_removes_the_user() {
        let t = Tree::debian();
        let before = t.snapshot("etc");
        let mut sys = Fake::new(t.dir.path());
        sys.fail.push("/usr/sbin/sshd -t");
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, true);
        let err = result.unwrap_err();
        assert!(matches!(err, InstallError::RolledBack { .. }), "{err}");
        assert!(err.to_string().contains("sshd -t"), "{err}");
        assert!(out.contains("putting every file back"), "{out}");
        assert_eq!(t.snapshot("etc"), before);
        assert!(!t.exists("var/lib/keyward/install/manifest.json"));
        assert!(
            !sys.calls.iter().any(|c| c.contains("reload")),
            "{:?}",
            sys.calls
        );
    }

    #[test]
    fn an_early_dropin_setting_our_keywords_gets_the_block_which_sshd_confirms() {
        let t = Tree::debian();
        t.write(
            "etc/ssh/sshd_config.d/00-early.conf",
            "AuthorizedKeysCommandUser nobody\n",
        );
        let mut sys = Fake::new(t.dir.path());
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, true);
        assert_eq!(result.unwrap(), Outcome::Changed, "{out}");
        assert!(out.contains("block at the top"), "{out}");
        assert!(t.read("etc/ssh/sshd_config").starts_with("# BEGIN keyward"));
        assert!(sys.dump().contains("\nauthorizedkeyscommanduser keyward\n"));
    }

    #[test]
    fn sshd_showing_another_effective_command_after_install_rolls_back() {
        let t = Tree::debian();
        let before = t.snapshot("etc");
        let mut sys = Fake::new(t.dir.path());
        sys.dump_override =
            Some("authorizedkeyscommand /opt/other %u\nauthorizedkeyscommanduser nobody\n".into());
        let err = t
            .install(&t.opts(), &Config::default(), &mut sys, true)
            .0
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("must be the effective ones") && text.contains("/opt/other"),
            "{text}"
        );
        assert!(text.contains("Every file was put back"), "{text}");
        assert_eq!(t.snapshot("etc"), before);
    }
}
