//! Chaining the AuthorizedKeysCommand that was there before keyward.
//!
//! sshd honours only one AuthorizedKeysCommand. When `keyward install` finds another one (EC2
//! Instance Connect ships one), it records it in `chain.toml` beside the config, and
//! `authorized-keys` runs it too, for every user, within the same timeout. Its output is treated
//! like anything else from outside: each line is parsed and rebuilt, options and junk are
//! dropped, and the command itself must be trusted the way sshd trusts it. Never run through a
//! shell.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::Deserialize;

use super::PublicKey;
use crate::files::TrustError;

/// What install recorded: the previous command line, with sshd's `%` tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    pub command: String,
    /// The previous AuthorizedKeysCommandUser (informational: keyward cannot switch users).
    #[serde(default)]
    pub user: String,
}

/// Why the chained command was not run, or what it did wrong. Messages name the program.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("not UTF-8 text")]
    NotText,
    #[error(transparent)]
    Syntax(#[from] toml::de::Error),
    #[error("trailing backslash")]
    TrailingBackslash,
    #[error("unterminated quote")]
    UnterminatedQuote,
    #[error("unsupported token %{0}")]
    UnsupportedToken(char),
    #[error("the chained command must start with an absolute path")]
    NotAbsolute,
    #[error(transparent)]
    Untrusted(#[from] TrustError),
    #[error("cannot run {program}: {error}")]
    Spawn { program: String, error: io::Error },
    #[error("{program} did not finish within {limit:?}")]
    TimedOut { program: String, limit: Duration },
    #[error("{program}: {error}")]
    Wait { program: String, error: io::Error },
    #[error("{program} exited with {status}")]
    Failed { program: String, status: ExitStatus },
}

impl Chain {
    /// `chain.toml` as install wrote it.
    pub fn parse(bytes: Vec<u8>) -> Result<Chain, ChainError> {
        let text = String::from_utf8(bytes).map_err(|_| ChainError::NotText)?;
        Ok(toml::from_str(&text)?)
    }
}

/// The file install writes, beside the config file.
pub fn chain_path(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .unwrap_or(Path::new("/etc/keyward"))
        .join("chain.toml")
}

/// The values sshd would have substituted.
pub struct Tokens<'a> {
    pub user: &'a str,
    pub fingerprint: Option<&'a str>,
    pub key: Option<&'a PublicKey>,
}

/// Splits a command line the way sshd does (whitespace; double or single quotes group;
/// backslash escapes) and expands `%u %f %k %t %%`. Unknown tokens are an error.
pub fn argv(command: &str, tokens: &Tokens) -> Result<Vec<String>, ChainError> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quote: Option<char> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => {
                cur.push(chars.next().ok_or(ChainError::TrailingBackslash)?);
                in_arg = true;
            }
            ('"' | '\'', None) => {
                quote = Some(c);
                in_arg = true;
            }
            (q, Some(open)) if q == open => quote = None,
            (' ' | '\t', None) => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            _ => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if quote.is_some() {
        return Err(ChainError::UnterminatedQuote);
    }
    if in_arg {
        args.push(cur);
    }
    let args: Vec<String> = args
        .iter()
        .map(|a| expand(a, tokens))
        .collect::<Result<_, _>>()?;
    match args.first() {
        Some(first) if Path::new(first).is_absolute() => Ok(args),
        _ => Err(ChainError::NotAbsolute),
    }
}

