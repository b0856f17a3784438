//! `batchimg merge`: the output, failed and manifest files of N shards, back
//! in input order.
//!
//! Each shard wrote its rows in input order, and the partition is a function of
//! the URL, so one pass over the input decides which shard's file holds the
//! next row: a streaming k-way merge in constant memory, whatever the size.
//! Manifests carry their row numbers and merge on them. Files are read and
//! written in any format batchimg writes, and kept columns keep their types.

use std::iter::Peekable;
use std::path::PathBuf;

use anyhow::bail;

use crate::cli::MergeArgs;
use crate::error::{CommandError, ExitStatus, fatal, usage};
use crate::job::InputRow;
use crate::location::Location;
use crate::manifest::{self, InputRows, OUTPUT_HEADER, TableWriter};
use crate::options::Shard;
use crate::resolve::store_for_paths;
use crate::retry::RetryPolicy;
use crate::settings::InputShape;
use crate::store::s3::S3Store;
use crate::table::{Column, ColumnType, TableFormat, Value};

pub async fn merge(args: MergeArgs) -> Result<ExitStatus, CommandError> {
    let n = args.shard_count;
    if n == 0 {
        return Err(usage(anyhow::anyhow!("--shard-count must be at least 1")));
    }
    let pattern = |p: &str, flag: &str| -> Result<Vec<Location>, CommandError> {
        if !p.contains("{shard}") {
            return Err(usage(anyhow::anyhow!(
                "{flag} {p:?} must contain {{shard}}"
            )));
        }
        (0..n)
            .map(|k| Location::parse(&p.replace("{shard}", &k.to_string())).map_err(usage))
            .collect()
    };
    let outputs = pattern(&args.from, "--from")?;
    let failed = args
        .from_failed
        .as_deref()
        .map(|p| pattern(p, "--from-failed"))
        .transpose()?;
    let manifests = args
        .from_manifest
        .as_deref()
        .map(|p| pattern(p, "--from-manifest"))
        .transpose()?;
    let input = Location::parse_input(&args.input).map_err(usage)?;
    let output = Location::parse(&args.output).map_err(usage)?;
    let output_failed = args
        .output_failed
        .as_deref()
        .map(Location::parse)
        .transpose()
        .map_err(usage)?;
    let manifest_out = args
        .manifest
        .as_deref()
        .map(Location::parse)
        .transpose()
        .map_err(usage)?;

    let all: Vec<&Location> = [&input, &output]
        .into_iter()
        .chain(&outputs)
        .chain(failed.iter().flatten())
        .chain(manifests.iter().flatten())
        .chain(output_failed.iter())
        .chain(manifest_out.iter())
        .collect();
    let store = match all.iter().find_map(|l| match l {
        Location::S3 { bucket, .. } => Some(bucket.clone()),
        Location::Local(_) => None,
    }) {
        Some(bucket) => {
            let settings = store_for_paths(
                &bucket,
                args.region.as_deref(),
                args.endpoint_url.as_deref(),
            )
            .await
            .map_err(usage)?;
            Some(S3Store::connect(&settings, RetryPolicy::default()).await)
        }
        None => None,
    };

    // Temporary copies of s3:// files live until the merge is done.
    let mut guards = Vec::new();
    let mut local = async |loc: &Location| -> Result<Vec<PathBuf>, CommandError> {
        match loc {
            Location::Local(p) => manifest::list_parts(p).map(|p| p.files).map_err(usage),
            Location::S3 { bucket, key } => {
                let store = store.as_ref().expect("a store exists for s3 paths");
                let input = super::run::download_input(store, bucket, key).await?;
                let parts = input.parts.files.clone();
                guards.push(input);
                Ok(parts)
            }
        }
    };
    let input_parts = local(&input).await?;
    let mut output_paths = Vec::new();
    for o in &outputs {
        output_paths.push(local(o).await?);
    }
    let mut failed_paths = Vec::new();
    for f in failed.iter().flatten() {
        failed_paths.push(local(f).await?);
    }
    let mut manifest_paths = Vec::new();
    for m in manifests.iter().flatten() {
        manifest_paths.push(local(m).await?);
    }

    let targets = std::iter::once(Some(&output))
        .chain([output_failed.as_ref(), manifest_out.as_ref()])
        .map(|loc| loc.map(super::outputs::staging_file).transpose())
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(fatal)?;
    let shape = InputShape {
        format: args.input_format,
        url_column: args.url_column.clone(),
        ..InputShape::default()
    };
    let formats = [Some(&output), output_failed.as_ref(), manifest_out.as_ref()]
        .map(|l| l.map(manifest::output_format));
    let (targets, counts) = tokio::task::spawn_blocking(move || {
        let mut targets = targets;
        let [out, failed_out, manifest_file] = &mut targets[..] else {
            unreachable!("three targets")
        };
        let counts = merge_files(
            &input_parts,
            &shape,
            n,
            (
                &output_paths,
                out.as_mut().expect("the output").as_file_mut(),
                formats[0].expect("a format"),
            ),
            failed_out.as_mut().map(|f| {
                (
                    &failed_paths[..],
                    f.as_file_mut(),
                    formats[1].expect("a format"),
                )
            }),
        )?;
        if let Some(file) = manifest_file.as_mut() {
            merge_manifests(
                &manifest_paths,
                file.as_file_mut(),
                formats[2].expect("a format"),
            )?;
        }
        anyhow::Ok((targets, counts))
    })
    .await
    .map_err(|e| fatal(anyhow::anyhow!(e)))?
    .map_err(usage)?;
    let store_ref = store.as_ref();
    let mut targets = targets.into_iter();
    let locs = [Some(&output), output_failed.as_ref(), manifest_out.as_ref()];
    for loc in locs {
        if let (Some(file), Some(loc)) = (targets.next().flatten(), loc) {
            super::outputs::commit_file(file, loc, store_ref).await?;
        }
    }
    drop(guards);
    let (succeeded, failed_rows, missing) = counts;
    tracing::info!(
        succeeded,
        failed = failed_rows,
        missing,
        "merged {n} shards into {output}"
    );
    if missing > 0 {
        tracing::warn!("{missing} input rows are in no shard's files: are some shards unfinished?");
    }
    Ok(if missing > 0 || failed_rows > 0 {
        ExitStatus::SomeFailed
    } else {
        ExitStatus::Success
    })
}

