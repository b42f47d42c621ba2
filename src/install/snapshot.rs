//! Reading the host for install and uninstall: everything the planners decide on, in one value.
//!
//! `read_host` is the only part of install/uninstall that looks at the host before the plan is
//! made: the files keyward manages and their bytes, the files sshd's Includes pull in, the
//! manifest and the saved originals, the service user, the cache's owners and modes, systemd
//! and the timer, `sshd -T` on the configuration as it is, the cron seed. The planners never
//! read anything else, so a test builds a `HostSnapshot` in memory and reaches every branch.
//!
//! Invariants: reading changes nothing on the host, with one exception kept from before the
//! split: a real (not dry) install creates `/run/sshd`, which `sshd -T` needs on some builds
//! and sshd creates itself at start. Text is kept as bytes; whether a file is usable (UTF-8,
//! an intact keyward block) is the planner's decision, so a refusal names the file the same
//! way for `--dry-run` and the real run.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use super::host::{self, Host};
use super::manifest::{escape_path, Manifest};
use super::schedule;
use super::sshd::{self, CA_KEY_PATH, DROPIN_PATH, HOST_CERT_GLOB, MAIN_CONFIG};
use super::system::{self, System};
use super::{blocks, cache, pam, InstallError, CHAIN_PATH, USER};
use crate::config::Config;
use crate::state::StateDir;

/// Every file install may write or remove, in the order it handles them.
pub const MANAGED_PATHS: [&str; 9] = [
    MAIN_CONFIG,
    DROPIN_PATH,
    CA_KEY_PATH,
    super::jump::JUMP_PATH,
    pam::PAM_PATH,
    CHAIN_PATH,
    schedule::SERVICE_PATH,
    schedule::TIMER_PATH,
    schedule::CRON_PATH,
];

/// Where the jobs work, and whether the host's services (sshd, systemctl, NSS) are real.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: Host,
    /// Run sshd -t/-T, systemctl and reload: only on the real root.
    pub services: bool,
    /// The sshd binary, when `services`.
    pub sshd: Option<String>,
}

/// Paths under `state_dir` (laid out by [`StateDir`]), as host paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub state_dir: String,
    pub cache_dir: String,
    pub install_dir: String,
    pub originals: String,
    pub manifest: String,
}

impl Layout {
    pub fn new(config: &Config) -> Layout {
        let state = StateDir::new(&config.state_dir);
        let text = |p: &std::path::Path| p.to_string_lossy().into_owned();
        Layout {
            cache_dir: text(&config.cache_dir),
            originals: text(&state.install_originals()),
            manifest: text(&state.install_manifest()),
            install_dir: text(&state.install()),
            state_dir: text(state.root()),
        }
    }

    /// Where the original of `path` is saved.
    pub fn copy_of(&self, path: &str) -> String {
        format!("{}/{}", self.originals, escape_path(path))
    }
}

/// What the job reads beyond what both need.
#[derive(Debug, Clone, Copy)]
pub enum Job<'a> {
    /// `binary` is the keyward sshd and PAM will run; a dry run does not create /run/sshd.
    Install {
        binary: &'a str,
        dry_run: bool,
    },
    Uninstall,
}

/// `sshd -T` on the configuration as it is, before any change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshdDump {
    /// Not asked: a `--root` tree, or uninstall.
    NotRun,
    /// A dry run on a host without /run/sshd, which a dry run does not create.
    NoRunDir,
    /// sshd's effective settings, keyword (lower case) and value.
    Dump(Vec<(String, String)>),
}

