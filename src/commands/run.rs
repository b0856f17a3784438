//! `batchimg run`: validate the input, record it in a new journal, process it.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::RunArgs;
use crate::error::{CommandError, ExitStatus, fatal, usage};
use crate::job::{RetryFailed, now_ms};
use crate::journal::{CreateError, Journal, RunInfo};
use crate::location::Location;
use crate::manifest;
use crate::settings::state_dir;
use crate::store::s3::S3Store;

pub async fn run(
    args: RunArgs,
    display: crate::logging::Display,
) -> Result<ExitStatus, CommandError> {
    let settings = crate::resolve::for_run(&args).await.map_err(usage)?;
    super::outputs::check_output_dirs(&settings)?;
    let reports = super::Reports::bind(&args.report)?;
    let state_dir = state_dir(&args.state.state_dir, settings.shard);

    // A local input's header is checked before anything else; an S3 input
    // needs the store first. The rows are checked while they are recorded.
    let (store, input, _downloaded) = match &settings.input {
        Location::Local(path) => {
            manifest::read_input(path, &settings.csv).map_err(usage)?;
            (super::connect_store(&settings).await?, path.clone(), None)
        }
        Location::S3 { bucket, key } => {
            let store = super::connect_store(&settings).await?;
            let file = download_input(&store, bucket, key).await?;
            (store, file.path().to_path_buf(), Some(file))
        }
    };
    let mut rows = manifest::read_input(&input, &settings.csv).map_err(usage)?;
    if let Some(template) = &settings.key_template {
        rows.name_rows(template, &settings.store.prefix)
            .map_err(usage)?;
    }
    let kept_header = rows.kept_header().to_vec();

    let input_hash = hash_input(input.clone()).await?;
    let now = now_ms();
    let info = RunInfo {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        settings: settings.clone(),
        input_hash,
        rows: 0,
        duplicates: 0,
        created_ms: now,
        finished_ms: None,
        session_started_ms: now,
        session_done_at_start: 0,
        kept_header,
    };
    let fresh = args.fresh;
    let shard = settings.shard;
    let started = std::time::Instant::now();
    let dir = state_dir.clone();
    let journal = tokio::task::spawn_blocking(move || {
        let rows = rows.filter(move |r| match (r, shard) {
            (Ok(row), Some(s)) => s.contains(&row.url),
            _ => true,
        });
        Journal::create(
            &dir,
            info,
            fresh,
            rows.map(|r| r.map_err(anyhow::Error::from)),
        )
    })
    .await
    .map_err(|e| fatal(anyhow::anyhow!(e)))?
    .map_err(|e| match e {
        CreateError::Input(e) => usage(e),
        CreateError::Journal(e) => super::journal_error(e),
    })?;
    let info = journal.run_info().map_err(super::journal_error)?;
    tracing::info!(
        rows = info.rows,
        duplicates = info.duplicates,
        shard = settings.shard.map_or_else(
            || "none".to_string(),
            |s| format!("{}/{}", s.index, s.count)
        ),
        ms = started.elapsed().as_millis() as u64,
        "input recorded in the journal"
    );
    if args.dry_run {
        tracing::info!("dry run: nothing downloaded; `batchimg resume` processes the rows");
        return Ok(ExitStatus::Success);
    }
    super::session::execute(
        journal,
        store,
        Arc::new(settings),
        RetryFailed::No,
        display,
        reports,
    )
    .await
}

/// Copies an `s3://` input to a temporary file.
pub async fn download_input(
    store: &S3Store,
    bucket: &str,
    key: &str,
) -> Result<tempfile::NamedTempFile, CommandError> {
    let body = store.get_from(bucket, key).await.map_err(|e| {
        usage(anyhow::anyhow!(
            "cannot read s3://{bucket}/{key}: {}",
            crate::error::chain(&e)
        ))
    })?;
    let body = body.ok_or_else(|| usage(anyhow::anyhow!("s3://{bucket}/{key} does not exist")))?;
    let file = tempfile::Builder::new()
        .prefix("batchimg-input-")
        .suffix(".csv")
        .tempfile()
        .map_err(fatal)?;
    std::fs::write(file.path(), &body).map_err(fatal)?;
    Ok(file)
}

async fn hash_input(path: PathBuf) -> Result<String, CommandError> {
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(path)?)?;
        Ok(hasher.finalize().to_hex().to_string())
    })
    .await
    .map_err(|e| fatal(anyhow::anyhow!(e)))?
    .map_err(|e| usage(anyhow::anyhow!("cannot read {shown}: {e}")))
}
