//! The input CSV, read into rows.
//!
//! The input is validated as it is read into the journal, before any download:
//! one column named `url` (case-insensitive; a UTF-8 BOM and whitespace around
//! it are tolerated), then one URL per row. Blank lines are skipped. A file
//! that breaks these rules is rejected with its line number. A row that is
//! well-formed CSV but not a usable URL is not a file error: it fails on its
//! own, with its reason, in the failed CSV.

use std::io;
use std::path::{Path, PathBuf};

use crate::job::InputRow;
use crate::keys::KeyTemplate;
use crate::settings::CsvFormat;

/// A malformed input file.
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
}

/// Rows of a validated input file.
pub struct InputRows {
    reader: csv::Reader<io::BufReader<std::fs::File>>,
    path: PathBuf,
    record: csv::ByteRecord,
    next_row: u64,
    /// Fields per row, and which one is the URL.
    width: usize,
    url_at: usize,
    keep: bool,
    kept_header: Vec<String>,
    /// The header's column names.
    names: Vec<String>,
    naming: Option<Naming>,
}

/// `--key-template`, the prefix, and where the columns it reads are.
struct Naming {
    template: KeyTemplate,
    prefix: String,
    columns: Vec<(String, usize)>,
}

impl InputRows {
    /// The names of the columns kept beside the URL, in input order.
    pub fn kept_header(&self) -> &[String] {
        &self.kept_header
    }

    /// Gives each row the object name `template` makes of it; a column the
    /// template reads must be in the header.
    pub fn name_rows(&mut self, template: &KeyTemplate, prefix: &str) -> Result<(), InputError> {
        let mut columns = Vec::new();
        for wanted in template.columns() {
            let at = self.names.iter().position(|n| n == wanted).or_else(|| {
                self.names
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(wanted))
            });
            match at {
                Some(at) => columns.push((wanted.to_string(), at)),
                None => {
                    return Err(InputError::Invalid {
                        path: self.path.clone(),
                        line: 1,
                        message: format!(
                            "--key-template reads the column {wanted:?}, but the header has {}",
                            self.names.join(",")
                        ),
                    });
                }
            }
        }
        self.naming = Some(Naming {
            template: template.clone(),
            prefix: prefix.to_string(),
            columns,
        });
        Ok(())
    }
}

/// Opens `path` and checks its header against `format`.
pub fn read_input(path: &Path, format: &CsvFormat) -> Result<InputRows, InputError> {
    let file = std::fs::File::open(path).map_err(|source| InputError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(InputError::Open {
            path: path.to_path_buf(),
            source: io::Error::other("is a directory"),
        });
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(format.delimiter)
        .from_reader(io::BufReader::with_capacity(256 * 1024, file));
    let mut header = csv::ByteRecord::new();
    let invalid = |line, message: String| InputError::Invalid {
        path: path.to_path_buf(),
        line,
        message,
    };
    let found = reader
        .read_byte_record(&mut header)
        .map_err(|e| csv_error(path, e))?;
    if !found {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
        });
    }
    let line = header.position().map_or(1, |p| p.line());
    let names: Vec<String> = header
        .iter()
        .map(|f| {
            String::from_utf8_lossy(f)
                .trim_start_matches('\u{feff}')
                .trim()
                .to_string()
        })
        .collect();
    let url_at = match &format.url_column {
        None => {
            if header.len() != 1 {
                return Err(invalid(
                    line,
                    format!(
                        "the header has {} columns ({}); the input must have exactly one column, \
                         `url` (or name the URL column with --url-column)",
                        header.len(),
                        names.join(",")
                    ),
                ));
            }
            std::str::from_utf8(&header[0])
                .map_err(|_| invalid(line, "the header is not valid UTF-8".into()))?;
            let name = &names[0];
            if !name.eq_ignore_ascii_case("url") {
                let message = if name.contains("://") {
                    format!(
                        "found a URL where the header should be; add a first line `url` (found {name:?})"
                    )
                } else {
                    format!("the column is named {name:?}; it must be `url`")
                };
                return Err(invalid(line, message));
            }
            0
        }
        Some(wanted) => {
            let at = names.iter().position(|n| n == wanted);
            let at = at.or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(wanted)));
            let Some(at) = at else {
                let message = if names.iter().any(|n| n.contains("://")) {
                    format!(
                        "found a URL where the header should be; add a header line naming the columns, one of them {wanted:?}"
                    )
                } else {
                    format!(
                        "no column named {wanted:?}; the header has {}",
                        names.join(",")
                    )
                };
                return Err(invalid(line, message));
            };
            at
        }
    };
    let kept_header = if format.keep_columns {
        names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != url_at)
            .map(|(_, n)| n.clone())
            .collect()
    } else {
        Vec::new()
    };
    Ok(InputRows {
        reader,
        path: path.to_path_buf(),
        record: csv::ByteRecord::new(),
        next_row: 0,
        width: header.len(),
        url_at,
        keep: format.keep_columns,
        kept_header,
        names,
        naming: None,
    })
}

