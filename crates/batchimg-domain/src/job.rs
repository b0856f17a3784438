//! A row's life as data: the states a URL moves through and what each one holds.
//!
//! The pipeline, the manifest and `status` speak of rows through these types
//! without importing the database. Each state carries exactly what is known
//! in it (a `Processed` row has its output and key, an `Uploaded` one its key
//! and URL), so a record that claims to be uploaded without a key cannot be
//! built, and no reader re-checks optional fields. The pipeline's loop is the
//! only code that moves a row from one state to the next.
//!
//! The journal stores these records with postcard, which writes an enum
//! variant as its index: variants are only ever appended, never inserted or
//! reordered, and a test pins the bytes of a record so a change shows.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::format::ImageFormat;
use crate::keys::ObjectName;

/// A downloaded image in the work directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Where the bytes are, named after the URL (`work/in/<url id>.<ext>`).
    pub path: PathBuf,
    /// Blake3 of the bytes: the object key derives from it, and a resume
    /// checks the file against it.
    pub hash: [u8; 32],
    /// What the bytes were sniffed as.
    pub format: ImageFormat,
    /// Size of the downloaded bytes.
    pub bytes: u64,
}

/// What a conversion made: the manifest's width, height, output size and engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFacts {
    pub width: u32,
    pub height: u32,
    /// Size of the output.
    pub bytes: u64,
    pub engine: Engine,
}

/// Which engine converted an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Engine {
    /// The lossless JPEG transform (libjpeg-turbo).
    Lossless,
    ImageMagick,
    /// The transform, from a JPEG decoded by libjpeg-turbo at a reduced scale.
    TurboJpeg,
    /// The transform, from an image ImageMagick decoded (or libheif through it).
    Decoded,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Lossless => "lossless",
            Engine::ImageMagick => "imagemagick",
            Engine::TurboJpeg => "turbojpeg",
            Engine::Decoded => "imagemagick-decode",
        }
    }
}

/// What is known of a row's source once it is uploaded: its blake3 and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFacts {
    pub hash: [u8; 32],
    pub bytes: u64,
}

impl SourceFile {
    pub fn facts(&self) -> SourceFacts {
        SourceFacts {
            hash: self.hash,
            bytes: self.bytes,
        }
    }
}

/// Where a row is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Not started, or interrupted before the download was recorded.
    Pending,
    /// The source image is in the work directory.
    Downloaded { source: SourceFile },
    /// The grayscale image is in the work directory, under the key it will have.
    Processed {
        source: SourceFile,
        output: PathBuf,
        key: String,
        /// What the conversion made; `None` when an earlier run's output was reused.
        image: Option<ImageFacts>,
    },
    /// The object is in the bucket.
    Uploaded(Uploaded),
    /// Given up on, with the reason.
    Failed(Failure),
}

/// What an uploaded row leaves for the output CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uploaded {
    pub key: String,
    /// The object's URL as users see it in the output CSV.
    pub s3url: String,
    /// The object was already there (identical content, an earlier run, or
    /// the URL index): nothing was uploaded for this row.
    pub reused: bool,
    /// The downloaded file, when this run or an earlier one left it in the work directory.
    pub input: Option<PathBuf>,
    /// The converted file, likewise.
    pub output: Option<PathBuf>,
    /// The source, when this row downloaded it (not when the URL index
    /// answered for it).
    pub source: Option<SourceFacts>,
    /// The conversion, when this row converted it.
    pub image: Option<ImageFacts>,
}

/// A state's name without its data, for counters and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKind {
    Pending,
    Downloaded,
    Processed,
    Uploaded,
    Failed,
}

impl StateKind {
    pub const ALL: [StateKind; 5] = [
        StateKind::Pending,
        StateKind::Downloaded,
        StateKind::Processed,
        StateKind::Uploaded,
        StateKind::Failed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StateKind::Pending => "pending",
            StateKind::Downloaded => "downloaded",
            StateKind::Processed => "processed",
            StateKind::Uploaded => "uploaded",
            StateKind::Failed => "failed",
        }
    }
}

impl JobState {
    pub fn kind(&self) -> StateKind {
        match self {
            JobState::Pending => StateKind::Pending,
            JobState::Downloaded { .. } => StateKind::Downloaded,
            JobState::Processed { .. } => StateKind::Processed,
            JobState::Uploaded(_) => StateKind::Uploaded,
            JobState::Failed(_) => StateKind::Failed,
        }
    }
}

