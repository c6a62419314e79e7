//! The canonical form of a request path, computed once at the edge before anything reads the
//! path: routing, rate-limit keys, the route's service and auth rule, and the path the backend
//! receives all see the same text. Without it `/v2/workspaces/%34a/…` and `/v2/workspaces/4a/…`
//! name one workspace for the backend (which decodes) but two for a limiter keyed on the raw
//! text, so re-encoding one character gave a fresh budget.
//!
//! Each segment is percent-decoded exactly once and re-encoded in a single spelling: the
//! characters RFC 3986 allows in a segment stay as they are, every other byte becomes `%XX`
//! (uppercase). A segment whose decoded form could change the route is refused instead of
//! guessed at: an encoded `/` or `\`, `.` and `..` however written, control characters,
//! invalid UTF-8 and broken escapes.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// Bytes written `%XX` in a canonical segment: everything but RFC 3986 `pchar`
/// (unreserved, sub-delims, `:` and `@`). Non-ASCII bytes are always encoded.
const ENCODED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Why a path has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with '/'")]
    NotAbsolute,
    #[error("a path segment has a '%' that is not followed by two hex digits")]
    BrokenEscape,
    #[error("a path segment is not UTF-8 once decoded")]
    NotUtf8,
    #[error("a path segment holds an encoded '/' or '\\', which would change the route")]
    EncodedSeparator,
    #[error("a path segment holds a control character")]
    Control,
    #[error("'.' and '..' segments are not allowed")]
    DotSegment,
}

/// `raw`'s canonical form (borrowed when it already is canonical).
pub fn canonical(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut out = String::with_capacity(raw.len());
    for seg in rest.split('/') {
        out.push('/');
        out.extend(utf8_percent_encode(&decode(seg)?, ENCODED));
    }
    Ok(if out == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(out)
    })
}

/// One segment, decoded once and checked.
fn decode(seg: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = seg.as_bytes();
    for (i, _) in seg.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BrokenEscape)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(PathError::BrokenEscape);
        }
    }
    let decoded = percent_decode_str(seg)
        .decode_utf8()
        .map_err(|_| PathError::NotUtf8)?;
    if decoded.contains(['/', '\\']) {
        return Err(PathError::EncodedSeparator);
    }
    if decoded.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    if decoded == "." || decoded == ".." {
        return Err(PathError::DotSegment);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_resource_has_one_spelling() {
        let same = [
            "/v2/workspaces/4abc/webhooks/hook",
            "/v2/workspaces/%34abc/webhooks/hook",
            "/v2/%77orkspaces/4%61bc/webhooks/%68ook",
        ];
        for raw in same {
            assert_eq!(canonical(raw).unwrap(), same[0], "{raw}");
        }
        assert!(matches!(canonical(same[0]).unwrap(), Cow::Borrowed(_)));
        // What must stay encoded stays encoded, in uppercase hex.
        assert_eq!(
            canonical("/a%2fb").unwrap_err(),
            PathError::EncodedSeparator
        );
        assert_eq!(canonical("/a b%3f").unwrap(), "/a%20b%3F");
        assert_eq!(canonical("/%e2%82%ac").unwrap(), "/%E2%82%AC");
        assert_eq!(canonical("/100%25").unwrap(), "/100%25");
        assert_eq!(canonical("/a:b@c;d=e+f").unwrap(), "/a:b@c;d=e+f");
        // Decoded once: an encoded `%` is not decoded a second time.
        assert_eq!(canonical("/%2534").unwrap(), "/%2534");
        assert_eq!(canonical("/").unwrap(), "/");
        assert_eq!(canonical("/v2/workspaces/").unwrap(), "/v2/workspaces/");
    }

    #[test]
    fn encodings_that_could_change_the_route_are_refused() {
        for (raw, why) in [
            (
                "/v2/workspaces/w%2F..%2Fx/webhooks/h",
                PathError::EncodedSeparator,
            ),
            (
                "/v2/workspaces/w/webhooks/a%5Cb",
                PathError::EncodedSeparator,
            ),
            ("/v2/workspaces/w/webhooks/%2e%2E/x", PathError::DotSegment),
            ("/v2/workspaces/w/webhooks/../x", PathError::DotSegment),
            ("/v2/workspaces/w/./x", PathError::DotSegment),
            ("/v2/workspaces/w%00/x", PathError::Control),
            ("/v2/workspaces/%ff/x", PathError::NotUtf8),
            ("/v2/workspaces/%4/x", PathError::BrokenEscape),
            ("/v2/workspaces/%zz", PathError::BrokenEscape),
            ("*", PathError::NotAbsolute),
        ] {
            assert_eq!(canonical(raw).unwrap_err(), why, "{raw}");
        }
        assert!(canonical("/v2/workspaces/w/webhooks/a..b").is_ok());
    }
}
