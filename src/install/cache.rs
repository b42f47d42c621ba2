//! Giving keyward's key cache to the keyward user, the user sshd runs `authorized-keys` as.
//!
//! A root run of an older keyward, or a directory made by hand, leaves root-owned `keys/` and
//! `users/` that keyward cannot write, so every login asks IAM and an IAM outage locks everyone
//! out. `install` plans the repair (`read` → pure `plan` → `describe` for `--dry-run` and the
//! real run alike) and `apply` carries out exactly that plan. The plan also takes group and
//! world write off every cache directory, which `authorized-keys` would otherwise refuse to
//! trust (and doctor would name): owner and mode drift are both planned, never only one.
//!
//! Invariants: this runs as root over a directory another user owns (and, before the repair,
//! others may be able to write), so it must never follow a symlink and never change the owner
//! of anything but a directory. A symlink (or a FIFO, device or socket) anywhere in the cache
//! stops install before anything changes, naming it. Directories are chowned, never files: a
//! hard link is a plain file to `lstat`, and chowning it would give its other names (a link to
//! `/etc/shadow` planted in `keys/`) to keyward. A cache file keyward does not own is removed
//! instead (keyward fetches it again from IAM); unlinking a name never changes the file behind
//! it. `apply` takes group and world write off first, so nobody else can change a directory
//! while it is repaired, then reaches every directory from an `O_NOFOLLOW | O_DIRECTORY`
//! descriptor of its parent and changes it through that descriptor after `fstat` shows a
//! directory on the cache's filesystem: an entry swapped for a symlink or a file after the plan
//! was made is refused, never followed. The repair is not undone by a rollback: the cache then
//! belongs to keyward, which is what it should be anyway, and removed files are refetched.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::RawFd;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, unlinkat, Gid, Uid, UnlinkatFlags};

use super::host::Host;
use super::InstallError;
use crate::keys::cache::SUBDIRS;

/// What an entry of the cache is, from `lstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// A FIFO, socket or device: keyward never writes one.
    Special(&'static str),
}

/// One entry of the cache as found: path relative to the cache directory (empty for the
/// directory itself), owner, permission bits and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub rel: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    pub kind: Kind,
    /// Names of the inode (`st_nlink`): more than one on a file is a hard link.
    pub nlink: u64,
}

/// What install does to the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The cache directory does not exist: create it (missing parents root's, 0755).
    pub create_dir: bool,
    /// Subdirectories to create, keyward's, 0755.
    pub create: Vec<&'static str>,
    /// Directories to give to keyward, relative to the cache directory, parents first.
    pub chown: Vec<PathBuf>,
    /// Directories writable by group or others, with the mode they get (the same without
    /// group and world write), parents first.
    pub chmod: Vec<(PathBuf, u32)>,
    /// Files keyward does not own, removed rather than chowned (keyward fetches them again),
    /// with their number of names: more than one is a hard link, which is named as such.
    pub remove: Vec<(PathBuf, u64)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        !self.create_dir
            && self.create.is_empty()
            && self.chown.is_empty()
            && self.chmod.is_empty()
            && self.remove.is_empty()
    }
}

/// The cache's entries, parents first; `None` when the directory does not exist. Symlinks are
/// listed, never entered.
pub fn read(host: &Host, cache_dir: &str) -> Result<Option<Vec<Entry>>, InstallError> {
    let top = host.path(cache_dir);
    let meta = match fs::symlink_metadata(&top) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(InstallError::io(cache_dir)(e)),
    };
    let mut entries = vec![entry(PathBuf::new(), &meta)];
    let mut i = 0;
    while i < entries.len() {
        if entries[i].kind == Kind::Dir {
            let rel = entries[i].rel.clone();
            let dir = top.join(&rel);
            let shown = host_path(cache_dir, &rel);
            let mut names: Vec<_> = fs::read_dir(&dir)
                .map_err(InstallError::io(&shown))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(InstallError::io(&shown))?;
            names.sort();
            for name in names {
                let rel = rel.join(name);
                let meta = fs::symlink_metadata(top.join(&rel))
                    .map_err(InstallError::io(host_path(cache_dir, &rel)))?;
                entries.push(entry(rel, &meta));
            }
        }
        i += 1;
    }
    Ok(Some(entries))
}

