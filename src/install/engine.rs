//! `keyward install` and `keyward uninstall` from end to end: read the host, plan, describe,
//! then apply — the same four parts for both jobs, in that order.
//!
//! This module only strings the parts together (`snapshot::read_host`, `plan::plan_install` /
//! `plan::plan_uninstall`, `describe`, `apply`) and refuses to start when the job cannot run
//! here (not root on the real host, no sshd to wire into). It must never decide what changes,
//! never print a plan other than the one it applies, and never apply after a dry run.

use std::io::Write;

use super::apply::{apply_install, apply_uninstall, Undo};
use super::host::Host;
use super::plan::{plan_install, plan_uninstall, InstallOptions, UninstallOptions};
use super::snapshot::{read_host, Job, Target};
use super::system::{find_sshd, System};
use super::{describe, InstallError};
use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Changed,
    DryRun,
    NothingToDo,
}

pub fn install(
    opts: &InstallOptions,
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
        Some(sshd_path().ok_or(InstallError::NoSshd)?)
    } else {
        None
    };
    let target = Target {
        host,
        services,
        sshd,
    };
    install_on(&target, opts, config, sys, out)
}

pub fn uninstall(
    opts: &UninstallOptions,
    config: &Config,
    sys: &mut dyn System,
    out: &mut dyn Write,
) -> Result<Outcome, InstallError> {
    let host = Host::new(opts.root.as_deref());
    let services = host.is_real();
    if services && !nix::unistd::geteuid().is_root() {
        return Err(InstallError::NotRoot("keyward uninstall"));
    }
    let target = Target {
        host,
        services,
        sshd: if services { sshd_path() } else { None },
    };
    uninstall_on(&target, opts, config, sys, out)
}

fn sshd_path() -> Option<String> {
    find_sshd().map(|p| p.to_string_lossy().into_owned())
}

fn say_all(out: &mut dyn Write, lines: &[String]) {
    for line in lines {
        // Progress output is for humans; a closed stdout must not stop an install half-way.
        let _ = writeln!(out, "{line}");
    }
}

fn install_on(
    target: &Target,
    opts: &InstallOptions,
    config: &Config,
    sys: &mut dyn System,
    out: &mut dyn Write,
) -> Result<Outcome, InstallError> {
    let job = Job::Install {
        binary: &opts.binary,
        dry_run: opts.dry_run,
    };
    let snapshot = read_host(target, config, job, sys)?;
    let plan = plan_install(&snapshot, config, opts)?;
    say_all(out, &describe::install(&plan, opts.dry_run));
    if plan.is_empty() {
        return Ok(Outcome::NothingToDo);
    }
    if opts.dry_run {
        say_all(out, &["dry run: nothing was changed".into()]);
        return Ok(Outcome::DryRun);
    }
    apply_install(&plan, target, sys, &mut Undo::default(), out)?;
    Ok(Outcome::Changed)
}

fn uninstall_on(
    target: &Target,
    opts: &UninstallOptions,
    config: &Config,
    sys: &mut dyn System,
    out: &mut dyn Write,
) -> Result<Outcome, InstallError> {
    let snapshot = read_host(target, config, Job::Uninstall, sys)?;
    let plan = plan_uninstall(&snapshot, opts)?;
    say_all(out, &describe::uninstall(&plan, opts.dry_run));
    if plan.is_empty() {
        return Ok(Outcome::NothingToDo);
    }
    if opts.dry_run {
        say_all(out, &["dry run: nothing was changed".into()]);
        return Ok(Outcome::DryRun);
    }
    apply_uninstall(&plan, target, sys, &mut Undo::default(), out)?;
    Ok(Outcome::Changed)
}

