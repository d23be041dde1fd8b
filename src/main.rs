use std::process::ExitCode;

use clap::Parser;
use tenderflow::cli::{self, Cli};

/// jemalloc, with its background thread, hands freed pages back to the
/// system a few seconds after a burst even when the worker then sits idle.
/// glibc's malloc kept them: a parse or filter worker stayed 90 to 135 MiB
/// over its idle size after 24 documents of 5 MB (see the README's Memory
/// section, and `tests/it/memory.rs`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
