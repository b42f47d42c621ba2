//! Host keys that follow the instance, not the name or the address.
//!
//! OpenSSH keys its trust by host name (or `HostKeyAlias`, which takes no per-host tokens in a
//! pattern block). The `Host` blocks of `keyward ssh-config` instead set
//!
//! ```text
//! UserKnownHostsFile ~/.local/state/keyward/known_hosts/%n
//! ```
//!
//! and `keyward proxy`, which ssh runs before it reads any known_hosts file (ssh checks the
//! host key only after the server's banner, which comes through the proxy), re-points that
//! per-name file, a symlink, at the file of the instance the name resolved to:
//! `known_hosts/by-instance/i-…`. So
//! - a name or address reused by a new instance starts with no trusted key: ssh says the key is
//!   *unknown* (and asks, or refuses under `StrictHostKeyChecking yes`), never "changed", and
//!   never trusts it silently;
//! - a known instance keeps its key under every name that reaches it: lines in an instance's
//!   file are rewritten to the host pattern `*` ([`normalize`]) the next time the proxy points
//!   a name at it, since every key in that file was accepted for that instance.
//!
//! Invariants:
//! - The per-name link is only made for a name that passed [`super::resolve::check_host`] (no
//!   `/`, no leading `.`), replaced atomically (a temp link renamed over it), and points inside
//!   the same directory (`by-instance/<id>`, relative) at an id that passed
//!   [`crate::ec2::is_instance_id`].
//! - The directories are created 0700 and must pass [`files::check_trusted_dir`]; an instance
//!   file is read only through [`files::read_trusted`] and rewritten atomically (0600).
//! - Markers (`@revoked`, `@cert-authority`) and comments are kept; nothing is ever added.

use std::io;
use std::path::{Path, PathBuf};

use crate::ec2::is_instance_id;
use crate::files::{self, FileError, IoError};

/// Where instances' key files live, under the per-name links' directory.
pub const BY_INSTANCE: &str = "by-instance";

/// `$XDG_STATE_HOME/keyward/known_hosts` or `~/.local/state/keyward/known_hosts`.
pub fn default_dir() -> Option<PathBuf> {
    Some(crate::files::xdg_base("XDG_STATE_HOME", ".local/state")?.join("keyward/known_hosts"))
}

/// Why a name's known_hosts link was not made.
#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("{0:?} cannot name a known_hosts file")]
    BadName(String),
    #[error(transparent)]
    File(#[from] FileError),
}

/// A known_hosts text with every key line's host field made `*`; `None` when nothing changes.
pub fn normalize(text: &str) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let trimmed = body.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut fields = trimmed.split_ascii_whitespace();
        let (marker, hosts) = match fields.next() {
            Some(m) if m.starts_with('@') => (Some(m), fields.next()),
            first => (None, first),
        };
        let rest: Vec<&str> = fields.collect();
        if hosts == Some("*") || rest.len() < 2 {
            out.push_str(line);
            continue;
        }
        changed = true;
        if let Some(marker) = marker {
            out.push_str(marker);
            out.push(' ');
        }
        out.push('*');
        for field in rest {
            out.push(' ');
            out.push_str(field);
        }
        out.push_str(ending);
    }
    changed.then_some(out)
}

