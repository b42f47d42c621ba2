//! keyward-gen: keyward's man pages and shell completions, generated from the same clap
//! definition the `keyward` binary parses, for packaging (`scripts/package`).
//!
//! A separate binary rather than a hidden `keyward generate`: sshd runs `keyward` on every login,
//! so the product binary carries no roff or completion-script code, and a packager's build step
//! never needs a root-owned copy of the real thing. It writes only into `--out DIR`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, ValueEnum};
use clap_complete::Shell;

#[derive(Debug, Parser)]
#[command(
    name = "keyward-gen",
    version,
    about = "Generate keyward's man pages and shell completions"
)]
enum Gen {
    /// Write keyward.8 and keyward-SUBCOMMAND.8 (section 8: system administration) into DIR
    Man {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Write completions into DIR: keyward.bash, _keyward (zsh), keyward.fish [default: all three]
    Completions {
        #[arg(value_enum)]
        shells: Vec<Shell>,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = match Gen::parse() {
        Gen::Man { out } => man(&out),
        Gen::Completions { shells, out } => completions(&shells, &out),
    };
    match result {
        Ok(written) => {
            for p in written {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keyward-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn man(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let mut cmd = keyward::cli::Cli::command().disable_help_subcommand(true);
    // Gives every subcommand its full name (keyward-audit) for its page's title and file name.
    cmd.build();
    let mut written = Vec::new();
    page(&cmd, out, &mut written)?;
    Ok(written)
}

fn page(cmd: &clap::Command, out: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration")
        .source(format!("keyward {}", env!("CARGO_PKG_VERSION")));
    written.push(man.generate_to(out)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        page(sub, out, written)?;
    }
    Ok(())
}

fn completions(shells: &[Shell], out: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let shells = if shells.is_empty() {
        &[Shell::Bash, Shell::Zsh, Shell::Fish][..]
    } else {
        shells
    };
    let mut cmd = keyward::cli::Cli::command();
    shells
        .iter()
        .map(|shell| {
            clap_complete::generate_to(*shell, &mut cmd, "keyward", out).map_err(|e| {
                let name = shell.to_possible_value().map(|v| v.get_name().to_owned());
                std::io::Error::new(
                    e.kind(),
                    format!("{} completions: {e}", name.unwrap_or_default()),
                )
            })
        })
        .collect()
}
