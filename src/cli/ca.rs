//! `keyward ca`: the SSH certificate authority whose key lives in KMS, and its issuer.
//!
//! `init` and `public-key`: stdout carries the CA's public key line only (for
//! `TrustedUserCAKeys` or an `@cert-authority` line); what happened goes to stderr.
//! `serve`: stdout carries the issuer's URL once it listens; the log goes to stderr.
//! `lambda`: the Lambda custom runtime's loop; the log goes to stderr (CloudWatch).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use anyhow::Context as _;

use super::{Context, Exit};
use crate::ca::{self, AwsKms, Curve, Origin};
use crate::config::Config;
use crate::issuer::{handler, lambda, serve};

#[derive(Debug, clap::Args)]
pub struct Ca {
    #[command(subcommand)]
    command: CaCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CaCommand {
    /// Create the CA key in KMS (or adopt the one the alias names) and print its public key
    Init(Init),
    /// Print the CA's public key in OpenSSH form
    PublicKey(PublicKey),
    /// Run the certificate issuer as an HTTP server (self-hosted, and for tests)
    Serve(Serve),
    /// Run the certificate issuer as an AWS Lambda function (custom runtime)
    Lambda(Lambda),
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Answers POST /v1/certificate: a caller proves who they are with a signed STS GetCallerIdentity \
request bound to this issuer's audience and to the key to certify; the issuer replays it to \
STS and signs a user certificate through KMS for IAM users in allowed_groups, with the \
hosts' name mapping as principal. Reads the [issuer] table of the config (audience, \
ca_key_alias, sts_endpoint, validity, TLS). Plain HTTP only on a loopback address; any \
other address needs tls_certificate and tls_key. Prints the URL it listens on (port 0 picks \
a free port). Needs the permissions of `keyward policy --issuer`.")]
struct Serve {
    /// Address and port to listen on, e.g. 127.0.0.1:8443 or 0.0.0.0:443
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The Lambda custom runtime (provided.al2023): package the keyward binary as `bootstrap` (run \
under that name it acts as `keyward ca lambda`) behind a Function URL; deploy/issuer.yaml \
does both. The config comes from the KEYWARD_CONFIG_TOML environment variable (the whole \
config file's text), else from --config / KEYWARD_CONFIG.")]
struct Lambda {}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Creates a KMS key with KeyUsage=SIGN_VERIFY and KeySpec ECC_NIST_P256 (or ECC_NIST_P384) and \
points the alias at it; run again, it adopts the key the alias names (idempotent). An alias \
naming any other kind of key (RSA, symmetric, ENCRYPT_DECRYPT, disabled) is refused, never \
changed. The private key never leaves KMS: keyward only asks it for the public key and for \
signatures. Needs kms:CreateKey, kms:CreateAlias, kms:DescribeKey and kms:GetPublicKey in the \
region of the AWS config (AWS_REGION). Before an issuer goes live, narrow the key policy so \
that only the issuer's role may call kms:Sign.")]
struct Init {
    /// The KMS alias of the CA key
    #[arg(long, default_value = ca::DEFAULT_ALIAS, value_name = "ALIAS")]
    alias: String,
    /// The curve of a new key [default: p256]; an existing key must already be on it
    #[arg(long, value_enum)]
    curve: Option<CurveArg>,
}

#[derive(Debug, clap::Args)]
struct PublicKey {
    /// The KMS alias of the CA key
    #[arg(long, default_value = ca::DEFAULT_ALIAS, value_name = "ALIAS")]
    alias: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CurveArg {
    /// ECDSA P-256 (KMS ECC_NIST_P256, signed with ECDSA_SHA_256)
    P256,
    /// ECDSA P-384 (KMS ECC_NIST_P384, signed with ECDSA_SHA_384)
    P384,
}

impl From<CurveArg> for Curve {
    fn from(curve: CurveArg) -> Curve {
        match curve {
            CurveArg::P256 => Curve::P256,
            CurveArg::P384 => Curve::P384,
        }
    }
}

impl Ca {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let options = super::laptop::interactive_options();
        let interactive = || AwsKms::new(&options);
        let ca = match self.command {
            CaCommand::Init(init) => {
                let (ca, origin) = ca::init(
                    interactive().await?,
                    &init.alias,
                    init.curve.map(Curve::from),
                )
                .await
                .context("ca init")?;
                let verb = match origin {
                    Origin::Created => "created",
                    Origin::Adopted => "adopted the existing",
                };
                eprintln!(
                    "keyward: {verb} KMS key {} ({}, SIGN_VERIFY) as {}",
                    ca.key_id(),
                    ca.curve().key_spec(),
                    init.alias
                );
                ca
            }
            CaCommand::PublicKey(args) => ca::open(interactive().await?, &args.alias)
                .await
                .context("ca public-key")?,
            CaCommand::Serve(args) => return args.run(ctx).await,
            CaCommand::Lambda(args) => return args.run(ctx).await,
        };
        println!("{}", ca.public_key().to_line());
        Ok(Exit::Ok)
    }
}

impl Serve {
    async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let (config, source) = ctx.load_config()?;
        let issuer = handler::issuer_config(&config, &source.to_string())?;
        let tls = match (&issuer.tls_certificate, &issuer.tls_key) {
            (Some(cert), Some(key)) => Some(serve::tls_acceptor(
                &read_trusted(cert)?,
                &read_trusted(key)?,
            )?),
            _ => None,
        };
        // Before any AWS call or bind: a proof is a credential, never sent in the clear.
        serve::check_listen(&self.listen, tls.is_some())?;
        let deps = handler::aws_deps(config, issuer).await?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on {}", self.listen))?;
        let bound = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!(
            "keyward: issuer for audience {} with CA {} ({}) listening on {scheme}://{bound}",
            deps.issuer.audience,
            deps.issuer.ca_key_alias,
            deps.ca.key_id()
        );
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{scheme}://{bound}")?;
        stdout.flush()?;
        drop(stdout);
        let local = tokio::task::LocalSet::new();
        local
            .run_until(serve::serve(
                listener,
                tls,
                Rc::new(deps),
                serve::Limits::default(),
            ))
            .await;
        Ok(Exit::Ok)
    }
}

/// A TLS file, read only if nobody but root (or this user) could have written it.
fn read_trusted(path: &Path) -> anyhow::Result<Vec<u8>> {
    crate::files::read_trusted(path, crate::files::MAX_TEXT_LEN)
        .with_context(|| format!("cannot use {}", path.display()))?
        .with_context(|| format!("{} does not exist", path.display()))
}

impl Lambda {
    async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let config = match std::env::var(lambda::CONFIG_ENV) {
            Ok(text) => Config::from_toml(&text, Path::new(lambda::CONFIG_ENV))?,
            Err(_) => ctx.load_config()?.0,
        };
        let issuer = handler::issuer_config(&config, lambda::CONFIG_ENV)?;
        let _deps = handler::aws_deps(config, issuer).await?;
        anyhow::bail!("the Lambda runtime loop is not wired yet")
    }
}
