//! `keyward ssh HOST [-- SSH ARGS…]`: log in with a keyward certificate, getting a new one only
//! when the one next to the key will not do.
//!
//! The certificate at `<key>-cert.pub` is reused while it still passes the laptop's checks and
//! has more than [`crate::keys::cert_check::REUSE_MIN_REMAINING_SECS`] left ([`reuse_decision`]); otherwise `ssh-cert`'s
//! path gets a new one. Then keyward replaces itself with `ssh` (exec), passing the key and the
//! certificate as `IdentityFile`/`CertificateFile` options, the login name from the certificate
//! when the user named none, then HOST and the user's own arguments unchanged.
//!
//! Invariants: HOST never reaches ssh as an option (a leading `-` is refused); paths reach ssh
//! quoted and with `%` escaped, so ssh's token expansion cannot change them.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{anyhow, bail};

use super::ssh_cert::{self, Identity, IssuerArgs, Request};
use super::{laptop, Context, Exit};
use crate::accounts::names::is_valid_linux_name;
use crate::clock::unix_secs;
use crate::keys::cert_check::{reuse_decision, Reuse};

/// A certificate file is one line; anything larger is not one.
const MAX_CERT_FILE_LEN: u64 = 64 * 1024;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reuses <key>-cert.pub while it is valid for more than 5 minutes and still checks out against \
the configured CA; otherwise gets a new certificate as `keyward ssh-cert` does. Then runs \
`ssh -o IdentityFile=KEY -o CertificateFile=KEY-cert.pub [-l PRINCIPAL] HOST SSH-ARGS…` in \
keyward's place. Example: keyward ssh i-0abc.example -- -p 2222 uptime")]
pub struct Ssh {
    /// The host to log in to (`HOST` or `USER@HOST`)
    #[arg(value_name = "HOST")]
    host: String,
    /// Arguments for ssh after HOST: options, then a remote command
    #[arg(last = true, value_name = "SSH ARGS")]
    ssh_args: Vec<OsString>,
    /// Key file, private or .pub [default: first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa]
    #[arg(short, long, value_name = "KEY")]
    identity: Option<PathBuf>,
    /// How long a new certificate should be valid (the issuer caps it)
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    validity: std::time::Duration,
    /// Do not add the key to ssh-agent when a new certificate is fetched
    #[arg(long)]
    no_agent: bool,
    #[command(flatten)]
    settings: IssuerArgs,
}

impl Ssh {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        check_host(&self.host)?;
        let settings = self.settings.resolve()?;
        let identity = Identity::find(self.identity)?;
        let key = laptop::read_public_key(&identity.public, laptop::min_rsa_bits(ctx)?)?;
        let existing = read_cert_file(&identity.cert_path())?;
        let now = unix_secs(SystemTime::now());
        let cert = match reuse_decision(existing.as_deref(), &key, &settings.ca, now) {
            Reuse::Use(cert) => *cert,
            Reuse::Renew(reason) => {
                eprintln!(
                    "keyward: getting a certificate from {}: {reason}",
                    settings.issuer
                );
                let request = Request {
                    validity_secs: Some(self.validity.as_secs()),
                    ..Request::default()
                };
                let cert = match ssh_cert::obtain(&settings, &key, &request).await {
                    Ok(cert) => cert,
                    Err(err) => return Ok(ssh_cert::report(&err)),
                };
                ssh_cert::save(&identity, &cert)?;
                if !self.no_agent {
                    ssh_cert::add_to_agent(&identity, cert.seconds_left(now));
                }
                cert
            }
        };
        let args = ssh_argv(&identity, cert.principals(), &self.host, &self.ssh_args)?;
        let err = Command::new("ssh").args(&args).exec();
        Err(anyhow!(
            "cannot run ssh ({err}): install openssh-client; the certificate is in {}",
            identity.cert_path().display()
        ))
    }
}

/// The certificate file's text; `None` when there is none. It is checked before any use, so
/// it is read as the user's own file, without the trust walk.
fn read_cert_file(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::files::IoError::at("read", path)(e).into()),
        // Anything but a small regular file is not a certificate keyward wrote: get a new one
        // (saving replaces the path itself).
        Ok(meta) if !meta.is_file() || meta.len() > MAX_CERT_FILE_LEN => Ok(Some(String::new())),
        Ok(_) => Ok(Some(
            std::fs::read_to_string(path).unwrap_or_else(|_| String::new()),
        )),
    }
}

/// HOST is passed to ssh as its destination; it must not look like an option or hold spaces.
fn check_host(host: &str) -> anyhow::Result<()> {
    if host.is_empty()
        || host.starts_with('-')
        || host.len() > 1024
        || host.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!("{host:?} is not a host name: give HOST or USER@HOST (ssh options go after --)");
    }
    Ok(())
}

/// ssh's command line: key and certificate options, the login name from the certificate when
/// the user gave none, HOST, then the user's arguments unchanged.
fn ssh_argv(
    identity: &Identity,
    principals: &[String],
    host: &str,
    user_args: &[OsString],
) -> anyhow::Result<Vec<OsString>> {
    let mut argv: Vec<OsString> = vec![
        "-o".into(),
        format!("IdentityFile={}", ssh_path(&identity.private)?).into(),
        "-o".into(),
        format!("CertificateFile={}", ssh_path(&identity.cert_path())?).into(),
    ];
    if let Some(login) = login_name(principals, host, user_args) {
        argv.extend(["-l".into(), login.into()]);
    }
    argv.push(host.into());
    argv.extend(user_args.iter().cloned());
    Ok(argv)
}

