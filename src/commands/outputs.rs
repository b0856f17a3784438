//! Files a command writes whole or not at all: staged beside the target (or
//! in the temp directory for `s3://`), then renamed or uploaded once
//! complete; and the output CSVs of a session written from the journal.

use std::sync::Arc;

use anyhow::Context;

use crate::error::{CommandError, fatal, usage};
use crate::journal::Rows;
use crate::location::Location;
use crate::manifest::{self, ResultWriter, Written};
use crate::settings::{InputShape, Settings};
use crate::store::s3::S3Store;

/// The files written from the journal: the output and failed files at the
/// end of a session, the manifest then or for `status --manifest`.
#[derive(Clone)]
pub(super) struct ResultFiles {
    pub output: Option<Location>,
    pub failed: Option<Location>,
    pub manifest: Option<Location>,
    pub shape: InputShape,
    /// False when local files were deleted after upload.
    pub keep_paths: bool,
}

impl ResultFiles {
    /// Every file a session's settings ask for.
    pub(super) fn of(settings: &Settings) -> ResultFiles {
        ResultFiles {
            output: Some(settings.output.clone()),
            failed: settings.output_failed.clone(),
            manifest: settings.manifest.clone(),
            shape: settings.shape.clone(),
            keep_paths: !settings.delete_local,
        }
    }
}

/// Writes `files` from one pass over the journal's rows, each whole or not
/// at all, and says how many rows went where.
pub(super) async fn write_results(
    journal: Arc<dyn Rows>,
    files: ResultFiles,
    store: Option<&S3Store>,
) -> Result<Written, CommandError> {
    let plan = files.clone();
    let (written, staged) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let stage = |loc: &Option<Location>| loc.as_ref().map(staging_file).transpose();
        let (mut out, mut failed, mut man) = (
            stage(&plan.output)?,
            stage(&plan.failed)?,
            stage(&plan.manifest)?,
        );
        let kept = journal.run_info()?.kept_columns;
        // The writers borrow the staged files until they are finished.
        let written = {
            let failed_target = target(&mut failed, &plan.failed);
            let mut results = match target(&mut out, &plan.output) {
                Some(t) => Some(ResultWriter::new(
                    t,
                    failed_target,
                    plan.keep_paths,
                    &plan.shape,
                    &kept,
                )?),
                None => None,
            };
            let mut rows = match target(&mut man, &plan.manifest) {
                Some(t) => Some(manifest::RowManifest::new(t, plan.shape.delimiter, &kept)?),
                None => None,
            };
            let mut written = Written::default();
            journal.for_each_resolved(&mut |row, url, rec, kept| {
                written.add(rec);
                if let Some(r) = results.as_mut() {
                    r.row(url, rec, kept)?;
                }
                match rows.as_mut() {
                    Some(m) => m.row(row, url, rec, kept),
                    None => Ok(()),
                }
            })?;
            if let Some(r) = results {
                r.finish()?;
            }
            if let Some(m) = rows {
                m.finish().context("writing the manifest")?;
            }
            written
        };
        Ok((written, [out, failed, man]))
    })
    .await
    .map_err(|e| fatal(anyhow::anyhow!(e)))?
    .map_err(fatal)?;
    let locations = [files.output, files.failed, files.manifest];
    for (file, loc) in staged.into_iter().zip(locations) {
        if let (Some(file), Some(loc)) = (file, loc) {
            commit_file(file, &loc, store).await?;
        }
    }
    Ok(written)
}

/// A staged file to write a table to, in the format its target's name says.
fn target<'a>(
    file: &'a mut Option<tempfile::NamedTempFile>,
    loc: &Option<Location>,
) -> Option<manifest::TableSink<'a>> {
    let (file, loc) = file.as_mut().zip(loc.as_ref())?;
    let out: &mut (dyn std::io::Write + Send) = file.as_file_mut();
    Some((out, manifest::output_format(loc)))
}

