//! The input, read into rows: CSV, TSV, Parquet or JSON Lines, one file or a
//! directory of part files, plain, gzip or zstd.
//!
//! The input is validated as it is read into the journal, before any
//! download. A file that breaks the rules (a missing URL column, a URL
//! column that does not hold strings, a malformed file) is rejected with its
//! path and its line, row or column, and nothing is written. A row that is
//! well-formed but not a usable URL is not a file error: it fails on its own,
//! with its reason, in the failed file and the manifest.
//!
//! A directory's `key=value/` subdirectories (Hive partitions, as Spark,
//! DuckDB and Polars write them) give each row of the files under them a
//! column per key, typed as DuckDB infers it (see [`hive`]).
//!
//! Row numbers count data rows from 0 across the parts in name order, so a
//! rerun over the same files numbers them the same. Memory stays bounded:
//! CSV and JSON Lines are read line by line, Parquet a batch of one row
//! group at a time, and one part is open at a time.

mod csv;
mod hive;
mod jsonl;
mod parquet;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::job::InputRow;
use crate::keys::KeyTemplate;
use crate::settings::InputShape;
use crate::table::{Column, ColumnType, TableFormat, Value};

/// A malformed input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is empty: its first line must be the header `url`")]
    Empty { path: PathBuf },
    #[error("{path}, line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// A file-level fault of a file without lines (Parquet), or of a
    /// directory; the message names the column or row.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// `--key-template` and the columns it reads.
struct Naming {
    template: KeyTemplate,
    prefix: String,
}

/// What each part reader is asked for.
pub(super) struct Want<'a> {
    url_column: Option<&'a str>,
    keep: bool,
    /// The columns `--key-template` reads.
    named: &'a [String],
    delimiter: u8,
}

fn want<'a>(shape: &'a InputShape, named: &'a [String]) -> Want<'a> {
    Want {
        url_column: shape.url_column.as_deref(),
        keep: shape.keep_columns,
        named,
        delimiter: shape.delimiter,
    }
}

/// One row as a part reader gives it.
pub(super) struct Record {
    url: String,
    /// Cells by kept slot; slots added after this row are null.
    kept: Vec<Value>,
    /// The text of each column `--key-template` reads, by `Want::named`.
    named: Vec<Option<String>>,
}

/// The kept columns across all parts: each a name and the type that holds
/// every value seen so far (`None` while only nulls were seen).
#[derive(Default)]
pub(super) struct Kept {
    names: Vec<String>,
    types: Vec<Option<ColumnType>>,
}

impl Kept {
    /// The slot of column `name`, added if new, its type widened to hold `ty`.
    pub(super) fn slot(&mut self, name: &str, ty: Option<ColumnType>) -> usize {
        let at = match self.names.iter().position(|n| n == name) {
            Some(at) => at,
            None => {
                self.names.push(name.to_string());
                self.types.push(None);
                self.names.len() - 1
            }
        };
        if let Some(ty) = ty {
            let t = &mut self.types[at];
            *t = Some(match t.take() {
                Some(t) => t.unify(&ty),
                None => ty,
            });
        }
        at
    }

    fn columns(&self) -> Vec<Column> {
        self.names
            .iter()
            .zip(&self.types)
            .map(|(n, t)| Column::new(n.clone(), t.clone().unwrap_or(ColumnType::Text)))
            .collect()
    }
}

/// Finds `wanted` among `names`: exactly, else ignoring ASCII case.
pub(super) fn find_column<S: AsRef<str>>(names: &[S], wanted: &str) -> Option<usize> {
    names.iter().position(|n| n.as_ref() == wanted).or_else(|| {
        names
            .iter()
            .position(|n| n.as_ref().eq_ignore_ascii_case(wanted))
    })
}

enum Part {
    Csv(csv::CsvPart),
    Parquet(parquet::ParquetPart),
    Jsonl(jsonl::JsonlPart),
}

