//! Files a command writes whole or not at all: staged beside the target (or
//! in the temp directory for `s3://`), then renamed or uploaded once
//! complete; and the output CSVs of a session written from the journal.

use std::sync::Arc;

use anyhow::Context;

use crate::error::{CommandError, fatal, usage};
use crate::journal::{Journal, Rows};
use crate::location::Location;
use crate::manifest::{self, ResultWriter};
use crate::settings::Settings;
use crate::store::s3::S3Store;

/// Writes the output, failed and manifest files where the settings say.
pub(super) async fn publish_results(
    journal: &Arc<Journal>,
    settings: &Settings,
    store: &S3Store,
) -> Result<manifest::Written, CommandError> {
    let j = Arc::clone(journal);
    let keep_paths = !settings.delete_local;
    let shape = settings.shape.clone();
    let output = settings.output.clone();
    let failed = settings.output_failed.clone();
    let (written, staged) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut out = staging_file(&output)?;
        let mut failed_file = failed.as_ref().map(staging_file).transpose()?;
        let kept = j.run_info()?.kept_columns;
        let mut results = ResultWriter::new(
            (out.as_file_mut(), manifest::output_format(&output)),
            failed_file.as_mut().zip(failed.as_ref()).map(|(f, loc)| {
                (
                    f.as_file_mut() as &mut (dyn std::io::Write + Send),
                    manifest::output_format(loc),
                )
            }),
            keep_paths,
            &shape,
            &kept,
        )?;
        j.for_each_resolved(&mut |_, url, rec, kept| results.row(url, rec, kept))?;
        let written = results.finish()?;
        Ok((written, (out, failed_file)))
    })
    .await
    .map_err(|e| fatal(anyhow::anyhow!(e)))?
    .map_err(fatal)?;
    let (out, failed_file) = staged;
    commit_file(out, &settings.output, Some(store)).await?;
    if let (Some(file), Some(loc)) = (failed_file, &settings.output_failed) {
        commit_file(file, loc, Some(store)).await?;
    }
    if let Some(loc) = &settings.manifest {
        let rows = Arc::clone(journal) as Arc<dyn Rows>;
        write_manifest(rows, loc, settings.shape.delimiter, Some(store)).await?;
    }
    Ok(written)
}

/// Writes the per-row manifest of a journal to `loc`, whole or not at all.
pub(super) async fn write_manifest(
    journal: Arc<dyn Rows>,
    loc: &Location,
    delimiter: u8,
    store: Option<&S3Store>,
) -> Result<u64, CommandError> {
    let j = journal;
    let target = loc.clone();
    let (rows, file) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut file = staging_file(&target)?;
        let kept = j.run_info()?.kept_columns;
        let format = manifest::output_format(&target);
        let mut rows = 0u64;
        let mut m = manifest::RowManifest::new((file.as_file_mut(), format), delimiter, &kept)?;
        j.for_each_resolved(&mut |row, url, rec, kept| {
            rows += 1;
            m.row(row, url, rec, kept)
        })?;
        m.finish().context("writing the manifest")?;
        Ok((rows, file))
    })
    .await
    .map_err(|e| fatal(anyhow::anyhow!(e)))?
    .map_err(fatal)?;
    commit_file(file, loc, store).await?;
    Ok(rows)
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