fn expand(arg: &str, tokens: &Tokens) -> Result<String, ChainError> {
    let mut out = String::new();
    let mut chars = arg.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('u') => out.push_str(tokens.user),
            Some('f') => out.push_str(tokens.fingerprint.unwrap_or("")),
            Some('k') => {
                out.push_str(&tokens.key.map(|k| k.to_line()).map_or(String::new(), |l| {
                    l.split(' ').nth(1).unwrap_or("").to_owned()
                }))
            }
            Some('t') => out.push_str(tokens.key.map_or("", |k| k.key_type().name())),
            other => return Err(ChainError::UnsupportedToken(other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

/// Keeps the lines of the chained command's output that are plain, valid public keys.
/// Returns the keys and how many lines were dropped.
pub fn parse_output(stdout: &str) -> (Vec<PublicKey>, usize) {
    let mut keys = Vec::new();
    let mut dropped = 0;
    for line in stdout.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match PublicKey::parse(line) {
            Ok(k) => keys.push(k),
            Err(_) => dropped += 1,
        }
    }
    (keys, dropped)
}

/// What the chained command gave one lookup: the keys to serve and what to log.
#[derive(Debug, Default)]
pub struct Chained {
    /// Plain, valid keys that match the offer (all of them when nothing was offered).
    pub keys: Vec<PublicKey>,
    pub events: Vec<ChainEvent>,
}

/// Something to log about the chained command, each a warning.
#[derive(Debug)]
pub enum ChainEvent {
    /// `chain.toml` could not be used: the command was not run.
    NotRun(ChainError),
    /// The command ran and failed, timed out or was not trusted: nothing of it is served.
    Failed(ChainError),
    /// Lines of its output that were not plain keys, dropped.
    Dropped(usize),
}

/// Runs the command recorded in `chain` (the bytes of `chain.toml`) for `tokens`, within
/// `limit`, and keeps the keys of its output that match `offer`.
pub async fn chained_keys(
    chain: Vec<u8>,
    tokens: &Tokens<'_>,
    offer: &super::lookup::Offer,
    limit: Duration,
) -> Chained {
    let args = match Chain::parse(chain).and_then(|c| argv(&c.command, tokens)) {
        Ok(args) => args,
        Err(e) => {
            return Chained {
                keys: Vec::new(),
                events: vec![ChainEvent::NotRun(e)],
            }
        }
    };
    match run(&args, limit).await {
        Ok(stdout) => {
            let (keys, dropped) = parse_output(&stdout);
            Chained {
                keys: keys.into_iter().filter(|k| offer.matches(k)).collect(),
                events: (dropped > 0)
                    .then_some(ChainEvent::Dropped(dropped))
                    .into_iter()
                    .collect(),
            }
        }
        Err(e) => Chained {
            keys: Vec::new(),
            events: vec![ChainEvent::Failed(e)],
        },
    }
}

/// Runs the chained command (trusted like sshd trusts it) within `limit`.
pub async fn run(args: &[String], limit: Duration) -> Result<String, ChainError> {
    let program = args.first().ok_or(ChainError::NotAbsolute)?;
    crate::files::check_trusted(Path::new(program))?;
    let child = tokio::process::Command::new(program)
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| ChainError::Spawn {
            program: program.clone(),
            error,
        })?;
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| ChainError::TimedOut {
            program: program.clone(),
            limit,
        })?
        .map_err(|error| ChainError::Wait {
            program: program.clone(),
            error,
        })?;
    if !out.status.success() {
        return Err(ChainError::Failed {
            program: program.clone(),
            status: out.status,
        });
    }
    // Bounded like a cache file: a chained command has no business printing megabytes.
    let text = String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(256 * 1024)]);
    Ok(text.into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x";

    fn chain_toml(command: &str) -> Vec<u8> {
        format!("command = {command:?}\n").into_bytes()
    }

    fn no_tokens() -> Tokens<'static> {
        Tokens {
            user: "alice",
            fingerprint: None,
            key: None,
        }
    }

    #[tokio::test]
    async fn chained_keys_keeps_the_offered_key_and_counts_the_junk() {
        let key = PublicKey::parse(ED).unwrap();
        let other =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDrBa5jwefohSTnzHzXws2y0UBRW0rArbtyy5loPvxiB y";
        // The command line holds a doubled backslash before each n: argv keeps one, printf
        // turns backslash-n into a newline.
        let printed = format!("{ED}\\\\n{other}\\\\nnot a key\\\\n# comment\\\\n");
        let toml = chain_toml(&format!("/usr/bin/printf '{printed}'"));
        let everything = super::super::lookup::Offer::default();
        let got = chained_keys(
            toml.clone(),
            &no_tokens(),
            &everything,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(got.keys.len(), 2);
        assert!(matches!(got.events[..], [ChainEvent::Dropped(1)]));
        let offered = super::super::lookup::Offer {
            fingerprint: None,
            key: Some(key.clone()),
        };
        let got = chained_keys(toml, &no_tokens(), &offered, Duration::from_secs(5)).await;
        assert_eq!(got.keys, [key]);
    }

    #[tokio::test]
    async fn a_chained_command_that_cannot_be_used_serves_nothing_and_says_why() {
        let everything = super::super::lookup::Offer::default();
        let limit = Duration::from_secs(5);
        let got = chained_keys(b"command = 3".to_vec(), &no_tokens(), &everything, limit).await;
        assert!(got.keys.is_empty());
        assert!(matches!(
            got.events[..],
            [ChainEvent::NotRun(ChainError::Syntax(_))]
        ));
        let got = chained_keys(chain_toml("printf x"), &no_tokens(), &everything, limit).await;
        assert!(matches!(
            got.events[..],
            [ChainEvent::NotRun(ChainError::NotAbsolute)]
        ));
        let got = chained_keys(
            chain_toml("/usr/bin/false"),
            &no_tokens(),
            &everything,
            limit,
        )
        .await;
        assert!(got.keys.is_empty());
        assert!(matches!(
            got.events[..],
            [ChainEvent::Failed(ChainError::Failed { .. })]
        ));
        let got = chained_keys(
            chain_toml("/usr/bin/sleep 5"),
            &no_tokens(),
            &everything,
            Duration::from_millis(100),
        )
        .await;
        assert!(matches!(
            got.events[..],
            [ChainEvent::Failed(ChainError::TimedOut { .. })]
        ));
    }

    #[test]
    fn command_line_is_split_and_expanded_like_sshd() {
        let key = PublicKey::parse(ED).unwrap();
        let t = Tokens {
            user: "ec2-user",
            fingerprint: Some("SHA256:abc"),
            key: Some(&key),
        };
        let args = argv(
            "/opt/aws/bin/eic_run_authorized_keys %u %f \"a b\" %t 100%%",
            &t,
        )
        .unwrap();
        assert_eq!(
            args,
            vec![
                "/opt/aws/bin/eic_run_authorized_keys",
                "ec2-user",
                "SHA256:abc",
                "a b",
                "ssh-ed25519",
                "100%"
            ]
        );
        let k = argv("/bin/x %k", &t).unwrap();
        assert_eq!(k[1], ED.split(' ').nth(1).unwrap());
    }

    #[test]
    fn relative_commands_and_unknown_tokens_are_refused() {
        let t = Tokens {
            user: "u",
            fingerprint: None,
            key: None,
        };
        assert!(argv("eic_run %u", &t).is_err());
        assert!(argv("/bin/x %h", &t).is_err());
        assert!(argv("/bin/x \"open", &t).is_err());
    }

    #[test]
    fn output_keeps_only_plain_valid_keys() {
        let out = format!("# comment\n{ED}\ncommand=\"/bin/sh\" {ED}\ngarbage\n\n");
        let (keys, dropped) = parse_output(&out);
        assert_eq!(keys.len(), 1);
        assert_eq!(dropped, 2);
    }
}
