//! CSV and TSV parts: today's rules, exactly.
//!
//! Without `--url-column` the file is one column named `url`
//! (case-insensitive; a UTF-8 BOM and whitespace around it are tolerated);
//! with it, a header naming that column among others. Blank lines are
//! skipped, and a line's fields must match the header's.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{InputError, Kept, Record, Want, find_column};
use crate::table::{ColumnType, Value};

/// One CSV part being read.
pub(in crate::manifest) struct CsvPart {
    reader: Option<csv::Reader<Box<dyn Read + Send>>>,
    path: PathBuf,
    record: csv::ByteRecord,
    /// Fields per row, and which one is the URL.
    width: usize,
    url_at: usize,
    /// (field, kept slot) of each kept column.
    kept: Vec<(usize, usize)>,
    /// The field of each column `--key-template` reads.
    named: Vec<usize>,
}

impl CsvPart {
    /// A part with no bytes: no header, no rows.
    pub(super) fn empty(path: &Path) -> CsvPart {
        CsvPart {
            reader: None,
            path: path.to_path_buf(),
            record: csv::ByteRecord::new(),
            width: 0,
            url_at: 0,
            kept: Vec::new(),
            named: Vec::new(),
        }
    }

    /// Reads and checks the header; `None` when the file is empty.
    pub(super) fn open(
        path: &Path,
        text: Box<dyn Read + Send>,
        delimiter: u8,
        want: &Want,
        kept_slots: &mut Kept,
    ) -> Result<Option<CsvPart>, InputError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(text);
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
            return Ok(None);
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
        let url_at = match want.url_column {
            None if !want.keep => {
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
            wanted => {
                let wanted = wanted.unwrap_or("url");
                let Some(at) = find_column(&names, wanted) else {
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
        let kept = if want.keep {
            (0..names.len())
                .filter(|i| *i != url_at)
                .map(|i| (i, kept_slots.slot(&names[i], Some(ColumnType::Text))))
                .collect()
        } else {
            Vec::new()
        };
        let mut named = Vec::new();
        for wanted in want.named {
            match find_column(&names, wanted) {
                Some(at) => named.push(at),
                None => {
                    return Err(invalid(
                        line,
                        format!(
                            "--key-template reads the column {wanted:?}, but the header has {}",
                            names.join(",")
                        ),
                    ));
                }
            }
        }
        Ok(Some(CsvPart {
            reader: Some(reader),
            path: path.to_path_buf(),
            record: csv::ByteRecord::new(),
            width: header.len(),
            url_at,
            kept,
            named,
        }))
    }

    pub(super) fn next(&mut self) -> Option<Result<Record, InputError>> {
        let reader = self.reader.as_mut()?;
        loop {
            match reader.read_byte_record(&mut self.record) {
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
                // The record ends where its field's last line break leads:
                // the reader's position is already the next record's line.
                // A quote left open runs to the end of the file, whose
                // last line break ends no line of its own.
                let last = self.record.len().saturating_sub(1);
                let breaks = |b: u8| -> usize {
                    self.record
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            let f = if i == last { f.trim_ascii_end() } else { f };
                            f.iter().filter(|&&c| c == b).count()
                        })
                        .sum()
                };
                let end = line + breaks(b'\n').max(breaks(b'\r')) as u64;
                return invalid(format!(
                    "a quoted field opened here runs to line {end}; a URL cannot span lines \
                     (is a quote left open?)"
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
            for &(field, slot) in &self.kept {
                let Ok(text) = std::str::from_utf8(&self.record[field]) else {
                    return invalid("not valid UTF-8".into());
                };
                if kept.len() <= slot {
                    kept.resize(slot + 1, Value::Null);
                }
                kept[slot] = Value::Text(text.to_string());
            }
            let named = self
                .named
                .iter()
                .map(|&at| {
                    self.record
                        .get(at)
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                })
                .collect();
            return Some(Ok(Record {
                url: value.to_string(),
                kept,
                named,
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
    use super::super::read_input;
    use crate::settings::InputShape;

    fn rows(text: &str) -> Result<Vec<(u64, String)>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, text).unwrap();
        let rows = read_input(vec![path.clone()], &InputShape::default(), None)
            .map_err(|e| e.to_string())?;
        rows.map(|r| r.map(|r| (r.row, r.url)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_unterminated_quote_is_an_error_on_its_line() {
        let err = rows("url\nhttp://a/1.jpg\n\"http://a/2.jpg\nhttp://a/3.jpg\nhttp://a/4.jpg\n")
            .unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("runs to line 5"), "the end of the file: {err}");
        assert!(err.contains("quote left open"), "{err}");
    }

    #[test]
    fn a_url_over_two_lines_names_the_line_its_quote_closes_on() {
        // The header, then lines 2-3 the broken URL (closed on 3), then a good one.
        let err = rows("url\n\"https://h/a\n.jpg\"\nhttps://h/b.jpg\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("runs to line 3"), "{err}");
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
        let err = read_input(vec![path.clone()], &InputShape::default(), None)
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
            let rows = read_input(vec![path.clone()], &InputShape::default(), None)
                .map_err(|e| e.to_string())?;
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
