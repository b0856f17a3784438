//! What a run is configured with, as values: the options of the objects it
//! writes, its shard, its limits and concurrency, and the choices the
//! command line offers as value enums.
//!
//! The defaults live here, in `Default` impls, and nowhere else: the command
//! line's help shows them, settings start from them, and tests build from them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How JPEGs become grayscale (`--jpeg-engine`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum JpegEngine {
    /// The JPEG's own luma, by a lossless transform of its coefficients
    /// (libjpeg-turbo); ImageMagick for the JPEGs it cannot take.
    #[default]
    Lossless,
    /// Decode, convert to ImageMagick's Gray (Rec. 709 luma) and encode again.
    #[cfg_attr(feature = "clap", value(name = "imagemagick"))]
    ImageMagick,
}

/// Whether a HEAD precedes each conditional PUT (`--head-before-put`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum HeadBeforePut {
    /// Never against AWS S3, which honours `If-None-Match: *`; always
    /// against another endpoint, since some (Garage) ignore it.
    #[default]
    Auto,
    Always,
    /// Trust the store's conditional PUT: one request per new image fewer.
    Never,
}

impl HeadBeforePut {
    /// Whether a HEAD goes before each conditional PUT to a store at a custom
    /// endpoint (`custom_endpoint`) or at AWS S3.
    pub fn heads(self, custom_endpoint: bool) -> bool {
        match self {
            HeadBeforePut::Always => true,
            HeadBeforePut::Never => false,
            HeadBeforePut::Auto => custom_endpoint,
        }
    }
}

/// Whether an image PUT's body is part of its signature (`--sign-payload`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SignPayload {
    /// Over HTTPS, as the AWS CLI and rclone send it: `UNSIGNED-PAYLOAD`,
    /// with the body's CRC32 in a signed `x-amz-checksum-crc32` header and
    /// TLS for the rest; over plain HTTP the body's SHA-256 is signed.
    #[default]
    Auto,
    /// Always sign the body's SHA-256, as the AWS SDK for Rust does.
    Always,
}

/// Server-side encryption of uploaded objects (`--sse`), as `aws s3 cp` names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Sse {
    /// SSE-S3: keys managed by S3.
    #[cfg_attr(feature = "clap", value(name = "AES256"))]
    Aes256,
    /// SSE-KMS, with `--sse-kms-key-id` or the account's default key.
    #[cfg_attr(feature = "clap", value(name = "aws:kms"))]
    Kms,
}

impl Sse {
    pub fn header_value(self) -> &'static str {
        match self {
            Sse::Aes256 => "AES256",
            Sse::Kms => "aws:kms",
        }
    }
}

/// Options of the objects batchimg uploads, named as `aws s3 cp` names them.
/// All of them describe the object except the last two, which are about the
/// requests: the describing ones are part of the object key (see `keys`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ObjectOptions {
    pub storage_class: Option<String>,
    pub sse: Option<Sse>,
    pub sse_kms_key_id: Option<String>,
    pub bucket_key_enabled: bool,
    pub acl: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    /// User metadata (`x-amz-meta-*`), sorted by name.
    pub metadata: Vec<(String, String)>,
    /// Tags as a URL query string (`k1=v1&k2=v2`).
    pub tagging: Option<String>,
    pub expected_bucket_owner: Option<String>,
    /// Send `x-amz-request-payer: requester` with every request to the bucket.
    pub request_payer: bool,
}

