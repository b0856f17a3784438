//! Tables written a row at a time as CSV, JSON Lines or Parquet, with typed
//! columns, so a file batchimg writes keeps the types of what it read.
//!
//! The output, failed and manifest files all go through [`TableWriter`]: the
//! format follows the file's extension (`.parquet`, `.jsonl`, else CSV), and
//! each cell is coerced to its column's type ([`Value::coerce`]).

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder,
    PrimitiveBuilder, StringBuilder, StringDictionaryBuilder,
};
use arrow_array::types::{
    ArrowTimestampType, Int32Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::location::Location;
use crate::table::{Column, ColumnType, TableFormat, TimeUnit, Value};

/// Rows buffered before they become a Parquet batch.
const BATCH_ROWS: usize = 8192;
/// Rows per Parquet row group: readers stream one group at a time.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The format a written file gets from its name: Parquet or JSON Lines by
/// extension, CSV (or TSV) otherwise.
pub fn output_format(loc: &Location) -> TableFormat {
    let name = match loc {
        Location::Local(p) => p.file_name().and_then(|n| n.to_str()).unwrap_or(""),
        Location::S3 { key, .. } => key.rsplit('/').next().unwrap_or(""),
    };
    TableFormat::of_file(name)
}

/// The MIME type an uploaded file of `format` gets.
pub fn content_type(format: TableFormat) -> &'static str {
    match format {
        TableFormat::Csv => "text/csv",
        TableFormat::Tsv => "text/tab-separated-values",
        TableFormat::Parquet => "application/vnd.apache.parquet",
        TableFormat::Jsonl => "application/jsonl",
    }
}

/// A table being written.
pub struct TableWriter<'a> {
    columns: Vec<Column>,
    sink: Sink<'a>,
}

enum Sink<'a> {
    Csv(Box<csv::Writer<&'a mut (dyn Write + Send)>>),
    Jsonl(std::io::BufWriter<&'a mut (dyn Write + Send)>),
    Parquet {
        writer: Box<ArrowWriter<&'a mut (dyn Write + Send)>>,
        schema: Arc<Schema>,
        rows: Vec<Vec<Value>>,
    },
}

impl<'a> TableWriter<'a> {
    /// Starts a table of `columns` in `format`; a CSV gets its header now.
    pub fn new(
        out: &'a mut (dyn Write + Send),
        format: TableFormat,
        delimiter: u8,
        columns: Vec<Column>,
    ) -> anyhow::Result<TableWriter<'a>> {
        let columns: Vec<Column> = columns
            .into_iter()
            .map(|c| Column::new(c.name, written(c.ty)))
            .collect();
        let sink = match format {
            TableFormat::Csv | TableFormat::Tsv => {
                let mut w = csv::WriterBuilder::new()
                    .delimiter(format.delimiter(delimiter))
                    .from_writer(out);
                w.write_record(columns.iter().map(|c| c.name.as_str()))?;
                Sink::Csv(Box::new(w))
            }
            TableFormat::Jsonl => Sink::Jsonl(std::io::BufWriter::with_capacity(64 * 1024, out)),
            TableFormat::Parquet => {
                let schema = Arc::new(Schema::new(
                    columns
                        .iter()
                        .map(|c| Field::new(&c.name, arrow_type(&c.ty), true))
                        .collect::<Vec<_>>(),
                ));
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .set_created_by(format!("batchimg {}", env!("CARGO_PKG_VERSION")))
                    .build();
                let writer = ArrowWriter::try_new(out, Arc::clone(&schema), Some(props))
                    .context("starting a Parquet file")?;
                Sink::Parquet {
                    writer: Box::new(writer),
                    schema,
                    rows: Vec::with_capacity(BATCH_ROWS),
                }
            }
        };
        Ok(TableWriter { columns, sink })
    }

    /// One row, a cell per column (missing trailing cells are null).
    pub fn row(&mut self, cells: Vec<Value>) -> anyhow::Result<()> {
        match &mut self.sink {
            Sink::Csv(w) => {
                let fields: Vec<_> = (0..self.columns.len())
                    .map(|i| cells.get(i).map_or("".into(), Value::to_text))
                    .collect();
                w.write_record(fields.iter().map(|f| f.as_bytes()))?;
            }
            Sink::Jsonl(w) => {
                // Keys in column order (serde_json's map would sort them).
                w.write_all(b"{")?;
                for (i, c) in self.columns.iter().enumerate() {
                    if i > 0 {
                        w.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut *w, &c.name)?;
                    w.write_all(b":")?;
                    let v = cells.get(i).unwrap_or(&Value::Null).coerce(&c.ty);
                    write_json(&mut *w, &v)?;
                }
                w.write_all(b"}\n")?;
            }
            Sink::Parquet { rows, .. } => {
                rows.push(cells);
                if rows.len() >= BATCH_ROWS {
                    self.flush_batch()?;
                }
            }
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> anyhow::Result<()> {
        let Sink::Parquet {
            writer,
            schema,
            rows,
        } = &mut self.sink
        else {
            return Ok(());
        };
        if rows.is_empty() {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| array(&c.ty, rows.iter().map(|r| r.get(i).unwrap_or(&Value::Null))))
            .collect();
        rows.clear();
        let batch = RecordBatch::try_new(Arc::clone(schema), arrays)?;
        writer.write(&batch).context("writing a Parquet batch")?;
        Ok(())
    }

    /// Writes what is buffered and the file's end (Parquet's footer).
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.flush_batch()?;
        match self.sink {
            Sink::Csv(mut w) => w.flush()?,
            Sink::Jsonl(mut w) => w.flush()?,
            Sink::Parquet { writer, .. } => {
                let out = writer.into_inner().context("finishing a Parquet file")?;
                out.flush()?;
            }
        }
        Ok(())
    }
}

/// The Arrow type of a column: what the Parquet writer turns into the
/// logical type DuckDB, Polars and Spark read back as the same SQL type.
fn arrow_type(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Int => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Text => DataType::Utf8,
        ColumnType::Timestamp { unit, zone } => {
            DataType::Timestamp(arrow_unit(*unit), zone.as_deref().map(Into::into))
        }
        ColumnType::Date => DataType::Date32,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        ColumnType::Category => {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        }
    }
}

