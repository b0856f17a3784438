//! `batchimg merge`: the output and failed CSVs of N shards, back in input order.
//!
//! Each shard wrote its rows in input order, and the partition is a function of
//! the URL, so one pass over the input decides which shard's file holds the
//! next row: a streaming k-way merge in constant memory, whatever the size.

use std::iter::Peekable;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cli::MergeArgs;
use crate::error::{CommandError, ExitStatus, fatal, usage};
use crate::location::Location;
use crate::manifest::{self, OUTPUT_HEADER};
use crate::options::Shard;
use crate::resolve::store_for_paths;
use crate::retry::RetryPolicy;
use crate::store::s3::S3Store;

type Records = Peekable<csv::StringRecordsIntoIter<std::fs::File>>;

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
    let input = Location::parse(&args.input).map_err(usage)?;
    let output = Location::parse(&args.output).map_err(usage)?;
    let output_failed = args
        .output_failed
        .as_deref()
        .map(Location::parse)
        .transpose()
        .map_err(usage)?;

    let all: Vec<&Location> = [&input, &output]
        .into_iter()
        .chain(&outputs)
        .chain(failed.iter().flatten())
        .chain(output_failed.iter())
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
    let mut local = async |loc: &Location| -> Result<PathBuf, CommandError> {
        match loc {
            Location::Local(p) => Ok(p.clone()),
            Location::S3 { bucket, key } => {
                let store = store.as_ref().expect("a store exists for s3 paths");
                let file = super::run::download_input(store, bucket, key).await?;
                let path = file.path().to_path_buf();
                guards.push(file);
                Ok(path)
            }
        }
    };
    let input_path = local(&input).await?;
    let mut output_paths = Vec::new();
    for o in &outputs {
        output_paths.push(local(o).await?);
    }
    let mut failed_paths = Vec::new();
    for f in failed.iter().flatten() {
        failed_paths.push(local(f).await?);
    }

    let out_file = super::outputs::staging_file(&output).map_err(fatal)?;
    let failed_file = output_failed
        .as_ref()
        .map(super::outputs::staging_file)
        .transpose()
        .map_err(fatal)?;
    let (out_file, failed_file, counts) = {
        let (out_path, failed_path) = (
            out_file.path().to_path_buf(),
            failed_file.as_ref().map(|f| f.path().to_path_buf()),
        );
        let counts = tokio::task::spawn_blocking(move || {
            merge_files(
                &input_path,
                n,
                &output_paths,
                &failed_paths,
                &out_path,
                failed_path.as_deref(),
            )
        })
        .await
        .map_err(|e| fatal(anyhow::anyhow!(e)))?
        .map_err(usage)?;
        (out_file, failed_file, counts)
    };
    let store_ref = store.as_ref();
    super::outputs::commit_file(out_file, &output, store_ref).await?;
    if let (Some(file), Some(loc)) = (failed_file, &output_failed) {
        super::outputs::commit_file(file, loc, store_ref).await?;
    }
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

fn open(path: &Path, header: &[&str]) -> anyhow::Result<Records> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let found: Vec<String> = reader.headers()?.iter().map(String::from).collect();
    if found != header {
        bail!(
            "{}: header is {found:?}, expected {header:?}",
            path.display()
        );
    }
    Ok(reader.into_records().peekable())
}

/// Takes the next record of `records` if its first field is `url`.
fn take_if(records: &mut Records, url: &str) -> anyhow::Result<Option<csv::StringRecord>> {
    match records.peek() {
        Some(Ok(r)) if r.get(0) == Some(url) => Ok(records.next().transpose()?),
        Some(Err(_)) => Err(records.next().expect("peeked").unwrap_err().into()),
        _ => Ok(None),
    }
}

fn merge_files(
    input: &Path,
    n: u32,
    outputs: &[PathBuf],
    failed: &[PathBuf],
    out: &Path,
    out_failed: Option<&Path>,
) -> anyhow::Result<(u64, u64, u64)> {
    let mut outs: Vec<Records> = outputs
        .iter()
        .map(|p| open(p, &OUTPUT_HEADER))
        .collect::<Result<_, _>>()?;
    let mut fails: Vec<Records> = failed
        .iter()
        .map(|p| open(p, &["url"]))
        .collect::<Result<_, _>>()?;
    let mut w = csv::Writer::from_path(out)?;
    w.write_record(OUTPUT_HEADER)?;
    let mut wf = out_failed.map(csv::Writer::from_path).transpose()?;
    if let Some(wf) = wf.as_mut() {
        wf.write_record(["url"])?;
    }
    let (mut ok, mut bad, mut missing) = (0, 0, 0);
    for row in manifest::read_input(input, &Default::default())? {
        let url = row?.url;
        let k = Shard::of(&url, n) as usize;
        if let Some(rec) = take_if(&mut outs[k], &url)? {
            w.write_record(&rec)?;
            ok += 1;
        } else if let Some(rec) = fails
            .get_mut(k)
            .map(|f| take_if(f, &url))
            .transpose()?
            .flatten()
        {
            if let Some(wf) = wf.as_mut() {
                wf.write_record(&rec)?;
            }
            bad += 1;
        } else {
            missing += 1;
        }
    }
    for (k, rest) in outs.iter_mut().chain(fails.iter_mut()).enumerate() {
        if let Some(Ok(r)) = rest.peek() {
            bail!(
                "shard file {} has a row not in the input in order ({:?}): wrong --input or --shard-count?",
                k % n as usize,
                r.get(0).unwrap_or("")
            );
        }
    }
    w.flush()?;
    if let Some(mut wf) = wf {
        wf.flush()?;
    }
    Ok((ok, bad, missing))
}