impl ObjectOptions {
    /// A canonical text of what describes the objects themselves, or `None`
    /// when nothing is set (then keys are what they always were). Two runs
    /// whose objects would differ in any stored property never share a key.
    /// A cross-version contract, like the keys it goes into.
    pub fn fingerprint(&self) -> Option<String> {
        let mut parts = Vec::new();
        let mut add = |name: &str, value: Option<&str>| {
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        };
        add("storage-class", self.storage_class.as_deref());
        add("sse", self.sse.map(Sse::header_value));
        add("sse-kms-key-id", self.sse_kms_key_id.as_deref());
        add("bucket-key", self.bucket_key_enabled.then_some("true"));
        add("acl", self.acl.as_deref());
        add("cache-control", self.cache_control.as_deref());
        add("content-disposition", self.content_disposition.as_deref());
        add("tagging", self.tagging.as_deref());
        for (k, v) in &self.metadata {
            parts.push(format!("meta:{k}={v}"));
        }
        (!parts.is_empty()).then(|| parts.join("\n"))
    }
}

/// Shard `index` of `count`: the URLs whose blake3 falls in it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The shard a URL belongs to, stable across runs, machines and versions.
    pub fn of(url: &str, count: u32) -> u32 {
        let hash = blake3::hash(url.as_bytes());
        let head: [u8; 8] = hash.as_bytes()[..8].try_into().expect("8 bytes");
        (u64::from_le_bytes(head) % u64::from(count)) as u32
    }

    pub fn contains(&self, url: &str) -> bool {
        Shard::of(url, self.count) == self.index
    }

    /// Shard `index` of `count`, if the index is below the count.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 || index >= count {
            return Err(format!(
                "shard {index}/{count}: the index must be below the count, counting from 0"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Reads `K/N`, e.g. `0/4`.
    pub fn parse(spec: &str) -> Result<Shard, String> {
        let (k, n) = spec
            .split_once('/')
            .ok_or_else(|| format!("--shard {spec:?}: expected K/N, e.g. 0/4"))?;
        let number = |text: &str, which: &str| {
            text.trim()
                .parse::<u32>()
                .map_err(|_| format!("--shard {spec:?}: {which} is not a number"))
        };
        Shard::new(number(k, "K")?, number(n, "N")?)
    }

    /// Replaces `{shard}` in a path or URL with the index.
    pub fn expand(shard: Option<Shard>, text: &str) -> String {
        match shard {
            Some(s) => text.replace("{shard}", &s.index.to_string()),
            None => text.to_string(),
        }
    }
}

/// Per-stage concurrency, after uv's `Concurrency`: the network stages get many
/// slots, the CPU stage one per core. `None` is decided at start: the
/// network slots from the memory budget, each host's share by how the host
/// answers (see `pipeline::fetch::hosts`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Concurrency {
    /// Downloads in flight; `None`: [`Concurrency::network_slots`].
    pub downloads: Option<usize>,
    /// Downloads in flight to any one host; `None`: adaptive, from
    /// [`Concurrency::INITIAL_PER_HOST`].
    pub per_host: Option<usize>,
    /// Conversions running at once.
    pub converts: usize,
    /// Uploads and existence checks in flight; `None`: [`Concurrency::network_slots`].
    pub uploads: Option<usize>,
    /// Most requests per second to any one host; `None`: no pace.
    pub per_host_rps: Option<f64>,
}

impl Concurrency {
    /// Where an adaptive host's limit starts: polite, as a crawler is.
    pub const INITIAL_PER_HOST: usize = 8;

    /// The network slots (downloads, or uploads) a memory budget of `budget`
    /// bytes carries: one per 4 MiB, from 32 to 512. Each image in flight
    /// leases its bytes from the budget anyway; this only keeps the count of
    /// requests in proportion, so a large machine is not held to the
    /// numbers of a small one.
    pub fn network_slots(budget: u64) -> usize {
        (budget / (4 << 20)).clamp(32, 512) as usize
    }

    pub fn downloads_for(&self, budget: u64) -> usize {
        self.downloads
            .unwrap_or_else(|| Concurrency::network_slots(budget))
    }

    pub fn uploads_for(&self, budget: u64) -> usize {
        self.uploads
            .unwrap_or_else(|| Concurrency::network_slots(budget))
    }
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency {
            downloads: None,
            per_host: None,
            converts: std::thread::available_parallelism().map_or(2, |n| n.get()),
            uploads: None,
            per_host_rps: None,
        }
    }
}

