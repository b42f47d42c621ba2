//! Reading and writing the files that decide access.
//!
//! Config, chain, ownership-record and cache files decide who gets a shell, so they are trusted
//! the way sshd trusts an AuthorizedKeysCommand: every directory from `/` down is owned by root
//! (or by the user running keyward) and writable by nobody else, and the file itself too.
//!
//! Invariants:
//! - A trusted file is opened once, without following a symlink (`O_NOFOLLOW`), and it is the
//!   open descriptor that is checked (`fstat`): owner, mode, type and size. What is read is what
//!   was checked, even if the path is replaced in between.
//! - The path is never canonicalized. The walk checks each directory it passes through,
//!   physically: a symlinked directory component is allowed, but its own directory is checked
//!   (nobody else can replace the link), and then every directory of its target is checked as
//!   the walk continues there. So `/var/run -> /run` works, and a symlink in a 0777 directory
//!   pointing at a trusted file does not. (A symlink's owner does not matter: it cannot be
//!   changed, only replaced, which needs write access to its directory.)
//! - The last component of a file that must be trusted (`read_trusted`, `check_trusted_dir`) is
//!   never a symlink. Only `check_trusted`, for paths keyward merely checks (a program to run, a
//!   credentials file the SDK opens), follows a last symlink, walking its target the same way.
//! - Writes are atomic, so a crash never leaves a half-written file that a later run could
//!   misread.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Config and chain files are small text; anything larger was not written by an admin for
/// keyward.
pub const MAX_TEXT_LEN: u64 = 1024 * 1024;

/// A per-user base directory of the XDG layout: `$VAR` (e.g. `XDG_CACHE_HOME`), else
/// `$HOME/fallback` (e.g. `.cache`); `None` when neither is set. An empty value counts as unset,
/// so a blank variable never turns into a path relative to the working directory.
pub fn xdg_base(var: &str, fallback: &str) -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    match set(var) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => Some(PathBuf::from(set("HOME")?).join(fallback)),
    }
}

/// Symlinks followed in one walk before it gives up (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

/// Why a path cannot be trusted. Each message names the path and ends with the fix, which
/// `fix()` returns alone (doctor prints it on its own line).
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path} is owned by uid {uid}, not root: chown root {path}")]
    Owner { path: PathBuf, uid: u32 },
    #[error("{path} is writable by group or others (mode {mode:o}): chmod go-w {path}")]
    Writable { path: PathBuf, mode: u32 },
    /// `want` is "file" or "directory".
    #[error("{path} is a symlink, which keyward does not follow here: replace {path} with the {want} it points to")]
    Symlink { path: PathBuf, want: &'static str },
    #[error("{path} is a {kind}, not a regular file: replace {path} with a regular file")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{path} is a {kind}, not a directory: replace {path} with a directory")]
    NotADirectory { path: PathBuf, kind: &'static str },
    #[error("{path} is larger than {max} bytes, more than keyward reads from it: replace {path} with a file of at most {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("{path}: more than {MAX_SYMLINKS} symlinks on the way: replace them with the directories they point to")]
    SymlinkLoop { path: PathBuf },
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
}

impl TrustError {
    /// The offending path (a directory above the file, the file itself, or a symlink).
    pub fn path(&self) -> &Path {
        match self {
            TrustError::Owner { path, .. }
            | TrustError::Writable { path, .. }
            | TrustError::Symlink { path, .. }
            | TrustError::NotAFile { path, .. }
            | TrustError::NotADirectory { path, .. }
            | TrustError::TooLarge { path, .. }
            | TrustError::SymlinkLoop { path }
            | TrustError::Missing { path }
            | TrustError::Io { path, .. } => path,
        }
    }

    /// The fix alone, as it ends the message; `None` when keyward cannot tell one.
    pub fn fix(&self) -> Option<String> {
        let p = self.path().display();
        match self {
            TrustError::Owner { .. } => Some(format!("chown root {p}")),
            TrustError::Writable { .. } => Some(format!("chmod go-w {p}")),
            TrustError::Symlink { want, .. } => {
                Some(format!("replace {p} with the {want} it points to"))
            }
            TrustError::NotAFile { .. } => Some(format!("replace {p} with a regular file")),
            TrustError::NotADirectory { .. } => Some(format!("replace {p} with a directory")),
            TrustError::TooLarge { max, .. } => {
                Some(format!("replace {p} with a file of at most {max} bytes"))
            }
            TrustError::SymlinkLoop { .. } => {
                Some("replace them with the directories they point to".to_owned())
            }
            TrustError::Missing { .. } | TrustError::Io { .. } => None,
        }
    }

    /// The message without its fix, for callers that know a better fix in their context
    /// (a cache file is best removed: keyward fetches it again).
    pub fn problem(&self) -> String {
        let text = self.to_string();
        match self.fix() {
            Some(fix) => text
                .strip_suffix(&format!(": {fix}"))
                .map_or_else(|| text.clone(), str::to_owned),
            None => text,
        }
    }

    /// The path (or a directory on the way) does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, TrustError::Missing { .. })
    }
}