impl Part {
    fn open(
        path: &Path,
        format: TableFormat,
        want: &Want,
        kept: &mut Kept,
        only: bool,
    ) -> Result<Part, InputError> {
        Ok(match format {
            TableFormat::Csv | TableFormat::Tsv => {
                let delimiter = format.delimiter(want.delimiter);
                match csv::CsvPart::open(path, open_text(path)?, delimiter, want, kept)? {
                    Some(part) => Part::Csv(part),
                    None if only => {
                        return Err(InputError::Empty {
                            path: path.to_path_buf(),
                        });
                    }
                    None => Part::Csv(csv::CsvPart::empty(path)),
                }
            }
            TableFormat::Parquet => Part::Parquet(parquet::ParquetPart::open(path, want, kept)?),
            TableFormat::Jsonl => Part::Jsonl(jsonl::JsonlPart::open(path, open_text(path)?)),
        })
    }

    fn next(&mut self, want: &Want, kept: &mut Kept) -> Option<Result<Record, InputError>> {
        match self {
            Part::Csv(p) => p.next(),
            Part::Parquet(p) => p.next(),
            Part::Jsonl(p) => p.next(want, kept),
        }
    }
}

/// Opens a text file, decompressing gzip or zstd, told by their magic bytes.
fn open_text(path: &Path) -> Result<Box<dyn Read + Send>, InputError> {
    let open = |source| InputError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(open)?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic).map_err(open)?;
    let head = io::Cursor::new(magic[..n].to_vec());
    let raw = head.chain(file);
    const BUF: usize = 256 * 1024;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(io::BufReader::with_capacity(
            BUF,
            flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(BUF, raw)),
        )),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(io::BufReader::with_capacity(
            BUF,
            zstd::stream::read::Decoder::new(raw).map_err(open)?,
        )),
        _ => Box::new(io::BufReader::with_capacity(BUF, raw)),
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The part files of an input, and the directory they were listed under.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    pub files: Vec<PathBuf>,
    /// The `key=value` directories between this and a file are its Hive
    /// partitions; `None` for a single file.
    pub root: Option<PathBuf>,
}

impl From<Vec<PathBuf>> for Parts {
    fn from(files: Vec<PathBuf>) -> Parts {
        Parts { files, root: None }
    }
}

/// The part files of an input path, in name order: the file itself, or the
/// files under a directory (recursively, as Hive-style `key=value/`
/// partitions lay them out), leaving out what Spark and Hadoop write beside
/// the data: names starting with `_` or `.` (`_SUCCESS`, `.part-0.crc`),
/// `.crc` files, and empty files.
pub fn list_parts(path: &Path) -> Result<Parts, InputError> {
    let meta = std::fs::metadata(path).map_err(|source| InputError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()].into());
    }
    let mut parts = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| InputError::Open {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| InputError::Open {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !is_part_name(&name) {
                continue;
            }
            let meta = std::fs::metadata(entry.path()).map_err(|source| InputError::Open {
                path: entry.path(),
                source,
            })?;
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.len() > 0 {
                parts.push(entry.path());
            }
        }
    }
    parts.sort();
    if parts.is_empty() {
        return Err(InputError::File {
            path: path.to_path_buf(),
            message: "the directory holds no part files".into(),
        });
    }
    Ok(Parts {
        files: parts,
        root: Some(path.to_path_buf()),
    })
}

/// Whether a file or directory name is data, not a marker or checksum.
pub fn is_part_name(name: &str) -> bool {
    !(name.starts_with('_') || name.starts_with('.') || name.ends_with(".crc"))
}

/// Rows of a validated input.
pub struct InputRows {
    parts: Vec<PathBuf>,
    /// The part being read, and the index of the next one.
    part: Option<Part>,
    next_part: usize,
    shape: InputShape,
    naming: Option<Naming>,
    /// The columns `--key-template` reads, and those of them the part being
    /// read holds (the others are its partition keys).
    named: Vec<String>,
    part_named: Vec<String>,
    kept: Kept,
    /// The partition columns of the input, their kept slots (with
    /// `--keep-columns`), and the part being read's as (key, value).
    hive: hive::Partitions,
    hive_slots: Vec<usize>,
    part_hive: Vec<(usize, Value)>,
    next_row: u64,
}

