//! Parquet parts: the URL column and the kept columns only (a projection),
//! read a batch at a time from one row group at a time.
//!
//! Kept columns keep their types: integers as INT64, floats as DOUBLE,
//! booleans, strings, dates, decimals with their precision and scale, and
//! timestamps in their unit, naive or with their zone. Dictionary-encoded
//! columns (pandas categoricals) are read as their values. A type batchimg
//! cannot carry (lists, structs, binary) is an error naming the column when
//! `--keep-columns` asks for it, and is never read otherwise.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::{InputError, Kept, Record, Want, find_column};
use crate::table::{self, ColumnType, Value};

/// Rows decoded at a time: a few MB of URLs, whatever the row group's size.
const BATCH_ROWS: usize = 8192;

/// One Parquet part being read.
pub(in crate::manifest) struct ParquetPart {
    reader: ParquetRecordBatchReader,
    path: PathBuf,
    /// Column names, in the projected batch's terms.
    url: String,
    /// (column name, kept slot) of each kept column.
    kept: Vec<(String, usize)>,
    named: Vec<String>,
    ready: VecDeque<Record>,
    /// Rows of this part read so far, for errors.
    rows: u64,
}

impl ParquetPart {
    pub(super) fn open(
        path: &Path,
        want: &Want,
        kept_slots: &mut Kept,
    ) -> Result<ParquetPart, InputError> {
        let file_error = |message: String| InputError::File {
            path: path.to_path_buf(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|source| InputError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| file_error(format!("not a readable Parquet file: {e}")))?;
        let schema = builder.schema().clone();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let wanted = want.url_column.unwrap_or("url");
        let Some(url_at) = find_column(&names, wanted) else {
            let hint = if want.url_column.is_none() {
                " (name the URL column with --url-column)"
            } else {
                ""
            };
            return Err(file_error(format!(
                "no column named {wanted:?}{hint}; the columns are {}",
                names.join(",")
            )));
        };
        let url_type = schema.field(url_at).data_type();
        if !is_text(url_type) {
            return Err(file_error(format!(
                "the URL column {:?} is {url_type}; it must hold strings",
                names[url_at]
            )));
        }
        let mut roots = vec![url_at];
        let mut kept = Vec::new();
        if want.keep {
            for (i, field) in schema.fields().iter().enumerate() {
                if i == url_at {
                    continue;
                }
                let Some(ty) = column_type(field.data_type()) else {
                    return Err(file_error(format!(
                        "column {:?} is {}, which --keep-columns cannot carry \
                         (it keeps numbers, booleans, strings, dates, decimals and timestamps)",
                        field.name(),
                        field.data_type()
                    )));
                };
                roots.push(i);
                kept.push((
                    field.name().clone(),
                    kept_slots.slot(field.name(), Some(ty)),
                ));
            }
        }
        let mut named = Vec::new();
        for n in want.named {
            let Some(at) = find_column(&names, n) else {
                return Err(file_error(format!(
                    "--key-template reads the column {n:?}, but the columns are {}",
                    names.join(",")
                )));
            };
            if !roots.contains(&at) {
                roots.push(at);
            }
            named.push(names[at].to_string());
        }
        roots.sort_unstable();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| file_error(format!("cannot read: {e}")))?;
        Ok(ParquetPart {
            reader,
            path: path.to_path_buf(),
            url: names[url_at].to_string(),
            kept,
            named,
            ready: VecDeque::new(),
            rows: 0,
        })
    }

