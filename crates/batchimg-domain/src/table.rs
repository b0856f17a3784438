//! Typed cells: what a kept input column holds, so that an INT64 `id` read
//! from Parquet is written back as INT64 and a warehouse joins on it without
//! a cast.
//!
//! The journal stores these with postcard, which writes an enum variant as
//! its index: variants are only ever appended, never inserted or reordered.

use serde::{Deserialize, Serialize};

/// The tick of a timestamp, as Parquet and Arrow count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimeUnit {
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
}

impl TimeUnit {
    /// Ticks per second.
    pub fn per_second(self) -> i64 {
        match self {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        }
    }

    /// `ticks` of this unit in `to`'s: exact to a finer unit, floored to a
    /// coarser one; `None` past i64.
    pub fn convert(self, ticks: i64, to: TimeUnit) -> Option<i64> {
        let (from, to) = (self.per_second(), to.per_second());
        if to >= from {
            ticks.checked_mul(to / from)
        } else {
            Some(ticks.div_euclid(from / to))
        }
    }
}

/// One cell of a kept column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// Ticks of `unit` since 1970-01-01 00:00:00: an instant (UTC) when
    /// `zoned`, a wall-clock reading with no zone otherwise.
    Timestamp {
        ticks: i64,
        unit: TimeUnit,
        zoned: bool,
    },
    /// Days since 1970-01-01.
    Date(i32),
    /// `unscaled / 10^scale`, exactly.
    Decimal {
        unscaled: i128,
        scale: i8,
    },
}

/// The type of a column, as every format batchimg reads and writes can hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnType {
    Bool,
    Int,
    Float,
    Text,
    /// `zone` is `None` for a timestamp without a time zone (SQL's
    /// `TIMESTAMP`); an instant otherwise, shown in that zone (`UTC`,
    /// `America/New_York`, `+01:00`), as Arrow and Parquet record it.
    Timestamp {
        unit: TimeUnit,
        zone: Option<String>,
    },
    Date,
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// Text from a small set of values, stored as a dictionary: a pandas
    /// `category`, a Polars `Categorical`. Its cells are [`Value::Text`].
    Category,
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

/// The largest precision a 128-bit decimal holds.
const MAX_DECIMAL_PRECISION: u8 = 38;

impl ColumnType {
    /// An instant in microseconds, shown in UTC: the manifest's times.
    pub fn utc_micros() -> ColumnType {
        ColumnType::Timestamp {
            unit: TimeUnit::Microsecond,
            zone: Some("UTC".into()),
        }
    }

    /// The type that holds values of both: numbers widen (integers and
    /// decimals to a decimal that holds both, else to floats), timestamps to
    /// the finer unit, and anything else mixed becomes text (as DuckDB's
    /// JSON reader does).
    pub fn unify(&self, other: &ColumnType) -> ColumnType {
        use ColumnType::*;
        match (self, other) {
            (a, b) if a == b => a.clone(),
            (Category, Text) | (Text, Category) => Text,
            (Int, Float) | (Float, Int) => Float,
            (Decimal { .. }, Float) | (Float, Decimal { .. }) => Float,
            (Int, d @ Decimal { .. }) | (d @ Decimal { .. }, Int) => d.unify(&Decimal {
                precision: 19,
                scale: 0,
            }),
            (
                Decimal {
                    precision: p1,
                    scale: s1,
                },
                Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => {
                let scale = (*s1).max(*s2);
                let whole = (i16::from(*p1) - i16::from(*s1)).max(i16::from(*p2) - i16::from(*s2));
                let precision = whole + i16::from(scale);
                if scale < 0 || precision > i16::from(MAX_DECIMAL_PRECISION) {
                    Float
                } else {
                    Decimal {
                        precision: precision as u8,
                        scale,
                    }
                }
            }
            (Timestamp { unit: u1, zone: z1 }, Timestamp { unit: u2, zone: z2 })
                if z1.is_some() == z2.is_some() =>
            {
                Timestamp {
                    unit: (*u1).max(*u2),
                    // Two zones show one instant two ways; UTC is neither's.
                    zone: if z1 == z2 {
                        z1.clone()
                    } else {
                        Some("UTC".into())
                    },
                }
            }
            _ => Text,
        }
    }
}

impl Value {
    /// An instant, in milliseconds since the epoch, as a manifest time.
    pub fn utc_millis(ms: i64) -> Value {
        Value::Timestamp {
            ticks: ms.saturating_mul(1000),
            unit: TimeUnit::Microsecond,
            zoned: true,
        }
    }