/// Staging files are `.batchimg-<pid>-<random>.csv.tmp`: the pid tells a
/// file that a killed process left from one another process is writing.
const STAGING_PREFIX: &str = ".batchimg-";
const STAGING_SUFFIX: &str = ".csv.tmp";

/// Removes the staging files that processes which no longer run left next to
/// the local outputs (a write killed half-way).
fn remove_stale_staging(settings: &Settings) {
    for loc in settings.outputs() {
        let Location::Local(path) = loc else { continue };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name
                .strip_prefix(STAGING_PREFIX)
                .and_then(|r| r.strip_suffix(STAGING_SUFFIX))
            else {
                continue;
            };
            let pid = rest
                .split_once('-')
                .and_then(|(pid, _)| pid.parse::<u32>().ok());
            let procfs = std::path::Path::new("/proc/self").exists();
            let stale = match pid.filter(|_| procfs) {
                Some(pid) => {
                    pid != std::process::id()
                        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                }
                // Without a pid (an older version's name) or /proc: stale once an hour old.
                None => entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600)),
            };
            if stale && std::fs::remove_file(entry.path()).is_ok() {
                tracing::debug!(file = %entry.path().display(), "removed a stale staging file");
            }
        }
    }
}

/// The directory a file is in: its parent, or `.` for a bare name.
pub(super) fn dir_of(path: &std::path::Path) -> &std::path::Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
}

/// A temporary file next to a local target (so the rename is atomic), or in
/// the temp directory for an S3 target.
pub(super) fn staging_file(loc: &Location) -> anyhow::Result<tempfile::NamedTempFile> {
    match loc {
        Location::Local(path) => {
            let dir = dir_of(path);
            // tempfile creates 0600 files; output CSVs are the user's
            // documents, so they get 0666 less the umask, as `>` would give.
            tempfile::Builder::new()
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                .prefix(&format!("{STAGING_PREFIX}{}-", std::process::id()))
                .suffix(STAGING_SUFFIX)
                .tempfile_in(dir)
                .with_context(|| format!("cannot create a file in {}", dir.display()))
        }
        Location::S3 { .. } => {
            tempfile::NamedTempFile::new().context("cannot create a temporary file")
        }
    }
}

pub(super) async fn commit_file(
    file: tempfile::NamedTempFile,
    loc: &Location,
    store: Option<&S3Store>,
) -> Result<(), CommandError> {
    match loc {
        Location::Local(path) => {
            file.as_file()
                .sync_all()
                .map_err(|e| fatal(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
            file.persist(path).map_err(|e| {
                fatal(anyhow::anyhow!(
                    "cannot write {}: {}",
                    path.display(),
                    e.error
                ))
            })?;
            Ok(())
        }
        Location::S3 { bucket, key } => {
            let body = std::fs::read(file.path()).map_err(|e| fatal(anyhow::anyhow!(e)))?;
            store
                .ok_or_else(|| {
                    usage(anyhow::anyhow!(
                        "{loc}: s3:// paths need a region and credentials"
                    ))
                })?
                .put_to(
                    bucket,
                    key,
                    body.into(),
                    manifest::content_type(manifest::output_format(loc)),
                )
                .await
                .map_err(|e| {
                    fatal(anyhow::anyhow!(
                        "cannot upload {loc}: {}",
                        crate::error::chain(&e)
                    ))
                })
        }
    }
}

/// Checks before any work that each local output's directory exists, and
/// clears what killed writes left there.
pub(super) fn check_output_dirs(settings: &Settings) -> Result<(), CommandError> {
    remove_stale_staging(settings);
    settings.outputs().try_for_each(check_dir)
}

/// A local target's directory must exist before any work is done for it.
pub(super) fn check_dir(loc: &Location) -> Result<(), CommandError> {
    if let Location::Local(path) = loc {
        let dir = dir_of(path);
        if !dir.is_dir() {
            return Err(usage(anyhow::anyhow!(
                "cannot write {}: directory {} does not exist",
                path.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}
