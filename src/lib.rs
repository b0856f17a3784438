//! batchimg: resumable batch image processing (download, grayscale, upload to S3).
//!
//! The modules are layered, and imports only point down the list below (see
//! docs/development.md): the domain crate (`job`, `keys`, `options`, ...);
//! leaves; policy (`settings` is plain data, `retry`, `netguard`); adapters
//! (`journal` records rows on disk, `store` talks to S3, `image` converts,
//! `manifest` reads and writes the tables: CSV, Parquet, JSON Lines); the `pipeline`, whose loop moves
//! rows through fetch → convert → upload; the surface (`cli` parses,
//! `resolve` turns flags and environment into `Settings`, `logging`,
//! `progress`, `serve`); `commands`, one per subcommand; and `app`, the
//! process around a command (allocator, logging, runtime, exit code), which
//! `main.rs` calls.

// The domain: rows, keys, options, formats, locations (its own crate).
pub use batchimg_domain::{format, job, keys, location, options, redact, table, text, transform};

// Leaves.
pub mod error;
pub mod metrics;
pub mod tls;
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
// The process that runs one.
pub mod app;
