//! Exports come back as they went in: files written by Polars, DuckDB and
//! pyarrow, with every timestamp unit naive and zoned, dates, decimals,
//! dictionary columns and Hive partitions, read back by DuckDB and Polars
//! with the same types and values; JSON Lines as Spark and pandas write it.

use crate::support::warehouse::python;
use crate::support::{Env, Reply, images};

/// Serves `n` images; the row `missing` is a 404. Returns the URLs.
fn serve(env: &Env, n: usize, missing: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let path = format!("/f/{i}.jpg");
            if i == missing {
                env.http.url(&path)
            } else {
                env.http
                    .route(&path, Reply::jpeg(images::jpeg(16, 12, 900 + i as u64)))
            }
        })
        .collect()
}

/// Python that compares, with DuckDB and with Polars, every kept column of
/// `input` (read as `read` says) with the same column of each file batchimg
/// wrote: the type, and the values row by row (joined on `id`). Prints one
/// line per mismatch, then `checked N columns`.
const COMPARE: &str = r#"
duckdb.sql("SET TimeZone='UTC'")
def texts(cols, source):
    return duckdb.sql(f"select {', '.join(c + '::VARCHAR' for c in cols)} from {source}").fetchall()
def compare(input, read_duck, read_pl, outputs):
    bad = []
    src = duckdb.sql(f"select * exclude (url) from {read_duck}")
    cols = src.columns
    want_types = dict(zip(cols, map(str, src.types)))
    want_rows = {r[cols.index('id')]: r for r in texts(cols, read_duck)}
    psrc = read_pl().drop('url')
    for out in outputs:
        rel = duckdb.sql(f"select {', '.join(cols)} from '{out}'")
        got_types = dict(zip(cols, map(str, rel.types)))
        if got_types != want_types:
            bad.append(f"duckdb types of {out}: {got_types} != {want_types}")
        for r in texts(cols, f"'{out}'"):
            if r != want_rows[r[cols.index('id')]]:
                bad.append(f"duckdb values in {out}: {r} != {want_rows[r[cols.index('id')]]}")
        pout = pl.read_parquet(out).select(psrc.columns)
        if pout.schema != psrc.schema:
            bad.append(f"polars schema of {out}: {pout.schema} != {psrc.schema}")
        joined = psrc.join(pout.select('id'), on='id', how='semi').sort('id')
        if not pout.sort('id').equals(joined):
            bad.append(f"polars values of {out} differ")
    for b in bad:
        print(b)
    print(f"checked {len(cols)} columns")
    return want_types
"#;

