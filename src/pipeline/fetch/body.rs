//! A body as it arrives: bounded by the download limit, hashed for its
//! content key, leased from the memory budget, and sniffed as an image by its
//! first bytes, so a body that is not an image is refused before the rest
//! arrives.

use bytes::Bytes;

use super::error::FetchError;
use crate::format::ImageFormat;
use crate::memory::{Budget, Lease};

/// One downloaded body, before it has a place in the work directory.
pub struct Body {
    pub bytes: Bytes,
    pub format: ImageFormat,
    pub hash: [u8; 32],
    pub lease: Lease,
}

/// How a body of unannounced length is leased: a mebibyte at a time.
const GROW_BY: u64 = 1 << 20;
/// A body as it streams in: bounded, hashed, leased and sniffed on the way.
pub struct Collector {
    lease: Lease,
    body: Vec<u8>,
    hasher: blake3::Hasher,
    format: Option<ImageFormat>,
    limit: u64,
    content_type: String,
}

impl Collector {
    /// A body of `length` bytes (if announced) about to arrive, of at most `limit`.
    pub async fn new(
        budget: &Budget,
        length: Option<u64>,
        limit: u64,
        content_type: String,
    ) -> Collector {
        // The body is leased from the memory budget as announced; without a
        // Content-Length it is leased as it grows, and over-committed rather
        // than stalled when the budget is full, so that partial bodies can
        // never wait on each other.
        Collector {
            lease: budget.lease(length.unwrap_or(GROW_BY)).await,
            body: Vec::with_capacity(length.unwrap_or(64 * 1024).min(limit) as usize),
            hasher: blake3::Hasher::new(),
            format: None,
            limit,
            content_type,
        }
    }

    pub fn push(&mut self, chunk: &[u8], budget: &Budget) -> Result<(), FetchError> {
        if self.body.len() as u64 + chunk.len() as u64 > self.limit {
            return Err(FetchError::TooLarge { limit: self.limit });
        }
        self.body.extend_from_slice(chunk);
        self.hasher.update(chunk);
        if self.body.len() as u64 > self.lease.bytes()
            && let Some(more) = budget.try_lease(GROW_BY)
        {
            self.lease.absorb(more);
        }
        // Stop at the first bytes when they are not an image.
        if self.format.is_none() && self.body.len() >= ImageFormat::SNIFF_LEN {
            self.format = Some(sniff(&self.body, &self.content_type)?);
        }
        Ok(())
    }

    pub fn finish(self) -> Result<Body, FetchError> {
        let format = match self.format {
            Some(f) => f,
            None => sniff(&self.body, &self.content_type)?,
        };
        Ok(Body {
            bytes: Bytes::from(self.body),
            format,
            hash: *self.hasher.finalize().as_bytes(),
            lease: self.lease,
        })
    }
}

fn sniff(head: &[u8], content_type: &str) -> Result<ImageFormat, FetchError> {
    ImageFormat::sniff(head).ok_or_else(|| FetchError::NotAnImage {
        content_type: content_type.to_string(),
        head: describe_head(head),
    })
}

/// The first bytes, printable, for an error message.
fn describe_head(head: &[u8]) -> String {
    if head.is_empty() {
        return "nothing (empty body)".into();
    }
    let text: String = head
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{text:?}")
}
