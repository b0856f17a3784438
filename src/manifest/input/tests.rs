//! Reading every format: directories of parts, compression, JSON Lines
//! typing, and Parquet written by batchimg's own table writer.

use std::io::Write;
use std::path::Path;

use super::{Parts, list_parts, read_input};
use crate::manifest::TableWriter;
use crate::settings::InputShape;
use crate::table::{Column, ColumnType, TableFormat, Value};

fn keep(url_column: Option<&str>) -> InputShape {
    InputShape {
        url_column: url_column.map(String::from),
        keep_columns: true,
        ..InputShape::default()
    }
}

type Rows = Vec<(u64, String, Vec<Value>)>;

fn read(parts: impl Into<Parts>, shape: &InputShape) -> Result<(Rows, Vec<Column>), String> {
    let mut rows = read_input(parts, shape, None).map_err(|e| e.to_string())?;
    let got = rows
        .by_ref()
        .map(|r| r.map(|r| (r.row, r.url, r.kept)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((got, rows.kept_columns()))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_directory_is_read_in_name_order_without_markers_or_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("part-00001.csv"), b"url\nhttp://a/3\n");
    write(&d.join("part-00000.csv"), b"url\nhttp://a/1\nhttp://a/2\n");
    write(&d.join("dt=2/part-00000.csv"), b"url\nhttp://a/4\n");
    write(&d.join("_SUCCESS"), b"");
    write(&d.join(".part-00000.csv.crc"), b"junk");
    write(&d.join("part-00002.csv.crc"), b"junk");
    write(&d.join("_temporary/0/part-9.csv"), b"url\nhttp://never\n");
    write(&d.join("part-00003.csv"), b"");
    let parts = list_parts(d).unwrap();
    let names: Vec<String> = parts
        .files
        .iter()
        .map(|p| p.strip_prefix(d).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        ["dt=2/part-00000.csv", "part-00000.csv", "part-00001.csv"]
    );
    let (rows, _) = read(parts.clone(), &InputShape::default()).unwrap();
    let got: Vec<(u64, &str)> = rows.iter().map(|(r, u, _)| (*r, u.as_str())).collect();
    assert_eq!(
        got,
        [
            (0, "http://a/4"),
            (1, "http://a/1"),
            (2, "http://a/2"),
            (3, "http://a/3")
        ]
    );
    // Kept, the partition key is a typed column, null for the files outside it.
    let (rows, kept) = read(parts, &keep(None)).unwrap();
    assert_eq!(kept, [Column::new("dt", ColumnType::Int)]);
    let dt: Vec<&[Value]> = rows.iter().map(|(_, _, k)| k.as_slice()).collect();
    assert_eq!(dt[0], [Value::Int(2)]);
    assert!(
        dt[1..].iter().all(|k| k.iter().all(|v| *v == Value::Null)),
        "{dt:?}"
    );
    let empty = tempfile::tempdir().unwrap();
    write(&empty.path().join("_SUCCESS"), b"");
    let err = list_parts(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no part files"), "{err}");
}

#[test]
fn gzip_and_zstd_are_told_by_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"url\nhttp://a/1\nhttp://a/2\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text).unwrap();
    let gz_path = dir.path().join("in.csv.gz");
    write(&gz_path, &gz.finish().unwrap());
    let zst_path = dir.path().join("in.csv.zst");
    write(&zst_path, &zstd::encode_all(&text[..], 3).unwrap());
    for path in [gz_path, zst_path] {
        let (rows, _) = read(vec![path.clone()], &InputShape::default()).unwrap();
        assert_eq!(rows.len(), 2, "{}", path.display());
        assert_eq!(rows[1].1, "http://a/2");
    }
}

#[test]
fn json_lines_type_their_columns_across_all_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.jsonl");
    write(
        &path,
        br#"{"id": 1, "url": " http://a/1 ", "score": 1, "note": null}

{"url": "http://a/2", "id": 2, "score": 2.5, "note": "x", "tags": [1, "b"]}
{"id": 3, "score": 3, "note": true}
"#,
    );
    let (rows, columns) = read(vec![path.clone()], &keep(None)).unwrap();
    assert_eq!(
        columns,
        [
            Column::new("id", ColumnType::Int),
            Column::new("score", ColumnType::Float),
            Column::new("note", ColumnType::Text),
            Column::new("tags", ColumnType::Text),
        ]
    );
    assert_eq!(rows[0].1, "http://a/1");
    assert_eq!(rows[1].2[3], Value::Text(r#"[1,"b"]"#.into()));
    // A row without its URL fails on its own later, with an empty URL.
    assert_eq!(rows[2].1, "");
    assert_eq!(rows[2].2[2], Value::Bool(true));

    let bad = dir.path().join("bad.jsonl");
    write(
        &bad,
        b"{\"url\": \"http://a/1\"}\n{\"url\": \"http://a/2\"\n",
    );
    let err = read(vec![bad.clone()], &InputShape::default()).unwrap_err();
    assert!(
        err.contains("line 2") && err.contains("not a JSON object"),
        "{err}"
    );
    write(&bad, b"[{\"url\": \"http://a/1\"}]\n");
    let err = read(vec![bad.clone()], &InputShape::default()).unwrap_err();
    assert!(err.contains("a JSON array"), "{err}");
    write(&bad, b"{\"link\": \"http://a/1\"}\n{\"link\": null}\n");
    let err = read(vec![bad.clone()], &InputShape::default()).unwrap_err();
    assert!(
        err.contains("no object has the key \"url\"") && err.contains("--url-column"),
        "{err}"
    );
}

/// As Spark and pandas write JSON Lines: a byte-order mark, the URL key left
/// out of the first object, null URLs; each such row is its own row.
#[test]
fn jsonl_with_a_bom_and_missing_or_null_urls_reads_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spark.jsonl");
    write(
        &path,
        "\u{feff}{\"id\": 1}\n{\"url\": \"http://a/2\", \"id\": 2}\n{\"url\": null, \"id\": 3}\n{\"id\": 4, \"url\": \" \"}\n"
            .as_bytes(),
    );
    let (rows, kept) = read(vec![path], &keep(None)).unwrap();
    assert_eq!(kept, [Column::new("id", ColumnType::Int)]);
    let got: Vec<(u64, &str, &[Value])> = rows
        .iter()
        .map(|(r, u, k)| (*r, u.as_str(), k.as_slice()))
        .collect();
    assert_eq!(
        got,
        [
            (0, "", &[Value::Int(1)][..]),
            (1, "http://a/2", &[Value::Int(2)][..]),
            (2, "", &[Value::Int(3)][..]),
            (3, "", &[Value::Int(4)][..]),
        ]
    );
}

/// Parquet as batchimg writes it reads back with the same types (each
/// timestamp unit, naive and zoned, dates and decimals); the failed file is
/// an input for the same flags.
#[test]
fn parquet_written_by_the_table_writer_reads_back_typed() {
    use crate::table::TimeUnit::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let ts = |unit, zone: Option<&str>| ColumnType::Timestamp {
        unit,
        zone: zone.map(String::from),
    };
    let columns = vec![
        Column::new("link", ColumnType::Text),
        Column::new("id", ColumnType::Int),
        Column::new("ok", ColumnType::Bool),
        Column::new("at", ColumnType::utc_micros()),
        Column::new("s", ts(Second, None)),
        Column::new("ms", ts(Millisecond, Some("America/New_York"))),
        Column::new("ns", ts(Nanosecond, None)),
        Column::new("day", ColumnType::Date),
        Column::new(
            "price",
            ColumnType::Decimal {
                precision: 18,
                scale: 4,
            },
        ),
        Column::new("kind", ColumnType::Category),
    ];
    let stamp = |ticks, unit, zoned| Value::Timestamp { ticks, unit, zoned };
    let typed = |i: i64| {
        vec![
            Value::utc_millis(i),
            stamp(i, Second, false),
            stamp(-i, Millisecond, true),
            stamp(i * 1_000_000_007, Nanosecond, false),
            Value::Date(i as i32 - 10_000),
            Value::Decimal {
                unscaled: i as i128 * -12_345,
                scale: 4,
            },
            Value::Text(["cat", "dog", "owl"][i as usize % 3].into()),
        ]
    };
    let mut file = std::fs::File::create(&path).unwrap();
    let mut w = TableWriter::new(&mut file, TableFormat::Parquet, b',', columns.clone()).unwrap();
    for i in 0..20_000i64 {
        w.row(
            vec![
                Value::Text(format!("http://a/{i}")),
                Value::Int(i * 1_000_000_007),
                if i % 3 == 0 {
                    Value::Null
                } else {
                    Value::Bool(i % 2 == 0)
                },
            ]
            .into_iter()
            .chain(typed(i))
            .collect(),
        )
        .unwrap();
    }
    w.finish().unwrap();
    drop(file);
    let (rows, kept) = read(vec![path.clone()], &keep(Some("link"))).unwrap();
    // Parquet has no seconds: they are written, and read back, as milliseconds.
    let mut want = columns[1..].to_vec();
    want[3].ty = ts(Millisecond, None);
    assert_eq!(kept, want);
    assert_eq!(rows.len(), 20_000);
    let mut last: Vec<Value> = [Value::Int(19_999 * 1_000_000_007), Value::Bool(false)]
        .into_iter()
        .chain(typed(19_999))
        .collect();
    last[3] = stamp(19_999_000, Millisecond, false);
    assert_eq!(rows[19_999].2, last);
    assert_eq!(rows[3].2[1], Value::Null);
    // Without --url-column, a Parquet file needs a column `url`.
    let err = read(vec![path], &InputShape::default()).unwrap_err();
    assert!(err.contains("no column named \"url\""), "{err}");
}

/// `--key-template` reads a Parquet column by name, typed or not, and a
/// column it reads that is not there is an error naming it.
#[test]
fn key_templates_read_parquet_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let columns = vec![
        Column::new("url", ColumnType::Text),
        Column::new("id", ColumnType::Int),
    ];
    let mut file = std::fs::File::create(&path).unwrap();
    let mut w = TableWriter::new(&mut file, TableFormat::Parquet, b',', columns).unwrap();
    w.row(vec![Value::Text("http://a/1.jpg".into()), Value::Int(42)])
        .unwrap();
    w.finish().unwrap();
    drop(file);
    let template = crate::keys::KeyTemplate::parse("{prefix}{column:id}.{ext}").unwrap();
    let rows: Vec<_> = read_input(
        vec![path.clone()],
        &InputShape::default(),
        Some((&template, "p/")),
    )
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap();
    let name = rows[0].name.clone().unwrap().unwrap();
    assert_eq!(name.key("jpg"), "p/42.jpg");
    let other = crate::keys::KeyTemplate::parse("{column:sku}.{ext}").unwrap();
    let err = read_input(vec![path], &InputShape::default(), Some((&other, "")))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("\"sku\""), "{err}");
}
