//! End-to-end: what `scripts/package` makes. `scripts/package --debug` runs once per test run
//! (the first test to need it builds; the others wait): a debug build of the portable binary
//! with cargo-zigbuild (target/x86_64-unknown-linux-gnu/package-debug; the release build costs
//! minutes more and is not what is checked here), then the tarball, the .deb, the .rpm and
//! SHA256SUMS in target/e2e-package. The tests check:
//! - the binary needs at most GLIBC_2.17 (`objdump -T`), so it runs on Amazon Linux 2;
//! - the .deb: `tests/e2e/scenarios/package.sh` installs it with dpkg inside a `tests/e2e/ns`
//!   namespace whose /usr is an overlay too (E2E_OVERLAY_USR=1), so this host's /usr and dpkg
//!   database stay as they were, which is checked afterwards;
//! - the .rpm holds the .deb's files with the same modes (`rpm -qlp`), the same binary, and no
//!   scriptlets (`rpm -qp --scripts`), like the .deb;
//! - the tarball holds the binary, man pages, completions and templates;
//! - SHA256SUMS names every artifact and `sha256sum -c` accepts it, and rejects a changed file.
//!
//! Needs what scripts/test installs: cargo-deb, cargo-generate-rpm, cargo-zigbuild and zig
//! (scripts/package installs those too), objdump (binutils), rpm, root, and what the other e2e
//! tests need.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// What one `scripts/package --debug` run wrote.
struct Artifacts {
    binary: PathBuf,
    tarball: PathBuf,
    deb: PathBuf,
    rpm: PathBuf,
    sums: PathBuf,
}

fn repo() -> &'static Path {
    e2e_support::repo()
}

/// The artifacts, built on first use by scripts/package (it prints their paths, one a line).
fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let started = Instant::now();
        let out_dir = repo().join("target/e2e-package");
        let _ = std::fs::remove_dir_all(&out_dir);
        let package = Command::new(repo().join("scripts/package"))
            .args(["--debug", "--fast", "--output"])
            .arg(&out_dir)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/package: {e}"));
        assert!(
            package.status.success(),
            "scripts/package --debug failed ({})",
            package.status
        );
        let stdout = String::from_utf8(package.stdout).unwrap();
        let paths: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
        let find = |suffix: &str| -> PathBuf {
            let found: Vec<&PathBuf> = paths
                .iter()
                .filter(|p| p.to_str().unwrap().ends_with(suffix))
                .collect();
            assert_eq!(found.len(), 1, "scripts/package printed {stdout:?}");
            let path = found[0].canonicalize().unwrap();
            assert!(
                path.starts_with(out_dir.canonicalize().unwrap()),
                "{} is not in {}",
                path.display(),
                out_dir.display()
            );
            path
        };
        let artifacts = Artifacts {
            binary: find("-x86_64-linux-gnu"),
            tarball: find("-x86_64-linux-gnu.tar.gz"),
            deb: find("_amd64.deb"),
            rpm: find(".x86_64.rpm"),
            sums: find("/SHA256SUMS"),
        };
        assert_eq!(paths.len(), 5, "scripts/package printed {stdout:?}");
        eprintln!("packages built in {:.1?}: {stdout}", started.elapsed());
        artifacts
    })
}

/// Runs a command, fails the test unless it exits 0, and returns its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run scripts/test)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `rpm` with a throwaway database: querying a package file must not create one in /var/lib.
fn rpm(dbpath: &Path) -> Command {
    let mut cmd = Command::new("rpm");
    cmd.arg("--dbpath").arg(dbpath);
    cmd
}

/// The GLIBC_ symbol versions a binary needs, as (major, minor) pairs, from `objdump -T`.
fn glibc_versions(binary: &Path) -> BTreeSet<(u32, u32)> {
    parse_glibc_versions(&run(Command::new("objdump").arg("-T").arg(binary)))
}

/// The (major, minor) of every `GLIBC_X.Y[.Z]` in objdump -T's output (GLIBC_PRIVATE is none).
fn parse_glibc_versions(objdump: &str) -> BTreeSet<(u32, u32)> {
    objdump
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .collect()
}

#[test]
fn glibc_versions_are_read_from_objdump_lines() {
    let objdump = "\
0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.2.5) memcpy
0000000000000000      DF *UND*\t0000000000000000  GLIBC_2.34  __libc_start_main
0000000000000000      DF *UND*\t0000000000000000 (GLIBC_PRIVATE) _dl_x
0000000000000000  w   D  *UND*\t0000000000000000  Base        __gmon_start__
";
    assert_eq!(
        parse_glibc_versions(objdump),
        BTreeSet::from([(2, 2), (2, 34)])
    );
}

