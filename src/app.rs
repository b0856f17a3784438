//! The process around one command: the allocator's arenas, logging, the
//! async runtime, the dispatch to the subcommand, and the exit code its
//! outcome maps to (a broken pipe is a quiet success). `main.rs` parses the
//! command line and calls [`run`]; the subcommands are in `commands`.

use std::process::ExitCode;

use crate::cli::{self, Cli, Command};
use crate::commands;
use crate::error::ExitStatus;
use crate::logging;

/// Runs a parsed command line and returns the process exit code. `main`
/// calls it before anything has started a thread (see `limit_malloc_arenas`).
pub fn run(cli: Cli) -> ExitCode {
    limit_malloc_arenas();
    let display = logging::init(&cli.log);
    let json = cli.log.log_format == cli::LogFormat::Json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            logging::fatal(json, &format!("cannot start the async runtime: {e}"), 3);
            return ExitStatus::Fatal.into();
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => commands::run::run(*args, display).await,
            Command::Resume(args) => commands::resume::resume(*args, display).await,
            Command::Status(args) if args.manifest.is_some() => {
                commands::status::manifest(args).await
            }
            Command::Status(args) => commands::status::status(args),
            Command::Merge(args) => commands::merge::merge(args).await,
            Command::Completions(args) => commands::completions::completions(args),
        }
    });
    // Blocking tasks (a conversion past its time limit) must not hold the exit.
    runtime.shutdown_background();
    match result {
        Ok(status) => status.into(),
        Err(e) if e.is_broken_pipe() => ExitStatus::Success.into(),
        Err(e) => {
            let status = e.exit_status();
            logging::fatal(json, &e.to_string(), status as i32);
            status.into()
        }
    }
}

/// glibc gives each thread that allocates its own arena (up to 8 per core),
/// and memory freed in one is not reused by another: with image-sized
/// buffers passing between the runtime, blocking and conversion threads,
/// that slack took peak RSS in a 512 MiB cgroup to 484 MiB, against 315-441
/// MiB with two arenas. Two arenas keep contention low on the 2-core pod.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in `run`, which `main` calls before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
