//! batchimg: resumable batch image processing (download, grayscale, upload to S3).
//!
//! The modules are layered, and imports only point down the list below (see
//! docs/development.md): the domain crate (`job`, `keys`, `options`, ...);
//! leaves; policy (`settings` is plain data, `retry`, `netguard`); adapters
//! (`journal` records rows on disk, `store` talks to S3, `image` converts,
//! `manifest` reads and writes the CSVs); the `pipeline`, whose loop moves
//! rows through fetch → convert → upload; the surface (`cli` parses,
//! `resolve` turns flags and environment into `Settings`, `logging`,
//! `progress`, `serve`); and `commands`, one per subcommand.

// The domain: rows, keys, options, formats, locations (its own crate).
pub use batchimg_domain::{format, job, keys, location, options, redact, table, text, transform};

// Leaves.
pub mod error;
pub mod metrics;
pub mod units;
pub mod version;
// Policy.
pub mod netguard;
pub mod retry;
pub mod settings;
// Adapters.
pub mod image;
pub mod journal;
pub mod manifest;
pub mod memory;
pub mod store;
pub mod workfile;
// The pipeline.
pub mod pipeline;
// The surface.
pub mod cli;
pub mod logging;
pub mod progress;
pub mod resolve;
pub mod serve;
// The subcommands.
pub mod commands;

use std::process::ExitCode;

use cli::{Cli, Command};
use error::ExitStatus;

/// Runs a parsed command line and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
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
    // SAFETY: called first thing in `main`, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
