//! JSON Lines parts: one JSON object per line, read a line at a time.
//!
//! The URL is the key `url` (or `--url-column`) and must hold a string; a
//! missing or null URL, in any object including the first, is a row that
//! fails on its own, as Spark leaves null fields out of the objects it
//! writes. Only a file where no object has the key is an error. A UTF-8
//! byte-order mark before the first object is skipped. Kept columns are the other keys, in
//! the order they first appear, each typed to hold all its values (integers
//! widen to floats, mixed types become text; nested values are kept as
//! their JSON text).

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use super::{InputError, Kept, Record, Want};
use crate::table::Value;

/// One JSON Lines part being read.
pub(in crate::manifest) struct JsonlPart {
    reader: BufReader<Box<dyn Read + Send>>,
    path: PathBuf,
    line: u64,
    buf: String,
    /// The first object's keys (for the error when no object has the URL
    /// key), and whether any object had it.
    first_keys: Option<Vec<String>>,
    url_seen: bool,
}

/// A JSON object with its keys in file order.
struct Object(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Object, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Object;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Object(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

impl JsonlPart {
    pub(super) fn open(path: &Path, text: Box<dyn Read + Send>) -> JsonlPart {
        JsonlPart {
            reader: BufReader::with_capacity(256 * 1024, text),
            path: path.to_path_buf(),
            line: 0,
            buf: String::new(),
            first_keys: None,
            url_seen: false,
        }
    }

    /// The next non-blank line as an object, with its line number.
    fn read_object(&mut self) -> Option<Result<(u64, Object), InputError>> {
        loop {
            self.buf.clear();
            match self.reader.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => self.line += 1,
                Err(source) => {
                    let message = if source.kind() == std::io::ErrorKind::InvalidData {
                        "not valid UTF-8".to_string()
                    } else {
                        return Some(Err(InputError::Open {
                            path: self.path.clone(),
                            source,
                        }));
                    };
                    return Some(Err(self.invalid(self.line + 1, message)));
                }
            }
            let mut text = self.buf.trim();
            if self.line == 1 {
                text = text.trim_start_matches('\u{feff}').trim_start();
            }
            if text.is_empty() {
                continue;
            }
            return Some(match serde_json::from_str::<Object>(text) {
                Ok(object) => Ok((self.line, object)),
                Err(e) => {
                    let message = if text.starts_with('[') && self.line == 1 {
                        "a JSON array; batchimg reads JSON Lines, one object per line".to_string()
                    } else {
                        format!("not a JSON object: {e}")
                    };
                    Err(self.invalid(self.line, message))
                }
            });
        }
    }

    fn invalid(&self, line: u64, message: String) -> InputError {
        InputError::Invalid {
            path: self.path.clone(),
            line,
            message,
        }
    }

    pub(super) fn next(
        &mut self,
        want: &Want,
        kept_slots: &mut Kept,
    ) -> Option<Result<Record, InputError>> {
        let wanted = want.url_column.unwrap_or("url");
        let (line, object) = match self.read_object() {
            Some(Ok(o)) => o,
            Some(Err(e)) => return Some(Err(e)),
            None => return self.no_url_key(wanted, want.url_column.is_none()).map(Err),
        };
        let keys: Vec<&str> = object.0.iter().map(|(k, _)| k.as_str()).collect();
        if self.first_keys.is_none() {
            self.first_keys = Some(keys.iter().map(|k| k.to_string()).collect());
        }
        let url_at = super::find_column(&keys, wanted);
        self.url_seen |= url_at.is_some();
        let url = match url_at.map(|at| &object.0[at].1) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.trim().to_string(),
            Some(other) => {
                return Some(Err(self.invalid(
                    line,
                    format!(
                        "the URL column {wanted:?} holds {}; it must hold strings",
                        kind(other)
                    ),
                )));
            }
        };
        let named = want
            .named
            .iter()
            .map(|n| {
                let at = super::find_column(&keys, n)?;
                match &object.0[at].1 {
                    serde_json::Value::Null => None,
                    v => Some(cell(v).to_text().into_owned()),
                }
            })
            .collect();
        let mut kept = Vec::new();
        if want.keep {
            for (i, (key, value)) in object.0.into_iter().enumerate() {
                if Some(i) == url_at {
                    continue;
                }
                let value = cell(&value);
                let slot = kept_slots.slot(&key, value.ty());
                if kept.len() <= slot {
                    kept.resize(slot + 1, Value::Null);
                }
                kept[slot] = value;
            }
        }
        Some(Ok(Record { url, kept, named }))
    }
}

impl JsonlPart {
    /// At the end of a file with objects, none of which has the URL key:
    /// the error naming the keys there are (once).
    fn no_url_key(&mut self, wanted: &str, hint: bool) -> Option<InputError> {
        if self.url_seen {
            return None;
        }
        let keys = self.first_keys.take()?;
        let hint = if hint {
            " (name the URL key with --url-column)"
        } else {
            ""
        };
        Some(InputError::File {
            path: self.path.clone(),
            message: format!(
                "no object has the key {wanted:?}{hint}; the first object's keys are {}",
                keys.join(",")
            ),
        })
    }
}

/// A JSON value as a typed cell: nested values keep their JSON text.
fn cell(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        nested => Value::Text(nested.to_string()),
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
