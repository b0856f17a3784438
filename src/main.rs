//! The `batchimg` binary: parse the command line and hand it to `app::run`,
//! which returns the exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = batchimg::cli::parse();
    batchimg::app::run(cli)
}
