//! The `batchimg` binary: parse the command line, run, turn the outcome into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = batchimg::cli::parse();
    batchimg::main(cli)
}
