//! DuckDB, Polars and pyarrow (installed by `scripts/setup-warehouse.sh`): tools
//! independent of batchimg that write the exports it reads and read back the
//! files it writes.

use std::path::Path;

/// Runs a Python script with duckdb, polars (`pl`) and pyarrow importable, in `dir`;
/// returns its stdout.
pub fn python(dir: &Path, script: &str) -> String {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/warehouse/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (or scripts/setup-warehouse.sh)",
        python.display()
    );
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(format!(
            "import duckdb, polars as pl, pyarrow as pa, pyarrow.parquet as pq, json\n{script}"
        ))
        .current_dir(dir)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The rows of a DuckDB query, each as its values' text joined by `|`.
pub fn duckdb(dir: &Path, sql: &str) -> Vec<String> {
    let script = format!(
        "for r in duckdb.sql({sql:?}).fetchall():\n    print('|'.join('' if v is None else str(v) for v in r))"
    );
    python(dir, &script).lines().map(String::from).collect()
}

/// One value of a DuckDB query.
pub fn duckdb_one(dir: &Path, sql: &str) -> String {
    let rows = duckdb(dir, sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows.into_iter().next().unwrap()
}
