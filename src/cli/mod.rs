//! The command line: one file per subcommand, each a clap-derive struct with `run`.
//!
//! Exit codes are part of the interface (sshd, PAM, systemd and scripts read them): every
//! command returns an [`Exit`], whose table `--help` and README show.

mod audit;
mod authorized_keys;
mod authorized_principals;
mod ca;
mod config_cmd;
mod delete_key;
mod doctor;
mod exit;
mod host_cert;
mod hosts;
mod install;
mod key_status;
mod laptop;
mod list_keys;
mod open;
mod pam_create_account;
mod policy;
mod proxy;
mod rename_keymaker;
mod rotate_key;
mod ssh;
mod ssh_cert;
mod ssh_config;
mod sync;
mod uninstall;
mod upload_key;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, Source};
use crate::logging;

pub use exit::Exit;

#[derive(Debug, Parser)]
#[command(name = "keyward", version, about = "AWS IAM as the source of truth for SSH logins", after_help = Exit::help_table())]
pub struct Cli {
    /// Config file [default: /etc/keyward/keyward.toml]
    #[arg(long, global = true, env = "KEYWARD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the number of IAM calls made to stderr (iam_calls=N)
    #[arg(long, global = true)]
    pub stats: bool,
    /// Log debug detail to stderr/journald
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// sshd AuthorizedKeysCommand: print the IAM keys allowed for a Linux user (%u %f %k)
    AuthorizedKeys(authorized_keys::AuthorizedKeys),
    /// sshd AuthorizedPrincipalsCommand: principals for a keyward user certificate (%u %i); local files only
    AuthorizedPrincipals(authorized_principals::AuthorizedPrincipals),
    /// pam_exec hook: create the account of a first-time IAM user (reads PAM_USER)
    PamCreateAccount(pam_create_account::PamCreateAccount),
    /// Make Linux accounts and groups follow IAM (run hourly by the timer or cron)
    Sync(sync::Sync),
    /// Rename keymaker's accounts to keyward's names for their IAM users (migration)
    RenameKeymaker(rename_keymaker::RenameKeymaker),
    /// Wire keyward into sshd, PAM and the sync schedule of this host
    Install(install::Install),
    /// Remove what install added and restore the files it changed
    Uninstall(uninstall::Uninstall),
    /// List SSH logins and refusals per IAM user, from the journal or the auth log
    Audit(audit::Audit),
    /// Upload your SSH public key to your IAM user
    #[command(alias = "upload_key")]
    UploadKey(upload_key::UploadKey),
    /// List the SSH public keys of your IAM user
    #[command(alias = "list_keys")]
    ListKeys(list_keys::ListKeys),
    /// Make a key usable for logins again
    #[command(alias = "enable_key")]
    EnableKey(key_status::EnableKey),
    /// Stop a key from being accepted (it stays in IAM)
    #[command(alias = "disable_key")]
    DisableKey(key_status::DisableKey),
    /// Delete a key from IAM
    #[command(alias = "delete_key")]
    DeleteKey(delete_key::DeleteKey),
    /// Upload a new key and disable the old one, in one step
    RotateKey(rotate_key::RotateKey),
    /// Print the effective configuration
    Config(config_cmd::ShowConfig),
    /// Check this host's config, AWS access, sshd, PAM, schedule and cache; say how to fix them
    Doctor(doctor::Doctor),
    /// Print the least-privilege IAM policy for hosts (--host) or for people (--user)
    Policy(policy::Policy),
    /// SSH certificate authority whose key stays in KMS (init, public-key; in progress)
    #[command(subcommand_required = true)]
    Ca(ca::Ca),
    /// Get or renew SSH host certificates for this instance's host keys (run as root at boot)
    HostCert(host_cert::HostCert),
    /// Get a short-lived SSH certificate for your key from the keyward issuer
    SshCert(ssh_cert::SshCert),
    /// Log in with a keyward certificate (reused while valid), then run ssh
    Ssh(ssh::Ssh),
    /// ssh ProxyCommand: resolve an instance id, Name tag or IP at connect time and connect
    Proxy(proxy::Proxy),
    /// Print the ~/.ssh/config block that reaches instances by name through `keyward proxy`
    SshConfig(ssh_config::SshConfig),
    /// List the instances `keyward proxy` would resolve names to
    Hosts(hosts::Hosts),
    /// Allow your own address on an instance's security group for a while
    Open(open::Open),
    /// Revoke the security-group rules `keyward open` made for you
    Close(open::Close),
}

/// Options every command may need.
pub struct Context {
    pub config_path: Option<PathBuf>,
}

impl Context {
    pub fn load_config(&self) -> Result<(Config, Source), ConfigError> {
        Config::load(self.config_path.as_deref())
    }
}

impl Cli {
    pub fn log_target(&self) -> logging::Target {
        match self.command {
            Command::PamCreateAccount(_) if std::env::var_os("PAM_TYPE").is_some() => {
                logging::Target::Pam
            }
            Command::AuthorizedKeys(_)
            | Command::AuthorizedPrincipals(_)
            | Command::PamCreateAccount(_)
            | Command::Sync(_) => logging::Target::Host,
            _ => logging::Target::Interactive,
        }
    }