/// Why a row failed, coarse enough to count and to decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureClass {
    /// Not a URL batchimg will fetch: unparsable, not http(s), empty.
    InvalidUrl,
    /// Refused by the network policy (private or metadata address).
    Blocked,
    /// Connection or timeout failure after every retry.
    Network,
    /// The server answered with an error status.
    HttpStatus,
    /// The body exceeded the download limit.
    TooLarge,
    /// The body is not one of the accepted image formats.
    NotAnImage,
    /// The image is larger than the decode limits (a decompression bomb, say).
    ImageTooLarge,
    /// The image could not be decoded or encoded.
    CorruptImage,
    /// The conversion ran past its time limit.
    ConvertTimeout,
    /// The object store refused or failed the upload.
    Upload,
    /// A local file could not be written or read.
    LocalIo,
    /// A bug in batchimg (a panic) stopped this row; the rest of the run goes on.
    Internal,
    /// The process died while converting this image, and again when it was
    /// converted alone: a crash in a decoder, or memory the container lacks.
    Crashed,
    /// `--key-template` gives the row no valid name, or its name already
    /// holds other content, which is not overwritten.
    ObjectName,
    /// The host's name does not resolve (no such name, or the DNS server
    /// failed it after every retry).
    Dns,
}

impl FailureClass {
    pub const ALL: [FailureClass; 15] = [
        FailureClass::InvalidUrl,
        FailureClass::Blocked,
        FailureClass::Network,
        FailureClass::HttpStatus,
        FailureClass::TooLarge,
        FailureClass::NotAnImage,
        FailureClass::ImageTooLarge,
        FailureClass::CorruptImage,
        FailureClass::ConvertTimeout,
        FailureClass::Upload,
        FailureClass::LocalIo,
        FailureClass::Internal,
        FailureClass::Crashed,
        FailureClass::ObjectName,
        FailureClass::Dns,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FailureClass::InvalidUrl => "invalid-url",
            FailureClass::Blocked => "blocked",
            FailureClass::Network => "network",
            FailureClass::HttpStatus => "http-status",
            FailureClass::TooLarge => "too-large",
            FailureClass::NotAnImage => "not-an-image",
            FailureClass::ImageTooLarge => "image-too-large",
            FailureClass::CorruptImage => "corrupt-image",
            FailureClass::ConvertTimeout => "convert-timeout",
            FailureClass::Upload => "upload",
            FailureClass::LocalIo => "local-io",
            FailureClass::Internal => "internal",
            FailureClass::Crashed => "crashed",
            FailureClass::ObjectName => "object-name",
            FailureClass::Dns => "dns",
        }
    }
}

/// A stage error that knows which class of failure it is.
pub trait Classify: std::error::Error + 'static {
    fn class(&self) -> FailureClass;

    /// Why the error is not this row's fault, when it is not: the store is
    /// down, the disk is full. Such a row is left in its last recorded state
    /// for `resume`, instead of being failed.
    fn systemic(&self) -> Option<Systemic> {
        None
    }
}

/// A failure that is not the row's: every row would meet it. The row keeps
/// its last recorded state, and the run decides whether it can go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Systemic {
    /// The object store is failing; its breaker decides when the run stops.
    Store { reason: String },
    /// A local volume is full (or went read-only): the run stops.
    DiskFull { path: PathBuf, reason: String },
    /// An image host failed every request for longer than the outage wait;
    /// its rows are left for `resume`.
    HostDown { host: String, reason: String },
}

impl Systemic {
    /// `Some(DiskFull)` when an I/O error on `path` means the disk (or quota)
    /// is full, or the volume went read-only.
    pub fn disk_full(path: &std::path::Path, e: &std::io::Error) -> Option<Systemic> {
        // ENOSPC, EDQUOT: no room; EROFS: the volume went read-only.
        matches!(e.raw_os_error(), Some(28 | 122 | 30)).then(|| Systemic::DiskFull {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

impl std::fmt::Display for Systemic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Systemic::Store { reason } => write!(f, "the object store is failing ({reason})"),
            Systemic::DiskFull { path, reason } => {
                write!(f, "the disk is full ({}: {reason})", path.display())
            }
            Systemic::HostDown { host, reason } => write!(f, "{host} is down ({reason})"),
        }
    }
}

/// Which failed rows a resume takes up again (`--retry-failed[=CLASSES]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RetryFailed {
    /// None: failed rows stay failed.
    #[default]
    No,
    /// Every failed row.
    All,
    /// Rows failed for one of these reasons.
    Classes(Vec<FailureClass>),
}