fn entry(rel: PathBuf, meta: &fs::Metadata) -> Entry {
    let t = meta.file_type();
    let kind = if t.is_symlink() {
        Kind::Symlink
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_file() {
        Kind::File
    } else if t.is_fifo() {
        Kind::Special("FIFO")
    } else if t.is_socket() {
        Kind::Special("socket")
    } else {
        Kind::Special("device")
    };
    Entry {
        rel,
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
        kind,
        nlink: meta.nlink(),
    }
}

/// What to do so that keyward (`owner`; `None`: the account is created by this install) owns
/// the cache, or the entry that makes install refuse.
pub fn plan(
    cache_dir: &str,
    entries: Option<&[Entry]>,
    owner: Option<(u32, u32)>,
) -> Result<Plan, InstallError> {
    let Some(entries) = entries else {
        return Ok(Plan {
            create_dir: true,
            create: SUBDIRS.to_vec(),
            ..Plan::default()
        });
    };
    let mut plan = Plan::default();
    for e in entries {
        let path = host_path(cache_dir, &e.rel);
        match e.kind {
            Kind::Symlink => return Err(InstallError::CacheSymlink { path }),
            Kind::Special(kind) => return Err(InstallError::CacheSpecial { path, kind }),
            Kind::File
                if e.rel.as_os_str().is_empty()
                    || SUBDIRS.iter().any(|s| e.rel == Path::new(s)) =>
            {
                return Err(InstallError::CacheSpecial {
                    path,
                    kind: "regular file",
                });
            }
            // Never chowned: it may be a hard link to a file outside the cache.
            Kind::File => {
                if owner != Some((e.uid, e.gid)) {
                    plan.remove.push((e.rel.clone(), e.nlink));
                }
            }
            Kind::Dir => {
                if owner != Some((e.uid, e.gid)) {
                    plan.chown.push(e.rel.clone());
                }
                if e.mode & 0o022 != 0 {
                    plan.chmod.push((e.rel.clone(), e.mode & !0o022));
                }
            }
        }
    }
    plan.create = SUBDIRS
        .iter()
        .copied()
        .filter(|s| !entries.iter().any(|e| e.rel == Path::new(s)))
        .collect();
    Ok(plan)
}

/// The plan in words, the same for `--dry-run` and the real run, in the order `apply` acts.
pub fn describe(plan: &Plan, cache_dir: &str, user: &str, verb: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if plan.create_dir {
        lines.push(format!("{verb}create directory {cache_dir} ({user}, 0755)"));
    }
    if !plan.chmod.is_empty() {
        let rels: Vec<&PathBuf> = plan.chmod.iter().map(|(rel, _)| rel).collect();
        lines.push(counted(
            &format!("{verb}remove group and world write from"),
            ("cache directory", "cache directories"),
            "(chmod go-w, never through a symlink)",
            cache_dir,
            &rels,
        ));
    }
    for (rel, nlink) in plan.remove.iter().filter(|(_, n)| *n > 1) {
        lines.push(format!(
            "warning: {} is a hard link ({nlink} names): another file may be behind it; it is removed, never chowned",
            host_path(cache_dir, rel)
        ));
    }
    if !plan.remove.is_empty() {
        let rels: Vec<&PathBuf> = plan.remove.iter().map(|(rel, _)| rel).collect();
        lines.push(counted(
            &format!("{verb}remove"),
            ("cache file", "cache files"),
            &format!("{user} does not own (fetched again from IAM; files are never chowned)"),
            cache_dir,
            &rels,
        ));
    }
    if !plan.chown.is_empty() {
        let rels: Vec<&PathBuf> = plan.chown.iter().collect();
        lines.push(counted(
            &format!("{verb}give"),
            ("cache directory", "cache directories"),
            &format!("to {user} (chown, never through a symlink)"),
            cache_dir,
            &rels,
        ));
    }
    for sub in &plan.create {
        lines.push(format!(
            "{verb}create directory {} ({user}, 0755)",
            host_path(cache_dir, Path::new(sub))
        ));
    }
    lines
}

/// "`action` N `noun` `how`: " and up to eight host paths, then how many more.
fn counted(
    action: &str,
    (one, many): (&str, &str),
    how: &str,
    cache_dir: &str,
    rels: &[&PathBuf],
) -> String {
    let noun = if rels.len() == 1 { one } else { many };
    format!(
        "{action} {} {noun} {how}: {}",
        rels.len(),
        listing(cache_dir, rels)
    )
}

/// Up to eight host paths, then how many more.
fn listing(cache_dir: &str, rels: &[&PathBuf]) -> String {
    const SHOWN: usize = 8;
    let mut names: Vec<String> = rels
        .iter()
        .take(SHOWN)
        .map(|rel| host_path(cache_dir, rel))
        .collect();
    if rels.len() > SHOWN {
        names.push(format!("and {} more", rels.len() - SHOWN));
    }
    names.join(", ")
}

/// Carries out `plan` with keyward's `(uid, gid)`, after the cache directory itself exists:
/// group and world write off, files keyward does not own removed, directories chowned, missing
/// subdirectories created. Returns the directories it created (for the undo journal).
pub fn apply(
    host: &Host,
    cache_dir: &str,
    plan: &Plan,
    (uid, gid): (u32, u32),
) -> Result<Vec<String>, InstallError> {
    let top = Fd::open_dir(None, &host.path(cache_dir)).map_err(refusal(cache_dir))?;
    let dev = fstat(top.0)
        .map_err(|e| InstallError::io(cache_dir)(e.into()))?
        .st_dev;
    // First, so that nobody else can change a directory while it is repaired.
    for (rel, mode) in &plan.chmod {
        let shown = host_path(cache_dir, rel);
        let dir = Dir::open(&top, dev, rel).map_err(refusal(&shown))?;
        fchmod(dir.fd(), Mode::from_bits_truncate(*mode))
            .map_err(|e| InstallError::io(&shown)(e.into()))?;
    }
    for (rel, _) in &plan.remove {
        let shown = host_path(cache_dir, rel);
        let (parent, name) = match (rel.parent(), rel.file_name()) {
            (Some(parent), Some(name)) => (parent, name),
            _ => continue,
        };
        let dir = Dir::open(&top, dev, parent).map_err(refusal(&shown))?;
        // Unlinking removes this name only: whatever else links to the file is untouched.
        match unlinkat(Some(dir.fd()), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(InstallError::io(&shown)(e.into())),
        }
    }
    for rel in &plan.chown {
        let shown = host_path(cache_dir, rel);
        let dir = Dir::open(&top, dev, rel).map_err(refusal(&shown))?;
        chown_fd(dir.fd(), uid, gid).map_err(|e| InstallError::io(&shown)(e.into()))?;
    }
    let mut created = Vec::new();
    for sub in &plan.create {
        let shown = host_path(cache_dir, Path::new(sub));
        match mkdirat(Some(top.0), *sub, Mode::from_bits_truncate(0o755)) {
            Ok(()) => created.push(shown.clone()),
            // Made meanwhile (keyward itself creates them): its owner is set below.
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(InstallError::io(&shown)(e.into())),
        }
        let dir = Dir::open(&top, dev, Path::new(sub)).map_err(refusal(&shown))?;
        chown_fd(dir.fd(), uid, gid).map_err(|e| InstallError::io(&shown)(e.into()))?;
    }
    Ok(created)
}

/// A host path for an entry of the cache.
fn host_path(cache_dir: &str, rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        cache_dir.to_owned()
    } else {
        format!("{}/{}", cache_dir.trim_end_matches('/'), rel.display())
    }
}