/// Makes `dir/name` point at `by-instance/<instance_id>` (creating the directories), after
/// normalizing that instance's file.
pub fn point(dir: &Path, name: &str, instance_id: &str) -> Result<(), KnownHostsError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if super::resolve::check_host(name).is_err() || name == BY_INSTANCE {
        return Err(KnownHostsError::BadName(crate::logging::untrusted(name)));
    }
    if !is_instance_id(instance_id) {
        return Err(KnownHostsError::BadName(crate::logging::untrusted(
            instance_id,
        )));
    }
    let by_instance = dir.join(BY_INSTANCE);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&by_instance)
        .map_err(|e| FileError::from(IoError::at("create", &by_instance)(e)))?;
    files::check_trusted_dir(dir).map_err(FileError::from)?;
    files::check_trusted_dir(&by_instance).map_err(FileError::from)?;

    let instance_file = by_instance.join(instance_id);
    if let Some(bytes) =
        files::read_trusted(&instance_file, files::MAX_TEXT_LEN).map_err(FileError::from)?
    {
        if let Some(text) = normalize(&String::from_utf8_lossy(&bytes)) {
            files::write_atomic(&by_instance, instance_id, text.as_bytes(), 0o600)
                .map_err(|e| FileError::from(IoError::at("write", &instance_file)(e)))?;
        }
    }

    let link = dir.join(name);
    let target = Path::new(BY_INSTANCE).join(instance_id);
    if std::fs::read_link(&link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let made = (|| -> io::Result<()> {
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::os::unix::fs::symlink(&target, &tmp)?;
        std::fs::rename(&tmp, &link)
    })();
    made.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        FileError::from(IoError::at("replace", &link)(e))
    })?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const A: &str = "i-0123456789abcdef0";
    const B: &str = "i-0123456789abcdef1";

    #[test]
    fn key_lines_are_made_to_match_every_name() {
        let text = "web-1 ssh-ed25519 AAAAC3 comment here\n\
                    |1|salt=|hash= ecdsa-sha2-nistp256 AAAAE2\n\
                    # a comment\n\n\
                    * ssh-rsa AAAAB3\n\
                    @revoked web-1 ssh-ed25519 AAAAold\n";
        assert_eq!(
            normalize(text).unwrap(),
            "* ssh-ed25519 AAAAC3 comment here\n\
             * ecdsa-sha2-nistp256 AAAAE2\n\
             # a comment\n\n\
             * ssh-rsa AAAAB3\n\
             @revoked * ssh-ed25519 AAAAold\n"
        );
        assert_eq!(normalize("* ssh-ed25519 AAAA\n# x\n"), None);
        // A line too short to be a key line is left as it is.
        assert_eq!(normalize("web-1 ssh-ed25519\n"), None);
    }

    fn state() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let dir = tmp.path().join("keyward/known_hosts");
        (tmp, dir)
    }

    #[test]
    fn a_name_follows_the_instance_it_resolves_to() {
        let (_tmp, dir) = state();
        point(&dir, "web-1", A).unwrap();
        assert_eq!(
            std::fs::read_link(dir.join("web-1")).unwrap(),
            Path::new("by-instance").join(A)
        );
        // ssh appends the accepted key through the link, into the instance's file.
        std::fs::write(dir.join("web-1"), "web-1 ssh-ed25519 AAAAkeyA\n").unwrap();
        assert!(dir.join(BY_INSTANCE).join(A).is_file());
        // A new instance under the name: the name's file is empty again.
        point(&dir, "web-1", B).unwrap();
        assert!(std::fs::read_to_string(dir.join("web-1")).is_err());
        // The first instance, by another name, keeps its key for every name.
        point(&dir, A, A).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(A)).unwrap(),
            "* ssh-ed25519 AAAAkeyA\n"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(BY_INSTANCE)), 0o700);
        assert_eq!(mode(&dir.join(BY_INSTANCE).join(A)), 0o600);
    }

    #[test]
    fn names_that_are_paths_and_ids_that_are_not_ids_are_refused() {
        let (_tmp, dir) = state();
        for name in ["../x", "a/b", ".x", "", BY_INSTANCE] {
            assert!(point(&dir, name, A).is_err(), "{name:?}");
        }
        assert!(point(&dir, "web-1", "../../etc").is_err());
        assert!(!dir.exists());
    }

    #[test]
    fn an_instance_file_others_may_write_is_not_used() {
        let (_tmp, dir) = state();
        point(&dir, "web-1", A).unwrap();
        let file = dir.join(BY_INSTANCE).join(A);
        std::fs::write(&file, "evil ssh-ed25519 AAAAx\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(point(&dir, "web-1", A).is_err());
    }
}
