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

    // A local input's columns are checked before anything else, by opening
    // it for the rows that are then recorded; an S3 input needs the store
    // first. The rows are checked while they are recorded.
    let naming = settings
        .key_template
        .as_ref()
        .map(|t| (t, settings.store.prefix.as_str()));
    let (store, input, rows) = match &settings.input {
        Location::Local(path) => {
            let parts = manifest::list_parts(path).map_err(usage)?;
            let rows =
                manifest::read_input(parts.clone(), &settings.shape, naming).map_err(usage)?;
            let store = super::connect_store(&settings).await?;
            (store, Input::local(parts), rows)
        }
        Location::S3 { bucket, key } => {
            let store = super::connect_store(&settings).await?;
            let input = download_input(&store, bucket, key).await?;
            let rows = manifest::read_input(input.parts.clone(), &settings.shape, naming)
                .map_err(|e| usage(input.shown(e)))?;
            (store, input, rows)
        }
    };
    let kept_columns = rows.kept_columns();

    let input_hash = hash_input(input.parts.files.clone()).await?;
    let mut info = RunInfo::new(settings.clone(), input_hash, now_ms());
    info.kept_columns = kept_columns;
    let fresh = args.fresh;
    let shard = settings.shard;
    let started = std::time::Instant::now();
    let dir = state_dir.clone();
    let journal = tokio::task::spawn_blocking(move || {
        // The kept columns' types are final only once every row is read.
        let rows = std::cell::RefCell::new(rows);
        let each = std::iter::from_fn(|| rows.borrow_mut().next());
        let each = each.filter(move |r| match (r, shard) {
            (Ok(row), Some(s)) => s.contains(&row.url),
            _ => true,
        });
        let created = Journal::create(
            &dir,
            info,
            fresh,
            each.map(|r| r.map_err(|e| input.shown(e))),
            |run| run.kept_columns = rows.borrow().kept_columns(),
        );
        // The copies of an s3:// input go once every row is read.
        drop(input);
        created
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

/// The input's part files on this machine, and what they are called in
/// errors when they are copies of `s3://` objects.
pub struct Input {
    pub parts: manifest::Parts,
    /// (the copies' directory, the `s3://bucket` it stands for).
    shown: Option<(String, String)>,
    /// Holds the copies until the input is read.
    _copies: Option<tempfile::TempDir>,
}

impl Input {
    fn local(parts: manifest::Parts) -> Input {
        Input {
            parts,
            shown: None,
            _copies: None,
        }
    }

    /// An error about a copy, naming the `s3://` object instead.
    fn shown(&self, e: manifest::InputError) -> anyhow::Error {
        match &self.shown {
            Some((tmp, s3)) => anyhow::anyhow!(e.to_string().replace(tmp.as_str(), s3)),
            None => e.into(),
        }
    }
}

/// Copies an `s3://` input (an object, or every part file under a prefix)
/// to a temporary directory, one object at a time and streamed to disk, so
/// the input's size never meets the memory budget.
pub async fn download_input(
    store: &S3Store,
    bucket: &str,
    key: &str,
) -> Result<Input, CommandError> {
    let shown = |k: &str| format!("s3://{bucket}/{k}");
    let err = |k: &str, e: crate::store::StoreError| {
        usage(anyhow::anyhow!(
            "cannot read {}: {}",
            shown(k),
            crate::error::chain(&e)
        ))
    };
    let dir = tempfile::Builder::new()
        .prefix("batchimg-input-")
        .tempdir()
        .map_err(fatal)?;
    let copy = |k: &str| dir.path().join(k);
    let mut parts = Vec::new();
    if !key.is_empty() && !key.ends_with('/') {
        let path = copy(key);
        std::fs::create_dir_all(path.parent().expect("a file in the directory")).map_err(fatal)?;
        if store
            .download_to(bucket, key, &path)
            .await
            .map_err(|e| err(key, e))?
        {
            parts.push(path);
        }
    }
    if parts.is_empty() {
        let prefix = if key.is_empty() || key.ends_with('/') {
            key.to_string()
        } else {
            format!("{key}/")
        };
        let listed = store
            .list_from(bucket, &prefix)
            .await
            .map_err(|e| err(&prefix, e))?;
        for (k, size) in listed {
            let rel = &k[prefix.len()..];
            if size == 0 || rel.is_empty() || !rel.split('/').all(manifest::is_part_name) {
                continue;
            }
            let path = copy(&k);
            std::fs::create_dir_all(path.parent().expect("a file in the directory"))
                .map_err(fatal)?;
            if store
                .download_to(bucket, &k, &path)
                .await
                .map_err(|e| err(&k, e))?
            {
                parts.push(path);
            }
        }
        if parts.is_empty() {
            return Err(usage(anyhow::anyhow!(
                "{} does not exist, and holds no part files",
                shown(key)
            )));
        }
    }
    let tmp = format!("{}/", dir.path().display());
    // Under a prefix, the copies keep their `key=value/` directories.
    let single = parts.len() == 1 && parts[0] == copy(key);
    let root = (!single).then(|| copy(key.trim_end_matches('/')));
    Ok(Input {
        parts: manifest::Parts { files: parts, root },
        shown: Some((tmp, format!("s3://{bucket}/"))),
        _copies: Some(dir),
    })
}

/// Blake3 over the parts, in order.
async fn hash_input(parts: Vec<PathBuf>) -> Result<String, CommandError> {
    tokio::task::spawn_blocking(move || -> Result<String, String> {
        let mut hasher = blake3::Hasher::new();
        for path in &parts {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            hasher
                .update_reader(file)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        }
        Ok(hasher.finalize().to_hex().to_string())
    })
    .await
    .map_err(|e| fatal(anyhow::anyhow!(e)))?
    .map_err(|e| usage(anyhow::anyhow!(e)))
}
