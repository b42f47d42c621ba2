//! The install and uninstall plans in words, one line per action.
//!
//! Both `--dry-run` and the real run print exactly these lines (the real run then applies the
//! same plan), so what an admin reads and what happens come from one value. Every step that
//! changes the host has a line here, every directory created included (`apply` creates none
//! that is not a step); the only silent step is the manifest's bookkeeping.
//! Pure: a plan in, lines out.

use super::cache;
use super::line_diff;
use super::plan::{FileChange, InstallPlan, InstallStep, UninstallPlan, UninstallStep};
use super::schedule::TIMER_UNIT;
use super::system;
use super::USER;

/// What `keyward install` does, prefixed "would " for a dry run.
pub fn install(plan: &InstallPlan, dry_run: bool) -> Vec<String> {
    let verb = verb(dry_run);
    let mut lines = plan.notes.clone();
    if plan.is_empty() {
        lines.push("already installed; nothing changed".into());
        return lines;
    }
    for step in &plan.steps {
        match step {
            InstallStep::CreateUser { prefix } => lines.push(format!(
                "{verb}create system user {USER}: useradd {}",
                system::useradd_args(prefix.as_deref(), USER).join(" ")
            )),
            InstallStep::CreateDir { path, mode, .. } => {
                lines.push(format!("{verb}create directory {path} (root, {mode:04o})"))
            }
            InstallStep::FixCache { dir, plan } => {
                lines.extend(cache::describe(plan, dir, USER, verb))
            }
            InstallStep::DisableTimer { enabled } => lines.push(disable_timer(verb, *enabled)),
            InstallStep::WriteFile(f) => lines.extend(change(verb, &f.change)),
            InstallStep::RecordManifest => {}
            InstallStep::CheckSshd { .. } => lines.push(format!(
                "{verb}check with sshd -t and sshd -T, and put every file back if either fails"
            )),
            InstallStep::EnableTimer => lines.push(format!(
                "{verb}run: systemctl daemon-reload; systemctl enable --now {TIMER_UNIT}"
            )),
            InstallStep::DaemonReload => lines.push(format!("{verb}run: systemctl daemon-reload")),
            InstallStep::ReloadSshd => lines.push(format!("{verb}reload sshd")),
        }
    }
    lines
}

/// What `keyward uninstall` does, prefixed "would " for a dry run.
pub fn uninstall(plan: &UninstallPlan, dry_run: bool) -> Vec<String> {
    if !plan.installed {
        return vec!["not installed; nothing to do".into()];
    }
    let verb = verb(dry_run);
    let mut lines = plan.notes.clone();
    for step in &plan.steps {
        match step {
            UninstallStep::DisableTimer { enabled } => lines.push(disable_timer(verb, *enabled)),
            UninstallStep::RestoreFile(c) => lines.extend(change(verb, c)),
            UninstallStep::CheckSshd { .. } => lines.push(format!(
                "{verb}check with sshd -t, and put every file back if it fails"
            )),
            UninstallStep::DaemonReload => {
                lines.push(format!("{verb}run: systemctl daemon-reload"))
            }
            UninstallStep::ReloadSshd => lines.push(format!("{verb}reload sshd")),
            UninstallStep::RemoveUser { prefix } => lines.push(format!(
                "{verb}remove system user {USER}: userdel {}",
                system::userdel_args(prefix.as_deref(), USER).join(" ")
            )),
            UninstallStep::RemoveRecord { install_dir, .. } => lines.push(format!(
                "{verb}remove {install_dir} (keyward's cache and account records are kept)"
            )),
        }
    }
    lines
}

fn disable_timer(verb: &str, enabled: bool) -> String {
    format!(
        "{verb}run: systemctl disable --now {TIMER_UNIT}{}",
        if enabled {
            " (enabled again if a later step fails)"
        } else {
            ""
        }
    )
}

fn verb(dry_run: bool) -> &'static str {
    if dry_run {
        "would "
    } else {
        ""
    }
}

/// A file created (its lines), modified (the differing lines) or removed.
fn change(verb: &str, c: &FileChange) -> Vec<String> {
    let text = |b: &Option<Vec<u8>>| {
        b.as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned()
    };
    let mut lines = Vec::new();
    match (&c.current, &c.desired) {
        (None, Some(_)) => {
            lines.push(format!("{verb}create {}:", c.path));
            lines.extend(text(&c.desired).lines().map(|l| format!("  + {l}")));
        }
        (Some(_), Some(_)) => {
            lines.push(format!("{verb}modify {}:", c.path));
            lines.extend(line_diff(&text(&c.current), &text(&c.desired)));
        }
        (Some(_), None) => lines.push(format!("{verb}remove {}", c.path)),
        (None, None) => {}
    }
    lines
}
