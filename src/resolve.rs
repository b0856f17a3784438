//! Flags, environment and the recorded run resolved once into [`Settings`].
//!
//! Precedence, highest first: a command-line flag, its environment variable
//! (clap reads those), the settings recorded in the journal (for `resume`),
//! then the built-in default (the `Default` impls of `options` and `retry`,
//! which `--help` shows). Every check of a flag's value happens here, before
//! any work, so a typo is one clear error (exit 2), not a million failed rows.

use anyhow::{Context, bail};
use aws_config::meta::region::ProvideRegion;

use crate::cli::{HeaderArgs, HttpArgs, ObjectArgs, RunArgs, StoreArgs, TuningArgs};
use crate::keys::KeyTemplate;
use crate::location::{Location, is_bucket_name};
use crate::options::{ObjectOptions, Shard, Sse};
use crate::settings::{
    HttpSettings, InputShape, Settings, SourceSettings, StoreSettings, state_dir,
};
use crate::transform::{Size, Transform};

/// Resolves `batchimg run`'s flags and environment.
pub async fn for_run(args: &RunArgs) -> anyhow::Result<Settings> {
    let shard = shard(args.shard.as_deref(), args.shard_count)?;
    let mut store = resolve_store(&args.store).await?;
    store.object = object_options(&args.object)?;
    store.source = SourceSettings {
        endpoint: args
            .source
            .source_endpoint_url
            .as_deref()
            .map(check_endpoint)
            .transpose()?,
        region: args
            .source
            .source_region
            .clone()
            .filter(|r| !r.trim().is_empty()),
        request_payer: store.object.request_payer,
    };
    let input = Location::parse_input(&args.input).context("--input")?;
    let output = Location::parse(&Shard::expand(shard, &args.output)).context("--output")?;
    let output_failed = args
        .output_failed
        .as_deref()
        .map(|o| Location::parse(&Shard::expand(shard, o)))
        .transpose()
        .context("--output-failed")?;
    let manifest = args
        .manifest
        .as_deref()
        .map(|o| Location::parse(&Shard::expand(shard, o)))
        .transpose()
        .context("--manifest")?;
    // The input is read whole into the journal first, so the failed file
    // may replace it; the output may not (it would lose the failed rows).
    let outputs = [Some(&output), output_failed.as_ref(), manifest.as_ref()];
    let distinct = outputs
        .iter()
        .enumerate()
        .all(|(i, a)| a.is_none() || !outputs[..i].contains(a));
    if !distinct || output == input {
        bail!("--input, --output, --output-failed and --manifest must be different files");
    }
    let state_dir = state_dir(&args.state.state_dir, shard);
    let mut settings = Settings::new(input, output, store, &state_dir);
    settings.output_failed = output_failed;
    settings.manifest = manifest;
    settings.shape = input_shape(args)?;
    settings.shard = shard;
    settings.http = http_settings(&args.http)?;
    settings.key_template = args
        .key_template
        .as_deref()
        .map(KeyTemplate::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--key-template {e}"))?;
    settings.transform = transform(&args.transform)?;
    apply(&mut settings, &args.tuning)?;
    Ok(settings)
}

/// The transform flags, checked together.
fn transform(args: &crate::cli::TransformArgs) -> anyhow::Result<Transform> {
    let resize = args
        .resize
        .as_deref()
        .map(Size::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let t = Transform {
        resize,
        fit: args.fit.unwrap_or_default(),
        upscale: args.upscale,
        format: args.format.unwrap_or_default(),
        quality: args.quality,
        keep_color: args.keep_color,
        keep_metadata: args.keep_metadata,
    };
    // `--fit contain` is the default, but given alone it is still a flag
    // without its box.
    if args.fit.is_some() && resize.is_none() {
        bail!("--fit needs --resize: there is no box to fit");
    }
    t.check().map_err(anyhow::Error::msg)?;
    Ok(t)
}

/// Overlays tuning flags on recorded or default settings (used by `run` and `resume`).
pub fn apply(settings: &mut Settings, t: &TuningArgs) -> anyhow::Result<()> {
    fn set<T: Copy>(slot: &mut T, value: Option<T>) {
        if let Some(v) = value {
            *slot = v;
        }
    }
    if let Some(dir) = &t.work_dir {
        settings.work_dir = dir.clone();
    }
    settings.delete_local |= t.delete_local;
    set(&mut settings.stop_grace, t.stop_grace);
    set(&mut settings.jpeg_engine, t.jpeg_engine);
    set(&mut settings.head_before_put, t.head_before_put);
    set(&mut settings.store.sign_payload, t.sign_payload);
    if let Some(budget) = t.memory_budget {
        settings.memory_budget = Some(budget);
    }
    settings.allow_private_networks |= t.allow_private_networks;
    settings.url_markers &= !t.no_url_markers;
    let c = &mut settings.concurrency;
    if t.downloads.is_some() {
        c.downloads = t.downloads;
    }
    if t.per_host.is_some() {
        c.per_host = t.per_host;
    }
    set(&mut c.converts, t.converts);
    if t.uploads.is_some() {
        c.uploads = t.uploads;
    }
    if t.per_host_rps.is_some() {
        c.per_host_rps = t.per_host_rps;
    }
    let r = &mut settings.retry;
    set(&mut r.attempts, t.attempts);
    set(&mut r.base_delay, t.retry_delay);
    set(&mut r.max_delay, t.max_retry_delay);
    let l = &mut settings.limits;
    set(&mut l.max_download_bytes, t.max_download_bytes);
    set(&mut l.max_width, t.max_width);
    set(&mut l.max_height, t.max_height);
    set(&mut l.max_pixels, t.max_pixels);
    set(&mut l.convert_timeout, t.convert_timeout);
    set(&mut l.download_timeout, t.download_timeout);
    set(&mut l.connect_timeout, t.connect_timeout);
    set(&mut l.read_timeout, t.read_timeout);
    set(&mut settings.host_outage_wait, t.host_outage_wait);
    if t.dns_server.is_some() {
        settings.http.dns_server = t.dns_server;
    }
    validate(settings)
}

fn validate(settings: &Settings) -> anyhow::Result<()> {
    let c = &settings.concurrency;
    for (name, n) in [
        ("--downloads", c.downloads.unwrap_or(1)),
        ("--per-host", c.per_host.unwrap_or(1)),
        ("--converts", c.converts),
        ("--uploads", c.uploads.unwrap_or(1)),
    ] {
        if n == 0 {
            bail!("{name} must be at least 1");
        }
    }
    if let Some(rps) = c.per_host_rps
        && !(rps.is_finite() && rps > 0.0 && rps <= 1e6)
    {
        bail!("--per-host-rps must be a positive number of requests per second");
    }
    if settings.retry.attempts == 0 {
        bail!("--attempts must be at least 1");
    }
    let l = &settings.limits;
    if l.max_width == 0 || l.max_height == 0 || l.max_pixels == 0 || l.max_download_bytes == 0 {
        bail!("size limits must be positive");
    }
    if l.convert_timeout.is_zero()
        || l.download_timeout.is_zero()
        || l.connect_timeout.is_zero()
        || l.read_timeout.is_zero()
    {
        bail!("time limits must be positive");
    }
    if settings.memory_budget.is_some_and(|b| b < 64 << 20) {
        bail!("--memory-budget must be at least 64MiB");
    }
    Ok(())
}

/// The shard from `K/N`, or N with K from the batch engine's index variable.
fn shard(spec: Option<&str>, count: Option<u32>) -> anyhow::Result<Option<Shard>> {
    match (spec, count) {
        (Some(spec), _) => Ok(Some(Shard::parse(spec).map_err(|e| anyhow::anyhow!(e))?)),
        (None, Some(n)) => {
            let var = ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"]
                .into_iter()
                .find_map(|v| non_empty_env(v).map(|k| (v, k)));
            let Some((var, k)) = var else {
                bail!(
                    "--shard-count {n} needs the shard index: pass --shard K/{n}, or set \
                     JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX"
                );
            };
            let k: u32 = k
                .trim()
                .parse()
                .with_context(|| format!("{var}={k:?} is not a number"))?;
            Ok(Some(Shard::new(k, n).map_err(|e| anyhow::anyhow!(e))?))
        }
        (None, None) => Ok(None),
    }
}

fn input_shape(args: &RunArgs) -> anyhow::Result<InputShape> {
    let delimiter = match args.delimiter.as_deref() {
        None => b',',
        Some("tab" | "\\t" | "\t") => b'\t',
        Some(d) if d.len() == 1 && d != "\"" && d != "\n" && d != "\r" => d.as_bytes()[0],
        Some(d) => bail!(
            "--delimiter {d:?}: expected one ASCII character (not a quote or line break), or `tab`"
        ),
    };
    let url_column = args
        .url_column
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    Ok(InputShape {
        format: args.input_format,
        url_column: url_column.map(String::from),
        keep_columns: args.keep_columns,
        delimiter,
    })
}

fn http_settings(args: &HttpArgs) -> anyhow::Result<HttpSettings> {
    let user_agent = match args.user_agent.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(ua) => {
            reqwest::header::HeaderValue::from_str(ua)
                .map_err(|_| anyhow::anyhow!("--user-agent {ua:?}: not a valid header value"))?;
            Some(ua.to_string())
        }
    };
    let mut http = HttpSettings {
        proxy_from_env: args.proxy_from_env,
        sign_s3_urls: args.sign_s3_urls,
        user_agent,
        ..HttpSettings::default()
    };
    load_headers(&mut http, &args.headers)?;
    http.header_names = header_names(&http.headers);
    http.proxy_hosts = crate::netguard::proxy_hosts();
    Ok(http)
}

/// Reads the headers of `args`, or (for `resume`, given none) those of the
/// recorded header file.
fn load_headers(http: &mut HttpSettings, args: &HeaderArgs) -> anyhow::Result<()> {
    if args.header_file.is_some() {
        http.header_file = args.header_file.clone();
    }
    let mut lines = Vec::new();
    if let Some(file) = &http.header_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("--header-file {}: {e}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            let place = format!("--header-file {} line {}", file.display(), n + 1);
            lines.push((place, line.to_string()));
        }
    }
    for (n, header) in args.headers.iter().enumerate() {
        lines.push((format!("--header number {}", n + 1), header.clone()));
    }
    http.headers = parse_headers(&lines)?;
    Ok(())
}