/// Opens the input's first part and checks its columns against `shape` (and
/// the columns `naming` reads); the other parts are checked as they are reached.
pub fn read_input(
    parts: impl Into<Parts>,
    shape: &InputShape,
    naming: Option<(&KeyTemplate, &str)>,
) -> Result<InputRows, InputError> {
    let named: Vec<String> = naming
        .map(|(t, _)| t.columns().map(String::from).collect())
        .unwrap_or_default();
    let parts = parts.into();
    let hive = hive::Partitions::of(&parts)?;
    let mut rows = InputRows {
        parts: parts.files,
        part: None,
        next_part: 0,
        shape: shape.clone(),
        naming: naming.map(|(template, prefix)| Naming {
            template: template.clone(),
            prefix: prefix.to_string(),
        }),
        named,
        part_named: Vec::new(),
        kept: Kept::default(),
        hive,
        hive_slots: Vec::new(),
        part_hive: Vec::new(),
        next_row: 0,
    };
    rows.open_next()?;
    Ok(rows)
}

impl InputRows {
    /// The kept columns with the types their values need: complete once
    /// every row has been read.
    pub fn kept_columns(&self) -> Vec<Column> {
        self.kept.columns()
    }

    /// Opens the next part; false when there is none.
    fn open_next(&mut self) -> Result<bool, InputError> {
        let Some(path) = self.parts.get(self.next_part).cloned() else {
            return Ok(false);
        };
        self.next_part += 1;
        let format = self.shape.format.unwrap_or_else(|| {
            TableFormat::of_file(&path.file_name().unwrap_or_default().to_string_lossy())
        });
        // The partition keys come after the file's own columns, as DuckDB
        // and Polars place them; a template column may be either.
        let hive = self.hive.of_part(self.next_part - 1);
        self.part_named = self
            .named
            .iter()
            .filter(|n| !hive.iter().any(|(k, _)| self.hive.name(*k) == n.as_str()))
            .cloned()
            .collect();
        let want = want(&self.shape, &self.part_named);
        let only = self.parts.len() == 1;
        self.part = Some(Part::open(&path, format, &want, &mut self.kept, only)?);
        self.part_hive = hive;
        if self.shape.keep_columns {
            self.hive_slots = (0..self.hive.len())
                .map(|k| {
                    self.kept
                        .slot(self.hive.name(k), Some(self.hive.ty(k).clone()))
                })
                .collect();
        }
        Ok(true)
    }
}

impl Iterator for InputRows {
    type Item = Result<InputRow, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(part) = self.part.as_mut() else {
                match self.open_next() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(e) => return Some(Err(e)),
                }
            };
            let want = want(&self.shape, &self.part_named);
            let mut record = match part.next(&want, &mut self.kept) {
                None => {
                    self.part = None;
                    continue;
                }
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(r)) => r,
            };
            if self.shape.keep_columns {
                for (k, value) in &self.part_hive {
                    let slot = self.hive_slots[*k];
                    if record.kept.len() <= slot {
                        record.kept.resize(slot + 1, Value::Null);
                    }
                    record.kept[slot] = value.clone();
                }
            }
            let row = self.next_row;
            self.next_row += 1;
            let name = self.naming.as_ref().map(|n| {
                n.template.render(&n.prefix, row, &record.url, |wanted| {
                    if let Some((_, v)) = self
                        .part_hive
                        .iter()
                        .find(|(k, _)| self.hive.name(*k) == wanted)
                    {
                        return (*v != Value::Null).then(|| v.to_text().into_owned());
                    }
                    let at = self.part_named.iter().position(|c| c == wanted)?;
                    record.named.get(at)?.clone()
                })
            });
            return Some(Ok(InputRow {
                row,
                url: record.url,
                kept: record.kept,
                name,
            }));
        }
    }
}

#[cfg(test)]
mod tests;
