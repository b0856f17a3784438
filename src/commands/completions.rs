//! `batchimg completions SHELL`: the shell completion script, from the same
//! clap definition as the parser, so it never falls behind a new flag.

use std::io::Write;

use anyhow::Context;

use crate::cli::CompletionsArgs;
use crate::error::{CommandError, ExitStatus, fatal};

pub fn completions(args: CompletionsArgs) -> Result<ExitStatus, CommandError> {
    // clap_complete panics on a failed write; writing to a buffer first lets
    // a closed pipe end the command quietly like every other one.
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut crate::cli::command(),
        "batchimg",
        &mut script,
    );
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("cannot write the completion script")
        .map_err(fatal)?;
    Ok(ExitStatus::Success)
}
