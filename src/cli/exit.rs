//! The exit codes of every command: one enum, from which `--help` and the README table are
//! rendered, so the documented codes and the returned ones cannot drift apart.
//!
//! sshd, PAM, systemd and scripts read these codes. An IAM failure maps to the same code in
//! every command (`Exit::of_iam`): 3 when IAM said nothing usable, 4 when the caller's
//! credentials or permissions are the problem; both are fixed by someone other than the user.

use std::process::ExitCode;

use crate::ca::{CaError, KmsError};
use crate::ec2::Ec2Error;
use crate::iam::IamError;
use crate::issuer::client::ClientError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    Failure,
    Usage,
    IamUnreachable,
    IamCredentials,
}

impl Exit {
    /// Every code, in order: the rows of the documented table.
    pub const ALL: [Exit; 5] = [
        Exit::Ok,
        Exit::Failure,
        Exit::Usage,
        Exit::IamUnreachable,
        Exit::IamCredentials,
    ];

    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            // clap exits with this code itself on a usage error.
            Exit::Usage => 2,
            Exit::IamUnreachable => 3,
            Exit::IamCredentials => 4,
        }
    }

    /// What the code means, for `--help` and the README (markdown inline code allowed).
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => {
                "success; for `authorized-keys` also \"user not allowed, nothing printed\"; \
                 for `doctor`: no check found a problem"
            }
            Exit::Failure => {
                "error: bad config, bad input file, invalid key, IAM refused the request; for \
                 `sync` also: a plan refused by the mass-change guard, another sync running, an \
                 action that failed or a user/group skipped with an error; for `doctor`: at \
                 least one check found a problem; `pam-create-account` under PAM, always (it \
                 never lets anyone in by itself)"
            }
            Exit::Usage => "command-line usage error",
            Exit::IamUnreachable => {
                "IAM could not be reached (network, timeout, throttling) or answered \
                 incompletely (a 200 missing an element IAM always sends, or cut short: treated \
                 as no answer), and no usable cache; `authorized-keys` exits 0 whenever it \
                 printed keys (sshd ignores the output of a command that fails), e.g. a chained \
                 command's during an outage; for `ca`: likewise, of KMS; for `ssh-cert`, `ssh` \
                 and `host-cert`: the certificate issuer, or the AWS services behind it"
            }
            Exit::IamCredentials => {
                "AWS credentials missing or rejected, or IAM access denied (the message names \
                 the action), in every command; `authorized-keys` too, when no cached key set \
                 could stand in (with one, it serves it and exits 0, logging why); for `ca`: \
                 KMS access denied, by IAM or the key policy; for `ssh-cert`, `ssh` and \
                 `host-cert`: the issuer did not accept the caller's proof, or refused the \
                 caller (the issuer's reason is in the message, e.g. not in `allowed_groups`)"
            }
        }
    }

    /// The code an IAM failure gets in every command.
    pub fn of_iam(err: &IamError) -> Exit {
        match err {
            IamError::Unreachable(_) => Exit::IamUnreachable,
            IamError::NoCredentials(_) | IamError::AccessDenied { .. } => Exit::IamCredentials,
            IamError::NotFound(_)
            | IamError::LimitExceeded(_)
            | IamError::Duplicate(_)
            | IamError::InvalidKey(_)
            | IamError::Other(_) => Exit::Failure,
        }
    }

    /// The code a failed certificate request gets (`ssh-cert`, `ssh`, `host-cert`): the issuer
    /// unreachable (or AWS behind it) is 3, like IAM; an unaccepted proof or a refusal of the
    /// caller is 4, like IAM's access denied; a bad request or an issuer failure is 1.
    pub fn of_issuer(err: &ClientError) -> Exit {
        match err {
            ClientError::Unavailable(_) => Exit::IamUnreachable,
            ClientError::Credentials(_) | ClientError::Refused(_) => Exit::IamCredentials,
            ClientError::BadRequest(_) | ClientError::Issuer(_) => Exit::Failure,
        }
    }

    /// The code a failed EC2 lookup gets (`proxy`, `hosts`): 3 unreachable, 4 credentials or
    /// access; an answer keyward could not use, or none to give, is 1.
    pub fn of_ec2(err: &Ec2Error) -> Exit {
        match err {
            Ec2Error::Unreachable(_) => Exit::IamUnreachable,
            Ec2Error::NoCredentials(_) | Ec2Error::AccessDenied { .. } => Exit::IamCredentials,
            Ec2Error::Malformed(_) | Ec2Error::NotFound(_) | Ec2Error::Invalid(_) => Exit::Failure,
        }
    }

    /// The code a KMS failure gets (`ca`): the same as the IAM failure it resembles.
    pub fn of_kms(err: &KmsError) -> Exit {
        match err {
            KmsError::Unreachable(_) => Exit::IamUnreachable,
            KmsError::NoCredentials(_) | KmsError::AccessDenied { .. } => Exit::IamCredentials,
            KmsError::NoRegion
            | KmsError::NotFound(_)
            | KmsError::AlreadyExists(_)
            | KmsError::Other(_) => Exit::Failure,
        }
    }

    /// The code of an error that ended a command: an IAM (or KMS) failure anywhere in its
    /// chain decides.
    pub fn of_error(err: &anyhow::Error) -> Exit {
        err.chain()
            .find_map(|e| {
                e.downcast_ref::<IamError>().map(Exit::of_iam).or_else(|| {
                    match e.downcast_ref::<CaError>() {
                        Some(CaError::Kms(kms)) => Some(Exit::of_kms(kms)),
                        _ => e.downcast_ref::<KmsError>().map(Exit::of_kms),
                    }
                })
            })
            .unwrap_or(Exit::Failure)
    }

    /// The table as `--help` prints it (after_help).
    pub fn help_table() -> String {
        let mut text = String::from("Exit codes:");
        for exit in Exit::ALL {
            text.push_str(&format!(
                "\n  {}  {}",
                exit.code(),
                wrap(&exit.meaning().replace('`', ""), 90, "\n     ")
            ));
        }
        text
    }

    /// The table as README.md shows it, under "### Exit codes".
    pub fn markdown_table() -> String {
        let mut text = String::from("| code | meaning |\n|---|---|\n");
        for exit in Exit::ALL {
            text.push_str(&format!("| {} | {} |\n", exit.code(), exit.meaning()));
        }
        text
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// `text` broken at spaces into lines of at most `width` characters, joined by `joint`.
fn wrap(text: &str, width: usize, joint: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines.join(joint)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_in_order() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn readme_shows_the_same_exit_code_table() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let section = readme.split("### Exit codes\n\n").nth(1).unwrap();
        assert!(
            section.starts_with(&Exit::markdown_table()),
            "README's table differs from Exit::markdown_table():\n{}",
            Exit::markdown_table()
        );
    }

    #[test]
    fn help_lists_every_code_once() {
        let help = Exit::help_table();
        for exit in Exit::ALL {
            assert_eq!(
                help.matches(&format!("\n  {}  ", exit.code())).count(),
                1,
                "{help}"
            );
        }
        assert!(help.contains("3  IAM could not be reached"), "{help}");
        assert!(help.lines().all(|l| l.len() <= 95), "{help}");
    }

    /// main prints `{:#}` (each error, then its sources): an error whose message already
    /// quotes its cause must not also return it as `source()`, or the cause is told twice.
    #[test]
    fn errors_tell_their_cause_once() {
        use crate::files::{FileError, IoError, TrustError};
        use std::path::PathBuf;
        let io = || IoError {
            action: "create",
            path: PathBuf::from("/var/lib/keyward/negative"),
            error: std::io::Error::from_raw_os_error(13),
        };
        let untrusted = || TrustError::Owner {
            path: PathBuf::from("/etc/keyward/aws.conf"),
            uid: 1000,
        };
        let cases: Vec<(anyhow::Error, String)> = vec![
            (
                crate::accounts::on_login::LoginFailure::Throttle(FileError::Io(io())).into(),
                io().to_string(),
            ),
            (
                crate::keys::cache::CacheError::Write(io()).into(),
                io().to_string(),
            ),
            (
                crate::keys::chain::ChainError::Untrusted(untrusted()).into(),
                untrusted().to_string(),
            ),
            (
                crate::iam::UntrustedAwsConfig(untrusted()).into(),
                untrusted().to_string(),
            ),
            (
                crate::sync::apply::ApplyError::Io(io()).into(),
                io().to_string(),
            ),
            (
                anyhow::Error::new(IamError::NoCredentials("no provider".into()))
                    .context("sync: IAM could not be read completely, nothing changed"),
                "no provider".into(),
            ),
        ];
        for (err, cause) in cases {
            let told = format!("{err:#}");
            assert_eq!(told.matches(&cause).count(), 1, "{told}");
        }
    }

    #[test]
    fn iam_failures_map_to_the_same_code_in_every_command() {
        let unreachable = IamError::Unreachable("timeout".into());
        assert_eq!(Exit::of_iam(&unreachable), Exit::IamUnreachable);
        assert_eq!(
            Exit::of_iam(&IamError::NoCredentials("none".into())),
            Exit::IamCredentials
        );
        let denied = IamError::AccessDenied {
            action: "iam:GetGroup",
            message: "no".into(),
        };
        assert_eq!(Exit::of_iam(&denied), Exit::IamCredentials);
        assert_eq!(
            Exit::of_iam(&IamError::NotFound("alice".into())),
            Exit::Failure
        );
        // Under any context a command adds.
        let wrapped = anyhow::Error::new(denied).context("sync");
        assert_eq!(Exit::of_error(&wrapped), Exit::IamCredentials);
        assert_eq!(
            Exit::of_error(&anyhow::anyhow!("bad config")),
            Exit::Failure
        );
    }
}
