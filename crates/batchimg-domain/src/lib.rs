//! batchimg's domain: what a row is and what happens to it, as plain data
//! and pure rules.
//!
//! Everything here is shared by the journal, the pipeline, the manifest and
//! the reports, and none of it may reach the async runtime, the database,
//! the AWS SDK or the HTTP client: this crate does not depend on them, so
//! the compiler keeps the layering. The map:
//! - [`job`]: a row's states, failures, input rows and counts;
//! - [`keys`]: object keys, chosen names, download names: cross-version contracts;
//! - [`options`]: what a run is configured with (object options, shards, limits, engines);
//! - [`format`]: the accepted image formats;
//! - [`transform`]: resize, fit, output format and quality: part of every key;
//! - [`location`]: local paths and `s3://` places, with the one `s3://` parser;
//! - [`redact`]: URLs as logs may show them;
//! - [`table`]: typed cells of kept columns;
//! - [`text`]: one-line error chains and counted nouns.

pub mod format;
pub mod job;
pub mod keys;
pub mod location;
pub mod options;
pub mod redact;
pub mod table;
pub mod text;
pub mod transform;