    pub async fn run(self) -> anyhow::Result<Exit> {
        let ctx = Context {
            config_path: self.config,
        };
        match self.command {
            Command::AuthorizedKeys(c) => c.run(&ctx, &mut std::io::stdout().lock()).await,
            Command::AuthorizedPrincipals(c) => c.run(&ctx, &mut std::io::stdout().lock()),
            Command::PamCreateAccount(c) => c.run(&ctx).await,
            Command::Sync(c) => c.run(&ctx).await,
            Command::RenameKeymaker(c) => c.run(&ctx).await,
            Command::Install(c) => c.run(&ctx).await,
            Command::Uninstall(c) => c.run(&ctx).await,
            Command::Audit(c) => c.run(&ctx).await,
            Command::UploadKey(c) => c.run(&ctx).await,
            Command::ListKeys(c) => c.run(&ctx).await,
            Command::EnableKey(c) => c.run(&ctx).await,
            Command::DisableKey(c) => c.run(&ctx).await,
            Command::DeleteKey(c) => c.run(&ctx).await,
            Command::RotateKey(c) => c.run(&ctx).await,
            Command::Proxy(c) => c.run(&ctx).await,
            Command::SshConfig(c) => c.run(&ctx),
            Command::Hosts(c) => c.run(&ctx).await,
            Command::Open(c) => c.run(&ctx).await,
            Command::Close(c) => c.run(&ctx).await,
            Command::Config(c) => c.run(&ctx),
            Command::Doctor(c) => c.run(&ctx).await,
            Command::Policy(c) => c.run(&ctx),
            Command::Ca(c) => c.run(&ctx).await,
            Command::HostCert(c) => c.run(&ctx).await,
            Command::SshCert(c) => c.run(&ctx).await,
            Command::Ssh(c) => c.run(&ctx).await,
        }
    }
}

/// The subcommands sshd runs with network-supplied arguments.
const AUTHORIZED_KEYS: &str = "authorized-keys";
const AUTHORIZED_PRINCIPALS: &str = "authorized-principals";

/// The command line as clap should see it: `--` is put right after `authorized-keys`, so that
/// whatever sshd passes as %u, %f and %k (`-h`, `--help`, `--config`, `-v`…) is a value that
/// `authorized-keys` refuses, never a flag clap acts on. Help on stdout would reach sshd as
/// key lines; a global flag would let a name choose the config. `keyward help
/// authorized-keys` still prints the help.
///
/// Run as `bootstrap` with no arguments (the Lambda custom runtime's entry point), keyward is
/// `keyward ca lambda`.
pub fn guard_args<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let program = args.first().map(std::path::Path::new);
    if args.len() == 1 && program.and_then(|p| p.file_name()) == Some("bootstrap".as_ref()) {
        args.extend(["ca", "lambda"].map(OsString::from));
        return args;
    }
    // Skip the program name and the global options before the subcommand.
    let mut i = 1;
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        match arg {
            "--config" => i += 2,
            "--stats" | "-v" | "--verbose" => i += 1,
            a if a.starts_with("--config=") => i += 1,
            AUTHORIZED_KEYS | AUTHORIZED_PRINCIPALS => {
                args.insert(i + 1, OsString::from("--"));
                break;
            }
            _ => break,
        }
    }
    args
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    fn guarded(args: &[&str]) -> Vec<String> {
        guard_args(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap_or_default())
            .collect()
    }

    #[test]
    fn run_as_lambda_bootstrap_it_is_ca_lambda() {
        assert_eq!(
            guarded(&["/var/task/bootstrap"]),
            ["/var/task/bootstrap", "ca", "lambda"]
        );
        assert_eq!(guarded(&["bootstrap", "sync"]), ["bootstrap", "sync"]);
        assert_eq!(guarded(&["keyward"]), ["keyward"]);
    }

    #[test]
    fn m3_every_argument_after_authorized_keys_is_a_value() {
        assert_eq!(
            guarded(&["keyward", "authorized-keys", "-h"]),
            ["keyward", "authorized-keys", "--", "-h"]
        );
        assert_eq!(
            guarded(&[
                "k",
                "--config",
                "authorized-keys",
                "--stats",
                "-v",
                "authorized-keys",
                "a"
            ]),
            [
                "k",
                "--config",
                "authorized-keys",
                "--stats",
                "-v",
                "authorized-keys",
                "--",
                "a"
            ]
        );
        assert_eq!(
            guarded(&["k", "--config=/x", "authorized-keys", "--config", "/y"]),
            [
                "k",
                "--config=/x",
                "authorized-keys",
                "--",
                "--config",
                "/y"
            ]
        );
        // Other commands, and `help authorized-keys`, are left alone.
        for args in [
            &["k", "help", "authorized-keys"][..],
            &["k", "sync", "authorized-keys"],
            &["k", "--bogus", "authorized-keys", "-h"],
            &["k"],
        ] {
            assert_eq!(guarded(args), args);
        }
    }

    #[test]
    fn m3_help_and_version_flags_reach_authorized_keys_as_its_user() {
        for flag in ["-h", "--help", "-V", "--version", "--config", "-v"] {
            let cli = Cli::try_parse_from(guard_args(
                ["keyward", "authorized-keys", flag].map(OsString::from),
            ));
            match cli.map(|c| c.command) {
                Ok(Command::AuthorizedKeys(_)) => {}
                other => panic!("{flag}: {other:?}"),
            }
        }
    }

    #[test]
    fn flags_reach_authorized_principals_as_its_user_and_key_id() {
        for flag in ["-h", "--help", "-V", "--config", "-v"] {
            let cli = Cli::try_parse_from(guard_args(
                ["keyward", "authorized-principals", flag, flag].map(OsString::from),
            ));
            match cli.map(|c| c.command) {
                Ok(Command::AuthorizedPrincipals(_)) => {}
                other => panic!("{flag}: {other:?}"),
            }
        }
    }
}