#[test]
fn portable_binary_needs_at_most_glibc_2_17_and_runs() {
    let a = artifacts();
    let versions = glibc_versions(&a.binary);
    assert!(
        !versions.is_empty(),
        "objdump -T found no GLIBC_ versions in {}: not a glibc binary?",
        a.binary.display()
    );
    let newest = *versions.iter().next_back().unwrap();
    assert!(
        newest <= (2, 17),
        "{} needs GLIBC_{}.{} (all: {versions:?}); Amazon Linux 2 has 2.26, the promise is 2.17",
        a.binary.display(),
        newest.0,
        newest.1
    );
    // The binary built natively by this `cargo test` needs more: the check can tell them apart.
    let native = glibc_versions(Path::new(env!("CARGO_BIN_EXE_keyward")));
    assert!(
        native.iter().next_back() > Some(&(2, 17)),
        "the native build needs only {native:?}: this machine's glibc proves nothing"
    );
    let version = run(Command::new(&a.binary).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("keyward {}", env!("CARGO_PKG_VERSION"))
    );
}

/// The .deb's regular files: (mode string, path without the leading ".").
fn deb_files(deb: &Path) -> BTreeSet<(String, String)> {
    run(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .filter(|line| line.starts_with('-'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (
                fields[0].to_string(),
                fields[5].trim_start_matches('.').to_string(),
            )
        })
        .collect()
}

#[test]
fn deb_depends_on_the_glibc_the_binary_needs() {
    let a = artifacts();
    let depends = run(Command::new("dpkg-deb")
        .args(["--field"])
        .arg(&a.deb)
        .arg("Depends"));
    // dpkg-shlibdeps would say libc6 (>= 2.34), which Ubuntu 20.04 and Debian 11 cannot meet.
    assert_eq!(depends.trim(), "libc6 (>= 2.17)");
}

#[test]
fn rpm_holds_the_debs_files_and_no_scriptlets() {
    let a = artifacts();
    let db = tempfile::tempdir().unwrap();

    // rpm -qlp, with modes and owners: every regular file of the .deb, zsh's completion in the
    // directory Fedora/RHEL/Amazon Linux read, and nothing else.
    let listing = run(rpm(db.path())
        .args([
            "-qp",
            "--queryformat",
            "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]",
        ])
        .arg(&a.rpm));
    let mut rpm_files = BTreeSet::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[1], "root:root", "not owned by root: {line}");
        if fields[0].starts_with('-') {
            rpm_files.insert((fields[0].to_string(), fields[2].to_string()));
        }
    }
    let names = run(rpm(db.path()).arg("-qlp").arg(&a.rpm));
    assert_eq!(
        names.lines().count(),
        listing.lines().count(),
        "rpm -qlp and the file table disagree:\n{names}\n{listing}"
    );
    let want: BTreeSet<(String, String)> = deb_files(&a.deb)
        .into_iter()
        // cargo-deb writes the Debian copyright file itself; rpm has the License tag.
        .filter(|(_, path)| path != "/usr/share/doc/keyward/copyright")
        .map(|(mode, path)| {
            let path = path.replace(
                "/usr/share/zsh/vendor-completions/",
                "/usr/share/zsh/site-functions/",
            );
            (mode, path)
        })
        .collect();
    assert!(
        want.contains(&("-rwxr-xr-x".into(), "/usr/bin/keyward".into())),
        "the .deb has no /usr/bin/keyward: {want:?}"
    );
    assert_eq!(
        rpm_files, want,
        "the .rpm's files (left) are not the .deb's (right)"
    );

    // No scriptlets, as the .deb has no maintainer scripts: installing changes no configuration.
    let scripts = run(rpm(db.path()).args(["-qp", "--scripts"]).arg(&a.rpm));
    assert_eq!(scripts.trim(), "", "the .rpm has scriptlets");
    // Installable where the binary runs: no glibc symbol version past 2.17, and a payload that
    // Amazon Linux 2's rpm 4.11 can unpack (it predates zstd).
    let requires = run(rpm(db.path()).args(["-qp", "--requires"]).arg(&a.rpm));
    let needed = parse_glibc_versions(&requires);
    assert!(
        !needed.is_empty() && needed.iter().all(|v| *v <= (2, 17)),
        "the .rpm requires glibc versions {needed:?}:\n{requires}"
    );
    assert!(
        !requires.contains("PayloadIsZstd"),
        "the .rpm's payload is zstd, which rpm 4.11 (Amazon Linux 2) cannot read:\n{requires}"
    );
    let header = run(rpm(db.path()).args(["-qpi"]).arg(&a.rpm));
    assert!(header.contains("Name        : keyward"), "{header}");
    assert!(header.contains("Architecture: x86_64"), "{header}");

    // The packaged binary is the portable one, byte for byte.
    let unpacked = tempfile::tempdir().unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg("rpm2cpio \"$1\" | cpio -idm --quiet ./usr/bin/keyward")
        .arg("sh")
        .arg(&a.rpm)
        .current_dir(unpacked.path())
        .status()
        .unwrap();
    assert!(status.success(), "rpm2cpio | cpio failed");
    assert_eq!(
        std::fs::read(unpacked.path().join("usr/bin/keyward")).unwrap(),
        std::fs::read(&a.binary).unwrap(),
        "the .rpm's /usr/bin/keyward is not the portable binary"
    );
}