/// The host as install and uninstall see it.
#[derive(Debug, Clone)]
pub struct HostSnapshot {
    /// `Some(dir)` for a `--root` tree (useradd's `--prefix`), `None` for the running host.
    pub root: Option<String>,
    /// sshd, systemctl and the reload are the host's own (see `Target::services`).
    pub services: bool,
    pub sshd: Option<String>,
    pub layout: Layout,
    /// Bytes of every managed path and every path the manifest records; `None`: absent.
    pub files: BTreeMap<String, Option<Vec<u8>>>,
    /// The saved original of each of those paths under `originals/`; `None`: no copy.
    pub saved: BTreeMap<String, Option<Vec<u8>>>,
    /// Files sshd's Include patterns (of the main config without keyward's block) match:
    /// pattern → (path, text), sorted like glob(3).
    pub includes: BTreeMap<String, Vec<(String, String)>>,
    pub manifest: Option<Manifest>,
    /// The keyward user's uid and gid.
    pub user: Option<(u32, u32)>,
    /// The cache's entries, parents first; `None`: the directory does not exist.
    pub cache: Option<Vec<cache::Entry>>,
    /// Whether each directory install may have to create exists: the state directory, its
    /// install record and originals, the cache's parent and the parent of every managed path,
    /// each with its ancestors. Install creates none that is not a step of its plan.
    pub dirs: BTreeMap<String, bool>,
    /// systemd is the running init (`/run/systemd/system`).
    pub systemd_running: bool,
    /// `systemctl is-enabled keyward-sync.timer` said yes; `None`: not asked.
    pub timer_enabled: Option<bool>,
    pub sshd_dump: SshdDump,
    /// machine-id, else the hostname: seeds the cron minute.
    pub host_identity: String,
    /// Why sshd would refuse the binary as AuthorizedKeysCommand (install only).
    pub binary_problem: Option<String>,
    /// The files matching `sshd::HOST_CERT_GLOB` (path, text), sorted (install only).
    pub host_certificates: Vec<(String, String)>,
    /// The config has a `[jump]` table whose Linux group the group database lacks.
    pub jump_group_missing: bool,
    /// The `[jump]` group exists but sync has no record of it (`state_dir/groups/NAME`): a
    /// group keyward did not create or adopt, which sync never adds IAM members to.
    pub jump_group_foreign: bool,
}

impl HostSnapshot {
    /// The bytes of a path read into the snapshot; `None`: absent (or not read).
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).and_then(|b| b.as_deref())
    }

    /// `dir` and its ancestors that do not exist, outermost first (a directory not read is
    /// taken to exist: creating it then fails the run, which is rolled back).
    pub fn missing_dirs(&self, dir: &str) -> Vec<String> {
        let mut missing: Vec<String> = Path::new(dir)
            .ancestors()
            .map(|p| p.to_string_lossy().into_owned())
            .take_while(|p| self.dirs.get(p) == Some(&false))
            .collect();
        missing.reverse();
        missing
    }

    /// sshd's Include resolver over the files read.
    pub fn resolve(&self, pattern: &str) -> Vec<(String, String)> {
        self.includes.get(pattern).cloned().unwrap_or_default()
    }
}

/// Reads everything `plan_install` (`Job::Install`) or `plan_uninstall` decides on.
pub fn read_host(
    target: &Target,
    config: &Config,
    job: Job<'_>,
    sys: &mut dyn System,
) -> Result<HostSnapshot, InstallError> {
    let host = &target.host;
    let layout = Layout::new(config);
    let manifest = read_manifest(host, &layout.manifest)?;
    let mut paths: Vec<String> = MANAGED_PATHS.iter().map(|p| p.to_string()).collect();
    for record in manifest.iter().flat_map(|m| &m.files) {
        if !paths.contains(&record.path) {
            paths.push(record.path.clone());
        }
    }
    let mut files = BTreeMap::new();
    let mut saved = BTreeMap::new();
    for path in paths {
        let copy = layout.copy_of(&path);
        saved.insert(
            path.clone(),
            host.read(&copy).map_err(InstallError::io(&copy))?,
        );
        let bytes = host.read(&path).map_err(InstallError::io(&path))?;
        files.insert(path, bytes);
    }
    let includes = match files.get(MAIN_CONFIG) {
        Some(Some(main)) => read_includes(host, main),
        _ => BTreeMap::new(),
    };
    let host_certificates = match job {
        Job::Install { .. } => host.glob(HOST_CERT_GLOB),
        Job::Uninstall => Vec::new(),
    };
    let (binary_problem, sshd_dump, cache) = match job {
        Job::Install { binary, dry_run } => {
            let problem = match host::ancestry(Path::new(binary)) {
                Ok(ancestry) => super::sshd_path_problem(&ancestry),
                Err(e) => Some(format!("{binary}: {e}")),
            };
            let dump = read_dump(target, dry_run, sys)?;
            let cache = cache::read(host, &layout.cache_dir)?;
            (problem, dump, cache)
        }
        Job::Uninstall => (None, SshdDump::NotRun, None),
    };
    // Asked for both jobs: a run that disables the timer enables it again on rollback only
    // when it was enabled.
    let timer_enabled = (target.services && host.exists(schedule::SYSTEMD_RUNNING)).then(|| {
        system::run_checked(
            sys,
            "systemctl",
            &["is-enabled", "--quiet", schedule::TIMER_UNIT],
        )
        .is_ok()
    });
    let jump_group_missing = config
        .jump
        .as_ref()
        .is_some_and(|j| !group_exists(host, sys, &j.group));
    let jump_group_foreign = !jump_group_missing
        && config.jump.as_ref().is_some_and(|j| {
            let record = crate::state::StateDir::new(&config.state_dir)
                .groups()
                .join(&j.group);
            !host.exists(&record.to_string_lossy())
        });
    Ok(HostSnapshot {
        root: (!host.is_real()).then(|| host.root().to_string_lossy().into_owned()),
        services: target.services,
        sshd: target.sshd.clone().filter(|_| target.services),
        user: lookup_user(host, sys)?,
        dirs: read_dirs(host, &layout, &files),
        systemd_running: host.exists(schedule::SYSTEMD_RUNNING),
        host_identity: host_identity(host),
        layout,
        files,
        saved,
        includes,
        manifest,
        cache,
        timer_enabled,
        sshd_dump,
        binary_problem,
        host_certificates,
        jump_group_missing,
        jump_group_foreign,
    })
}

