//! Backend URLs: which backend a URL names, its options, and how to print it without secrets.

use std::collections::BTreeMap;
use std::time::Duration;

use url::Url;

use crate::error::{Result, StorageError};

/// How long opening a backend may take before it counts as not answering. A database that
/// does not answer must fail startup (and readiness) quickly, not hang it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Query options whose values are secrets and never printed.
const SECRET_OPTIONS: &[&str] = &[
    "password",
    "secret_access_key",
    "aws_secret_access_key",
    "session_token",
    "aws_session_token",
    "token",
];

/// A parsed backend URL, with a printable form that hides the password and secret options.
#[derive(Clone)]
pub struct Location {
    url: Url,
    redacted: String,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl Location {
    /// Parses `raw` for `abstraction` (named in errors: "document store", "cache", ...).
    pub fn parse(abstraction: &'static str, raw: &str) -> Result<Self> {
        // `sqlite::memory:`-style and bare paths are not URLs: say so instead of guessing.
        let url = Url::parse(raw).map_err(|e| StorageError::InvalidUrl {
            abstraction,
            url: redact(raw),
            reason: format!("{e} (expected scheme://...)"),
        })?;
        Ok(Self {
            redacted: redact_url(&url),
            url,
        })
    }

    /// The URL's scheme, which picks the backend.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    /// The URL as given, secrets included: only for handing to the backend's client.
    pub fn as_secret_str(&self) -> &str {
        self.url.as_str()
    }

    /// The parsed URL, secrets included.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URL without its password or secret options: safe for errors and logs.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The query options, last value winning.
    pub fn options(&self) -> BTreeMap<String, String> {
        self.url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The URL with the named query options removed (they are ours, not the client's).
    pub fn without_options(&self, ours: &[&str]) -> Url {
        let mut url = self.url.clone();
        let kept: Vec<(String, String)> = self
            .url
            .query_pairs()
            .filter(|(k, _)| !ours.contains(&k.as_ref()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        url
    }

    /// The filesystem path of a `sqlite://` or `file://` URL: `scheme:///abs/path` is absolute,
    /// `scheme://rel/path` is relative to the working directory.
    pub fn path_of_local(&self, abstraction: &'static str) -> Result<String> {
        let host = self.url.host_str().unwrap_or("");
        let path = percent_decode(self.url.path());
        let joined = if host.is_empty() {
            path
        } else {
            format!("{host}{path}")
        };
        if joined.is_empty() {
            return Err(StorageError::InvalidUrl {
                abstraction,
                url: self.redacted.clone(),
                reason: "no path; use scheme:///absolute/path or scheme://relative/path".into(),
            });
        }
        Ok(joined)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `raw` with its password and secret options replaced by `***`; unparsable input is cut at
/// the first `@` so a password never leaks through an error message.
pub fn redact(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => redact_url(&url),
        Err(_) => match raw.rfind('@') {
            Some(at) => format!("***{}", &raw[at..]),
            None => raw.to_string(),
        },
    }
}

fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let secret = SECRET_OPTIONS.contains(&k.to_ascii_lowercase().as_str());
            (
                k.into_owned(),
                if secret {
                    "***".to_string()
                } else {
                    v.into_owned()
                },
            )
        })
        .collect();
    if !pairs.is_empty() {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// The error for a scheme no backend of `abstraction` handles.
pub(crate) fn unsupported(
    abstraction: &'static str,
    loc: &Location,
    supported: &'static str,
) -> StorageError {
    StorageError::UnsupportedScheme {
        abstraction,
        scheme: loc.scheme().to_string(),
        url: loc.redacted().to_string(),
        supported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_secret_options_are_hidden() {
        assert_eq!(
            redact("postgres://bob:hunter2@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        let s = redact("s3://b/p?endpoint=http://h:1&secret_access_key=abc");
        assert!(
            s.contains("secret_access_key=***") && !s.contains("abc"),
            "{s}"
        );
        assert_eq!(redact("not a url:pw@host"), "***@host");
    }

    #[test]
    fn local_paths_are_absolute_or_relative() {
        let abs = Location::parse("x", "sqlite:///tmp/a%20b/r.db").unwrap();
        assert_eq!(abs.path_of_local("x").unwrap(), "/tmp/a b/r.db");
        let rel = Location::parse("x", "file://data/files").unwrap();
        assert_eq!(rel.path_of_local("x").unwrap(), "data/files");
        assert!(
            Location::parse("x", "sqlite://")
                .unwrap()
                .path_of_local("x")
                .is_err()
        );
    }

    #[test]
    fn our_options_are_stripped() {
        let loc = Location::parse("x", "postgres://h/db?schema=t1&sslmode=disable").unwrap();
        assert_eq!(loc.options().get("schema").map(String::as_str), Some("t1"));
        assert_eq!(
            loc.without_options(&["schema"]).as_str(),
            "postgres://h/db?sslmode=disable"
        );
    }
}
