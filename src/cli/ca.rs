//! `keyward ca`: the SSH certificate authority whose key lives in KMS (issue 11, in progress).
//!
//! stdout carries the CA's public key line only (for `TrustedUserCAKeys` or an
//! `@cert-authority` line); what happened goes to stderr.

use anyhow::Context as _;

use super::{Context, Exit};
use crate::ca::{self, AwsKms, Curve, Origin};

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
}

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
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        let kms = AwsKms::new(&super::laptop::interactive_options()).await?;
        let ca = match self.command {
            CaCommand::Init(init) => {
                let (ca, origin) = ca::init(kms, &init.alias, init.curve.map(Curve::from))
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
            CaCommand::PublicKey(args) => {
                ca::open(kms, &args.alias).await.context("ca public-key")?
            }
        };
        println!("{}", ca.public_key().to_line());
        Ok(Exit::Ok)
    }
}