/// A shard's file being read: its rows, and its columns after the URL.
struct ShardFile {
    rows: Peekable<InputRows>,
    kept: Vec<Column>,
    path: PathBuf,
}

/// Opens a file batchimg wrote, with `url` as its URL column.
fn open(parts: &[PathBuf], url: &str) -> anyhow::Result<ShardFile> {
    let shape = InputShape {
        url_column: Some(url.to_string()),
        keep_columns: true,
        ..InputShape::default()
    };
    let rows = manifest::read_input(parts.to_vec(), &shape, None)?;
    Ok(ShardFile {
        kept: rows.kept_columns(),
        rows: rows.peekable(),
        path: parts.first().cloned().unwrap_or_default(),
    })
}

/// Takes the next row of `file` if its URL is `url`.
fn take_if(file: &mut ShardFile, url: &str) -> anyhow::Result<Option<InputRow>> {
    match file.rows.peek() {
        Some(Ok(r)) if r.url == url => Ok(file.rows.next().transpose()?),
        Some(Err(_)) => Err(file.rows.next().expect("peeked").unwrap_err().into()),
        _ => Ok(None),
    }
}

type Files<'a> = (&'a [Vec<PathBuf>], &'a mut std::fs::File, TableFormat);

fn merge_files(
    input: &[PathBuf],
    shape: &InputShape,
    n: u32,
    (outputs, out, out_format): Files,
    failed: Option<Files>,
) -> anyhow::Result<(u64, u64, u64)> {
    let mut outs: Vec<ShardFile> = outputs
        .iter()
        .map(|p| open(p, "url"))
        .collect::<Result<_, _>>()?;
    let url_name = shape.url_column.as_deref().unwrap_or("url");
    let (mut fails, mut wf) = (Vec::new(), None);
    let columns = |first: Option<&ShardFile>, url: &str| {
        let kept = first.map(|s| s.kept.clone()).unwrap_or_default();
        let mut c = vec![Column::new(url, ColumnType::Text)];
        c.extend(kept);
        c
    };
    if let Some((paths, file, format)) = failed {
        fails = paths
            .iter()
            .map(|p| open(p, url_name))
            .collect::<Result<Vec<_>, _>>()?;
        wf = Some(TableWriter::new(
            file,
            format,
            b',',
            columns(fails.first(), url_name),
        )?);
    }
    let mut w = TableWriter::new(
        out,
        out_format,
        b',',
        columns(outs.first(), OUTPUT_HEADER[0]),
    )?;
    let (mut ok, mut bad, mut missing) = (0, 0, 0);
    let cells = |row: InputRow| {
        let mut c = vec![Value::Text(row.url)];
        c.extend(row.kept);
        c
    };
    for row in manifest::read_input(input.to_vec(), shape, None)? {
        let url = row?.url;
        let k = Shard::of(&url, n) as usize;
        if let Some(rec) = take_if(&mut outs[k], &url)? {
            w.row(cells(rec))?;
            ok += 1;
        } else if let Some(rec) = fails
            .get_mut(k)
            .map(|f| take_if(f, &url))
            .transpose()?
            .flatten()
        {
            if let Some(wf) = wf.as_mut() {
                wf.row(cells(rec))?;
            }
            bad += 1;
        } else {
            missing += 1;
        }
    }
    for rest in outs.iter_mut().chain(fails.iter_mut()) {
        if let Some(Ok(r)) = rest.rows.peek() {
            bail!(
                "shard file {} has a row not in the input in order ({:?}): wrong --input or --shard-count?",
                rest.path.display(),
                r.url
            );
        }
    }
    w.finish()?;
    if let Some(wf) = wf {
        wf.finish()?;
    }
    Ok((ok, bad, missing))
}