/// What one URL may cost.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// Largest body downloaded, enforced while streaming.
    pub max_download_bytes: u64,
    /// Widest image decoded.
    pub max_width: u32,
    /// Tallest image decoded.
    pub max_height: u32,
    /// Most pixels decoded, summed over frames.
    pub max_pixels: u64,
    /// Time allowed for one conversion.
    pub convert_timeout: Duration,
    /// Time allowed for one download attempt, connection included.
    pub download_timeout: Duration,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed between two reads of a body.
    pub read_timeout: Duration,
    /// Redirects followed per download.
    pub max_redirects: usize,
}

impl Limits {
    /// Whether an image of this size (all frames' pixels together) is over
    /// the decode limits: checked from the header, before any decoding.
    pub fn exceeded_by(&self, width: usize, height: usize, pixels: u64) -> bool {
        width as u64 > u64::from(self.max_width)
            || height as u64 > u64::from(self.max_height)
            || pixels > self.max_pixels
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_download_bytes: 50 * 1024 * 1024,
            max_width: 20_000,
            max_height: 20_000,
            max_pixels: 100_000_000,
            convert_timeout: Duration::from_secs(60),
            download_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_redirects: 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_pinned_to_known_answers() {
        // A silent change here would re-shard every run in progress.
        let got: Vec<u32> = ["https://a/0.jpg", "https://a/1.jpg", "https://a/2.jpg"]
            .iter()
            .map(|u| Shard::of(u, 4))
            .collect();
        assert_eq!(got, [0, 0, 3]);
        assert_eq!(Shard::of("https://example.com/photo.jpg", 1000), 817);
    }

    #[test]
    fn shards_partition_urls_and_balance() {
        // The sizes of four shards of 1000 URLs are pinned too: they are what
        // `Shard::of` answers for each URL, so a change of the hash, of the
        // bytes taken or of their order shows here as well.
        let mut sizes = [0; 4];
        for i in 0..1000 {
            let u = format!("https://a/{i}.jpg");
            let k = Shard::of(&u, 4);
            // A partition: the shard `of` names holds the URL, and no other does.
            let holders: Vec<u32> = (0..4)
                .filter(|&index| Shard { index, count: 4 }.contains(&u))
                .collect();
            assert_eq!(holders, [k], "{u}");
            sizes[k as usize] += 1;
        }
        assert_eq!(sizes, SHARD_SIZES);
        assert!(sizes.iter().all(|&n| n > 200), "balanced: {sizes:?}");
    }

    /// What `shards_partition_urls_and_balance` counts.
    const SHARD_SIZES: [u32; 4] = [242, 253, 252, 253];

    #[test]
    fn shard_specs_are_checked() {
        assert_eq!(Shard::parse("1/4").unwrap(), Shard { index: 1, count: 4 });
        for bad in ["4/4", "a/4", "1", "1/0"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Shard::expand(Some(Shard { index: 3, count: 4 }), "out-{shard}.csv"),
            "out-3.csv"
        );
    }

    #[test]
    fn the_fingerprint_of_object_options_is_pinned() {
        assert_eq!(ObjectOptions::default().fingerprint(), None);
        let options = ObjectOptions {
            storage_class: Some("STANDARD_IA".into()),
            sse: Some(Sse::Kms),
            sse_kms_key_id: Some("alias/k".into()),
            bucket_key_enabled: true,
            acl: Some("bucket-owner-full-control".into()),
            cache_control: Some("max-age=60".into()),
            content_disposition: Some("inline".into()),
            metadata: vec![("a".into(), "1".into()), ("team".into(), "data".into())],
            tagging: Some("project=x&team=data".into()),
            // About the requests, not the objects: not in the fingerprint.
            expected_bucket_owner: Some("111122223333".into()),
            request_payer: true,
        };
        insta::assert_snapshot!(options.fingerprint().unwrap());
    }
}
