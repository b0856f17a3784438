//! URLs as they may appear in logs: no user-info, no signing secrets, bounded length.
//!
//! Input URLs can carry credentials (`https://user:pass@host/…`) or presigned
//! query strings. Logs travel further than the input does, so every URL that is
//! logged goes through [`Redacted`]. The CSVs keep the URL exactly as given:
//! they are the user's own data, and `failed.csv` must be re-runnable.

use std::fmt;

use url::Url;

/// Longest URL written to a log line; longer ones are cut with an ellipsis.
const MAX_LOGGED: usize = 300;

/// Query parameters whose values are secrets (AWS, Azure and GCS presigning, OAuth).
const SECRET_PARAMS: [&str; 9] = [
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
    "signature",
    "sig",
    "token",
    "access_token",
];

/// Displays a URL with its secrets replaced by `REDACTED`.
pub struct Redacted<'a>(pub &'a Url);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut url = self.0.clone();
        if !url.username().is_empty() {
            let _ = url.set_username("REDACTED");
        }
        if url.password().is_some() {
            let _ = url.set_password(None);
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let secret = SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str());
                    let v = if secret {
                        "REDACTED".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        f.write_str(&truncate(url.as_str()))
    }
}

/// Displays a raw input value that did not parse as a URL, bounded in length.
pub struct RawUrl<'a>(pub &'a str);

impl fmt::Display for RawUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Url::parse(self.0) {
            Ok(url) => Redacted(&url).fmt(f),
            // Unparsable: it may still hold a user-info part, so cut it at '@'.
            Err(_) => {
                let shown = match self.0.rsplit_once('@') {
                    Some((_, host)) => format!("REDACTED@{host}"),
                    None => self.0.to_string(),
                };
                write!(f, "{:?}", truncate(&shown))
            }
        }
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_LOGGED {
        return s.to_string();
    }
    let mut end = MAX_LOGGED;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(s: &str) -> String {
        Redacted(&Url::parse(s).unwrap()).to_string()
    }

    #[test]
    fn user_info_never_shows() {
        let shown = show("https://alice:s3cret@example.com/a.jpg");
        assert!(
            !shown.contains("s3cret") && !shown.contains("alice"),
            "{shown}"
        );
        assert!(shown.contains("example.com/a.jpg"));
    }

    #[test]
    fn presigned_signatures_never_show() {
        let shown = show(
            "https://b.s3.amazonaws.com/k.jpg?X-Amz-Signature=abc123&X-Amz-Security-Token=tok&w=10",
        );
        assert!(
            !shown.contains("abc123") && !shown.contains("tok&"),
            "{shown}"
        );
        assert!(shown.contains("w=10"));
    }

    #[test]
    fn unparsable_input_is_bounded_and_cut_at_the_at_sign() {
        let long = format!("nota url {}", "x".repeat(10_000));
        assert!(RawUrl(&long).to_string().len() < 400);
        let shown = RawUrl("ht!tp://bob:pw@host/x").to_string();
        assert!(!shown.contains("pw"), "{shown}");
    }
}
