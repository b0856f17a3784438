//! batchimg's integration tests: the built binary against a real loopback HTTP
//! server and the real s3s-fs server. One test binary, as ripgrep and uv do.

// Helpers grow ahead of the tests that use them.
#[allow(dead_code)]
mod support;

mod foundation;
mod journal;
mod shard;
mod spec;
