//! The output and failed CSVs, written in input order from the rows a
//! caller visits (the journal's, or a merge's), to files the caller stages.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::job::{JobRecord, JobState};
use crate::settings::CsvFormat;

/// Header of the output CSV.
pub const OUTPUT_HEADER: [&str; 4] = ["url", "input", "output", "s3url"];

/// How many rows went where.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub succeeded: u64,
    pub failed: u64,
    /// Rows not finished (an interrupted run).
    pub unfinished: u64,
}

/// The output CSV (and the failed CSV) being written, one input row at a
/// time in input order. With `--keep-columns` the kept columns follow, under
/// their input names, and the failed CSV's header names the URL column as
/// the input did, so that it is an input for the same flags.
pub struct ResultWriter<'a> {
    out: csv::Writer<&'a mut dyn Write>,
    failed: Option<csv::Writer<&'a mut dyn Write>>,
    /// False when local files were deleted after upload.
    keep_paths: bool,
    written: Written,
}

impl<'a> ResultWriter<'a> {
    /// Writes the headers.
    pub fn new(
        output: &'a mut dyn Write,
        failed: Option<&'a mut dyn Write>,
        keep_paths: bool,
        format: &CsvFormat,
        kept_header: &[String],
    ) -> anyhow::Result<ResultWriter<'a>> {
        let mut builder = csv::WriterBuilder::new();
        builder.delimiter(format.delimiter);
        let mut out = builder.from_writer(output);
        let kept = kept_header.iter().map(String::as_str);
        out.write_record(OUTPUT_HEADER.iter().copied().chain(kept.clone()))?;
        let mut failed = failed.map(|f| builder.from_writer(f));
        if let Some(f) = failed.as_mut() {
            let url = format.url_column.as_deref().unwrap_or("url");
            f.write_record(std::iter::once(url).chain(kept))?;
        }
        Ok(ResultWriter {
            out,
            failed,
            keep_paths,
            written: Written::default(),
        })
    }

    /// One input row: its URL, the record that says what became of it, and
    /// its kept columns.
    pub fn row(&mut self, url: &str, rec: &JobRecord, kept: &[String]) -> anyhow::Result<()> {
        let kept = kept.iter().map(String::as_str);
        match &rec.state {
            JobState::Uploaded(done) => {
                self.written.succeeded += 1;
                let (input, output) = (self.path(&done.input), self.path(&done.output));
                let fields = [url, &input, &output, &done.s3url];
                self.out.write_record(fields.into_iter().chain(kept))?;
            }
            JobState::Failed(_) => {
                self.written.failed += 1;
                if let Some(f) = self.failed.as_mut() {
                    f.write_record(std::iter::once(url).chain(kept))?;
                }
            }
            _ => self.written.unfinished += 1,
        }
        Ok(())
    }

    fn path(&self, p: &Option<PathBuf>) -> String {
        match (self.keep_paths, p) {
            (true, Some(p)) => p.display().to_string(),
            _ => String::new(),
        }
    }

    /// Flushes both files and says how many rows went where.
    pub fn finish(mut self) -> anyhow::Result<Written> {
        self.out.flush().context("writing the output CSV")?;
        if let Some(mut f) = self.failed {
            f.flush().context("writing the failed CSV")?;
        }
        Ok(self.written)
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
            (CsvFormat::default(), vec![]),
            (
                CsvFormat {
                    url_column: Some("link".into()),
                    keep_columns: true,
                    delimiter: b'\t',
                },
                vec!["id".to_string(), "caption".to_string()],
            ),
        ] {
            let (mut out, mut failed) = (Vec::new(), Vec::new());
            let writer =
                ResultWriter::new(&mut out, Some(&mut failed), true, &format, &kept).unwrap();
            assert_eq!(writer.finish().unwrap(), Written::default());
            shown.push(format!(
                "output: {}failed: {}",
                String::from_utf8(out).unwrap(),
                String::from_utf8(failed).unwrap()
            ));
        }
        insta::assert_snapshot!(shown.join("---\n"));
    }
}
