//! The output and failed files, written in input order from the rows a
//! caller visits (the journal's, or a merge's), to files the caller stages.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::table::TableWriter;
use crate::job::{FailureClass, JobRecord, JobState};
use crate::settings::InputShape;
use crate::table::{Column, ColumnType, TableFormat, Value};

/// A row's URL as a cell: a row without one (null, missing or empty in the
/// input) is written back as null.
pub fn url_cell(url: &str) -> Value {
    if url.is_empty() {
        Value::Null
    } else {
        Value::Text(url.to_string())
    }
}

/// Header of the output file.
pub const OUTPUT_HEADER: [&str; 4] = ["url", "input", "output", "s3url"];

/// How many rows went where, each row counted (a repeated URL's rows too).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    pub succeeded: u64,
    pub failed: u64,
    /// Rows not finished (an interrupted run).
    pub unfinished: u64,
    /// Failed rows by reason, in [`FailureClass::ALL`]'s order.
    pub failed_by_reason: Vec<(&'static str, u64)>,
}

impl Written {
    /// Counts one row by the record that says what became of it.
    pub fn add(&mut self, rec: &JobRecord) {
        match &rec.state {
            JobState::Uploaded(_) => self.succeeded += 1,
            JobState::Failed(f) => {
                self.failed += 1;
                let name = f.class.name();
                match self.failed_by_reason.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, n)) => *n += 1,
                    None => {
                        self.failed_by_reason.push((name, 1));
                        let order = |n: &str| FailureClass::ALL.iter().position(|c| c.name() == n);
                        self.failed_by_reason.sort_by_key(|(n, _)| order(n));
                    }
                }
            }
            _ => self.unfinished += 1,
        }
    }
}

/// Names for `fixed` columns followed by `kept` ones: a kept column whose
/// name a fixed one (or an earlier kept one) already has gets `_1`, `_2`…
/// as DuckDB names the columns of a join.
pub fn with_kept(fixed: Vec<Column>, kept: &[Column]) -> Vec<Column> {
    let mut columns = fixed;
    for k in kept {
        let mut name = k.name.clone();
        let mut n = 0;
        while columns.iter().any(|c| c.name == name) {
            n += 1;
            name = format!("{}_{n}", k.name);
        }
        columns.push(Column::new(name, k.ty.clone()));
    }
    columns
}

/// The output file (and the failed file) being written, one input row at a
/// time in input order. With `--keep-columns` the kept columns follow, with
/// their types, and the failed file names the URL column as the input did,
/// so that it is an input for the same flags.
pub struct ResultWriter<'a> {
    out: TableWriter<'a>,
    failed: Option<TableWriter<'a>>,
    /// False when local files were deleted after upload.
    keep_paths: bool,
}

/// A file to write and its format.
pub type TableSink<'a> = (&'a mut (dyn Write + Send), TableFormat);

impl<'a> ResultWriter<'a> {
    /// Writes the headers.
    pub fn new(
        output: TableSink<'a>,
        failed: Option<TableSink<'a>>,
        keep_paths: bool,
        shape: &InputShape,
        kept: &[Column],
    ) -> anyhow::Result<ResultWriter<'a>> {
        let text = |n: &str| Column::new(n, ColumnType::Text);
        let columns = with_kept(OUTPUT_HEADER.iter().map(|n| text(n)).collect(), kept);
        let out = TableWriter::new(output.0, output.1, shape.delimiter, columns)?;
        let failed = match failed {
            Some((file, format)) => {
                let url = shape.url_column.as_deref().unwrap_or("url");
                let columns = with_kept(vec![text(url)], kept);
                Some(TableWriter::new(file, format, shape.delimiter, columns)?)
            }
            None => None,
        };
        Ok(ResultWriter {
            out,
            failed,
            keep_paths,
        })
    }

    /// One input row: its URL, the record that says what became of it, and
    /// its kept columns.
    pub fn row(&mut self, url: &str, rec: &JobRecord, kept: &[Value]) -> anyhow::Result<()> {
        match &rec.state {
            JobState::Uploaded(done) => {
                let (input, output) = (self.path(&done.input), self.path(&done.output));
                let mut cells = vec![
                    url_cell(url),
                    Value::Text(input),
                    Value::Text(output),
                    Value::Text(done.s3url.clone()),
                ];
                cells.extend_from_slice(kept);
                self.out.row(cells)?;
            }
            JobState::Failed(_) => {
                if let Some(f) = self.failed.as_mut() {
                    let mut cells = vec![url_cell(url)];
                    cells.extend_from_slice(kept);
                    f.row(cells)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn path(&self, p: &Option<PathBuf>) -> String {
        match (self.keep_paths, p) {
            (true, Some(p)) => p.display().to_string(),
            _ => String::new(),
        }
    }

    /// Finishes both files.
    pub fn finish(self) -> anyhow::Result<()> {
        self.out.finish().context("writing the output file")?;
        if let Some(f) = self.failed {
            f.finish().context("writing the failed file")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Other programs read these files, and the failed file is an input for
    /// the same flags: their headers are pinned.
    #[test]
    fn the_headers_of_the_output_and_failed_files_are_pinned() {
        let mut shown = Vec::new();
        for (format, kept) in [
            (InputShape::default(), vec![]),
            (
                InputShape {
                    url_column: Some("link".into()),
                    keep_columns: true,
                    delimiter: b'\t',
                    format: None,
                },
                vec![
                    Column::new("id", ColumnType::Int),
                    Column::new("caption", ColumnType::Text),
                ],
            ),
        ] {
            let (mut out, mut failed) = (Vec::new(), Vec::new());
            let writer = ResultWriter::new(
                (&mut out, TableFormat::Csv),
                Some((&mut failed, TableFormat::Csv)),
                true,
                &format,
                &kept,
            )
            .unwrap();
            writer.finish().unwrap();
            shown.push(format!(
                "output: {}failed: {}",
                String::from_utf8(out).unwrap(),
                String::from_utf8(failed).unwrap()
            ));
        }
        insta::assert_snapshot!(shown.join("---\n"));
    }
}
