//! The `batchimg` binary: parse the command line, run, turn the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = batchimg::cli::Cli::parse();
    batchimg::main(cli)
}
