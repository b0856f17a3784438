//! A row's life as data: the states a URL moves through and what each one holds.
//!
//! The domain lives here rather than in the journal, so the pipeline, the
//! manifest and `status` speak of rows without importing the database. Each
//! state carries exactly what is known in it (a `Processed` row has its output
//! and key, an `Uploaded` one its key and URL), so a record that claims to be
//! uploaded without a key cannot be built, and no reader re-checks optional
//! fields. The pipeline's loop (`pipeline::Pipeline::drive`) is the only code
//! that moves a row from one state to the next.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::format::ImageFormat;

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
    /// DNS, connection or timeout failure after every retry.
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
}

impl FailureClass {
    pub const ALL: [FailureClass; 14] = [
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
        }
    }
}

/// A stage error that knows which class of failure it is.
pub trait Classify: std::error::Error + 'static {
    fn class(&self) -> FailureClass;

    /// Why the error is not this row's fault, when it is not: the store is
    /// down, the disk is full. Such a row is left in its last recorded state
    /// for `resume`, instead of being failed.
    fn systemic(&self) -> Option<String> {
        None
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
        Failure::new(e.class(), crate::error::chain(e))
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
    /// It was converting when a process died: the next run converts it
    /// alone, before anything else (see `pipeline::quarantine`).
    pub suspect: bool,
    pub state: JobState,
    /// Unix time of the last change, in milliseconds.
    pub updated_ms: u64,
    /// The object name `--key-template` gives the row (or why it gives
    /// none); `None`: the content key.
    pub name: Option<Result<crate::pipeline::keys::ObjectName, String>>,
}

impl JobRecord {
    pub fn new(url: String, dup_of: Option<u64>) -> JobRecord {
        JobRecord {
            url,
            dup_of,
            attempts: 0,
            suspect: false,
            state: JobState::Pending,
            updated_ms: now_ms(),
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

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
