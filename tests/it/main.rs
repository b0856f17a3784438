//! batchimg's integration tests: the built binary against a real loopback HTTP
//! server and the real s3s-fs server. One test binary, as ripgrep and uv do.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests print what they measured with --nocapture"
)]

mod support;

mod destinations;
mod engine;
mod fidelity;
mod foundation;
mod hosts;
mod journal;
mod memory;
mod network;
mod operations;
mod production;
mod reports;
mod security;
mod shard;
mod spec;
mod transform;
mod warehouse;
