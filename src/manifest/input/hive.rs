//! Hive partitions: the `key=value/` directories Spark, DuckDB and Polars
//! write a partitioned table into, read back as columns, as those readers
//! give them back.
//!
//! A key's type is DuckDB's (`hive_types_autocast`): each directory's text,
//! as it stands (before percent-decoding), is the first of DATE, TIMESTAMP
//! and BIGINT it casts to exactly; a key whose directories all give one
//! type has it, any other is VARCHAR. Values are then percent-decoded.
//! `NULL` (DuckDB's) is a null VARCHAR; `__HIVE_DEFAULT_PARTITION__`
//! (Spark's, Hive's, Polars' and pyarrow's null) is null and, as in Polars,
//! leaves the key's type to the other directories.

use std::path::Path;

use super::{InputError, Parts};
use crate::table::{ColumnType, TimeUnit, Value};

/// What Hive and Spark name the directory of a null partition value.
const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The partition columns of an input and each part's values.
#[derive(Debug, Default)]
pub(super) struct Partitions {
    keys: Vec<String>,
    types: Vec<ColumnType>,
    /// Per part file: (key index, value), in path order.
    parts: Vec<Vec<(usize, Value)>>,
}

impl Partitions {
    /// Reads the partitions from the part files' paths under the root.
    pub(super) fn of(parts: &Parts) -> Result<Partitions, InputError> {
        let mut keys: Vec<String> = Vec::new();
        let mut raw: Vec<Vec<(usize, Option<Raw>)>> = Vec::with_capacity(parts.files.len());
        for file in &parts.files {
            let mut values = Vec::new();
            for (key, value) in pairs(parts.root.as_deref(), file)? {
                let at = match keys.iter().position(|k| *k == key) {
                    Some(at) => at,
                    None => {
                        keys.push(key);
                        keys.len() - 1
                    }
                };
                values.retain(|(k, _)| *k != at);
                values.push((at, value));
            }
            raw.push(values);
        }
        let types: Vec<ColumnType> = (0..keys.len())
            .map(|k| {
                infer(
                    raw.iter()
                        .flatten()
                        .filter(|(at, _)| *at == k)
                        .filter_map(|(_, v)| v.as_ref().map(|r| r.text.as_str())),
                )
            })
            .collect();
        let parts = raw
            .into_iter()
            .map(|values| {
                values
                    .into_iter()
                    .map(|(k, v)| (k, v.map_or(Value::Null, |v| value(&v, &types[k]))))
                    .collect()
            })
            .collect();
        Ok(Partitions { keys, types, parts })
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn name(&self, key: usize) -> &str {
        &self.keys[key]
    }

    pub(super) fn ty(&self, key: usize) -> &ColumnType {
        &self.types[key]
    }

    /// The values of part `index`.
    pub(super) fn of_part(&self, index: usize) -> Vec<(usize, Value)> {
        self.parts.get(index).cloned().unwrap_or_default()
    }
}

/// A partition directory's value: as written, and percent-decoded.
#[derive(Debug, Clone)]
struct Raw {
    text: String,
    decoded: String,
}

/// The `key=value` directories between `root` and `file`.
fn pairs(root: Option<&Path>, file: &Path) -> Result<Vec<(String, Option<Raw>)>, InputError> {
    let (Some(root), Some(dir)) = (root, file.parent()) else {
        return Ok(Vec::new());
    };
    let Ok(rel) = dir.strip_prefix(root) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for component in rel.components() {
        let name = component.as_os_str().to_string_lossy();
        let Some((key, value)) = name.split_once('=') else {
            continue;
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| InputError::File {
                    path: dir.to_path_buf(),
                    message: format!(
                        "the partition directory {name:?} is not valid UTF-8 once decoded"
                    ),
                })
        };
        let key = decode(key)?;
        if key.is_empty() {
            continue;
        }
        let value = (value != DEFAULT_PARTITION)
            .then(|| {
                Ok::<_, InputError>(Raw {
                    text: value.to_string(),
                    decoded: decode(value)?,
                })
            })
            .transpose()?;
        out.push((key, value));
    }
    Ok(out)
}

/// The type DuckDB gives a key whose directories read `texts`.
fn infer<'a>(texts: impl Iterator<Item = &'a str>) -> ColumnType {
    let mut common: Option<ColumnType> = None;
    for text in texts {
        let ty = CANDIDATES
            .iter()
            .find(|ty| cast(text, ty).is_some())
            .cloned()
            .unwrap_or(ColumnType::Text);
        match &common {
            Some(c) if *c != ty => return ColumnType::Text,
            _ => common = Some(ty),
        }
    }
    common.unwrap_or(ColumnType::Text)
}

const CANDIDATES: [ColumnType; 3] = [
    ColumnType::Date,
    ColumnType::Timestamp {
        unit: TimeUnit::Microsecond,
        zone: None,
    },
    ColumnType::Int,
];