    /// The type of a non-null value (a timestamp's zone aside, which the
    /// column holds).
    pub fn ty(&self) -> Option<ColumnType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => ColumnType::Bool,
            Value::Int(_) => ColumnType::Int,
            Value::Float(_) => ColumnType::Float,
            Value::Text(_) => ColumnType::Text,
            Value::Timestamp { unit, zoned, .. } => ColumnType::Timestamp {
                unit: *unit,
                zone: zoned.then(|| "UTC".to_string()),
            },
            Value::Date(_) => ColumnType::Date,
            Value::Decimal { unscaled, scale } => ColumnType::Decimal {
                precision: digits(*unscaled)
                    .max(u8::try_from(*scale).unwrap_or(0))
                    .max(1),
                scale: *scale,
            },
        })
    }

    /// The value as a CSV field, written as DuckDB writes it: null is the
    /// empty field, a date `2026-12-06`, a decimal with all its scale's
    /// digits (`12.5000`), a timestamp `2026-12-06 20:17:00` (with `.123`…
    /// only as far as it has digits), an instant in UTC ending `+00`.
    pub fn to_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::Null => "".into(),
            Value::Bool(b) => if *b { "true" } else { "false" }.into(),
            Value::Int(i) => i.to_string().into(),
            Value::Float(f) => f.to_string().into(),
            Value::Text(s) => s.as_str().into(),
            Value::Timestamp { ticks, unit, zoned } => timestamp_text(*ticks, *unit, *zoned).into(),
            Value::Date(days) => date_text(*days).into(),
            Value::Decimal { unscaled, scale } => decimal_text(*unscaled, *scale).into(),
        }
    }

    /// The value in a column of type `ty` (which [`ColumnType::unify`] made
    /// wide enough for it): an integer in a float column becomes a float, a
    /// timestamp takes the column's unit, a decimal its scale, and anything
    /// in a text column becomes its text.
    pub fn coerce(&self, ty: &ColumnType) -> Value {
        match (self, ty) {
            (Value::Null, _) => Value::Null,
            (Value::Int(i), ColumnType::Float) => Value::Float(*i as f64),
            (Value::Decimal { unscaled, scale }, ColumnType::Float) => {
                Value::Float(*unscaled as f64 / 10f64.powi(i32::from(*scale)))
            }
            (Value::Int(i), ColumnType::Decimal { scale, .. }) => {
                rescale(i128::from(*i), 0, *scale).map_or(Value::Null, |unscaled| Value::Decimal {
                    unscaled,
                    scale: *scale,
                })
            }
            (Value::Decimal { unscaled, scale }, ColumnType::Decimal { scale: to, .. })
                if scale != to =>
            {
                rescale(*unscaled, *scale, *to).map_or(Value::Null, |unscaled| Value::Decimal {
                    unscaled,
                    scale: *to,
                })
            }
            (Value::Timestamp { ticks, unit, zoned }, ColumnType::Timestamp { unit: to, .. })
                if unit != to =>
            {
                unit.convert(*ticks, *to)
                    .map_or(Value::Null, |ticks| Value::Timestamp {
                        ticks,
                        unit: *to,
                        zoned: *zoned,
                    })
            }
            (v, ColumnType::Text | ColumnType::Category) if !matches!(v, Value::Text(_)) => {
                Value::Text(v.to_text().into_owned())
            }
            (v, _) => v.clone(),
        }
    }
}

/// Decimal digits of `n` (0 for 0).
fn digits(n: i128) -> u8 {
    let mut n = n.unsigned_abs();
    let mut d = 0;
    while n > 0 {
        n /= 10;
        d += 1;
    }
    d
}