/// The error for a failed step: a symlink met on the way is named as one.
fn refusal(path: &str) -> impl FnOnce(nix::errno::Errno) -> InstallError + '_ {
    move |e| match e {
        nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => InstallError::CacheSymlink {
            path: path.to_owned(),
        },
        e => InstallError::io(path)(e.into()),
    }
}

fn chown_fd(fd: RawFd, uid: u32, gid: u32) -> nix::Result<()> {
    fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
}

/// A descriptor, closed on drop.
struct Fd(RawFd);

impl Fd {
    fn open_dir(parent: Option<RawFd>, path: &Path) -> nix::Result<Fd> {
        openat(
            parent,
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(Fd)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = nix::unistd::close(self.0);
    }
}

/// A directory of the cache reached from the cache directory one `O_NOFOLLOW` directory at a
/// time (a symlink or file met on the way fails with `ELOOP`/`ENOTDIR`), checked with `fstat`
/// to be a directory on the cache's filesystem before anything is done through it.
struct Dir<'a> {
    top: &'a Fd,
    path: Vec<Fd>,
}

impl<'a> Dir<'a> {
    fn open(top: &'a Fd, dev: u64, rel: &Path) -> nix::Result<Dir<'a>> {
        let mut path: Vec<Fd> = Vec::new();
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(Errno::EINVAL);
            };
            let parent = path.last().unwrap_or(top).0;
            let fd = Fd::open_dir(Some(parent), Path::new(name))?;
            let st = fstat(fd.0)?;
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
                return Err(Errno::ENOTDIR);
            }
            if st.st_dev != dev {
                return Err(Errno::EXDEV);
            }
            path.push(fd);
        }
        Ok(Dir { top, path })
    }

    fn fd(&self) -> RawFd {
        self.path.last().unwrap_or(self.top).0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn e(rel: &str, uid: u32, kind: Kind) -> Entry {
        Entry {
            rel: rel.into(),
            uid,
            gid: uid,
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            kind,
            nlink: 1,
        }
    }

    #[test]
    fn cache_plan_gives_every_entry_not_keywards_to_keyward() {
        let entries = [
            e("", 998, Kind::Dir),
            e("keys", 0, Kind::Dir),
            e("keys/APKA1", 0, Kind::File),
            e("keys/APKA2", 998, Kind::File),
        ];
        let p = plan("/var/cache/keyward", Some(&entries), Some((998, 998))).unwrap();
        assert_eq!(p.chown, [PathBuf::from("keys")]);
        assert_eq!(p.remove, [(PathBuf::from("keys/APKA1"), 1)]);
        assert_eq!(p.create, ["users"]);
        assert!(!p.create_dir);
        let lines = describe(&p, "/var/cache/keyward", "keyward", "would ");
        assert_eq!(
            lines,
            [
                "would remove 1 cache file keyward does not own (fetched again from IAM; files are never chowned): /var/cache/keyward/keys/APKA1",
                "would give 1 cache directory to keyward (chown, never through a symlink): /var/cache/keyward/keys",
                "would create directory /var/cache/keyward/users (keyward, 0755)",
            ]
        );
        // Before the account exists, every directory is given to it and every file removed.
        let p = plan("/c", Some(&entries), None).unwrap();
        assert_eq!((p.chown.len(), p.remove.len()), (2, 2));
        let p = plan("/c", None, None).unwrap();
        assert!(p.create_dir && p.create == SUBDIRS && p.chown.is_empty());
        let all_ours = [
            e("", 998, Kind::Dir),
            e("keys", 998, Kind::Dir),
            e("users", 998, Kind::Dir),
        ];
        assert!(plan("/c", Some(&all_ours), Some((998, 998)))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn cache_plan_refuses_any_symlink_naming_it() {
        for at in ["", "keys", "users/alice.json"] {
            let mut entries = vec![
                e("", 998, Kind::Dir),
                e("keys", 0, Kind::Dir),
                e("users", 0, Kind::Dir),
                e("users/alice.json", 0, Kind::File),
            ];
            entries
                .iter_mut()
                .find(|x| x.rel == Path::new(at))
                .unwrap()
                .kind = Kind::Symlink;
            let err = plan("/var/cache/keyward", Some(&entries), Some((998, 998))).unwrap_err();
            let path = host_path("/var/cache/keyward", Path::new(at));
            assert!(
                matches!(&err, InstallError::CacheSymlink { path: p } if *p == path),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains(&crate::keys::cache::symlink_fix(Path::new(&path))),
                "{err}"
            );
        }
        let fifo = [e("", 998, Kind::Dir), e("keys", 0, Kind::Special("FIFO"))];
        assert!(plan("/c", Some(&fifo), Some((998, 998))).is_err());
        // A regular file where the cache directory or a subdirectory belongs is refused too.
        for at in ["", "keys"] {
            let mut entries = vec![e("", 998, Kind::Dir), e("keys", 998, Kind::Dir)];
            entries.retain(|x| x.rel != Path::new(at));
            entries.push(e(at, 0, Kind::File));
            let err = plan("/c", Some(&entries), Some((998, 998))).unwrap_err();
            assert!(
                matches!(
                    err,
                    InstallError::CacheSpecial {
                        kind: "regular file",
                        ..
                    }
                ),
                "{err}"
            );
        }
    }

    /// A tree with a root-owned /etc/shadow and a root-owned cache /c with keys/.
    fn tree_with_shadow() -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(Some(dir.path()));
        fs::create_dir_all(host.path("/c/keys")).unwrap();
        fs::create_dir(host.path("/etc")).unwrap();
        fs::write(host.path("/etc/shadow"), "root:*:1::::::\n").unwrap();
        (dir, host)
    }

    /// L1: a hard link is a plain file to lstat, and chown changes the shared inode: a link to
    /// /etc/shadow planted in the cache must never make install give /etc/shadow to keyward.
    #[test]
    fn i9_a_hard_linked_cache_file_is_refused_not_chowned() {
        let (_dir, host) = tree_with_shadow();
        fs::create_dir_all(host.path("/c/users")).unwrap();
        fs::hard_link(host.path("/etc/shadow"), host.path("/c/keys/APKA1")).unwrap();
        let entries = read(&host, "/c").unwrap().unwrap();
        let p = plan("/c", Some(&entries), Some((4242, 4242))).unwrap();
        assert!(
            !p.chown.contains(&PathBuf::from("keys/APKA1")),
            "planned to chown a hard link: {p:?}"
        );
        assert_eq!(p.remove, [(PathBuf::from("keys/APKA1"), 2)]);
        let lines = describe(&p, "/c", "keyward", "would ");
        assert!(
            lines.contains(&"warning: /c/keys/APKA1 is a hard link (2 names): another file may be behind it; it is removed, never chowned".into()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"would remove 1 cache file keyward does not own (fetched again from IAM; files are never chowned): /c/keys/APKA1".into()),
            "{lines:?}"
        );
        apply(&host, "/c", &p, (4242, 4242)).unwrap();
        assert!(
            !host.exists("/c/keys/APKA1"),
            "the link is still in the cache"
        );
        assert_eq!(fs::metadata(host.path("/c/keys")).unwrap().uid(), 4242);
        let shadow = fs::metadata(host.path("/etc/shadow")).unwrap();
        assert_eq!(
            (shadow.uid(), shadow.gid()),
            (0, 0),
            "the linked file changed owner"
        );
        assert_eq!(
            fs::read_to_string(host.path("/etc/shadow")).unwrap(),
            "root:*:1::::::\n"
        );
    }

    #[test]
    fn cache_apply_never_follows_a_symlink_swapped_in_after_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(Some(dir.path()));
        fs::create_dir_all(host.path("/c/keys")).unwrap();
        fs::write(host.path("/c/keys/APKA1"), "x").unwrap();
        fs::create_dir(host.path("/outside")).unwrap();
        fs::write(host.path("/outside/APKA1"), "secret").unwrap();
        let entries = read(&host, "/c").unwrap().unwrap();
        let p = plan("/c", Some(&entries), Some((4242, 4242))).unwrap();
        assert_eq!((p.chown.len(), p.remove.len()), (2, 1));
        // keys/ becomes a symlink to a directory outside the cache.
        fs::rename(host.path("/c/keys"), host.path("/c/old")).unwrap();
        std::os::unix::fs::symlink(host.path("/outside"), host.path("/c/keys")).unwrap();
        let err = apply(&host, "/c", &p, (4242, 4242)).unwrap_err();
        assert!(matches!(err, InstallError::CacheSymlink { .. }), "{err}");
        let outside = fs::metadata(host.path("/outside/APKA1")).unwrap();
        assert_ne!(outside.uid(), 4242, "chowned through the symlink");
        assert_ne!(
            fs::metadata(host.path("/outside")).unwrap().uid(),
            4242,
            "chowned the symlink's target"
        );
        assert!(
            host.exists("/outside/APKA1"),
            "removed a file through the symlink"
        );
    }

    #[test]
    fn i9_a_directory_swapped_for_a_hard_link_after_the_plan_is_not_chowned() {
        let (_dir, host) = tree_with_shadow();
        let entries = read(&host, "/c").unwrap().unwrap();
        let p = plan("/c", Some(&entries), Some((4242, 4242))).unwrap();
        assert!(p.chown.contains(&PathBuf::from("keys")), "{p:?}");
        // Whoever can write the cache swaps keys/ for a hard link to /etc/shadow.
        fs::remove_dir(host.path("/c/keys")).unwrap();
        fs::hard_link(host.path("/etc/shadow"), host.path("/c/keys")).unwrap();
        assert!(apply(&host, "/c", &p, (4242, 4242)).is_err());
        let shadow = fs::metadata(host.path("/etc/shadow")).unwrap();
        assert_eq!(
            (shadow.uid(), shadow.gid()),
            (0, 0),
            "chowned through the link"
        );
    }
}