/// The install/uninstall sequence against `--root` trees and a fake `System`; the tree harness
/// is shared with the planner's apply-then-replan tests.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::install::manifest::{self, sha256_hex, Manifest};
    use crate::install::pam::{
        self,
        tests::{AMAZON_LINUX_PAM, DEBIAN_PAM},
    };
    use crate::install::plan::InstallPlan;
    use crate::install::schedule::{self, Scheduler, SchedulerChoice};
    use crate::install::sshd::tests::{AMAZON_LINUX_SSHD, DEBIAN_SSHD};
    use crate::install::sshd::{self, DROPIN_PATH};
    use crate::process::CommandOutput;

    pub(crate) const BIN: &str = "/usr/local/bin/keyward";
    pub(crate) const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n";

    /// Stands in for useradd/userdel (on the tree's /etc/passwd), sshd -t/-T (computed from the
    /// tree's files), systemctl and kill; records every command.
    pub(crate) struct Fake {
        root: PathBuf,
        pub(crate) calls: Vec<String>,
        pub(crate) fail: Vec<&'static str>,
        /// What `sshd -T` prints instead of the tree's effective config.
        dump_override: Option<String>,
    }

    impl Fake {
        pub(crate) fn new(root: &Path) -> Fake {
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
                    status: Some(0),
                    stdout,
                    stderr: String::new(),
                })
            };
            if self.fail.iter().any(|f| line.starts_with(f)) {
                return Ok(CommandOutput {
                    success: false,
                    status: Some(1),
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

    /// Both commands' options in one, so that a test flips one flag and runs either.
    #[derive(Debug, Clone)]
    pub(crate) struct Options {
        pub(crate) root: Option<PathBuf>,
        pub(crate) binary: String,
        pub(crate) dry_run: bool,
        pub(crate) replace: bool,
        pub(crate) scheduler: SchedulerChoice,
        pub(crate) reload: bool,
        pub(crate) force: bool,
        /// `--ca --ca-public-key` with this key text.
        pub(crate) ca_public_key: Option<String>,
    }

    impl Options {
        pub(crate) fn install(&self) -> InstallOptions {
            InstallOptions {
                root: self.root.clone(),
                binary: self.binary.clone(),
                dry_run: self.dry_run,
                replace: self.replace,
                scheduler: self.scheduler,
                reload: self.reload,
                ca: self.ca_public_key.is_some(),
                ca_public_key: self.ca_public_key.clone(),
                jump: false,
                no_jump: false,
            }
        }

        pub(crate) fn uninstall(&self) -> UninstallOptions {
            UninstallOptions {
                root: self.root.clone(),
                dry_run: self.dry_run,
                force: self.force,
            }
        }
    }

    /// The tree as a target; `services` also runs the sshd/systemctl steps against the fake.
    pub(crate) fn target(opts: &Options, services: bool) -> Target {
        Target {
            host: Host::new(opts.root.as_deref()),
            services,
            sshd: services.then(|| "/usr/sbin/sshd".to_owned()),
        }
    }

    pub(crate) struct Tree {
        pub(crate) dir: tempfile::TempDir,
    }

    impl Tree {
        pub(crate) fn new(sshd_config: &str, pam: Option<&str>) -> Tree {
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

        pub(crate) fn debian() -> Tree {
            Tree::new(DEBIAN_SSHD, Some(DEBIAN_PAM))
        }

        pub(crate) fn path(&self, p: &str) -> PathBuf {
            self.dir.path().join(p.trim_start_matches('/'))
        }

        pub(crate) fn write(&self, p: &str, text: &str) {
            let path = self.path(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        pub(crate) fn read(&self, p: &str) -> String {
            fs::read_to_string(self.path(p)).unwrap()
        }

        fn exists(&self, p: &str) -> bool {
            self.path(p).exists()
        }

        /// Every file and directory under `sub`, with content and mode.
        pub(crate) fn snapshot(&self, sub: &str) -> BTreeMap<PathBuf, (Option<Vec<u8>>, u32)> {
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

        pub(crate) fn opts(&self) -> Options {
            Options {
                root: Some(self.dir.path().to_owned()),
                binary: BIN.into(),
                dry_run: false,
                replace: false,
                scheduler: SchedulerChoice::Auto,
                reload: true,
                force: false,
                ca_public_key: None,
            }
        }

        /// Runs install; `services` also runs the sshd/systemctl steps against the fake.
        pub(crate) fn install(
            &self,
            opts: &Options,
            config: &Config,
            sys: &mut Fake,
            services: bool,
        ) -> (Result<Outcome, InstallError>, String) {
            let mut out = Vec::new();
            let result = install_on(
                &target(opts, services),
                &opts.install(),
                config,
                sys,
                &mut out,
            );
            (result, String::from_utf8(out).unwrap())
        }

        pub(crate) fn uninstall(
            &self,
            opts: &Options,
            config: &Config,
            sys: &mut Fake,
            services: bool,
        ) -> (Result<Outcome, InstallError>, String) {
            let mut out = Vec::new();
            let result = uninstall_on(
                &target(opts, services),
                &opts.uninstall(),
                config,
                sys,
                &mut out,
            );
            (result, String::from_utf8(out).unwrap())
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
        assert!(out.contains("would remove 1 cache file keyward does not own (fetched again from IAM; files are never chowned): /var/cache/keyward/keys/APKA1\nwould give 3 cache directories to keyward (chown, never through a symlink): /var/cache/keyward, /var/cache/keyward/keys, /var/cache/keyward/users\n"), "{out}");
        assert_eq!(owner("var/cache/keyward/keys"), 0, "dry run changed it");
        assert!(
            t.exists("var/cache/keyward/keys/APKA1"),
            "dry run removed it"
        );

        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::Changed, "{out}");
        assert!(out.contains("give 3 cache directories to keyward"), "{out}");
        for p in ["", "/keys", "/users"] {
            assert_eq!(owner(&format!("var/cache/keyward{p}")), 4242, "{p}");
        }
        assert!(!t.exists("var/cache/keyward/keys/APKA1"), "{out}");
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
            calls.starts_with(
                "systemctl is-enabled --quiet keyward-sync.timer\nsystemctl disable --now keyward-sync.timer\n"
            ),
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

    /// The run rolled back with the files as `before`, and after disabling the timer it ran
    /// sshd -t, which failed, then gave systemd the restored units and enabled the timer again.
    fn assert_rolled_back_timer_on(
        t: &Tree,
        (result, out): (Result<Outcome, InstallError>, String),
        before: &BTreeMap<PathBuf, (Option<Vec<u8>>, u32)>,
        sys: &Fake,
    ) {
        assert!(
            matches!(result, Err(InstallError::RolledBack { .. })),
            "{out}"
        );
        assert_eq!(&t.snapshot("etc"), before);
        let calls = sys.calls.join("\n");
        let disabled = calls
            .find("systemctl disable --now keyward-sync.timer")
            .unwrap_or_else(|| panic!("{calls}"));
        assert!(
            calls[disabled..]
                .contains("/usr/sbin/sshd -t\nsystemctl daemon-reload\nsystemctl enable --now keyward-sync.timer"),
            "the timer stays off after the rollback:\n{calls}"
        );
    }

    /// A timer disabled earlier in a run that rolls back is enabled again: otherwise neither the
    /// timer nor cron runs `sync`, and revoked users stop being locked.
    #[test]
    fn rollback_enables_the_timer_it_disabled_on_install_and_uninstall() {
        let t = Tree::debian();
        fs::create_dir_all(t.path("run/systemd/system")).unwrap();
        let mut sys = Fake::new(t.dir.path());
        t.install(&t.opts(), &Config::default(), &mut sys, true)
            .0
            .unwrap();
        let installed = t.snapshot("etc");

        // Switching to cron disables the timer; sshd -t then fails and the run rolls back.
        let mut cron = t.opts();
        cron.scheduler = SchedulerChoice::Cron;
        sys.calls.clear();
        sys.fail.push("/usr/sbin/sshd -t");
        let run = t.install(&cron, &Config::default(), &mut sys, true);
        assert_rolled_back_timer_on(&t, run, &installed, &sys);

        // Uninstall disables the timer first; a failed sshd -t puts it all back, timer included.
        sys.calls.clear();
        let run = t.uninstall(&t.opts(), &Config::default(), &mut sys, true);
        assert_rolled_back_timer_on(&t, run, &installed, &sys);

        // A timer that was not enabled is not enabled by the rollback either.
        sys.calls.clear();
        sys.fail.push("systemctl is-enabled");
        let (result, out) = t.install(&cron, &Config::default(), &mut sys, true);
        assert!(
            matches!(result, Err(InstallError::RolledBack { .. })),
            "{out}"
        );
        assert!(
            sys.calls
                .contains(&"systemctl disable --now keyward-sync.timer".to_owned())
                && !sys.calls.iter().any(|c| c.starts_with("systemctl enable")),
            "{:?}",
            sys.calls
        );
    }

    /// Every directory a real run creates is a step of the plan, so `--dry-run` names it.
    #[test]
    fn dry_run_names_every_directory_the_run_creates() {
        let t = Tree::debian();
        fs::remove_dir(t.path("etc/ssh/sshd_config.d")).unwrap();
        fs::remove_dir(t.path("var/cache")).unwrap();
        fs::remove_dir(t.path("var/lib")).unwrap();
        let mut sys = Fake::new(t.dir.path());
        let mut dry = t.opts();
        dry.dry_run = true;
        let (result, out) = t.install(&dry, &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::DryRun, "{out}");
        for expected in [
            "would create directory /var/lib (root, 0755)\n",
            "would create directory /var/lib/keyward (root, 0755)\n",
            "would create directory /var/lib/keyward/install (root, 0700)\n",
            "would create directory /var/lib/keyward/install/originals (root, 0700)\n",
            "would create directory /var/cache (root, 0755)\n",
            "would create directory /var/cache/keyward (keyward, 0755)\n",
            "would create directory /etc/ssh/sshd_config.d (root, 0755)\n",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
        }
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::Changed, "{out}");
        let mode = |p: &str| fs::metadata(t.path(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("etc/ssh/sshd_config.d"), 0o755);
        assert_eq!(mode("var/lib/keyward/install"), 0o700);
        assert_eq!(mode("var/lib/keyward/install/originals"), 0o700);
        assert!(t.exists("etc/ssh/sshd_config.d/00-keyward.conf"));
        // The directory install made for the drop-in goes with uninstall.
        t.uninstall(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        assert!(!t.exists("etc/ssh/sshd_config.d"));
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

    #[test]
    fn i9_gid_only_cache_mismatch_is_planned_described_and_fixed() {
        let t = Tree::debian();
        t.write(
            "etc/passwd",
            &format!("{PASSWD}keyward:x:4242:4343::/nonexistent:/usr/sbin/nologin\n"),
        );
        let mut sys = Fake::new(t.dir.path());
        t.install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        for p in ["var/cache/keyward", "var/cache/keyward/keys"] {
            std::os::unix::fs::chown(t.path(p), Some(4242), Some(4242)).unwrap();
        }
        let mut dry = t.opts();
        dry.dry_run = true;
        let (result, out) = t.install(&dry, &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::DryRun, "{out}");
        assert!(
            out.contains("would give 2 cache directories to keyward"),
            "{out}"
        );
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::Changed, "{out}");
        let gid = |p: &str| fs::metadata(t.path(p)).unwrap().gid();
        assert_eq!(gid("var/cache/keyward"), 4343);
        assert_eq!(gid("var/cache/keyward/keys"), 4343);
    }

    #[test]
    fn i9_group_writable_cache_dir_is_planned_described_and_fixed() {
        use std::os::unix::fs::PermissionsExt;
        let t = Tree::debian();
        let mut sys = Fake::new(t.dir.path());
        t.install(&t.opts(), &Config::default(), &mut sys, false)
            .0
            .unwrap();
        fs::set_permissions(
            t.path("var/cache/keyward/users"),
            fs::Permissions::from_mode(0o775),
        )
        .unwrap();
        let mut dry = t.opts();
        dry.dry_run = true;
        let (result, out) = t.install(&dry, &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::DryRun, "{out}");
        assert!(out.contains("would remove group and world write from 1 cache directory (chmod go-w, never through a symlink): /var/cache/keyward/users"), "{out}");
        let (result, out) = t.install(&t.opts(), &Config::default(), &mut sys, false);
        assert_eq!(result.unwrap(), Outcome::Changed, "{out}");
        let mode = fs::metadata(t.path("var/cache/keyward/users"))
            .unwrap()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o755);
    }

    /// read → plan → apply on a real tree, then read and plan again: nothing left to do.
    fn apply_then_replan(t: &Tree, sys: &mut Fake, services: bool) -> InstallPlan {
        let opts = t.opts();
        let target = target(&opts, services);
        let config = Config::default();
        let job = Job::Install {
            binary: BIN,
            dry_run: false,
        };
        let snapshot = read_host(&target, &config, job, sys).unwrap();
        let plan = plan_install(&snapshot, &config, &opts.install()).unwrap();
        assert!(!plan.is_empty());
        let mut out = Vec::new();
        apply_install(&plan, &target, sys, &mut Undo::default(), &mut out).unwrap();
        let snapshot = read_host(&target, &config, job, sys).unwrap();
        plan_install(&snapshot, &config, &opts.install()).unwrap()
    }

    #[test]
    fn applied_plans_leave_nothing_to_plan_on_every_kind_of_host() {
        let debian = Tree::debian();
        let mut sys = Fake::new(debian.dir.path());
        let again = apply_then_replan(&debian, &mut sys, false);
        assert!(again.is_empty(), "{:?}", again.steps);

        let amazon = Tree::new(AMAZON_LINUX_SSHD, Some(AMAZON_LINUX_PAM));
        let mut sys = Fake::new(amazon.dir.path());
        let again = apply_then_replan(&amazon, &mut sys, true);
        assert!(again.is_empty(), "{:?}", again.steps);
        assert!(amazon.exists("etc/keyward/chain.toml"));

        let systemd = Tree::debian();
        fs::create_dir_all(systemd.path("run/systemd/system")).unwrap();
        let mut sys = Fake::new(systemd.dir.path());
        let again = apply_then_replan(&systemd, &mut sys, true);
        assert!(again.is_empty(), "{:?}", again.steps);
        assert!(sys
            .calls
            .iter()
            .any(|c| c == "systemctl enable --now keyward-sync.timer"));

        // Cache drift on a host where keyward's user exists: owner, group and mode.
        let drift = Tree::debian();
        drift.write(
            "etc/passwd",
            &format!("{PASSWD}keyward:x:4242:4343::/nonexistent:/usr/sbin/nologin\n"),
        );
        fs::create_dir_all(drift.path("var/cache/keyward/keys")).unwrap();
        fs::set_permissions(
            drift.path("var/cache/keyward/keys"),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let mut sys = Fake::new(drift.dir.path());
        let again = apply_then_replan(&drift, &mut sys, false);
        assert!(again.is_empty(), "{:?}", again.steps);
        let keys = fs::metadata(drift.path("var/cache/keyward/keys")).unwrap();
        assert_eq!(
            (keys.uid(), keys.gid(), keys.mode() & 0o7777),
            (4242, 4343, 0o755)
        );
    }
}
