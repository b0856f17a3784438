//! `batchimg resume`: continue the run recorded in the state directory.

use std::sync::Arc;

use crate::cli::ResumeArgs;
use crate::error::{CommandError, ExitStatus, usage};
use crate::job::RetryFailed;
use crate::journal::Journal;

pub async fn resume(
    args: ResumeArgs,
    display: crate::logging::Display,
) -> Result<ExitStatus, CommandError> {
    let retry =
        RetryFailed::parse(args.retry_failed.as_deref()).map_err(|e| usage(anyhow::anyhow!(e)))?;
    let journal = Journal::open(&args.state.state_dir).map_err(super::journal_error)?;
    let run = journal.run_info().map_err(super::journal_error)?;
    let mut settings = run.settings.clone();
    crate::resolve::apply(&mut settings, &args.tuning).map_err(usage)?;
    if let Some(m) = &args.manifest {
        let loc = crate::location::Location::parse(m)
            .map_err(|e| usage(anyhow::anyhow!("--manifest: {e}")))?;
        settings.manifest = Some(loc);
    }
    crate::resolve::reload_http(&mut settings.http, &args.headers).map_err(usage)?;
    super::outputs::check_output_dirs(&settings)?;
    let reports = super::Reports::bind(&args.report)?;
    let store = super::connect_store(&settings).await?;
    tracing::info!(
        input = %settings.input,
        output = %settings.output,
        "resuming the run started {}",
        super::status::ago(run.created_ms)
    );
    super::session::execute(journal, store, Arc::new(settings), retry, display, reports).await
}
