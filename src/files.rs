//! Reading and writing the files that decide access.
//!
//! Config and cache files decide who gets a shell, so they are trusted the way sshd trusts an
//! AuthorizedKeysCommand: every component of the path is owned by root (or by the user running
//! keyward) and writable by nobody else. Writes are atomic, so a crash never leaves a half-written
//! file that a later run could misread.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Checks `path` and every directory above it: owned by root or by us, not writable by group
/// or others (root-owned sticky directories such as /tmp excepted). Returns a sentence naming the offending path and the fix.
pub fn check_trusted(path: &Path) -> Result<(), String> {
    let real = fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    for p in real.ancestors() {
        let meta = fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if meta.uid() != 0 && meta.uid() != me {
            return Err(format!(
                "{} is owned by uid {}, not root: chown root {}",
                p.display(),
                meta.uid(),
                p.display()
            ));
        }
        if meta.mode() & 0o022 != 0 && !is_sticky_root_dir(&meta) {
            return Err(format!(
                "{} is writable by group or others (mode {:o}): chmod go-w {}",
                p.display(),
                meta.mode() & 0o7777,
                p.display()
            ));
        }
    }
    Ok(())
}

/// A root-owned sticky directory (like /tmp) is a safe ancestor: nobody else can rename or
/// remove the entries in it that belong to root or to us, and the entry itself is checked.
fn is_sticky_root_dir(meta: &fs::Metadata) -> bool {
    meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o1000 != 0
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

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn own_file_in_private_dir_is_trusted() {
        let dir = private_dir();
        write_atomic(dir.path(), "f", b"x", 0o644).unwrap();
        check_trusted(&dir.path().join("f")).unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"x");
    }

    #[test]
    fn group_writable_file_is_not_trusted() {
        let dir = private_dir();
        write_atomic(dir.path(), "f", b"x", 0o664).unwrap();
        let err = check_trusted(&dir.path().join("f")).unwrap_err();
        assert!(err.contains("chmod go-w"), "{err}");
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