impl RetryFailed {
    /// Reads the flag's values: none for every class, else class names.
    pub fn parse(values: Option<&[String]>) -> Result<RetryFailed, String> {
        let Some(values) = values else {
            return Ok(RetryFailed::No);
        };
        if values.is_empty() || values.iter().any(|v| v == "all") {
            return Ok(RetryFailed::All);
        }
        let classes = values
            .iter()
            .map(|v| {
                FailureClass::ALL
                    .into_iter()
                    .find(|c| c.name() == v.trim())
                    .ok_or_else(|| {
                        let names: Vec<&str> = FailureClass::ALL.iter().map(|c| c.name()).collect();
                        format!(
                            "--retry-failed: unknown reason {v:?}; the reasons are {}",
                            names.join(", ")
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(RetryFailed::Classes(classes))
    }

    /// Whether a row that failed for `failure` is taken up again.
    pub fn wants(&self, failure: &Failure) -> bool {
        match self {
            RetryFailed::No => false,
            RetryFailed::All => true,
            RetryFailed::Classes(c) => c.contains(&failure.class),
        }
    }

    /// Whether a row that failed for `class` is taken up again.
    pub fn wants_class(&self, class: FailureClass) -> bool {
        self.wants(&Failure::new(class, ""))
    }
}

/// A failure and its message (the error's whole cause chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

impl Failure {
    pub fn new(class: FailureClass, message: impl Into<String>) -> Failure {
        Failure {
            class,
            message: message.into(),
        }
    }

    /// The failure a stage error stands for.
    pub fn of(e: &impl Classify) -> Failure {
        Failure::new(e.class(), crate::text::chain(e))
    }
}

impl<E: Classify> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::of(&e)
    }
}

/// Everything known about one input row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The URL exactly as the input had it (trimmed).
    pub url: String,
    /// Set on a repeated URL: the row that does the work for both.
    pub dup_of: Option<u64>,
    /// Times this row was picked up for processing (runs and resumes).
    pub attempts: u32,
    /// A process died while converting it: a fact the journal keeps, which
    /// the pipeline acts on (converting it alone first, or failing it).
    pub suspect: Option<Suspicion>,
    pub state: JobState,
    /// Unix time of the last change, in milliseconds.
    pub updated_ms: u64,
    /// The object name `--key-template` gives the row (or why it gives
    /// none); `None`: the content key.
    pub name: Option<Result<ObjectName, String>>,
}

/// How a process died while converting a row (see the quarantine file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Suspicion {
    /// It was converting beside other rows: any of them may have done it.
    Beside,
    /// It was converting alone: it did it.
    Alone,
}

impl JobRecord {
    pub fn new(url: String, dup_of: Option<u64>) -> JobRecord {
        JobRecord::new_at(url, dup_of, now_ms())
    }

    /// A new record as of `updated_ms`: a journal recording a million rows
    /// reads the clock once, not once per row.
    pub fn new_at(url: String, dup_of: Option<u64>, updated_ms: u64) -> JobRecord {
        JobRecord {
            url,
            dup_of,
            attempts: 0,
            suspect: None,
            state: JobState::Pending,
            updated_ms,
            name: None,
        }
    }
}

impl JobRecord {
    /// Why the row failed, if it did.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.state {
            JobState::Failed(f) => Some(f),
            _ => None,
        }
    }
}

/// One data row of the input: its number (data rows from 0, so the input
/// order), its URL, and the other columns when `--keep-columns` asks for them.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRow {
    pub row: u64,
    pub url: String,
    pub kept: Vec<crate::table::Value>,
    /// The object name `--key-template` gives the row, or why it gives none.
    pub name: Option<Result<ObjectName, String>>,
}

impl InputRow {
    /// What makes two rows the same work: the URL, and the chosen name when
    /// `--key-template` names rows apart. Rows with one key share one record.
    pub fn work_key(&self) -> [u8; 16] {
        let digest = match &self.name {
            Some(Ok(name)) => {
                let mut h = blake3::Hasher::new();
                h.update(self.url.as_bytes()).update(b"\0name\0");
                h.update(name.key("").as_bytes());
                h.finalize()
            }
            _ => blake3::hash(self.url.as_bytes()),
        };
        digest.as_bytes()[..16].try_into().expect("16 bytes")
    }
}