/// For `resume`: what is not recorded, again. The headers, which the
/// journal does not keep (it refuses to go on without one the run sent),
/// and the proxies' names.
pub fn reload_http(http: &mut HttpSettings, args: &HeaderArgs) -> anyhow::Result<()> {
    http.proxy_hosts = crate::netguard::proxy_hosts();
    load_headers(http, args)?;
    let given = header_names(&http.headers);
    let missing: Vec<&str> = http
        .header_names
        .iter()
        .filter(|n| !given.contains(n))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!(
            "the run sent the request header(s) {}, which the journal does not keep (they \
             may be secrets): give them again with --header or --header-file",
            missing.join(", ")
        );
    }
    Ok(())
}

/// `Name: value` lines, each with where it came from, into headers; blank
/// lines and `#` comments are skipped. Values are marked sensitive, so no
/// Debug output or log line shows them, and errors name the place, never
/// the text (a line without its name may be a bare token).
fn parse_headers(lines: &[(String, String)]) -> anyhow::Result<reqwest::header::HeaderMap> {
    use reqwest::header::{HeaderName, HeaderValue};
    let mut map = reqwest::header::HeaderMap::new();
    for (place, line) in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            bail!("{place}: expected `Name: value`");
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| anyhow::anyhow!("{place}: not a header name before the `:`"))?;
        if matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            bail!("request header {name}: set by batchimg itself, it cannot be given");
        }
        let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
            anyhow::anyhow!("request header {name}: the value is not a valid header value")
        })?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

