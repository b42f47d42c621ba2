//! Bounding the IAM load that unauthenticated clients can cause through the PAM hook.
//!
//! Anyone who can reach sshd can make `pam-create-account` run with a name of their choice.
//! A name IAM refused is remembered for `NEGATIVE_TTL`, and all lookups together draw from a
//! per-minute budget, so a flood of invented names costs IAM a bounded number of calls. The
//! decisions are pure functions; the files only hold their state.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

use crate::clock::unix_secs;
use crate::files::{FileError, IoError};

/// How long a refused name is answered from memory.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(600);
/// IAM lookups the hook may start per minute, across all callers.
pub const LOOKUPS_PER_MINUTE: u32 = 60;
/// Above this many remembered names, expired ones are pruned.
const PRUNE_ABOVE: usize = 1000;

/// Whether a refusal recorded at `at` still stands at `now`.
pub fn negative_fresh(at: u64, now: u64, ttl: Duration) -> bool {
    at <= now && now - at < ttl.as_secs()
}

/// One step of a fixed one-minute window: `(window_start, used)` → allowed, next state.
pub fn budget_step(state: (u64, u32), now: u64, limit: u32) -> (bool, (u64, u32)) {
    let (start, used) = state;
    if now < start || now - start >= 60 {
        return (limit > 0, (now, u32::from(limit > 0)));
    }
    if used < limit {
        (true, (start, used + 1))
    } else {
        (false, (start, used))
    }
}

pub struct Throttle {
    dir: PathBuf,
}

impl Throttle {
    pub fn open(state_dir: &Path) -> Result<Throttle, FileError> {
        let dir = crate::state::StateDir::new(state_dir).negative();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(IoError::at("create", &dir))?;
        crate::files::check_trusted(&dir)?;
        Ok(Throttle { dir })
    }

    /// `linux_name` must be a validated Linux name (it becomes a file name).
    pub fn recently_refused(&self, linux_name: &str, now: SystemTime) -> bool {
        fs::read_to_string(self.dir.join(linux_name))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .is_some_and(|at| negative_fresh(at, unix_secs(now), NEGATIVE_TTL))
    }

    pub fn remember_refused(&self, linux_name: &str, now: SystemTime) {
        let now = unix_secs(now);
        self.prune(now);
        let _ =
            crate::files::write_atomic(&self.dir, linux_name, now.to_string().as_bytes(), 0o600);
    }

    /// Takes one IAM lookup from the shared per-minute budget.
    pub fn take_budget(&self, now: SystemTime) -> bool {
        self.try_take(unix_secs(now)).unwrap_or(false)
    }

    fn try_take(&self, now: u64) -> std::io::Result<bool> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.dir.join(".budget"))?;
        let mut file: Flock<File> =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e)?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let mut fields = text
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        let state = (
            fields.next().unwrap_or(0),
            u32::try_from(fields.next().unwrap_or(0)).unwrap_or(u32::MAX),
        );
        let (allowed, (start, used)) = budget_step(state, now, LOOKUPS_PER_MINUTE);
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        write!(file, "{start} {used}")?;
        Ok(allowed)
    }

    fn prune(&self, now: u64) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let entries: Vec<_> = entries.flatten().collect();
        if entries.len() <= PRUNE_ABOVE {
            return;
        }
        for e in entries {
            let at = fs::read_to_string(e.path())
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok());
            if at.is_some_and(|at| !negative_fresh(at, now, NEGATIVE_TTL)) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_remembered_for_the_ttl_only() {
        let ttl = Duration::from_secs(600);
        assert!(negative_fresh(1000, 1000, ttl));
        assert!(negative_fresh(1000, 1599, ttl));
        assert!(!negative_fresh(1000, 1600, ttl));
        assert!(!negative_fresh(2000, 1000, ttl), "from the future");
    }

    #[test]
    fn budget_allows_limit_per_minute_then_resets() {
        let mut state = (0, 0);
        let mut allowed = 0;
        for _ in 0..100 {
            let (ok, next) = budget_step(state, 1000, 60);
            allowed += u32::from(ok);
            state = next;
        }
        assert_eq!(allowed, 60);
        assert!(!budget_step(state, 1059, 60).0);
        assert!(budget_step(state, 1060, 60).0);
        assert!(
            budget_step(state, 10, 60).0,
            "clock stepped back starts a new window"
        );
    }

    #[test]
    fn throttle_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let t = Throttle::open(dir.path()).unwrap();
        let now = SystemTime::now();
        assert!(!t.recently_refused("ghost", now));
        t.remember_refused("ghost", now);
        assert!(t.recently_refused("ghost", now));
        let taken = (0..70).filter(|_| t.take_budget(now)).count();
        assert_eq!(taken, 60);
    }
}
