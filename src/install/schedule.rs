//! When `keyward sync` runs: a systemd timer, or a cron entry on hosts without systemd.
//!
//! The unit and cron files are templates in `systemd/` and `cron/`, rendered here by pure
//! functions. A fleet must not call IAM all at the same moment, so the cron minute is derived
//! from the host's identity and the timer is randomized. Nothing here may touch the host.

use sha2::{Digest, Sha256};

pub const SERVICE_PATH: &str = "/etc/systemd/system/keyward-sync.service";
pub const TIMER_PATH: &str = "/etc/systemd/system/keyward-sync.timer";
pub const TIMER_UNIT: &str = "keyward-sync.timer";
pub const CRON_PATH: &str = "/etc/cron.d/keyward";
/// Present when systemd is the running init (sd_booted(3)).
pub const SYSTEMD_RUNNING: &str = "/run/systemd/system";

const SERVICE: &str = include_str!("../../systemd/keyward-sync.service");
const TIMER: &str = include_str!("../../systemd/keyward-sync.timer");
const CRON: &str = include_str!("../../cron/keyward");

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Systemd,
    Cron,
}

impl Scheduler {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduler::Systemd => "systemd",
            Scheduler::Cron => "cron",
        }
    }
}

/// `--scheduler`: `auto` is systemd when it is the running init, else cron.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SchedulerChoice {
    #[default]
    Auto,
    Systemd,
    Cron,
}

pub fn choose(choice: SchedulerChoice, systemd_running: bool) -> Scheduler {
    match choice {
        SchedulerChoice::Systemd => Scheduler::Systemd,
        SchedulerChoice::Cron => Scheduler::Cron,
        SchedulerChoice::Auto if systemd_running => Scheduler::Systemd,
        SchedulerChoice::Auto => Scheduler::Cron,
    }
}

pub fn render_service(binary: &str, state_dir: &str, cache_dir: &str) -> String {
    super::render_template(
        SERVICE,
        &[
            ("@KEYWARD@", binary),
            ("@STATE_DIR@", state_dir),
            ("@CACHE_DIR@", cache_dir),
        ],
        true,
    )
}

pub fn render_timer() -> String {
    super::render_template(TIMER, &[], true)
}

pub fn render_cron(binary: &str, minute: u8) -> String {
    super::render_template(
        CRON,
        &[("@KEYWARD@", binary), ("@MINUTE@", &minute.to_string())],
        true,
    )
}

/// The minute of the hour this host syncs at: stable for a host, spread over 0..59 across
/// hosts. `host_id` is /etc/machine-id (or the hostname when there is none).
pub fn cron_minute(host_id: &str) -> u8 {
    let digest = Sha256::digest(host_id.trim().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 60) as u8
}

/// Every schedule file and what it should hold for `scheduler` (`None`: must not exist).
pub fn desired_files(
    scheduler: Scheduler,
    binary: &str,
    state_dir: &str,
    cache_dir: &str,
    minute: u8,
) -> Vec<(&'static str, Option<String>)> {
    let systemd = scheduler == Scheduler::Systemd;
    vec![
        (
            SERVICE_PATH,
            systemd.then(|| render_service(binary, state_dir, cache_dir)),
        ),
        (TIMER_PATH, systemd.then(render_timer)),
        (CRON_PATH, (!systemd).then(|| render_cron(binary, minute))),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BIN: &str = "/usr/local/bin/keyward";

    #[test]
    fn cron_minute_is_stable_per_host_and_spread_over_the_hour() {
        let id = "4b2d0b0f1c3e4a8f9d6e7c5b4a39281f";
        assert_eq!(cron_minute(id), cron_minute(id));
        assert_eq!(cron_minute(id), cron_minute(&format!("{id}\n")));
        let mut seen = std::collections::HashSet::new();
        for i in 0..600 {
            let m = cron_minute(&format!("host-{i}"));
            assert!(m < 60);
            seen.insert(m);
        }
        assert!(seen.len() > 50, "only {} distinct minutes", seen.len());
    }

    #[test]
    fn cron_line_runs_sync_as_root_at_the_host_minute() {
        let text = render_cron(BIN, 17);
        assert!(text.contains("\nSHELL=/bin/sh\n"), "{text}");
        assert!(
            text.contains("\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
        );
        assert!(
            text.ends_with("\n17 * * * * root /usr/local/bin/keyward sync >/dev/null 2>&1\n"),
            "{text}"
        );
        assert!(!text.contains('@') || text.matches('@').count() == 0);
    }

    #[test]
    fn service_runs_sync_once_with_the_configured_dirs_writable() {
        let text = render_service(BIN, "/var/lib/kw", "/var/cache/kw");
        assert!(text.contains("\nType=oneshot\n"));
        assert!(text.contains("\nExecStart=/usr/local/bin/keyward sync\n"));
        assert!(text.contains("\nProtectSystem=strict\n"));
        assert!(
            text.contains("ReadWritePaths=/etc -/home -/var/lib/kw -/var/cache/kw -/run/keyward\n"),
            "{text}"
        );
        assert!(text.contains("\nNoNewPrivileges=yes\n"));
        assert!(!text.contains('@') && !text.contains("##"), "{text}");
    }

    #[test]
    fn timer_is_hourly_randomized_and_persistent() {
        let text = render_timer();
        for line in [
            "OnBootSec=2min",
            "OnUnitActiveSec=1h",
            "RandomizedDelaySec=10min",
            "Persistent=true",
            "WantedBy=timers.target",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn auto_follows_the_running_init() {
        assert_eq!(choose(SchedulerChoice::Auto, true), Scheduler::Systemd);
        assert_eq!(choose(SchedulerChoice::Auto, false), Scheduler::Cron);
        assert_eq!(choose(SchedulerChoice::Cron, true), Scheduler::Cron);
        let files = desired_files(Scheduler::Cron, BIN, "/s", "/c", 3);
        assert!(files.iter().all(|(p, t)| t.is_some() == (*p == CRON_PATH)));
    }
}
