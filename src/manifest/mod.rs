//! The files a run reads and writes: the input in (CSV, TSV, Parquet or JSON
//! Lines, one file or a directory of parts); the output, failed and manifest
//! files out, in the format their names say. Both sides keep the kept
//! columns and their types, so the failed file is an input for the same flags.

mod input;
mod output;
mod rows;
mod table;

pub use input::{InputError, InputRows, Parts, is_part_name, list_parts, read_input};
pub use output::{OUTPUT_HEADER, ResultWriter, TableSink, Written};
pub use rows::RowManifest;
pub use table::{TableWriter, content_type, output_format};