impl Iterator for InputRows {
    type Item = Result<InputRow, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.reader.read_byte_record(&mut self.record) {
                Err(e) => return Some(Err(csv_error(&self.path, e))),
                Ok(false) => return None,
                Ok(true) => {}
            }
            let line = self.record.position().map_or(0, |p| p.line());
            let invalid = |message: String| {
                Some(Err(InputError::Invalid {
                    path: self.path.clone(),
                    line,
                    message,
                }))
            };
            // No URL holds a line break, so a field that does is a quote left
            // open, which would otherwise swallow the rest of the file.
            let url_field = self.record.get(self.url_at).unwrap_or_default();
            if url_field.contains(&b'\n') || url_field.contains(&b'\r') {
                let end = self.reader.position().line();
                return invalid(format!(
                    "a quote opened here is not closed before line {end}; a URL cannot \
                     span lines"
                ));
            }
            // A blank line reads as one empty field, whatever the width.
            if self.record.len() == 1 && self.record[0].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if self.record.len() != self.width {
                return invalid(if self.width == 1 {
                    format!(
                        "{} fields, but the input has one column (quote URLs that contain commas)",
                        self.record.len()
                    )
                } else {
                    format!(
                        "{} fields, but the header has {}",
                        self.record.len(),
                        self.width
                    )
                });
            }
            let Ok(value) = std::str::from_utf8(&self.record[self.url_at]) else {
                return invalid("not valid UTF-8".into());
            };
            let value = value.trim();
            if value.is_empty() && self.width == 1 {
                continue;
            }
            let mut kept = Vec::new();
            if self.keep {
                for (i, field) in self.record.iter().enumerate() {
                    if i != self.url_at {
                        let Ok(field) = std::str::from_utf8(field) else {
                            return invalid("not valid UTF-8".into());
                        };
                        kept.push(field.to_string());
                    }
                }
            }
            let row = self.next_row;
            self.next_row += 1;
            let name = self.naming.as_ref().map(|n| {
                let record = &self.record;
                n.template.render(&n.prefix, row, value, |wanted| {
                    let (_, at) = n.columns.iter().find(|(c, _)| c == wanted)?;
                    Some(String::from_utf8_lossy(record.get(*at)?).into_owned())
                })
            });
            return Some(Ok(InputRow {
                row,
                url: value.to_string(),
                kept,
                name,
            }));
        }
    }
}

fn csv_error(path: &Path, e: csv::Error) -> InputError {
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(source) => InputError::Open {
            path: path.to_path_buf(),
            source,
        },
        other => InputError::Invalid {
            path: path.to_path_buf(),
            line,
            message: format!("{other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Result<Vec<(u64, String)>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, text).unwrap();
        let rows = read_input(&path, &CsvFormat::default()).map_err(|e| e.to_string())?;
        rows.map(|r| r.map(|r| (r.row, r.url)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_unterminated_quote_is_an_error_on_its_line() {
        let err = rows("url\nhttp://a/1.jpg\n\"http://a/2.jpg\nhttp://a/3.jpg\nhttp://a/4.jpg\n")
            .unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("not closed"), "{err}");
    }

    #[test]
    fn accepts_bom_whitespace_case_crlf_quotes_and_blank_lines() {
        let got = rows(
            "\u{feff} URL \r\nhttp://a/1.jpg\r\n\r\n\"http://a/2,3.jpg\"\n  http://a/4.jpg  \n",
        )
        .unwrap();
        let urls: Vec<_> = got.iter().map(|(_, u)| u.as_str()).collect();
        assert_eq!(
            urls,
            ["http://a/1.jpg", "http://a/2,3.jpg", "http://a/4.jpg"]
        );
        assert_eq!(got.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn rejects_bad_headers_with_their_line() {
        let cases = [
            ("", "is empty"),
            ("url,name\nhttp://a,b\n", "exactly one column"),
            ("http://a/1.jpg\nhttp://a/2.jpg\n", "add a first line `url`"),
            ("link\nhttp://a/1.jpg\n", "must be `url`"),
        ];
        for (text, want) in cases {
            let err = rows(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn rejects_extra_fields_and_invalid_utf8_with_line_numbers() {
        let err = rows("url\nhttp://a/1.jpg\nhttp://a/2.jpg,extra\n").unwrap_err();
        assert!(err.contains("line 3") && err.contains("2 fields"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, b"url\nhttp://a/\xff.jpg\n").unwrap();
        let err = read_input(&path, &CsvFormat::default())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn keeps_nul_bytes_and_huge_fields_for_the_row_to_fail_on() {
        let huge = format!(
            "url\nhttp://a/{}\nhttp://a/\0.jpg\n",
            "x".repeat(10 * 1024 * 1024)
        );
        let got = rows(&huge).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].1.len() > 10 * 1024 * 1024);
        assert!(got[1].1.contains('\0'));
    }

    mod properties {
        //! Property tests: arbitrary files never panic the reader, and any list
        //! of URLs written as CSV reads back unchanged.

        use super::*;
        use proptest::prelude::*;

        fn read_all(bytes: &[u8]) -> Result<Vec<(u64, String)>, String> {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("in.csv");
            std::fs::write(&path, bytes).unwrap();
            let rows = read_input(&path, &CsvFormat::default()).map_err(|e| e.to_string())?;
            rows.map(|r| r.map(|r| (r.row, r.url)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn arbitrary_bytes_give_rows_or_a_located_error(body in proptest::collection::vec(any::<u8>(), 0..512)) {
                let mut file = b"url\n".to_vec();
                file.extend_from_slice(&body);
                match read_all(&file) {
                    Ok(rows) => prop_assert!(rows.iter().all(|(_, u)| !u.is_empty() && u.trim() == u)),
                    Err(e) => prop_assert!(e.contains("line "), "{e}"),
                }
            }

            #[test]
            fn urls_written_as_csv_read_back_unchanged(
                urls in proptest::collection::vec("[^\\s\\x00-\\x1f][^\\x00-\\x1f]{0,60}[^\\s\\x00-\\x1f]", 0..40)
            ) {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(["url"]).unwrap();
                for u in &urls {
                    w.write_record([u]).unwrap();
                }
                let got = read_all(&w.into_inner().unwrap()).unwrap();
                let got: Vec<String> = got.into_iter().map(|(_, u)| u).collect();
                prop_assert_eq!(got, urls);
            }
        }
    }
}