/// Rows by state, and failures by class: what `status`, the progress lines,
/// the metrics and the summary report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub by_state: Vec<(&'static str, u64)>,
    pub reused: u64,
    pub failed_by_class: Vec<(&'static str, u64)>,
}

impl Counts {
    /// Failed rows that `retry` takes up again.
    pub fn retried(&self, retry: &RetryFailed) -> u64 {
        self.failed_by_class
            .iter()
            .filter(|(name, _)| {
                FailureClass::ALL
                    .iter()
                    .any(|c| c.name() == *name && retry.wants_class(*c))
            })
            .map(|(_, n)| n)
            .sum()
    }

    pub fn get(&self, state: StateKind) -> u64 {
        self.by_state
            .iter()
            .find(|(n, _)| *n == state.name())
            .map_or(0, |(_, c)| *c)
    }

    /// Rows a session still has to do when it takes up `retry`'s failures.
    pub fn to_do(&self, retry: &RetryFailed) -> u64 {
        self.get(StateKind::Pending)
            + self.get(StateKind::Downloaded)
            + self.get(StateKind::Processed)
            + self.retried(retry)
    }

    /// Rows that reached a final state.
    pub fn done(&self) -> u64 {
        self.get(StateKind::Uploaded) + self.get(StateKind::Failed)
    }

    /// The `limit` commonest failure reasons with their counts, commonest
    /// first (ties in the reasons' documented order), and how many rows the
    /// others hold: "http-status: 20, network: 7, 2 other". The one wording
    /// of the summary, the progress lines and `status`.
    pub fn top_failures(&self, limit: usize) -> String {
        let mut sorted = self.failed_by_class.clone();
        sorted.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let mut parts: Vec<String> = sorted
            .iter()
            .take(limit)
            .map(|(class, n)| format!("{class}: {n}"))
            .collect();
        let others: u64 = sorted.iter().skip(limit).map(|(_, n)| n).sum();
        if others > 0 {
            parts.push(format!("{others} other"));
        }
        parts.join(", ")
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_the_commonest_failures_first() {
        let by_class = [
            ("invalid-url", 1),
            ("network", 7),
            ("http-status", 20),
            ("not-an-image", 1),
            ("upload", 2),
        ];
        let counts = |by: &[(&'static str, u64)]| Counts {
            failed_by_class: by.to_vec(),
            ..Counts::default()
        };
        assert_eq!(
            counts(&by_class).top_failures(3),
            "http-status: 20, network: 7, upload: 2, 2 other"
        );
        assert_eq!(counts(&by_class[..1]).top_failures(3), "invalid-url: 1");
        assert_eq!(counts(&[]).top_failures(3), "");
    }

    /// A record as the journal stores it (after its format byte), with every
    /// variant that carries data: a change of field order, of an enum's
    /// variants or of their order changes these bytes, and old journals
    /// would then read as something else.
    #[test]
    fn the_bytes_of_an_encoded_record_are_pinned() {
        let source = SourceFile {
            path: "work/in/17207da83b7770fce81106ab583c940f.jpg".into(),
            hash: [7; 32],
            format: ImageFormat::Jpeg,
            bytes: 1000,
        };
        let mut rec = JobRecord::new("https://example.com/a.jpg".into(), Some(3));
        rec.attempts = 2;
        rec.suspect = Some(Suspicion::Beside);
        rec.updated_ms = 1_764_000_000_000;
        rec.state = JobState::Processed {
            source,
            output: "work/out/k.jpg".into(),
            key: "gray/k.jpg".into(),
            image: Some(ImageFacts {
                width: 640,
                height: 480,
                bytes: 300,
                engine: Engine::Lossless,
            }),
        };
        let processed = postcard::to_stdvec(&rec).unwrap();
        rec.state = JobState::Failed(Failure::new(FailureClass::ObjectName, "taken"));
        rec.name = Some(Err("no name".into()));
        let failed = postcard::to_stdvec(&rec).unwrap();
        insta::assert_snapshot!(format!(
            "processed: {}\nfailed: {}",
            hex::encode(processed),
            hex::encode(failed)
        ));
        // Each failure class's index, as old journals hold it.
        let indexes: Vec<String> = FailureClass::ALL
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c.name(),
                    hex::encode(postcard::to_stdvec(c).unwrap())
                )
            })
            .collect();
        insta::assert_snapshot!("failure_class_indexes", indexes.join("\n"));
    }
}