/// A directory's value in a key of type `ty`: typed from its text, or
/// its decoded text; DuckDB's `NULL` is null.
fn value(raw: &Raw, ty: &ColumnType) -> Value {
    if raw.text == "NULL" {
        return Value::Null;
    }
    cast(&raw.text, ty).unwrap_or_else(|| Value::Text(raw.decoded.clone()))
}

/// `text` as a value of `ty`, when it casts to one exactly: a BIGINT has no
/// sign or leading zero that its digits would lose.
fn cast(text: &str, ty: &ColumnType) -> Option<Value> {
    let date = |t: &str| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok();
    match ty {
        ColumnType::Date => date(text).map(|d| Value::Date(days(d))),
        // A date alone is its midnight, as DuckDB casts it.
        ColumnType::Timestamp { .. } => ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
            .or_else(|| date(text)?.and_hms_opt(0, 0, 0))
            .map(|t| Value::Timestamp {
                ticks: t.and_utc().timestamp_micros(),
                unit: TimeUnit::Microsecond,
                zoned: false,
            }),
        ColumnType::Int => text
            .parse::<i64>()
            .ok()
            .filter(|i| i.to_string() == text)
            .map(Value::Int),
        _ => None,
    }
}

fn days(d: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - crate::table::UNIX_EPOCH_DAYS_FROM_CE
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn partitions(files: &[&str]) -> Partitions {
        Partitions::of(&Parts {
            files: files
                .iter()
                .map(|f| PathBuf::from(format!("/in/{f}")))
                .collect(),
            root: Some(PathBuf::from("/in")),
        })
        .unwrap()
    }

    #[test]
    fn keys_are_typed_as_duckdb_infers_them() {
        let p = partitions(&[
            "dt=2024-01-31/country=US/n=7/at=2024-01-01 10:00:00/enc=2024-01-01%2010%3A00%3A00/part-0.parquet",
            "dt=2024-02-01/country=New%20Zealand/n=-12/at=2024-01-02T00:00:00.5/enc=x/part-0.parquet",
            "dt=__HIVE_DEFAULT_PARTITION__/country=NULL/n=3/at=2024-01-03 00:00:00/enc=y/part-0.parquet",
        ]);
        let types: Vec<_> = (0..p.len()).map(|k| (p.name(k), p.ty(k).clone())).collect();
        assert_eq!(
            types,
            [
                ("dt", ColumnType::Date),
                ("country", ColumnType::Text),
                ("n", ColumnType::Int),
                (
                    "at",
                    ColumnType::Timestamp {
                        unit: TimeUnit::Microsecond,
                        zone: None
                    }
                ),
                ("enc", ColumnType::Text),
            ]
        );
        assert_eq!(
            p.of_part(1),
            [
                (0, Value::Date(19_754)),
                (1, Value::Text("New Zealand".into())),
                (2, Value::Int(-12)),
                (
                    3,
                    Value::Timestamp {
                        ticks: 1_704_153_600_500_000,
                        unit: TimeUnit::Microsecond,
                        zoned: false
                    }
                ),
                (4, Value::Text("x".into())),
            ]
        );
        assert_eq!(
            p.of_part(0)[4],
            (4, Value::Text("2024-01-01 10:00:00".into()))
        );
        assert_eq!(p.of_part(2)[0], (0, Value::Null));
        assert_eq!(p.of_part(2)[1], (1, Value::Null));
    }

    /// DuckDB's inference, case by case (measured with DuckDB 1.4).
    #[test]
    fn single_values_cast_as_duckdb_casts_them() {
        let ts = ColumnType::Timestamp {
            unit: TimeUnit::Microsecond,
            zone: None,
        };
        let cases = [
            (vec!["1", "-5", "99999999999", "20240101"], ColumnType::Int),
            (vec!["01"], ColumnType::Text),
            (vec!["+5"], ColumnType::Text),
            (vec!["9223372036854775808"], ColumnType::Text),
            (vec!["1.5"], ColumnType::Text),
            (vec!["true"], ColumnType::Text),
            (vec!["2024-01-01", "2024-1-1"], ColumnType::Date),
            (
                vec!["2024-01-01 10:00:00", "2024-01-01T10:00:00.123456"],
                ts,
            ),
            (vec!["2024-01-01", "2024-01-01 10:00:00"], ColumnType::Text),
            (vec!["1", "abc"], ColumnType::Text),
            (vec!["1", "NULL"], ColumnType::Text),
        ];
        for (texts, want) in cases {
            assert_eq!(infer(texts.iter().copied()), want, "{texts:?}");
        }
    }

    #[test]
    fn a_single_file_or_plain_directories_have_no_partitions() {
        assert_eq!(partitions(&["a/b/part-0.csv"]).len(), 0);
        let single = Partitions::of(&vec![PathBuf::from("/x/dt=1/f.csv")].into()).unwrap();
        assert_eq!(single.len(), 0);
    }
}
