//! The manifest: one row per input row, in input order, saying what became
//! of it, in a form a warehouse joins back to its export (on `row`, or on a
//! kept column such as an `id`).

use super::output::{TableSink, url_cell, with_kept};
use super::table::TableWriter;
use crate::job::{JobRecord, JobState, StateKind};
use crate::table::{Column, ColumnType, Value};

/// The manifest's own columns; the kept columns go after `url`.
const MANIFEST_COLUMNS: [(&str, ColumnType); 15] = [
    ("row", ColumnType::Int),
    ("url", ColumnType::Text),
    ("state", ColumnType::Text),
    ("reason", ColumnType::Text),
    ("message", ColumnType::Text),
    ("key", ColumnType::Text),
    ("s3url", ColumnType::Text),
    ("reused", ColumnType::Bool),
    ("bytes_in", ColumnType::Int),
    ("bytes_out", ColumnType::Int),
    ("width", ColumnType::Int),
    ("height", ColumnType::Int),
    ("source_blake3", ColumnType::Text),
    ("engine", ColumnType::Text),
    ("attempts", ColumnType::Int),
];

/// The last column: when the row finished, an instant shown in UTC.
const FINISHED_AT: &str = "finished_at";

/// The manifest being written.
pub struct RowManifest<'a> {
    table: TableWriter<'a>,
    kept: usize,
}

impl<'a> RowManifest<'a> {
    /// The manifest's columns: `row`, `url`, the kept columns, then the rest.
    pub fn columns(kept: &[Column]) -> Vec<Column> {
        let fixed: Vec<Column> = MANIFEST_COLUMNS
            .iter()
            .map(|(n, t)| Column::new(*n, t.clone()))
            .chain([Column::new(FINISHED_AT, ColumnType::utc_micros())])
            .collect();
        // Kept names are made unique against every fixed name, then placed
        // after `url`.
        let all = with_kept(fixed.clone(), kept);
        let kept_named = all[fixed.len()..].to_vec();
        let mut columns = fixed[..2].to_vec();
        columns.extend(kept_named);
        columns.extend_from_slice(&fixed[2..]);
        columns
    }

    pub fn new(target: TableSink<'a>, delimiter: u8, kept: &[Column]) -> anyhow::Result<Self> {
        let table = TableWriter::new(target.0, target.1, delimiter, RowManifest::columns(kept))?;
        Ok(RowManifest {
            table,
            kept: kept.len(),
        })
    }

    /// One input row.
    pub fn row(
        &mut self,
        row: u64,
        url: &str,
        rec: &JobRecord,
        kept: &[Value],
    ) -> anyhow::Result<()> {
        let mut cells = Vec::with_capacity(3 + self.kept + MANIFEST_COLUMNS.len());
        cells.push(Value::Int(row as i64));
        cells.push(url_cell(url));
        for i in 0..self.kept {
            cells.push(kept.get(i).cloned().unwrap_or(Value::Null));
        }
        let text = |s: &str| Value::Text(s.to_string());
        let int = |n: Option<u64>| n.map_or(Value::Null, |n| Value::Int(n as i64));
        let state = rec.state.kind();
        let (mut reason, mut message, mut key, mut s3url, mut reused) = (
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        );
        let (mut source, mut image) = (None, None);
        match &rec.state {
            JobState::Failed(f) => {
                reason = text(f.class.name());
                message = text(&f.message);
            }
            JobState::Uploaded(done) => {
                key = text(&done.key);
                s3url = text(&done.s3url);
                reused = Value::Bool(done.reused);
                source = done.source;
                image = done.image;
            }
            JobState::Processed {
                source: s,
                key: k,
                image: i,
                ..
            } => {
                key = text(k);
                source = Some(s.facts());
                image = *i;
            }
            JobState::Downloaded { source: s } => source = Some(s.facts()),
            JobState::Pending => {}
        }
        let finished = matches!(state, StateKind::Uploaded | StateKind::Failed);
        cells.extend([
            text(state.name()),
            reason,
            message,
            key,
            s3url,
            reused,
            int(source.map(|s| s.bytes)),
            int(image.map(|i| i.bytes)),
            int(image.map(|i| u64::from(i.width))),
            int(image.map(|i| u64::from(i.height))),
            source.map_or(Value::Null, |s| Value::Text(hex::encode(s.hash))),
            image.map_or(Value::Null, |i| text(i.engine.name())),
            Value::Int(i64::from(rec.attempts)),
            if finished {
                Value::utc_millis(rec.updated_ms as i64)
            } else {
                Value::Null
            },
        ]);
        self.table.row(cells)
    }

    pub fn finish(self) -> anyhow::Result<()> {
        self.table.finish()
    }
}