/// The certificate's first principal that is a Linux account name, unless the user already
/// chose the login name (`USER@HOST`, `-l`, `-o User=`).
fn login_name(principals: &[String], host: &str, user_args: &[OsString]) -> Option<String> {
    if host.contains('@') || names_login(user_args) {
        return None;
    }
    principals.iter().find(|p| is_valid_linux_name(p)).cloned()
}

/// ssh's options that take a value (ssh.c's getopt string), besides `l` and `o`.
const SSH_OPTIONS_WITH_VALUE: &str = "bcDEeFIiJLmOpQRSWw";

/// Whether ssh's options among `args` (the arguments after HOST: options, then the remote
/// command) name the login: `-l NAME`, `-lNAME`, bundled as in `-vl NAME`, or `-o User=NAME`
/// / `-oUser NAME`. Option values (`-L 8080:…`, `-o UserKnownHostsFile=…`) and the command
/// never count.
fn names_login(args: &[OsString]) -> bool {
    let mut args = args.iter().map(|a| a.to_string_lossy());
    while let Some(arg) = args.next() {
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty() && *f != "-") else {
            // "--" or the remote command: no options follow.
            return false;
        };
        for (at, flag) in flags.char_indices() {
            let rest = &flags[at + flag.len_utf8()..];
            match flag {
                'l' => return true,
                'o' => {
                    let value = if rest.is_empty() {
                        args.next().map(|v| v.into_owned()).unwrap_or_default()
                    } else {
                        rest.to_owned()
                    };
                    let keyword = value
                        .split(|c: char| c == '=' || c.is_whitespace())
                        .next()
                        .unwrap_or("");
                    if keyword.eq_ignore_ascii_case("user") {
                        return true;
                    }
                    break;
                }
                f if SSH_OPTIONS_WITH_VALUE.contains(f) => {
                    if rest.is_empty() {
                        args.next();
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    false
}

/// A path as an ssh option value: quoted (spaces), `%` doubled (ssh expands `%` tokens in
/// IdentityFile and CertificateFile). A path ssh cannot be given safely is refused.
fn ssh_path(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .filter(|t| !t.contains('"') && !t.chars().any(char::is_control))
        .ok_or_else(|| {
            anyhow!(
                "{} cannot be passed to ssh (not UTF-8, or holds a quote or control character): \
                 pass --identity with another path",
                path.display()
            )
        })?;
    Ok(format!("\"{}\"", text.replace('%', "%%")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn host_that_looks_like_an_option_is_refused() {
        for bad in ["", "-oProxyCommand=x", "a b", "a\nb"] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
        for good in ["host", "alice@10.0.0.1", "i-0abc.example", "[::1]"] {
            check_host(good).unwrap();
        }
    }

    #[test]
    fn paths_are_quoted_and_percent_escaped_for_ssh() {
        assert_eq!(
            ssh_path(Path::new("/home/a b/.ssh/id_%u")).unwrap(),
            "\"/home/a b/.ssh/id_%%u\""
        );
        assert!(ssh_path(Path::new("/x\"y")).is_err());
        assert!(ssh_path(Path::new("/x\ny")).is_err());
    }

    fn identity() -> Identity {
        Identity::find(Some(PathBuf::from("/home/a/.ssh/id_ed25519.pub"))).unwrap()
    }

    fn argv(host: &str, user_args: &[&str]) -> Vec<String> {
        let principals = ["alice.smith@x".to_owned(), "alice_smith".to_owned()];
        let user_args: Vec<OsString> = user_args.iter().map(OsString::from).collect();
        ssh_argv(&identity(), &principals, host, &user_args)
            .unwrap()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn ssh_gets_key_certificate_login_name_host_then_the_users_arguments() {
        assert_eq!(
            argv("host", &["-p", "2222", "uptime"]),
            [
                "-o",
                "IdentityFile=\"/home/a/.ssh/id_ed25519\"",
                "-o",
                "CertificateFile=\"/home/a/.ssh/id_ed25519-cert.pub\"",
                "-l",
                "alice_smith",
                "host",
                "-p",
                "2222",
                "uptime"
            ]
        );
    }

    #[test]
    fn a_login_name_the_user_chose_is_left_alone() {
        for (host, args) in [
            ("bob@host", &[][..]),
            ("host", &["-l", "bob"][..]),
            ("host", &["-lbob"][..]),
            ("host", &["-o", "User=bob"][..]),
            ("host", &["-oUser=bob"][..]),
        ] {
            let got = argv(host, args);
            assert!(
                !got.contains(&"alice_smith".to_owned()),
                "{host} {args:?}: {got:?}"
            );
        }
        for args in [
            &["-vl", "bob"][..],
            &["-o", "user bob"][..],
            &["-4", "-oUSER=bob"][..],
        ] {
            assert!(
                !argv("host", args).contains(&"alice_smith".to_owned()),
                "{args:?}"
            );
        }
        // Values of other options and the remote command are not a login name.
        for args in [
            &["ls", "/home/user"][..],
            &["-o", "UserKnownHostsFile=/tmp/kh", "uptime"][..],
            &["-oUserKnownHostsFile=/tmp/kh"][..],
            &["-L", "8080:localhost:80"][..],
            &["-i", "-l"][..],
            &["-v", "ls", "-la"][..],
            &["--", "-l", "x"][..],
        ] {
            assert!(
                argv("host", args).contains(&"alice_smith".to_owned()),
                "{args:?}"
            );
        }
    }
}
