use std::process::ExitCode;

use clap::Parser;
use keyward::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse_from(cli::guard_args(std::env::args_os()));
    keyward::logging::init(cli.log_target(), cli.verbose);
    let stats = cli.stats;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyward: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keyward: {e:#}");
            cli::exit_code_for(&e)
        }
    };
    if stats {
        eprintln!("keyward: iam_calls={}", keyward::iam::total_calls());
    }
    code
}
