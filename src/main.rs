use std::process::ExitCode;

use clap::Parser;
use tenderflow::cli::{self, Cli, Command};
use tenderflow::stages::parse::child;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A parse child runs single-threaded, without a runtime: its address
    // space limit counts every thread's stack, and it starts per document.
    if let Command::ParseChild(args) = &cli.command {
        return child::run(args);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