/// Whether each directory in `HostSnapshot::dirs` exists.
fn read_dirs(
    host: &Host,
    layout: &Layout,
    files: &BTreeMap<String, Option<Vec<u8>>>,
) -> BTreeMap<String, bool> {
    let parent = |p: &str| {
        Path::new(p)
            .parent()
            .map(|d| d.to_string_lossy().into_owned())
    };
    let wanted = [
        Some(layout.originals.clone()),
        Some(layout.install_dir.clone()),
        Some(layout.state_dir.clone()),
        parent(&layout.cache_dir),
    ]
    .into_iter()
    .chain(files.keys().map(|p| parent(p)))
    .flatten();
    let mut dirs = BTreeMap::new();
    for dir in wanted {
        for d in Path::new(&dir).ancestors() {
            let d = d.to_string_lossy().into_owned();
            if d != "/" && !d.is_empty() && !dirs.contains_key(&d) {
                let exists = host.exists(&d);
                dirs.insert(d, exists);
            }
        }
    }
    dirs
}

/// Walks the main config (without keyward's block) the way sshd does, recording what each
/// Include pattern matched. A config the planner will refuse (not text, damaged block) has
/// no includes to read.
fn read_includes(host: &Host, main: &[u8]) -> BTreeMap<String, Vec<(String, String)>> {
    let Some(clean) = std::str::from_utf8(main)
        .ok()
        .and_then(|text| blocks::remove_block(text).ok())
    else {
        return BTreeMap::new();
    };
    let seen = RefCell::new(BTreeMap::new());
    sshd::walk(&clean, &|pattern: &str| {
        let found = host.glob(pattern);
        seen.borrow_mut().insert(pattern.to_owned(), found.clone());
        found
    });
    seen.into_inner()
}

fn read_dump(
    target: &Target,
    dry_run: bool,
    sys: &mut dyn System,
) -> Result<SshdDump, InstallError> {
    let Some(sshd) = target.sshd.as_deref().filter(|_| target.services) else {
        return Ok(SshdDump::NotRun);
    };
    if !ensure_run_sshd(&target.host, dry_run)? {
        return Ok(SshdDump::NoRunDir);
    }
    let dump = system::run_checked(sys, sshd, &["-T"]).map_err(|source| InstallError::Command {
        command: format!("{sshd} -T"),
        source: Box::new(source),
        context: " (on the configuration as it is, before any change)",
    })?;
    Ok(SshdDump::Dump(sshd::parse_dump(&dump)))
}

/// sshd -t/-T need /run/sshd on some builds. A dry run does not create it (returns false).
pub fn ensure_run_sshd(host: &Host, dry_run: bool) -> Result<bool, InstallError> {
    if host.exists("/run/sshd") {
        return Ok(true);
    }
    if dry_run {
        return Ok(false);
    }
    host.create_dir("/run/sshd", 0o755, None)
        .map_err(InstallError::io("/run/sshd"))?;
    Ok(true)
}

pub fn read_text(host: &Host, path: &str) -> Result<Option<String>, InstallError> {
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
            .map_err(|source| InstallError::Manifest {
                path: path.to_owned(),
                source,
            }),
    }
}

/// The keyward user's uid and gid: NSS on the running host, the tree's /etc/passwd under
/// `--root` (NSS does not see it).
/// Whether `name` is in the host's group database (`/etc/group` of a `--root` tree).
pub fn group_exists(host: &Host, sys: &dyn System, name: &str) -> bool {
    if host.is_real() {
        return sys.group_exists(name);
    }
    read_text(host, "/etc/group")
        .ok()
        .flatten()
        .is_some_and(|g| system::group_lookup(&g, name))
}

pub fn lookup_user(host: &Host, sys: &dyn System) -> Result<Option<(u32, u32)>, InstallError> {
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