/// An I/O failure on a path keyward reads or writes: what it was doing, where, and the OS's
/// reason, in one sentence ("cannot create /var/lib/keyward/negative: Permission denied").
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {error}", path.display())]
pub struct IoError {
    /// A verb phrase: "create", "read", "write", "remove", "lock".
    pub action: &'static str,
    pub path: PathBuf,
    pub error: io::Error,
}

impl IoError {
    /// For `map_err`: `.map_err(IoError::at("create", &dir))`.
    pub fn at<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IoError + 'a {
        move |error| IoError {
            action,
            path: path.to_owned(),
            error,
        }
    }
}

/// A file or directory keyward keeps state in that cannot be used: an I/O failure, or it
/// fails the trust check (someone else could have written it).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Untrusted(#[from] TrustError),
}

/// Reads a file that decides access: `Ok(None)` when it (or a directory above it) does not
/// exist; every other problem is an error. The directories from `/` down are checked (see the
/// module doc), then the file is opened without following a symlink and the open descriptor is
/// checked: a regular file, owned by root or by us, not writable by group or others, at most
/// `max_len` bytes. At most `max_len` bytes are read.
pub fn read_trusted(path: &Path, max_len: u64) -> Result<Option<Vec<u8>>, TrustError> {
    let (physical, lmeta) = match walk(path, false) {
        Ok(found) => found,
        Err(e) if e.is_missing() => return Ok(None),
        Err(e) => return Err(e),
    };
    // Judge by lstat first so that a FIFO or device is never opened (opening one can block or
    // have side effects); the fstat below is what counts.
    judge_file(&physical, &lmeta, max_len)?;
    let file = match OpenOptions::new()
        .read(true)
        // std adds O_CLOEXEC. O_NONBLOCK: a FIFO swapped in after the lstat must not block.
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&physical)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(TrustError::Symlink {
                path: physical,
                want: "file",
            })
        }
        Err(error) => {
            return Err(TrustError::Io {
                path: physical,
                error,
            })
        }
    };
    let meta = file.metadata().map_err(io_at(&physical))?;
    judge_file(&physical, &meta, max_len)?;
    let mut bytes = Vec::new();
    file.take(max_len.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_at(&physical))?;
    if bytes.len() as u64 > max_len {
        return Err(TrustError::TooLarge {
            path: physical,
            max: max_len,
        });
    }
    Ok(Some(bytes))
}

/// Checks `path` and every directory above it: owned by root or by us, not writable by group
/// or others (root-owned sticky directories such as /tmp excepted). For paths keyward checks
/// but does not read itself (a program to run, a file the AWS SDK opens): a last symlink is
/// followed, its target walked and checked the same way. A missing path is an error.
pub fn check_trusted(path: &Path) -> Result<(), TrustError> {
    let (physical, meta) = walk(path, true)?;
    if meta.is_dir() {
        judge_dir(&physical, &meta, true)
    } else {
        judge_owner_and_mode(&physical, &meta)
    }
}

/// Checks a directory whose entries decide access (a cache subdirectory, a record directory):
/// every directory above it as `check_trusted` does, and the directory itself not a symlink,
/// owned by root or by us, and not writable by group or others, sticky or not (anyone could
/// plant an entry in a sticky world-writable directory).
pub fn check_trusted_dir(path: &Path) -> Result<(), TrustError> {
    let (physical, meta) = walk(path, false)?;
    if meta.file_type().is_symlink() {
        return Err(TrustError::Symlink {
            path: physical,
            want: "directory",
        });
    }
    judge_dir(&physical, &meta, false)
}