    pub(super) fn next(&mut self) -> Option<Result<Record, InputError>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(Ok(r));
            }
            let batch = match self.reader.next()? {
                Ok(b) => b,
                Err(e) => {
                    return Some(Err(InputError::File {
                        path: self.path.clone(),
                        message: format!("cannot read the rows after row {}: {e}", self.rows),
                    }));
                }
            };
            if let Err(e) = self.take(&batch) {
                return Some(Err(e));
            }
        }
    }

    /// Turns a batch into records.
    fn take(&mut self, batch: &RecordBatch) -> Result<(), InputError> {
        let rows = batch.num_rows();
        let column = |name: &str| -> Result<ArrayRef, InputError> {
            let fault = |message: String| InputError::File {
                path: self.path.clone(),
                message: format!("column {name:?}, after row {}: {message}", self.rows),
            };
            let array = batch
                .column_by_name(name)
                .ok_or_else(|| fault("missing from a row group".into()))?;
            decoded(array).map_err(|e| fault(e.to_string()))
        };
        let urls = column(&self.url)?;
        let mut kept_cells = Vec::with_capacity(self.kept.len());
        for (name, slot) in &self.kept {
            let cells = cells(column(name)?.as_ref()).map_err(|message| InputError::File {
                path: self.path.clone(),
                message: format!("column {name:?}, after row {}: {message}", self.rows),
            })?;
            kept_cells.push((*slot, cells));
        }
        let mut named_cells = Vec::with_capacity(self.named.len());
        for name in &self.named {
            let cells = cells(column(name)?.as_ref()).unwrap_or_default();
            named_cells.push(cells);
        }
        let width = kept_cells.iter().map(|(s, _)| s + 1).max().unwrap_or(0);
        for i in 0..rows {
            let url = url_at(urls.as_ref(), i)
                .unwrap_or_default()
                .trim()
                .to_string();
            let mut kept = vec![Value::Null; width];
            for (slot, cells) in &mut kept_cells {
                kept[*slot] = std::mem::replace(&mut cells[i], Value::Null);
            }
            let named = named_cells
                .iter()
                .map(|c| match c.get(i) {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.to_text().into_owned()),
                })
                .collect();
            self.ready.push_back(Record { url, kept, named });
        }
        self.rows += rows as u64;
        Ok(())
    }
}

/// Whether a column holds strings, plainly or as a dictionary of them.
fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text(values),
        _ => false,
    }
}

/// A dictionary-encoded column as the plain column of its values (each key
/// looked up, a null key null); any other column as it is.
fn decoded(array: &ArrayRef) -> Result<ArrayRef, arrow_schema::ArrowError> {
    match array.as_any_dictionary_opt() {
        Some(dict) => arrow_select::take::take(dict.values().as_ref(), dict.keys(), None),
        None => Ok(std::sync::Arc::clone(array)),
    }
}

/// The string at row `i` of a string column; `None` when null.
fn url_at(array: &dyn Array, i: usize) -> Option<&str> {
    if array.is_null(i) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(i),
        DataType::LargeUtf8 => array.as_string::<i64>().value(i),
        DataType::Utf8View => array.as_string_view().value(i),
        _ => return None,
    })
}

/// The type a kept column gets; `None` when batchimg cannot carry it.
fn column_type(t: &DataType) -> Option<ColumnType> {
    Some(match t {
        DataType::Boolean => ColumnType::Bool,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => ColumnType::Int,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => ColumnType::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::Text,
        DataType::Date32 | DataType::Date64 => ColumnType::Date,
        DataType::Decimal128(precision, scale) => ColumnType::Decimal {
            precision: *precision,
            scale: *scale,
        },
        // Wider than 128 bits: kept exactly, as its text.
        DataType::Decimal256(..) => ColumnType::Text,
        DataType::Timestamp(unit, zone) => ColumnType::Timestamp {
            unit: time_unit(*unit),
            zone: zone.as_deref().map(String::from),
        },
        DataType::Dictionary(_, values) if is_text(values) => ColumnType::Category,
        DataType::Dictionary(_, values) => return column_type(values),
        DataType::Null => ColumnType::Text,
        _ => return None,
    })
}

