//! The files a run reads and writes: the input CSV in; the output and failed
//! CSVs out. Both sides keep the user's delimiter and kept columns, so the
//! failed CSV is an input for the same flags.

mod input;
mod output;

pub use input::{InputError, InputRows, read_input};
pub use output::{OUTPUT_HEADER, ResultWriter, Written};