/// Walks `path` from `/` without canonicalizing: every directory passed through is checked,
/// symlinked directories are resolved and their targets walked. Returns the physical path of
/// the last component and its `lstat` (a symlink unless `follow_last`).
fn walk(path: &Path, follow_last: bool) -> Result<(PathBuf, fs::Metadata), TrustError> {
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().map_err(io_at(path))?.join(path)
    };
    let root = PathBuf::from("/");
    let root_meta = fs::symlink_metadata(&root).map_err(io_at(&root))?;
    judge_dir(&root, &root_meta, true)?;
    // Components still to walk, the next one last.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, &absolute);
    let mut current = root;
    let mut current_meta = root_meta;
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        match name.to_str() {
            Some("/") => {
                current = PathBuf::from("/");
                current_meta = fs::symlink_metadata(&current).map_err(io_at(&current))?;
                continue;
            }
            Some(".") => continue,
            Some("..") => {
                // `current` is physical (no symlinks), so its parent is the real `..`, and was
                // checked on the way down.
                current.pop();
                current_meta = fs::symlink_metadata(&current).map_err(io_at(&current))?;
                continue;
            }
            _ => {}
        }
        let next = current.join(&name);
        let meta = match fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(TrustError::Missing { path: next })
            }
            Err(error) => return Err(TrustError::Io { path: next, error }),
        };
        let last = pending.is_empty();
        if meta.file_type().is_symlink() && (!last || follow_last) {
            hops += 1;
            if hops > MAX_SYMLINKS {
                return Err(TrustError::SymlinkLoop { path: next });
            }
            // The link's own directory (`current`) is checked already; now its target.
            let target = fs::read_link(&next).map_err(io_at(&next))?;
            push_components(&mut pending, &target);
            continue;
        }
        if last {
            return Ok((next, meta));
        }
        judge_dir(&next, &meta, true)?;
        current = next;
        current_meta = meta;
    }
    // The path ended on a directory already walked ("/", "a/..").
    Ok((current, current_meta))
}

/// Pushes `path`'s components so that the first is popped first.
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::RootDir => Some(OsString::from("/")),
            Component::CurDir => None,
            Component::ParentDir => Some(OsString::from("..")),
            Component::Normal(n) => Some(n.to_owned()),
            Component::Prefix(_) => None,
        })
        .collect();
    pending.extend(names.into_iter().rev());
}

fn is_trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

