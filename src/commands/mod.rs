//! One module per subcommand; `session` is the part `run` and `resume`
//! share, `outputs` writes files whole, `summary` is a session's figures.
//! What every subcommand needs (the store checked, journal errors sorted into
//! exit codes, the reports bound) is here.

pub mod completions;
pub mod merge;
mod outputs;
pub mod resume;
pub mod run;
mod session;
pub mod status;
mod summary;

use crate::error::{CommandError, fatal, usage};
use crate::journal::JournalError;
use crate::settings::Settings;
use crate::store::StoreErrorKind;
use crate::store::s3::S3Store;

/// Connects to the bucket and checks it before any work, so a wrong name,
/// region or credentials fail at once with exit 2.
async fn connect_store(settings: &Settings) -> Result<S3Store, CommandError> {
    let store = S3Store::connect(&settings.store, settings.retry).await;
    store
        .check_credentials()
        .await
        .map_err(|e| usage(anyhow::anyhow!(e)))?;
    match store.check_bucket().await {
        Ok(()) => Ok(store),
        Err(e) => {
            let detail = crate::error::chain(&e);
            let bucket = &settings.store.bucket;
            Err(match e.kind {
                StoreErrorKind::NoSuchBucket => usage(anyhow::anyhow!(
                    "bucket {bucket:?} does not exist ({detail})"
                )),
                StoreErrorKind::PermissionDenied | StoreErrorKind::BadCredentials => {
                    usage(anyhow::anyhow!(
                        "access to bucket {bucket:?} denied: check the AWS credentials; batchimg needs \
                     s3:ListBucket, s3:GetObject and s3:PutObject ({detail})"
                    ))
                }
                StoreErrorKind::Rejected => usage(anyhow::anyhow!(
                    "bucket {bucket:?} rejected the request ({detail})"
                )),
                _ => fatal(anyhow::anyhow!(
                    "cannot reach the object store for bucket {bucket:?} ({detail})"
                )),
            })
        }
    }
}

fn journal_error(e: JournalError) -> CommandError {
    match e {
        JournalError::Missing(_)
        | JournalError::Busy(_)
        | JournalError::Unfinished(_)
        | JournalError::Incompatible { .. } => usage(e),
        e => fatal(e),
    }
}

/// What a session reports besides its log: the metrics endpoint, bound
/// before any work so that a port in use is a usage error (exit 2) and not a
/// run without metrics, and the file the final figures go to.
pub struct Reports {
    metrics: Option<std::net::TcpListener>,
    summary_json: Option<std::path::PathBuf>,
}

impl Reports {
    pub fn bind(args: &crate::cli::ReportArgs) -> Result<Reports, CommandError> {
        let metrics = match args.metrics_addr {
            None => None,
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|e| usage(anyhow::anyhow!("--metrics-addr {addr}: {e}")))?;
                Some(listener)
            }
        };
        if let Some(path) = &args.summary_json {
            let dir = outputs::dir_of(path);
            if !dir.is_dir() {
                return Err(usage(anyhow::anyhow!(
                    "--summary-json {}: the directory {} does not exist",
                    path.display(),
                    dir.display()
                )));
            }
        }
        Ok(Reports {
            metrics,
            summary_json: args.summary_json.clone(),
        })
    }
}