#[test]
fn tarball_holds_binary_man_pages_completions_and_templates() {
    let a = artifacts();
    let listing = run(Command::new("tar").arg("-tvzf").arg(&a.tarball));
    let top = a
        .tarball
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .strip_suffix(".tar.gz")
        .unwrap();
    let entries: BTreeSet<(String, String, String)> = listing
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (
                fields[0].to_string(),
                fields[1].to_string(),
                fields[5].to_string(),
            )
        })
        .collect();
    for (mode, path) in [
        ("-rwxr-xr-x", "keyward"),
        ("-rw-r--r--", "man/man8/keyward.8.gz"),
        ("-rw-r--r--", "man/man8/keyward-install.8.gz"),
        ("-rw-r--r--", "completions/keyward.bash"),
        ("-rw-r--r--", "completions/_keyward"),
        ("-rw-r--r--", "completions/keyward.fish"),
        ("-rw-r--r--", "systemd/keyward-sync.service"),
        ("-rw-r--r--", "systemd/keyward-sync.timer"),
        ("-rw-r--r--", "pam/sshd-keyward.pam"),
        ("-rw-r--r--", "pam/sshd_config.keyward"),
        ("-rw-r--r--", "cron/keyward"),
        ("-rw-r--r--", "README.md"),
    ] {
        let want = (mode.to_string(), "0/0".to_string(), format!("{top}/{path}"));
        assert!(
            entries.contains(&want),
            "the tarball lacks {want:?}:\n{listing}"
        );
    }
    for (_, owner, path) in &entries {
        assert!(
            path.starts_with(&format!("{top}/")),
            "{path} is outside {top}/"
        );
        assert_eq!(owner, "0/0", "{path} is not owned by root");
    }
    // Its binary is the portable one, byte for byte.
    let binary = Command::new("tar")
        .arg("-xzOf")
        .arg(&a.tarball)
        .arg(format!("{top}/keyward"))
        .output()
        .unwrap();
    assert!(binary.status.success(), "tar -xzOf failed");
    assert!(
        binary.stdout == std::fs::read(&a.binary).unwrap(),
        "the tarball's keyward is not the portable binary"
    );
}

#[test]
fn sha256sums_names_every_artifact_and_verifies() {
    let a = artifacts();
    let sums = std::fs::read_to_string(&a.sums).unwrap();
    let named: BTreeSet<&str> = sums
        .lines()
        .map(|line| line.split_once("  ").unwrap().1)
        .collect();
    let want: BTreeSet<&str> = [&a.binary, &a.tarball, &a.deb, &a.rpm]
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(named, want);
    let dir = a.sums.parent().unwrap();
    run(Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(dir));

    // A changed artifact fails the check (on a copy: the others use the originals).
    let copy = tempfile::tempdir().unwrap();
    for name in named.iter().chain(std::iter::once(&"SHA256SUMS")) {
        std::fs::copy(dir.join(name), copy.path().join(name)).unwrap();
    }
    let tarball = copy.path().join(a.tarball.file_name().unwrap());
    let mut bytes = std::fs::read(&tarball).unwrap();
    bytes.push(0);
    std::fs::write(&tarball, bytes).unwrap();
    let status = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(copy.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "sha256sum -c accepted a changed tarball");
}

/// What the host says about keyward being installed: must not change.
fn host_keyward_state() -> (bool, bool, String) {
    let dpkg = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", "keyward"])
        .output()
        .unwrap();
    (
        Path::new("/usr/bin/keyward").exists(),
        Path::new("/usr/share/man/man8/keyward.8.gz").exists(),
        String::from_utf8_lossy(&dpkg.stdout).into_owned(),
    )
}

#[test]
fn deb_installs_files_only_and_keyward_install_from_it_lets_iam_users_in() {
    let a = artifacts();
    let before = host_keyward_state();
    let relative = a
        .deb
        .strip_prefix(repo().canonicalize().unwrap())
        .unwrap_or_else(|_| panic!("{} is not inside the repository", a.deb.display()));
    e2e_support::scenario_with(
        "package",
        &[
            ("KEYWARD_DEB", relative.to_str().unwrap()),
            ("E2E_OVERLAY_USR", "1"),
        ],
    );
    assert_eq!(
        host_keyward_state(),
        before,
        "installing the package in the namespace changed this host's /usr or dpkg database"
    );
}
