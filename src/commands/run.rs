//! `batchimg run`: validate the input, record it in a new journal, process it.

use std::sync::Arc;

use crate::cli::RunArgs;
use crate::error::{CommandError, ExitStatus, fatal, usage};
use crate::journal::{CreateError, Journal, RunInfo, now_ms};
use crate::location::Location;
use crate::manifest;
use crate::settings::Settings;

pub async fn run(args: RunArgs) -> Result<ExitStatus, CommandError> {
    let settings = Settings::for_run(&args).await.map_err(usage)?;
    super::check_output_dirs(&settings)?;
    let Location::Local(input) = &settings.input else {
        return Err(usage(anyhow::anyhow!("s3:// inputs are not supported yet")));
    };
    let input = input.clone();
    // The header is checked before anything else, the rows while they are recorded.
    let rows = manifest::read_input(&input).map_err(usage)?;
    let store = super::connect_store(&settings).await?;

    let input_hash = {
        let path = input.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let mut hasher = blake3::Hasher::new();
            hasher.update_reader(std::fs::File::open(path)?)?;
            Ok(hasher.finalize().to_hex().to_string())
        })
        .await
        .map_err(|e| fatal(anyhow::anyhow!(e)))?
        .map_err(|e| usage(anyhow::anyhow!("cannot read {}: {e}", input.display())))?
    };
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
    };
    let state_dir = args.state.state_dir.clone();
    let fresh = args.fresh;
    let started = std::time::Instant::now();
    let journal = tokio::task::spawn_blocking(move || {
        Journal::create(
            &state_dir,
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
        ms = started.elapsed().as_millis() as u64,
        "input recorded in the journal"
    );
    if args.dry_run {
        tracing::info!("dry run: nothing downloaded; `batchimg resume` processes the rows");
        return Ok(ExitStatus::Success);
    }
    super::execute(journal, store, Arc::new(settings), false).await
}
