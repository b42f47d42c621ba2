//! `keyward doctor`: is this host wired up the way keyward needs, and if not, what to do.
//!
//! Each check is a verdict over facts: `checks` holds the verdicts as pure functions (unit
//! tested with made-up facts), `gather` the thin adapters that read the host and ask IAM for
//! them. Doctor only reads: it must never change a file, create a directory, reload a service
//! or make an IAM call that writes. `policy` holds the IAM permissions keyward needs, which
//! doctor probes and `keyward policy` prints.

pub mod checks;
pub mod gather;
pub mod policy;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Problem,
    /// The check cannot apply here (not root, no systemd, an earlier check failed).
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Problem => "problem",
            Status::Skip => "skip",
        }
    }
}

/// One verdict: what was checked, what was found, and for a problem the one-line fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn problem(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status: Status::Problem,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skip(name: impl Into<String>, reason: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Skip,
            detail: reason.into(),
            fix: None,
        }
    }
}

pub fn has_problem(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Problem)
}

/// One line per check, status and name in aligned columns, the fix on the line below.
pub fn render_human(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!(
            "{:<7}  {:<width$}  {}\n",
            c.status.as_str(),
            c.name,
            c.detail.replace('\n', " ")
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("{:<7}  {:<width$}  fix: {fix}\n", "", ""));
        }
    }
    let problems = checks
        .iter()
        .filter(|c| c.status == Status::Problem)
        .count();
    out.push_str(&match problems {
        0 => "no problems found\n".to_owned(),
        1 => "1 problem\n".to_owned(),
        n => format!("{n} problems\n"),
    });
    out
}

/// The checks as a JSON array (`--json`).
pub fn render_json(checks: &[Check]) -> String {
    let mut text = serde_json::to_string_pretty(checks).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn human_output_aligns_names_and_puts_the_fix_below() {
        let checks = [
            Check::ok("config", "/etc/keyward/keyward.toml"),
            Check::problem("iam:GetGroup", "denied", "allow it"),
            Check::skip("sshd", "run as root"),
        ];
        let text = render_human(&checks);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ok       config        /etc/keyward/keyward.toml");
        assert_eq!(lines[1], "problem  iam:GetGroup  denied");
        assert_eq!(lines[2], "                       fix: allow it");
        assert_eq!(lines[3], "skip     sshd          run as root");
        assert_eq!(lines[4], "1 problem");
        assert!(has_problem(&checks));
        assert!(!has_problem(&checks[..1]));
    }

    #[test]
    fn json_is_an_array_of_named_verdicts() {
        let text = render_json(&[Check::problem("clock", "10 min behind", "enable NTP")]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[0]["name"], "clock");
        assert_eq!(v[0]["status"], "problem");
        assert_eq!(v[0]["fix"], "enable NTP");
        let ok: serde_json::Value =
            serde_json::from_str(&render_json(&[Check::ok("x", "y")])).unwrap();
        assert!(ok[0]["fix"].is_null());
    }
}
