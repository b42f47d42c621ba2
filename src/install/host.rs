//! The host's files as install sees them: the real root, or a `--root DIR` tree.
//!
//! Every path install handles is written as it is on a real host (`/etc/ssh/sshd_config`) and
//! mapped here, so that the same code runs on `/` and on a test tree. Writes go through
//! `files::write_atomic` and keep the replaced file's mode and owner; a symlink is never
//! replaced (keyward would silently detach it from its target).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::files;

/// Mode and owner of an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
}

impl Host {
    pub fn new(root: Option<&Path>) -> Host {
        Host {
            root: root.map_or_else(|| PathBuf::from("/"), Path::to_owned),
        }
    }

    /// The real root, where sshd, systemctl and NSS are the host's own.
    pub fn is_real(&self) -> bool {
        self.root == Path::new("/")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a host path lives on this machine.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.root.join(host_path.trim_start_matches('/'))
    }

    pub fn exists(&self, host_path: &str) -> bool {
        fs::symlink_metadata(self.path(host_path)).is_ok()
    }

    /// The file's bytes, `None` when it does not exist.
    pub fn read(&self, host_path: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(host_path)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn meta(&self, host_path: &str) -> io::Result<Option<Meta>> {
        match fs::symlink_metadata(self.path(host_path)) {
            Ok(m) => Ok(Some(Meta {
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn is_symlink(&self, host_path: &str) -> bool {
        fs::symlink_metadata(self.path(host_path)).is_ok_and(|m| m.file_type().is_symlink())
    }

    /// Writes atomically. An existing file keeps its mode and owner; a new one gets `new_mode`
    /// and root (or whoever runs install).
    pub fn write(&self, host_path: &str, bytes: &[u8], new_mode: u32) -> io::Result<()> {
        if self.is_symlink(host_path) {
            return Err(io::Error::other(
                "is a symlink; keyward does not replace symlinks (point it at a real file)",
            ));
        }
        let existing = self.meta(host_path)?;
        let path = self.path(host_path);
        let (dir, name) = split(&path)?;
        let mode = existing.map_or(new_mode, |m| m.mode);
        files::write_atomic(dir, name, bytes, mode)?;
        if let Some(m) = existing {
            let me = nix::unistd::geteuid().as_raw();
            if m.uid != me || m.gid != nix::unistd::getegid().as_raw() {
                std::os::unix::fs::chown(&path, Some(m.uid), Some(m.gid))?;
            }
        }
        Ok(())
    }

    pub fn remove(&self, host_path: &str) -> io::Result<()> {
        match fs::remove_file(self.path(host_path)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Creates a directory (one level) with `mode`, owned by `owner` when given.
    pub fn create_dir(
        &self,
        host_path: &str,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        let path = self.path(host_path);
        fs::create_dir(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    pub fn chown(&self, host_path: &str, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::chown(self.path(host_path), Some(uid), Some(gid))
    }

    /// Removes an empty directory; a non-empty or missing one is left alone.
    pub fn remove_empty_dir(&self, host_path: &str) -> bool {
        fs::remove_dir(self.path(host_path)).is_ok()
    }

    pub fn remove_tree(&self, host_path: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.path(host_path)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Files matching an absolute glob pattern (`*`, `?`, `[...]` in any component), as host
    /// paths sorted like glob(3), with their text. For sshd's Include.
    pub fn glob(&self, pattern: &str) -> Vec<(String, String)> {
        let mut found = vec![String::new()];
        for component in pattern.split('/').filter(|c| !c.is_empty()) {
            let mut next = Vec::new();
            for dir in &found {
                if !component.contains(['*', '?', '[']) {
                    next.push(format!("{dir}/{component}"));
                    continue;
                }
                let Ok(entries) = fs::read_dir(self.path(if dir.is_empty() { "/" } else { dir }))
                else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    // glob(3) does not match a leading dot with a wildcard.
                    if !name.starts_with('.') && super::glob_match(component, &name) {
                        next.push(format!("{dir}/{name}"));
                    }
                }
            }
            found = next;
        }
        found.sort();
        found
            .into_iter()
            .filter_map(|p| {
                let bytes = fs::read(self.path(&p)).ok()?;
                Some((p, String::from_utf8_lossy(&bytes).into_owned()))
            })
            .collect()
    }
}

fn split(path: &Path) -> io::Result<(&Path, &str)> {
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(io::Error::other("not a file path")),
    }
}

/// Each ancestor of `path` (itself first) with its owner and mode, for sshd's path rule.
pub fn ancestry(path: &Path) -> io::Result<Vec<(PathBuf, u32, u32)>> {
    path.ancestors()
        .map(|p| {
            let m = fs::metadata(p)?;
            Ok((p.to_owned(), m.uid(), m.mode()))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn glob_finds_sorted_files_under_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(Some(dir.path()));
        fs::create_dir_all(host.path("/etc/ssh/sshd_config.d")).unwrap();
        for name in ["50-b.conf", "10-a.conf", "x.txt", ".hidden.conf"] {
            fs::write(host.path(&format!("/etc/ssh/sshd_config.d/{name}")), name).unwrap();
        }
        let found = host.glob("/etc/ssh/sshd_config.d/*.conf");
        let names: Vec<_> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "/etc/ssh/sshd_config.d/10-a.conf",
                "/etc/ssh/sshd_config.d/50-b.conf"
            ]
        );
        assert_eq!(found[0].1, "10-a.conf");
        assert!(host.glob("/etc/ssh/missing.d/*.conf").is_empty());
        assert_eq!(host.glob("/etc/ssh/sshd_config.d/x.txt").len(), 1);
    }

    #[test]
    fn write_keeps_the_mode_of_the_file_it_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(Some(dir.path()));
        fs::write(host.path("/f"), "old").unwrap();
        fs::set_permissions(host.path("/f"), fs::Permissions::from_mode(0o640)).unwrap();
        host.write("/f", b"new", 0o644).unwrap();
        assert_eq!(fs::read(host.path("/f")).unwrap(), b"new");
        assert_eq!(host.meta("/f").unwrap().unwrap().mode, 0o640);
        host.write("/g", b"x", 0o600).unwrap();
        assert_eq!(host.meta("/g").unwrap().unwrap().mode, 0o600);
    }

    #[test]
    fn write_refuses_to_replace_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(Some(dir.path()));
        fs::write(host.path("/target"), "t").unwrap();
        std::os::unix::fs::symlink(host.path("/target"), host.path("/link")).unwrap();
        assert!(host.write("/link", b"x", 0o644).is_err());
        assert_eq!(fs::read(host.path("/target")).unwrap(), b"t");
    }
}
