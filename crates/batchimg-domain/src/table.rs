//! Typed cells: what a kept input column holds, so that an INT64 `id` read
//! from Parquet is written back as INT64 and a warehouse joins on it without
//! a cast.
//!
//! The journal stores these with postcard, which writes an enum variant as
//! its index: variants are only ever appended, never inserted or reordered.

use serde::{Deserialize, Serialize};

/// One cell of a kept column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
}

/// The type of a column, as every format batchimg reads and writes can hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnType {
    Bool,
    Int,
    Float,
    Text,
    /// Microseconds since the Unix epoch, UTC.
    Timestamp,
}

/// A named, typed column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
}

impl Column {
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Column {
        Column {
            name: name.into(),
            ty,
        }
    }
}

impl ColumnType {
    /// The type that holds values of both: integers widen to floats, and
    /// anything else mixed becomes text (as DuckDB's JSON reader does).
    pub fn unify(self, other: ColumnType) -> ColumnType {
        use ColumnType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Int, Float) | (Float, Int) => Float,
            _ => Text,
        }
    }

    /// The name a user knows from Parquet and SQL.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Bool => "BOOLEAN",
            ColumnType::Int => "INT64",
            ColumnType::Float => "DOUBLE",
            ColumnType::Text => "STRING",
            ColumnType::Timestamp => "TIMESTAMP",
        }
    }
}

impl Value {
    /// The type of a non-null value.
    pub fn ty(&self) -> Option<ColumnType> {
        match self {
            Value::Null => None,
            Value::Bool(_) => Some(ColumnType::Bool),
            Value::Int(_) => Some(ColumnType::Int),
            Value::Float(_) => Some(ColumnType::Float),
            Value::Text(_) => Some(ColumnType::Text),
            Value::Timestamp(_) => Some(ColumnType::Timestamp),
        }
    }

    /// The value as a CSV field: null is the empty field.
    pub fn to_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::Null => "".into(),
            Value::Bool(b) => if *b { "true" } else { "false" }.into(),
            Value::Int(i) => i.to_string().into(),
            Value::Float(f) => f.to_string().into(),
            Value::Text(s) => s.as_str().into(),
            Value::Timestamp(us) => rfc3339_micros(*us).into(),
        }
    }

    /// The value in a column of type `ty` (which [`ColumnType::unify`] made
    /// wide enough for it): an integer in a float column becomes a float,
    /// anything in a text column becomes its text.
    pub fn coerce(&self, ty: ColumnType) -> Value {
        match (self, ty) {
            (Value::Null, _) => Value::Null,
            (Value::Int(i), ColumnType::Float) => Value::Float(*i as f64),
            (v, ColumnType::Text) if !matches!(v, Value::Text(_)) => {
                Value::Text(v.to_text().into_owned())
            }
            (v, _) => v.clone(),
        }
    }
}

/// `2026-12-03T13:00:00.123456Z`: what a timestamp is in CSV and JSON Lines.
pub fn rfc3339_micros(us: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => us.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unify_widens_numbers_and_falls_back_to_text() {
        use ColumnType::*;
        assert_eq!(Int.unify(Int), Int);
        assert_eq!(Int.unify(Float), Float);
        assert_eq!(Float.unify(Int), Float);
        assert_eq!(Bool.unify(Int), Text);
        assert_eq!(Text.unify(Float), Text);
    }

    #[test]
    fn coerce_follows_unify() {
        assert_eq!(Value::Int(3).coerce(ColumnType::Float), Value::Float(3.0));
        assert_eq!(
            Value::Bool(true).coerce(ColumnType::Text),
            Value::Text("true".into())
        );
        assert_eq!(Value::Null.coerce(ColumnType::Int), Value::Null);
        assert_eq!(Value::Int(7).coerce(ColumnType::Int), Value::Int(7));
        assert_eq!(
            Value::Timestamp(1_764_766_800_000_001).to_text(),
            "2025-12-03T13:00:00.000001Z"
        );
    }

    /// The journal stores kept cells with postcard: the variant indexes are a
    /// cross-version contract.
    #[test]
    fn the_bytes_of_each_value_are_pinned() {
        let bytes: Vec<Vec<u8>> = [
            Value::Null,
            Value::Bool(true),
            Value::Int(-2),
            Value::Float(0.5),
            Value::Text("a".into()),
            Value::Timestamp(1),
        ]
        .iter()
        .map(|v| postcard::to_stdvec(v).unwrap())
        .collect();
        assert_eq!(
            bytes,
            [
                vec![0],
                vec![1, 1],
                vec![2, 3],
                vec![3, 0, 0, 0, 0, 0, 0, 224, 63],
                vec![4, 1, b'a'],
                vec![5, 2],
            ]
        );
    }
}

/// A file format batchimg reads rows from and writes rows to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum TableFormat {
    /// Comma-separated values (or `--delimiter`).
    Csv,
    /// Tab-separated values.
    Tsv,
    /// Apache Parquet.
    Parquet,
    /// JSON Lines: one JSON object per line.
    Jsonl,
}

impl TableFormat {
    /// The format a file name says, looking past a `.gz` or `.zst` suffix:
    /// `part-0.snappy.parquet`, `rows.jsonl.gz`, `urls.tsv`.
    pub fn from_name(name: &str) -> Option<TableFormat> {
        let lower = name.to_ascii_lowercase();
        let base = [".gz", ".gzip", ".zst", ".zstd"]
            .iter()
            .find_map(|c| lower.strip_suffix(c))
            .unwrap_or(&lower);
        let ext = base.rsplit_once('.')?.1;
        match ext {
            "csv" => Some(TableFormat::Csv),
            "tsv" | "tab" => Some(TableFormat::Tsv),
            "parquet" | "pq" => Some(TableFormat::Parquet),
            "jsonl" | "ndjson" | "json" => Some(TableFormat::Jsonl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TableFormat::Csv => "csv",
            TableFormat::Tsv => "tsv",
            TableFormat::Parquet => "parquet",
            TableFormat::Jsonl => "jsonl",
        }
    }
}

#[cfg(test)]
mod format_tests {
    use super::TableFormat;

    #[test]
    fn formats_are_told_by_name_past_compression() {
        let cases = [
            ("in.csv", Some(TableFormat::Csv)),
            ("IN.TSV", Some(TableFormat::Tsv)),
            (
                "part-00000-1b2c.c000.snappy.parquet",
                Some(TableFormat::Parquet),
            ),
            ("rows.jsonl.gz", Some(TableFormat::Jsonl)),
            ("rows.ndjson.zst", Some(TableFormat::Jsonl)),
            ("urls.csv.gz", Some(TableFormat::Csv)),
            ("urls.txt", None),
            ("part-00000", None),
            ("urls", None),
        ];
        for (name, want) in cases {
            assert_eq!(TableFormat::from_name(name), want, "{name}");
        }
    }
}
