use std::process::ExitCode;

use clap::Parser;
use keyward::cli::{self, Cli, Exit};
use keyward::logging::Audited;

fn main() -> ExitCode {
    let cli = Cli::parse_from(cli::guard_args(std::env::args_os()));
    let report = keyward::logging::init(cli.log_target(), cli.verbose);
    let stats = cli.stats;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report.fatal(None, &format!("cannot start the async runtime: {e}"));
            return Exit::Failure.into();
        }
    };
    let exit = match runtime.block_on(cli.run()) {
        Ok(exit) => exit,
        Err(e) => {
            let audited = e.downcast_ref::<Audited>().map(|a| a.message_id);
            report.fatal(audited, &format!("{e:#}"));
            Exit::of_error(&e)
        }
    };
    if stats {
        eprintln!("keyward: iam_calls={}", keyward::iam::total_calls());
    }
    exit.into()
}