fn header_names(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_string()).collect();
    names.sort();
    names.dedup();
    names
}

/// The store settings for reading and writing `s3://` CSVs of `bucket` only.
pub async fn store_for_paths(
    bucket: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
) -> anyhow::Result<StoreSettings> {
    resolve_store(&StoreArgs {
        bucket: Some(bucket.to_string()),
        region: region.map(String::from),
        prefix: String::new(),
        endpoint_url: endpoint.map(String::from),
        role_arn: non_empty_env("AWS_ROLE_ARN"),
    })
    .await
}

async fn resolve_store(args: &StoreArgs) -> anyhow::Result<StoreSettings> {
    let bucket = match args.bucket.as_deref().map(str::trim) {
        Some(b) if !b.is_empty() => b.to_string(),
        _ => bail!("no bucket: set S3_BUCKET or pass --bucket"),
    };
    if !is_bucket_name(&bucket) {
        bail!("{bucket:?} is not a valid bucket name");
    }
    let region = match args.region.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => match region_from_default_or_profile().await {
            Some(r) => r,
            None => bail!(
                "no region: set AWS_REGION, pass --region, or set a region in your AWS profile"
            ),
        },
    };
    let endpoint = args
        .endpoint_url
        .clone()
        .or_else(|| non_empty_env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| non_empty_env("AWS_ENDPOINT_URL"))
        .as_deref()
        .map(check_endpoint)
        .transpose()?;
    let mut store = StoreSettings::new(bucket, region, endpoint);
    store.prefix = args.prefix.trim().to_string();
    store.role_arn = args.role_arn.clone().filter(|a| !a.trim().is_empty());
    Ok(store)
}