fn judge_owner_and_mode(path: &Path, meta: &fs::Metadata) -> Result<(), TrustError> {
    if !is_trusted_owner(meta.uid()) {
        return Err(TrustError::Owner {
            path: path.to_owned(),
            uid: meta.uid(),
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(TrustError::Writable {
            path: path.to_owned(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

/// A directory on the way: ours or root's and not writable by others, except that a root-owned
/// sticky directory (like /tmp) is a safe ancestor when `sticky_ok`: nobody else can rename or
/// remove the entries in it that belong to root or to us, and the entry itself is checked next.
fn judge_dir(path: &Path, meta: &fs::Metadata, sticky_ok: bool) -> Result<(), TrustError> {
    if !meta.is_dir() {
        return Err(TrustError::NotADirectory {
            path: path.to_owned(),
            kind: kind_of(meta),
        });
    }
    let sticky_root = meta.uid() == 0 && meta.mode() & 0o1000 != 0;
    match judge_owner_and_mode(path, meta) {
        Err(TrustError::Writable { .. }) if sticky_ok && sticky_root => Ok(()),
        other => other,
    }
}

fn judge_file(path: &Path, meta: &fs::Metadata, max_len: u64) -> Result<(), TrustError> {
    if meta.file_type().is_symlink() {
        return Err(TrustError::Symlink {
            path: path.to_owned(),
            want: "file",
        });
    }
    if !meta.is_file() {
        return Err(TrustError::NotAFile {
            path: path.to_owned(),
            kind: kind_of(meta),
        });
    }
    judge_owner_and_mode(path, meta)?;
    if meta.len() > max_len {
        return Err(TrustError::TooLarge {
            path: path.to_owned(),
            max: max_len,
        });
    }
    Ok(())
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> TrustError + '_ {
    move |error| TrustError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Writes `contents` to `dir/name` atomically: a dot-prefixed temp file in the same directory,
/// fsync, rename over the target, fsync the directory.
pub fn write_atomic(dir: &Path, name: &str, contents: &[u8], mode: u32) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn own_file_in_private_dir_is_trusted() {
        let dir = private_dir();
        write_atomic(dir.path(), "f", b"x", 0o644).unwrap();
        check_trusted(&dir.path().join("f")).unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"x");
        assert_eq!(
            read_trusted(&dir.path().join("f"), 10).unwrap().unwrap(),
            b"x"
        );
    }

    #[test]
    fn missing_file_or_directory_reads_as_none() {
        let dir = private_dir();
        assert!(read_trusted(&dir.path().join("f"), 10).unwrap().is_none());
        assert!(read_trusted(&dir.path().join("no/f"), 10)
            .unwrap()
            .is_none());
        assert!(check_trusted(&dir.path().join("f"))
            .unwrap_err()
            .is_missing());
    }

    #[test]
    fn group_writable_file_is_not_trusted() {
        let dir = private_dir();
        write_atomic(dir.path(), "f", b"x", 0o664).unwrap();
        let err = check_trusted(&dir.path().join("f")).unwrap_err();
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        let err = read_trusted(&dir.path().join("f"), 10).unwrap_err();
        assert_eq!(
            err.fix().unwrap(),
            format!("chmod go-w {}", dir.path().join("f").display())
        );
    }

    #[test]
    fn world_writable_ancestor_is_trusted_only_when_sticky_and_root_owned() {
        let dir = private_dir();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        write_atomic(dir.path(), "f", b"x", 0o644).unwrap();
        assert!(check_trusted(&dir.path().join("f")).is_err());
        // With the sticky bit, a root-owned world-writable directory is a safe ancestor.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        if nix::unistd::geteuid().is_root() {
            assert!(
                check_trusted(&dir.path().join("f")).is_ok(),
                "root's sticky dir is fine"
            );
            // ...but not as the directory whose entries are trusted.
            assert!(check_trusted_dir(dir.path()).is_err());
        }
    }

    #[test]
    fn file_in_a_subdir_of_a_world_writable_dir_is_not_trusted() {
        let dir = private_dir();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::set_permissions(dir.path().join("sub"), fs::Permissions::from_mode(0o777)).unwrap();
        let dir = tempfile::TempDir::new_in(dir.path().join("sub")).unwrap();
        write_atomic(dir.path(), "f", b"x", 0o644).unwrap();
        assert!(check_trusted(&dir.path().join("f")).is_err());
    }

    #[test]
    fn m7_symlink_in_a_world_writable_dir_pointing_at_a_trusted_file_is_refused() {
        let dir = private_dir();
        write_atomic(dir.path(), "trusted.toml", b"x", 0o644).unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        symlink("../trusted.toml", open.join("link")).unwrap();

        // Anyone could point the link elsewhere: its own directory decides.
        let err = check_trusted(&open.join("link")).unwrap_err();
        assert!(
            matches!(&err, TrustError::Writable { path, .. } if *path == open),
            "{err}"
        );
        assert_eq!(err.fix().unwrap(), format!("chmod go-w {}", open.display()));
        let err = read_trusted(&open.join("link"), 10).unwrap_err();
        assert!(matches!(err, TrustError::Writable { .. }), "{err}");
        // The same through a symlinked directory that sits in the 0777 directory.
        symlink(dir.path(), open.join("dirlink")).unwrap();
        let err = read_trusted(&open.join("dirlink/trusted.toml"), 10).unwrap_err();
        assert!(matches!(err, TrustError::Writable { .. }), "{err}");
    }

    #[test]
    fn m7_symlink_to_a_trusted_file_in_a_trusted_dir_is_refused_where_the_file_must_be_roots() {
        let dir = private_dir();
        write_atomic(dir.path(), "f", b"x", 0o644).unwrap();
        symlink(dir.path().join("f"), dir.path().join("link")).unwrap();
        let err = read_trusted(&dir.path().join("link"), 10).unwrap_err();
        assert!(matches!(err, TrustError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("is a symlink"), "{err}");
        assert!(err.to_string().contains(&format!(
            "replace {} with the file it points to",
            dir.path().join("link").display()
        )));
        // A program or a credentials file keyward only checks may be a symlink in a trusted
        // directory to a trusted target (update-alternatives does that).
        check_trusted(&dir.path().join("link")).unwrap();
        // A directory whose entries are trusted is never a symlink.
        fs::create_dir(dir.path().join("real")).unwrap();
        symlink(dir.path().join("real"), dir.path().join("dirlink")).unwrap();
        check_trusted_dir(&dir.path().join("real")).unwrap();
        let err = check_trusted_dir(&dir.path().join("dirlink")).unwrap_err();
        assert!(
            matches!(
                err,
                TrustError::Symlink {
                    want: "directory",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn m7_symlinked_directory_components_are_walked_into_and_checked() {
        let dir = private_dir();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        write_atomic(&real, "f", b"x", 0o644).unwrap();
        symlink("real", dir.path().join("alias")).unwrap();
        // Like /var/run -> /run: fine when the target is trusted.
        assert_eq!(
            read_trusted(&dir.path().join("alias/f"), 10)
                .unwrap()
                .unwrap(),
            b"x"
        );
        // The target's own directories are checked too.
        chmod(&real, 0o777);
        let err = read_trusted(&dir.path().join("alias/f"), 10).unwrap_err();
        assert!(
            matches!(&err, TrustError::Writable { path, .. } if *path == real),
            "{err}"
        );
        // "..", relative to where the walk physically is.
        chmod(&real, 0o755);
        let via_dots = dir.path().join("alias/../real/f");
        assert_eq!(read_trusted(&via_dots, 10).unwrap().unwrap(), b"x");
        // A loop ends.
        symlink("loop", dir.path().join("loop")).unwrap();
        let err = read_trusted(&dir.path().join("loop/f"), 10).unwrap_err();
        assert!(matches!(err, TrustError::SymlinkLoop { .. }), "{err}");
    }

    #[test]
    fn m7_fifo_and_device_are_refused_without_blocking() {
        let dir = private_dir();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_trusted(&fifo, 10).unwrap_err();
        assert!(
            matches!(err, TrustError::NotAFile { kind: "FIFO", .. }),
            "{err}"
        );
        let err = read_trusted(Path::new("/dev/null"), 10).unwrap_err();
        assert!(
            matches!(err, TrustError::NotAFile { kind: "device", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn m7_oversize_file_is_refused() {
        let dir = private_dir();
        write_atomic(dir.path(), "f", &[b'x'; 11], 0o644).unwrap();
        let err = read_trusted(&dir.path().join("f"), 10).unwrap_err();
        assert!(matches!(err, TrustError::TooLarge { max: 10, .. }), "{err}");
        assert_eq!(
            read_trusted(&dir.path().join("f"), 11)
                .unwrap()
                .unwrap()
                .len(),
            11
        );
    }

    #[test]
    fn m7_a_file_swapped_in_after_the_check_is_never_read() {
        // A trusted file and an untrusted one (0666: anyone could have written it) are
        // renamed over the path in a tight loop while it is read. Checking the path and then
        // reading it would sometimes return the untrusted bytes; checking the open descriptor
        // never does.
        let dir = private_dir();
        write_atomic(dir.path(), "good", b"good", 0o644).unwrap();
        write_atomic(dir.path(), "evil", b"evil", 0o644).unwrap();
        chmod(&dir.path().join("evil"), 0o666);
        let target = dir.path().join("f");
        fs::copy(dir.path().join("good"), &target).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (dir, stop) = (dir.path().to_owned(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for src in ["good", "evil"] {
                        let tmp = dir.join(".swap");
                        let _ = fs::remove_file(&tmp);
                        fs::hard_link(dir.join(src), &tmp).unwrap();
                        fs::rename(&tmp, dir.join("f")).unwrap();
                    }
                }
            })
        };
        let (mut good, mut refused) = (0, 0);
        for _ in 0..5000 {
            match read_trusted(&target, 10) {
                Ok(Some(bytes)) => {
                    assert_eq!(bytes, b"good", "untrusted bytes were returned");
                    good += 1;
                }
                Ok(None) => {}
                Err(_) => refused += 1,
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(good > 0 && refused > 0, "good={good} refused={refused}");
    }

    #[test]
    fn every_fix_ends_its_message() {
        let p = PathBuf::from("/x/y");
        let errors = [
            TrustError::Owner {
                path: p.clone(),
                uid: 5,
            },
            TrustError::Writable {
                path: p.clone(),
                mode: 0o777,
            },
            TrustError::Symlink {
                path: p.clone(),
                want: "file",
            },
            TrustError::NotAFile {
                path: p.clone(),
                kind: "FIFO",
            },
            TrustError::NotADirectory {
                path: p.clone(),
                kind: "regular file",
            },
            TrustError::TooLarge {
                path: p.clone(),
                max: 9,
            },
            TrustError::SymlinkLoop { path: p.clone() },
        ];
        for e in errors {
            let fix = e.fix().unwrap();
            assert!(e.to_string().ends_with(&format!(": {fix}")), "{e} / {fix}");
            assert!(e.to_string().starts_with("/x/y"), "{e}");
            assert_eq!(format!("{}: {fix}", e.problem()), e.to_string());
        }
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = private_dir();
        write_atomic(dir.path(), "f", b"old", 0o600).unwrap();
        write_atomic(dir.path(), "f", b"new", 0o600).unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["f"]);
        assert_eq!(
            fs::metadata(dir.path().join("f")).unwrap().mode() & 0o777,
            0o600
        );
    }
}
