//! Giving keyward's key cache to the keyward user, the user sshd runs `authorized-keys` as.
//!
//! A root run of an older keyward, or a directory made by hand, leaves root-owned `keys/` and
//! `users/` that keyward cannot write, so every login asks IAM and an IAM outage locks everyone
//! out. `install` plans the repair (`read` → pure `plan` → `describe` for `--dry-run` and the
//! real run alike) and `apply` carries out exactly that plan. The plan also takes group and
//! world write off every cache directory, which `authorized-keys` would otherwise refuse to
//! trust (and doctor would name): owner and mode drift are both planned, never only one.
//!
//! Invariants: this runs as root over a directory another user owns, so it must never follow a
//! symlink. A symlink (or a FIFO, device or socket) anywhere in the cache stops install before
//! anything changes, naming it. `apply` reaches every entry from an `O_NOFOLLOW` descriptor of
//! its directory and changes owners with `AT_SYMLINK_NOFOLLOW`, so an entry swapped for a
//! symlink after the plan was made is refused or only the link itself changes owner, never
//! its target. Ownership changes are not undone by a rollback: the cache then belongs to
//! keyward, which is what it should be anyway.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::RawFd;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::{fchownat, Gid, Uid};

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
}

/// What install does to the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The cache directory does not exist: create it (missing parents root's, 0755).
    pub create_dir: bool,
    /// Subdirectories to create, keyward's, 0755.
    pub create: Vec<&'static str>,
    /// Entries to give to keyward, relative to the cache directory, parents first.
    pub chown: Vec<PathBuf>,
    /// Directories writable by group or others, with the mode they get (the same without
    /// group and world write), parents first.
    pub chmod: Vec<(PathBuf, u32)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        !self.create_dir && self.create.is_empty() && self.chown.is_empty() && self.chmod.is_empty()
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
            Kind::File if e.rel.parent() == Some(Path::new("")) => {
                if SUBDIRS.iter().any(|s| e.rel == Path::new(s)) {
                    return Err(InstallError::CacheSpecial {
                        path,
                        kind: "regular file",
                    });
                }
            }
            Kind::Dir | Kind::File => {}
        }
        if owner != Some((e.uid, e.gid)) {
            plan.chown.push(e.rel.clone());
        }
        if e.kind == Kind::Dir && e.mode & 0o022 != 0 {
            plan.chmod.push((e.rel.clone(), e.mode & !0o022));
        }
    }
    plan.create = SUBDIRS
        .iter()
        .copied()
        .filter(|s| !entries.iter().any(|e| e.rel == Path::new(s)))
        .collect();
    Ok(plan)
}

/// The plan in words, the same for `--dry-run` and the real run.
pub fn describe(plan: &Plan, cache_dir: &str, user: &str, verb: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if plan.create_dir {
        lines.push(format!("{verb}create directory {cache_dir} ({user}, 0755)"));
    }
    for sub in &plan.create {
        lines.push(format!(
            "{verb}create directory {} ({user}, 0755)",
            host_path(cache_dir, Path::new(sub))
        ));
    }
    if !plan.chown.is_empty() {
        const SHOWN: usize = 8;
        let mut names: Vec<String> = plan
            .chown
            .iter()
            .take(SHOWN)
            .map(|rel| host_path(cache_dir, rel))
            .collect();
        if plan.chown.len() > SHOWN {
            names.push(format!("and {} more", plan.chown.len() - SHOWN));
        }
        lines.push(format!(
            "{verb}give {} cache entr{} to {user} (chown, never through a symlink): {}",
            plan.chown.len(),
            if plan.chown.len() == 1 { "y" } else { "ies" },
            names.join(", ")
        ));
    }
    if !plan.chmod.is_empty() {
        let names: Vec<String> = plan
            .chmod
            .iter()
            .map(|(rel, _)| host_path(cache_dir, rel))
            .collect();
        lines.push(format!(
            "{verb}remove group and world write from {} cache director{} (chmod go-w, never through a symlink): {}",
            plan.chmod.len(),
            if plan.chmod.len() == 1 { "y" } else { "ies" },
            names.join(", ")
        ));
    }
    lines
}

/// Carries out `plan` with keyward's `(uid, gid)`, after the cache directory itself exists.
/// Returns the directories it created (for the undo journal).
pub fn apply(
    host: &Host,
    cache_dir: &str,
    plan: &Plan,
    (uid, gid): (u32, u32),
) -> Result<Vec<String>, InstallError> {
    let top = Fd::open_dir(None, &host.path(cache_dir)).map_err(refusal(cache_dir))?;
    let mut created = Vec::new();
    for sub in &plan.create {
        let shown = host_path(cache_dir, Path::new(sub));
        match mkdirat(Some(top.0), *sub, Mode::from_bits_truncate(0o755)) {
            Ok(()) => created.push(shown.clone()),
            // Made meanwhile (keyward itself creates them): its owner is checked below.
            Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(InstallError::io(&shown)(e.into())),
        }
        chown_at(top.0, Path::new(sub), uid, gid).map_err(refusal(&shown))?;
    }
    for rel in &plan.chown {
        let shown = host_path(cache_dir, rel);
        if rel.as_os_str().is_empty() {
            nix::unistd::fchown(top.0, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(|e| InstallError::io(&shown)(e.into()))?;
            continue;
        }
        // Walk down from the cache directory one O_NOFOLLOW directory at a time.
        let mut names: Vec<&std::ffi::OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let Some(last) = names.pop() else { continue };
        let mut dirs = Vec::new();
        for name in names {
            let parent = dirs.last().map_or(top.0, |d: &Fd| d.0);
            dirs.push(Fd::open_dir(Some(parent), Path::new(name)).map_err(refusal(&shown))?);
        }
        let parent = dirs.last().map_or(top.0, |d| d.0);
        chown_at(parent, Path::new(last), uid, gid).map_err(refusal(&shown))?;
    }
    for (rel, mode) in &plan.chmod {
        let shown = host_path(cache_dir, rel);
        // Directories only, each opened O_NOFOLLOW from the one above, then fchmod: a symlink
        // swapped in is refused, never followed.
        let mut dirs: Vec<Fd> = Vec::new();
        for name in rel.components().filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        }) {
            let parent = dirs.last().map_or(top.0, |d| d.0);
            dirs.push(Fd::open_dir(Some(parent), Path::new(name)).map_err(refusal(&shown))?);
        }
        let fd = dirs.last().map_or(top.0, |d| d.0);
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(*mode))
            .map_err(|e| InstallError::io(&shown)(e.into()))?;
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

fn chown_at(dir: RawFd, name: &Path, uid: u32, gid: u32) -> nix::Result<()> {
    fchownat(
        Some(dir),
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

/// A directory descriptor, closed on drop.
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
        assert_eq!(p.chown, [PathBuf::from("keys"), "keys/APKA1".into()]);
        assert_eq!(p.create, ["users"]);
        assert!(!p.create_dir);
        let lines = describe(&p, "/var/cache/keyward", "keyward", "would ");
        assert_eq!(
            lines,
            [
                "would create directory /var/cache/keyward/users (keyward, 0755)",
                "would give 2 cache entries to keyward (chown, never through a symlink): /var/cache/keyward/keys, /var/cache/keyward/keys/APKA1",
            ]
        );
        // Before the account exists, everything is given to it.
        let p = plan("/c", Some(&entries), None).unwrap();
        assert_eq!(p.chown.len(), 4);
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
        assert_eq!(p.chown.len(), 3);
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
    }
}