/// An endpoint URL, checked, without a trailing slash.
fn check_endpoint(e: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(e).with_context(|| format!("endpoint {e:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("endpoint {e:?} must be http or https");
    }
    Ok(e.trim_end_matches('/').to_string())
}

/// The object options, checked the way S3 would check them, so a typo is one
/// clear error before the run instead of a million failed uploads.
fn object_options(args: &ObjectArgs) -> anyhow::Result<ObjectOptions> {
    use aws_sdk_s3::types::{ObjectCannedAcl, StorageClass};
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    let storage_class = text(&args.storage_class);
    if let Some(c) = &storage_class
        && !StorageClass::values().contains(&c.as_str())
    {
        bail!(
            "--storage-class {c:?} is not a storage class; one of: {}",
            StorageClass::values().join(", ")
        );
    }
    let acl = text(&args.acl);
    if let Some(a) = &acl
        && !ObjectCannedAcl::values().contains(&a.as_str())
    {
        bail!(
            "--acl {a:?} is not a canned ACL; one of: {}",
            ObjectCannedAcl::values().join(", ")
        );
    }
    let sse_kms_key_id = text(&args.sse_kms_key_id);
    if sse_kms_key_id.is_some() && args.sse != Some(Sse::Kms) {
        bail!("--sse-kms-key-id needs --sse aws:kms");
    }
    if args.bucket_key_enabled && args.sse != Some(Sse::Kms) {
        bail!("--bucket-key-enabled needs --sse aws:kms");
    }
    let mut metadata = Vec::new();
    for pair in args.metadata.iter().filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--metadata {pair:?}: expected KEY=VALUE");
        };
        let k = k.trim().to_ascii_lowercase();
        let valid = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            bail!("--metadata {pair:?}: a key is letters, digits, '-', '_' and '.'");
        }
        if metadata
            .iter()
            .any(|(seen, _): &(String, String)| *seen == k)
        {
            bail!("--metadata: {k:?} is given twice");
        }
        metadata.push((k, v.trim().to_string()));
    }
    metadata.sort();
    let tagging = text(&args.tagging);
    if let Some(t) = &tagging {
        let tags: Vec<(String, String)> = url::form_urlencoded::parse(t.as_bytes())
            .into_owned()
            .collect();
        if tags.is_empty() || tags.iter().any(|(k, _)| k.is_empty()) || tags.len() > 10 {
            bail!("--tagging {t:?}: expected up to 10 KEY=VALUE pairs joined by '&'");
        }
    }
    let options = ObjectOptions {
        storage_class,
        sse: args.sse,
        sse_kms_key_id,
        bucket_key_enabled: args.bucket_key_enabled,
        acl,
        cache_control: text(&args.cache_control),
        content_disposition: text(&args.content_disposition),
        metadata,
        tagging,
        expected_bucket_owner: text(&args.expected_bucket_owner),
        request_payer: args.request_payer.is_some(),
    };
    let owner = options.expected_bucket_owner.as_deref();
    if crate::store::request::put_headers(&options, true, owner, None).is_none() {
        bail!("an object option's value cannot be sent as a header (a line break, say)");
    }
    Ok(options)
}

/// The SDK's own fallbacks without its instance-metadata lookup, which can hang
/// for seconds off EC2.
async fn region_from_default_or_profile() -> Option<String> {
    if let Some(r) = non_empty_env("AWS_DEFAULT_REGION") {
        return Some(r);
    }
    aws_config::profile::ProfileFileRegionProvider::new()
        .region()
        .await
        .map(|r| r.to_string())
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