/// The type a column is written as. Parquet has no seconds: arrow-rs would
/// write them as a bare INT64 that DuckDB reads as BIGINT, so they are
/// written as milliseconds (as pyarrow does; their text is the same).
fn written(ty: ColumnType) -> ColumnType {
    match ty {
        ColumnType::Timestamp {
            unit: TimeUnit::Second,
            zone,
        } => ColumnType::Timestamp {
            unit: TimeUnit::Millisecond,
            zone,
        },
        ty => ty,
    }
}

fn arrow_unit(unit: TimeUnit) -> arrow_schema::TimeUnit {
    match unit {
        TimeUnit::Second => arrow_schema::TimeUnit::Second,
        TimeUnit::Millisecond => arrow_schema::TimeUnit::Millisecond,
        TimeUnit::Microsecond => arrow_schema::TimeUnit::Microsecond,
        TimeUnit::Nanosecond => arrow_schema::TimeUnit::Nanosecond,
    }
}

/// One column of a batch, each cell coerced to `ty`.
fn array<'v>(ty: &ColumnType, cells: impl Iterator<Item = &'v Value>) -> ArrayRef {
    let cells = cells.map(|v| v.coerce(ty));
    match ty {
        ColumnType::Bool => {
            let mut b = BooleanBuilder::new();
            cells.for_each(|v| {
                b.append_option(if let Value::Bool(x) = v {
                    Some(x)
                } else {
                    None
                })
            });
            Arc::new(b.finish())
        }
        ColumnType::Int => {
            let mut b = Int64Builder::new();
            cells.for_each(|v| b.append_option(if let Value::Int(x) = v { Some(x) } else { None }));
            Arc::new(b.finish())
        }
        ColumnType::Float => {
            let mut b = Float64Builder::new();
            cells.for_each(|v| {
                b.append_option(if let Value::Float(x) = v {
                    Some(x)
                } else {
                    None
                })
            });
            Arc::new(b.finish())
        }
        ColumnType::Text => {
            let mut b = StringBuilder::new();
            cells.for_each(|v| match v {
                Value::Text(s) => b.append_value(s),
                _ => b.append_null(),
            });
            Arc::new(b.finish())
        }
        ColumnType::Category => {
            let mut b = StringDictionaryBuilder::<Int32Type>::new();
            cells.for_each(|v| match v {
                Value::Text(s) => {
                    b.append_value(s);
                }
                _ => b.append_null(),
            });
            Arc::new(b.finish())
        }
        ColumnType::Timestamp { unit, zone } => {
            fn stamps<T: ArrowTimestampType>(
                zone: Option<&str>,
                cells: impl Iterator<Item = Value>,
            ) -> ArrayRef {
                let mut b = PrimitiveBuilder::<T>::new().with_timezone_opt(zone.map(String::from));
                cells.for_each(|v| {
                    b.append_option(if let Value::Timestamp { ticks, .. } = v {
                        Some(ticks)
                    } else {
                        None
                    })
                });
                Arc::new(b.finish())
            }
            let zone = zone.as_deref();
            match unit {
                TimeUnit::Second => stamps::<TimestampSecondType>(zone, cells),
                TimeUnit::Millisecond => stamps::<TimestampMillisecondType>(zone, cells),
                TimeUnit::Microsecond => stamps::<TimestampMicrosecondType>(zone, cells),
                TimeUnit::Nanosecond => stamps::<TimestampNanosecondType>(zone, cells),
            }
        }
        ColumnType::Date => {
            let mut b = Date32Builder::new();
            cells.for_each(|v| {
                b.append_option(if let Value::Date(d) = v {
                    Some(d)
                } else {
                    None
                })
            });
            Arc::new(b.finish())
        }
        ColumnType::Decimal { precision, scale } => {
            let mut b = Decimal128Builder::new();
            cells.for_each(|v| {
                b.append_option(if let Value::Decimal { unscaled, .. } = v {
                    Some(unscaled)
                } else {
                    None
                })
            });
            let b = b
                .finish()
                .with_precision_and_scale(*precision, *scale)
                .expect("a decimal type the reader accepted");
            Arc::new(b)
        }
    }
}

/// A cell as JSON, as DuckDB writes it: decimals as numbers with their
/// scale's digits, dates and timestamps as their text.
fn write_json(w: &mut impl Write, v: &Value) -> anyhow::Result<()> {
    match v {
        Value::Null => w.write_all(b"null")?,
        Value::Bool(b) => serde_json::to_writer(w, b)?,
        Value::Int(i) => serde_json::to_writer(w, i)?,
        // JSON has no NaN or infinity.
        Value::Float(f) if !f.is_finite() => w.write_all(b"null")?,
        Value::Float(f) => serde_json::to_writer(w, f)?,
        Value::Text(s) => serde_json::to_writer(w, s)?,
        Value::Decimal { .. } => w.write_all(v.to_text().as_bytes())?,
        Value::Timestamp { .. } | Value::Date(_) => serde_json::to_writer(w, &v.to_text())?,
    }
    Ok(())
}