fn time_unit(unit: TimeUnit) -> table::TimeUnit {
    match unit {
        TimeUnit::Second => table::TimeUnit::Second,
        TimeUnit::Millisecond => table::TimeUnit::Millisecond,
        TimeUnit::Microsecond => table::TimeUnit::Microsecond,
        TimeUnit::Nanosecond => table::TimeUnit::Nanosecond,
    }
}

/// A column's cells, typed as [`column_type`] says (dictionaries decoded first).
fn cells(a: &dyn Array) -> Result<Vec<Value>, String> {
    let n = a.len();
    let each = |f: &dyn Fn(usize) -> Result<Value, String>| -> Result<Vec<Value>, String> {
        (0..n)
            .map(|i| if a.is_null(i) { Ok(Value::Null) } else { f(i) })
            .collect()
    };
    macro_rules! int {
        ($t:ty) => {{
            let p = a.as_primitive::<$t>();
            each(&|i| Ok(Value::Int(i64::from(p.value(i)))))
        }};
    }
    macro_rules! stamp {
        ($t:ty, $unit:expr, $zoned:expr) => {{
            let p = a.as_primitive::<$t>();
            each(&|i| {
                Ok(Value::Timestamp {
                    ticks: p.value(i),
                    unit: $unit,
                    zoned: $zoned,
                })
            })
        }};
    }
    match a.data_type() {
        DataType::Boolean => each(&|i| Ok(Value::Bool(a.as_boolean().value(i)))),
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => {
            let p = a.as_primitive::<UInt64Type>();
            each(&|i| {
                i64::try_from(p.value(i))
                    .map(Value::Int)
                    .map_err(|_| format!("{} does not fit an INT64", p.value(i)))
            })
        }
        DataType::Float16 => {
            let p = a.as_primitive::<arrow_array::types::Float16Type>();
            each(&|i| Ok(Value::Float(f64::from(p.value(i)))))
        }
        DataType::Float32 => {
            let p = a.as_primitive::<Float32Type>();
            each(&|i| Ok(Value::Float(f64::from(p.value(i)))))
        }
        DataType::Float64 => {
            let p = a.as_primitive::<Float64Type>();
            each(&|i| Ok(Value::Float(p.value(i))))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            each(&|i| Ok(Value::Text(url_at(a, i).unwrap_or_default().to_string())))
        }
        DataType::Date32 => {
            let p = a.as_primitive::<Date32Type>();
            each(&|i| Ok(Value::Date(p.value(i))))
        }
        DataType::Date64 => {
            let p = a.as_primitive::<Date64Type>();
            each(&|i| {
                let days = p.value(i).div_euclid(86_400_000);
                i32::try_from(days)
                    .map(Value::Date)
                    .map_err(|_| format!("date {days} is out of range"))
            })
        }
        DataType::Decimal128(_, scale) => {
            let p = a.as_primitive::<Decimal128Type>();
            each(&|i| {
                Ok(Value::Decimal {
                    unscaled: p.value(i),
                    scale: *scale,
                })
            })
        }
        DataType::Decimal256(..) => {
            let p = a.as_primitive::<arrow_array::types::Decimal256Type>();
            each(&|i| Ok(Value::Text(p.value_as_string(i))))
        }
        DataType::Timestamp(unit, zone) => {
            let zoned = zone.is_some();
            match unit {
                TimeUnit::Second => stamp!(TimestampSecondType, table::TimeUnit::Second, zoned),
                TimeUnit::Millisecond => {
                    stamp!(
                        TimestampMillisecondType,
                        table::TimeUnit::Millisecond,
                        zoned
                    )
                }
                TimeUnit::Microsecond => {
                    stamp!(
                        TimestampMicrosecondType,
                        table::TimeUnit::Microsecond,
                        zoned
                    )
                }
                TimeUnit::Nanosecond => {
                    stamp!(TimestampNanosecondType, table::TimeUnit::Nanosecond, zoned)
                }
            }
        }
        DataType::Null => Ok(vec![Value::Null; n]),
        other => Err(format!("type {other} cannot be kept")),
    }
}