/// Merges the shards' manifests on their row numbers.
fn merge_manifests(
    manifests: &[Vec<PathBuf>],
    out: &mut std::fs::File,
    format: TableFormat,
) -> anyhow::Result<()> {
    let mut shards: Vec<ShardFile> = manifests
        .iter()
        .map(|p| open(p, "url"))
        .collect::<Result<_, _>>()?;
    let Some(first) = shards.first() else {
        return Ok(());
    };
    // The reader gives `row` first among the columns after the URL.
    let kept = &first.kept;
    if kept.first().map(|c| c.name.as_str()) != Some("row") {
        bail!(
            "{} is not a batchimg manifest: it has no `row` column",
            first.path.display()
        );
    }
    let mut columns = vec![kept[0].clone(), Column::new("url", ColumnType::Text)];
    columns.extend_from_slice(&kept[1..]);
    let mut w = TableWriter::new(out, format, b',', columns)?;
    let row_of = |r: &InputRow| match r.kept.first() {
        Some(Value::Int(i)) => Some(*i),
        Some(Value::Text(t)) => t.parse().ok(),
        _ => None,
    };
    loop {
        let mut next: Option<(usize, i64)> = None;
        for (k, s) in shards.iter_mut().enumerate() {
            match s.rows.peek() {
                Some(Ok(r)) => {
                    let Some(row) = row_of(r) else {
                        bail!("{}: a row without a row number", s.path.display());
                    };
                    if next.is_none_or(|(_, best)| row < best) {
                        next = Some((k, row));
                    }
                }
                Some(Err(_)) => return Err(s.rows.next().expect("peeked").unwrap_err().into()),
                None => {}
            }
        }
        let Some((k, _)) = next else { break };
        let r = shards[k].rows.next().expect("peeked")?;
        let mut cells = r.kept;
        cells.insert(1, Value::Text(r.url));
        w.row(cells)?;
    }
    w.finish()
}