#[tokio::test(flavor = "multi_thread")]
async fn exports_by_polars_duckdb_and_pyarrow_keep_their_types_and_values() {
    let env = Env::new().await;
    let dir = env.dir.path();
    let urls = serve(&env, 6, 4);
    // Epoch nanoseconds with digits at every unit, an hour and a bit apart.
    let make = format!(
        r#"
import decimal
urls = {urls:?}
n = len(urls)
ns = [1710074096789123456 + i * 3_600_000_000_123 for i in range(n)]
ints = pa.array(ns, pa.int64())
def stamp(unit, tz=None, div=1):
    return pa.array([v // div for v in ns], pa.int64()).cast(pa.timestamp(unit, tz=tz))
t = pa.table({{
    'url': pa.array(urls).dictionary_encode(),
    'id': pa.array(range(n), pa.int64()),
    'ts_s': stamp('s', div=10**9),
    'ts_ms': stamp('ms', div=10**6),
    'ts_us': stamp('us', div=10**3),
    'ts_ns': stamp('ns'),
    'tz_ms_ny': stamp('ms', 'America/New_York', 10**6),
    'tz_us_utc': stamp('us', 'UTC', 10**3),
    'tz_ns_ny': stamp('ns', 'America/New_York'),
    'day': pa.array([v // 86_400_000_000_000 for v in ns], pa.int32()).cast(pa.date32()),
    'price': pa.array([decimal.Decimal(i * 1000 - 2500) / 10000 for i in range(n)], pa.decimal128(18, 4)),
    'kind': pa.array(['cat', 'dog', 'owl'] * (n // 3)).dictionary_encode(),
}})
pq.write_table(t, 'pyarrow.parquet')
df = pl.from_arrow(t).with_columns(pl.col('url').cast(pl.Categorical), pl.col('kind').cast(pl.Categorical))
df.write_parquet('polars.parquet')
duckdb.sql("SET TimeZone='UTC'")
duckdb.sql('''COPY (SELECT url::VARCHAR url, id, ts_s::TIMESTAMP_S ts_s, ts_ms::TIMESTAMP_MS ts_ms,
    ts_us, ts_ns, tz_us_utc::TIMESTAMPTZ tz, day, price, kind::VARCHAR kind FROM t)
    TO 'duckdb.parquet' (FORMAT parquet)''')
"#
    );
    python(dir, &make);

    for source in ["pyarrow", "polars", "duckdb"] {
        let out = env
            .run(&[
                "run",
                "--input",
                &format!("{source}.parquet"),
                "--output",
                &format!("out-{source}.parquet"),
                "--output-failed",
                &format!("failed-{source}.parquet"),
                "--manifest",
                &format!("manifest-{source}.parquet"),
                "--keep-columns",
                "--state-dir",
                &format!("state-{source}"),
            ])
            .await;
        assert_eq!(out.code, 1, "{source}: {out:?}");
        let report = python(
            dir,
            &format!(
                "{COMPARE}\ntypes = compare('{source}.parquet', \"'{source}.parquet'\", \
                 lambda: pl.read_parquet('{source}.parquet'), \
                 ['out-{source}.parquet', 'failed-{source}.parquet', 'manifest-{source}.parquet'])\n\
                 print(json.dumps(types, sort_keys=True))"
            ),
        );
        let mut lines: Vec<&str> = report.lines().collect();
        let types: serde_json::Value = serde_json::from_str(lines.pop().unwrap()).unwrap();
        let columns = if source == "duckdb" { 9 } else { 11 };
        assert_eq!(lines, [format!("checked {columns} columns")], "{source}");
        // What the exports hold, so that the comparison is not of two texts.
        assert_eq!(types["ts_ns"], "TIMESTAMP_NS", "{source}");
        assert_eq!(types["ts_ms"], "TIMESTAMP", "{source}");
        assert_eq!(types["day"], "DATE", "{source}");
        assert_eq!(types["price"], "DECIMAL(18,4)", "{source}");
        assert_eq!(types["kind"], "VARCHAR", "{source}");
        let zoned = if source == "duckdb" { "tz" } else { "tz_ms_ny" };
        assert_eq!(types[zoned], "TIMESTAMP WITH TIME ZONE", "{source}");
    }
    // Polars sees the zone, the unit and the category, not only DuckDB.
    let schema = python(
        dir,
        "s = pl.read_parquet('out-polars.parquet').schema\n\
         print(s['tz_ns_ny'], s['ts_ms'], s['kind'], s['price'], sep='|')",
    );
    assert_eq!(
        schema.trim(),
        "Datetime(time_unit='ns', time_zone='America/New_York')|Datetime(time_unit='ms', time_zone=None)|Categorical|Decimal(precision=18, scale=4)"
    );
    // CSV and JSON Lines hold the text DuckDB writes for the same values.
    let out = env
        .run(&[
            "run",
            "--input",
            "duckdb.parquet",
            "--output",
            "out.csv",
            "--output-failed",
            "failed.jsonl",
            "--keep-columns",
            "--state-dir",
            "state-text",
        ])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let same = python(
        dir,
        "duckdb.sql(\"SET TimeZone='UTC'\")\n\
         duckdb.sql(\"COPY (SELECT * EXCLUDE (url) FROM 'duckdb.parquet' WHERE id = 4) TO 'want.jsonl'\")\n\
         duckdb.sql(\"COPY (SELECT * EXCLUDE (url) FROM 'duckdb.parquet' WHERE id = 0) TO 'want.csv'\")\n\
         import re\n\
         got = re.sub(r'^[{]\"url\":(\"[^\"]*\"|null),', '{', open('failed.jsonl').read().strip())\n\
         print(got == open('want.jsonl').read().strip() or (got, open('want.jsonl').read()))\n\
         import csv\n\
         row = next(r for r in csv.DictReader(open('out.csv')) if r['id'] == '0')\n\
         wrow = next(csv.DictReader(open('want.csv')))\n\
         print({k: row[k] for k in wrow} == wrow)",
    );
    assert_eq!(same.trim(), "True\nTrue", "{same}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hive_partitioned_directory_gives_its_keys_as_typed_columns() {
    let env = Env::new().await;
    let dir = env.dir.path();
    let urls = serve(&env, 6, 5);
    python(
        dir,
        &format!(
            "urls = {urls:?}\n\
             t = pa.table({{'url': urls, 'id': list(range(len(urls))), \
               'dt': ['2024-01-0' + str(1 + i % 2) for i in range(len(urls))], \
               'country': ['US', 'New Zealand', 'DE'] * 2}})\n\
             duckdb.sql(\"COPY (SELECT url, id, dt::DATE dt, country FROM t) TO 'parts' \
               (FORMAT parquet, PARTITION_BY (dt, country))\")"
        ),
    );
    let out = env
        .run(&[
            "run",
            "--input",
            "parts",
            "--output",
            "out.parquet",
            "--output-failed",
            "failed.parquet",
            "--manifest",
            "manifest.parquet",
            "--keep-columns",
            "--key-template",
            "{column:country}/{column:dt}/{column:id}.{ext}",
        ])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let report = python(
        dir,
        &format!(
            "{COMPARE}\ntypes = compare('parts', \"read_parquet('parts/**/*.parquet', hive_partitioning=true)\", \
             lambda: pl.read_parquet('parts/**/*.parquet', hive_partitioning=True), \
             ['out.parquet', 'failed.parquet', 'manifest.parquet'])\n\
             print(types['dt'], types['country'], sep='|')"
        ),
    );
    assert_eq!(report.trim(), "checked 3 columns\nDATE|VARCHAR", "{report}");
    let mut keys = env.s3.image_puts();
    keys.sort();
    assert_eq!(
        keys,
        [
            "DE/2024-01-01/2.jpg",
            "New Zealand/2024-01-01/4.jpg",
            "New Zealand/2024-01-02/1.jpg",
            "US/2024-01-01/0.jpg",
            "US/2024-01-02/3.jpg",
        ]
    );
}

/// As Spark and pandas write JSON Lines: a byte-order mark, the URL key left
/// out of the first object, and null URLs. Each such row fails on its own,
/// with its own log line, and comes back with a null URL; the summary's
/// sentence and fields say the same.
#[tokio::test(flavor = "multi_thread")]
async fn json_lines_with_a_bom_and_null_urls_fail_each_row_on_its_own() {
    let env = Env::new().await;
    let urls = serve(&env, 2, usize::MAX);
    let lines = [
        r#"{"id": 0}"#.to_string(),
        format!(r#"{{"url": "{}", "id": 1}}"#, urls[0]),
        r#"{"url": null, "id": 2}"#.to_string(),
        format!(r#"{{"id": 3, "url": "{}"}}"#, urls[1]),
        r#"{"url": null, "id": 4}"#.to_string(),
        r#"{"id": 5, "url": null}"#.to_string(),
    ];
    std::fs::write(
        env.path("rows.jsonl"),
        format!("\u{feff}{}\n", lines.join("\n")),
    )
    .unwrap();
    let out = env
        .run(&[
            "run",
            "--input",
            "rows.jsonl",
            "--output",
            "out.jsonl",
            "--output-failed",
            "failed.jsonl",
            "--manifest",
            "manifest.jsonl",
            "--keep-columns",
            "--summary-json",
            "summary.json",
        ])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let failed = std::fs::read_to_string(env.path("failed.jsonl")).unwrap();
    assert_eq!(
        failed,
        "{\"url\":null,\"id\":0}\n{\"url\":null,\"id\":2}\n{\"url\":null,\"id\":4}\n{\"url\":null,\"id\":5}\n"
    );
    let manifest = crate::support::warehouse::duckdb(
        env.dir.path(),
        "select id, url is null, state, reason from read_json('manifest.jsonl') order by row",
    );
    assert_eq!(
        manifest,
        [
            "0|True|failed|invalid-url",
            "1|False|uploaded|",
            "2|True|failed|invalid-url",
            "3|False|uploaded|",
            "4|True|failed|invalid-url",
            "5|True|failed|invalid-url",
        ]
    );
    let logged = out
        .stderr
        .lines()
        .filter(|l| l.contains(" failed row=") && l.contains("reason=\"invalid-url\""))
        .count();
    assert_eq!(logged, 4, "{}", out.stderr);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["rows"], 6);
    assert_eq!(summary["succeeded_rows"], 2);
    assert_eq!(summary["failed_rows"], 4);
    assert_eq!(summary["failed"], 4);
    assert_eq!(summary["failed_by_reason"]["invalid-url"], 4);
    assert!(
        out.stderr.contains(
            "summary: 6 rows: 2 succeeded (2 uploaded, 0 already in the bucket), 4 failed (invalid-url: 4), 0 unfinished"
        ),
        "{}",
        out.stderr
    );
}