/// `unscaled` at `from` digits of scale, at `to` digits: exact or `None`.
fn rescale(unscaled: i128, from: i8, to: i8) -> Option<i128> {
    let shift = i32::from(to) - i32::from(from);
    let factor = 10i128.checked_pow(shift.unsigned_abs())?;
    if shift >= 0 {
        unscaled.checked_mul(factor)
    } else if unscaled % factor == 0 {
        Some(unscaled / factor)
    } else {
        None
    }
}

/// `-12.5000` for unscaled -125000 at scale 4.
fn decimal_text(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        let zeros = "0".repeat(scale.unsigned_abs() as usize);
        return if unscaled == 0 {
            "0".into()
        } else {
            format!("{unscaled}{zeros}")
        };
    }
    let scale = scale as usize;
    let digits = unscaled.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (whole, frac) = digits.split_at(digits.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    format!("{sign}{whole}.{frac}")
}

/// `2026-12-06`.
fn date_text(days: i32) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt(days.saturating_add(UNIX_EPOCH_DAYS_FROM_CE))
        .map_or_else(|| days.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// Days from 0001-01-01 (day 1) to 1970-01-01.
pub const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// `2026-12-06 20:17:00.5` for a wall-clock reading, `2026-12-06
/// 20:17:00.5+00` for an instant (in UTC), as DuckDB writes them: the
/// fraction only as long as its digits need.
fn timestamp_text(ticks: i64, unit: TimeUnit, zoned: bool) -> String {
    let per = unit.per_second();
    let (secs, frac) = (ticks.div_euclid(per), ticks.rem_euclid(per));
    let nanos = (frac * (1_000_000_000 / per)) as u32;
    let Some(t) = chrono::DateTime::from_timestamp(secs, nanos) else {
        return ticks.to_string();
    };
    let mut s = t.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string();
    if nanos > 0 {
        let f = format!("{nanos:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    if zoned {
        s.push_str("+00");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unify_widens_numbers_and_time_and_falls_back_to_text() {
        use ColumnType::*;
        let ts = |unit, zone: Option<&str>| Timestamp {
            unit,
            zone: zone.map(String::from),
        };
        assert_eq!(Int.unify(&Int), Int);
        assert_eq!(Int.unify(&Float), Float);
        assert_eq!(Float.unify(&Int), Float);
        assert_eq!(Bool.unify(&Int), Text);
        assert_eq!(Text.unify(&Float), Text);
        assert_eq!(Date.unify(&Text), Text);
        assert_eq!(Category.unify(&Text), Text);
        assert_eq!(Category.unify(&Category), Category);
        assert_eq!(
            Decimal {
                precision: 18,
                scale: 4
            }
            .unify(&Decimal {
                precision: 10,
                scale: 6
            }),
            Decimal {
                precision: 20,
                scale: 6
            }
        );
        assert_eq!(
            Int.unify(&Decimal {
                precision: 18,
                scale: 4
            }),
            Decimal {
                precision: 23,
                scale: 4
            }
        );
        assert_eq!(
            Decimal {
                precision: 38,
                scale: 2
            }
            .unify(&Decimal {
                precision: 38,
                scale: 10
            }),
            Float
        );
        let (s, ns) = (TimeUnit::Second, TimeUnit::Nanosecond);
        assert_eq!(ts(s, None).unify(&ts(ns, None)), ts(ns, None));
        assert_eq!(
            ts(s, Some("UTC")).unify(&ts(s, Some("Europe/Paris"))),
            ts(s, Some("UTC"))
        );
        assert_eq!(ts(s, Some("UTC")).unify(&ts(s, None)), Text);
    }

    #[test]
    fn coerce_follows_unify() {
        assert_eq!(Value::Int(3).coerce(&ColumnType::Float), Value::Float(3.0));
        assert_eq!(
            Value::Bool(true).coerce(&ColumnType::Text),
            Value::Text("true".into())
        );
        assert_eq!(Value::Null.coerce(&ColumnType::Int), Value::Null);
        assert_eq!(Value::Int(7).coerce(&ColumnType::Int), Value::Int(7));
        assert_eq!(
            Value::Int(7).coerce(&ColumnType::Decimal {
                precision: 23,
                scale: 4
            }),
            Value::Decimal {
                unscaled: 70_000,
                scale: 4
            }
        );
        assert_eq!(
            Value::Decimal {
                unscaled: 15,
                scale: 1
            }
            .coerce(&ColumnType::Decimal {
                precision: 20,
                scale: 6
            }),
            Value::Decimal {
                unscaled: 1_500_000,
                scale: 6
            }
        );
        let second = Value::Timestamp {
            ticks: 2,
            unit: TimeUnit::Second,
            zoned: false,
        };
        assert_eq!(
            second.coerce(&ColumnType::Timestamp {
                unit: TimeUnit::Nanosecond,
                zone: None
            }),
            Value::Timestamp {
                ticks: 2_000_000_000,
                unit: TimeUnit::Nanosecond,
                zoned: false
            }
        );
    }

    /// What CSV and JSON Lines hold: the text DuckDB writes for each type.
    #[test]
    fn text_is_as_duckdb_writes_it() {
        let cases = [
            (
                Value::utc_millis(1_764_766_800_001),
                "2025-12-03 13:00:00.001+00",
            ),
            (
                Value::Timestamp {
                    ticks: 1_764_766_800_000_001,
                    unit: TimeUnit::Microsecond,
                    zoned: true,
                },
                "2025-12-03 13:00:00.000001+00",
            ),
            (
                Value::Timestamp {
                    ticks: 1_764_766_800,
                    unit: TimeUnit::Second,
                    zoned: false,
                },
                "2025-12-03 13:00:00",
            ),
            (
                Value::Timestamp {
                    ticks: 1_764_766_800_123_456_789,
                    unit: TimeUnit::Nanosecond,
                    zoned: false,
                },
                "2025-12-03 13:00:00.123456789",
            ),
            (
                Value::Timestamp {
                    ticks: -1,
                    unit: TimeUnit::Millisecond,
                    zoned: false,
                },
                "1969-12-31 23:59:59.999",
            ),
            (Value::Date(20_428), "2025-12-06"),
            (Value::Date(-1), "1969-12-31"),
            (
                Value::Decimal {
                    unscaled: 125_000,
                    scale: 4,
                },
                "12.5000",
            ),
            (
                Value::Decimal {
                    unscaled: -5,
                    scale: 4,
                },
                "-0.0005",
            ),
            (
                Value::Decimal {
                    unscaled: 0,
                    scale: 2,
                },
                "0.00",
            ),
            (
                Value::Decimal {
                    unscaled: 12,
                    scale: 0,
                },
                "12",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(v.to_text(), want, "{v:?}");
        }
    }

    #[test]
    fn time_units_convert_exactly_or_floor() {
        use TimeUnit::*;
        assert_eq!(Second.convert(3, Millisecond), Some(3000));
        assert_eq!(Nanosecond.convert(-1, Microsecond), Some(-1));
        assert_eq!(Nanosecond.convert(1_999, Microsecond), Some(1));
        assert_eq!(Second.convert(i64::MAX, Nanosecond), None);
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
            Value::Timestamp {
                ticks: 1,
                unit: TimeUnit::Millisecond,
                zoned: false,
            },
            Value::Date(-1),
            Value::Decimal {
                unscaled: 3,
                scale: 2,
            },
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
                vec![5, 2, 1, 0],
                vec![6, 1],
                vec![7, 6, 2],
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

    /// The format of a file named `name`: as [`TableFormat::from_name`]
    /// says, else CSV (what batchimg has always read and written).
    pub fn of_file(name: &str) -> TableFormat {
        TableFormat::from_name(name).unwrap_or(TableFormat::Csv)
    }

    /// The field delimiter: a tab for TSV, else `configured` (`--delimiter`).
    pub fn delimiter(self, configured: u8) -> u8 {
        match self {
            TableFormat::Tsv => b'\t',
            _ => configured,
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
