use std::process::ExitCode;

use clap::Parser;
use tenderflow::cli::{self, Cli, Command};
use tenderflow::stages::parse::child;

/// jemalloc, with its background thread, hands freed pages back to the
/// system a few seconds after a burst even when the worker then sits idle.
/// glibc's malloc kept them: a parse or filter worker stayed 90 to 135 MiB
/// over its idle size after 24 documents of 5 MB (see the README's Memory
/// section, and `tests/it/memory.rs`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
