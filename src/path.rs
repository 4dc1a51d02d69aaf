//! `NormalizedPath`: the one interpretation of a request path that tokengate routes on,
//! authorizes, compares with a DPoP `htu`, and forwards (DESIGN.md section 3.1,
//! research/standards.md section 12). If routing saw one form and the upstream another, every
//! difference in how the two decode `..`, `%2f`, `;` or `\` would be an authorization bypass;
//! so ambiguous input is rejected instead of guessed at.
//!
//! Rules, in order:
//! - every `%` must start a valid `%XX` escape (RFC 3986 section 2.1);
//! - escapes of unreserved characters are decoded once (section 6.2.2.2); `%25` stays `%25`;
//! - an encoded `/`, `\` or NUL, a double-encoded `.`, `/` or `\` (`%252e`…), a raw `\`, a `;`,
//!   a `#`, a control character, or an escape sequence that is not valid UTF-8 (overlong forms
//!   such as `%C0%AE`) is rejected;
//! - other escapes are kept, with upper-case hex (section 6.2.2.1);
//! - dot segments are removed (section 5.2.4); a path that climbs above the root is rejected;
//! - repeated slashes collapse into one.
//!
//! This function must never panic and never allocate on the common path: a path made only of
//! safe characters without dots or doubled slashes is returned as it came.

use std::fmt;

/// Why a request path was refused (answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target is not an absolute path")]
    NotAbsolute,
    #[error("malformed percent-encoding")]
    BadEscape,
    #[error("an encoded '/', '\\' or NUL")]
    EncodedSeparator,
    #[error("a double-encoded '.', '/' or '\\'")]
    DoubleEncoded,
    #[error("a character that is not allowed in a path")]
    ForbiddenCharacter,
    #[error("an escape sequence that is not valid UTF-8")]
    InvalidUtf8,
    #[error("the path climbs above the root")]
    AboveRoot,
}

/// A canonical absolute path: starts with `/`, no dot segments, no empty segments except a
/// trailing slash, only upper-case escapes of reserved or non-ASCII bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NormalizedPath(String);

impl NormalizedPath {
    /// Canonicalizes the path component of a request target (the query must already be split
    /// off, which `http::Uri` does before any decoding, RFC 3986 section 2.4).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let bytes = raw.as_bytes();
        if bytes.first() != Some(&b'/') {
            return Err(PathError::NotAbsolute);
        }
        if is_already_canonical(bytes) {
            return Ok(Self(raw.to_owned()));
        }
        let decoded = decode_escapes(bytes)?;
        Ok(Self(remove_dot_segments(&decoded)?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments after the leading slash (a trailing slash yields a final empty one).
    pub fn segments(&self) -> std::str::Split<'_, char> {
        self.0[1..].split('/')
    }
}

impl fmt::Debug for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NormalizedPath({:?})", self.0)
    }
}

impl fmt::Display for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters allowed raw in a canonical path: unreserved, `/`, and the sub-delims other than
/// `;` plus `:` and `@` (RFC 3986 `pchar`). Hand-written table: this check runs on every request.
fn is_plain_path_byte(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'-' | b'.' | b'_' | b'~' | b'/'
        | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@')
}

/// True when the path needs no work: plain bytes only, no `%`, no `//`, no dot segment.
fn is_already_canonical(bytes: &[u8]) -> bool {
    let mut previous = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        if !is_plain_path_byte(b) {
            return false;
        }
        if b == b'/' && previous == b'/' {
            return false;
        }
        if b == b'.' && previous == b'/' {
            // "/." starts a dot segment only when followed by "/", "." or the end.
            match bytes.get(i + 1) {
                None | Some(b'/') | Some(b'.') => return false,
                _ => {}
            }
        }
        previous = b;
    }
    true
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes unreserved escapes once and validates the rest. The output is ASCII.
fn decode_escapes(bytes: &[u8]) -> Result<String, PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    // Pending non-ASCII escaped bytes, validated as UTF-8 once their sequence ends.
    let mut high: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) else {
                return Err(PathError::BadEscape);
            };
            let value = hi << 4 | lo;
            if value >= 0x80 {
                high.push(value);
                i += 3;
                continue;
            }
            flush_high(&mut high, &mut out)?;
            match value {
                b'/' | b'\\' | 0 => return Err(PathError::EncodedSeparator),
                b'%' => {
                    // `%25` followed by the hex of '.', '/' or '\' decodes, a second time, to
                    // a character this function exists to control.
                    let next = [bytes.get(i + 3), bytes.get(i + 4)];
                    if let [Some(a), Some(b2)] = next {
                        let pair = [a.to_ascii_lowercase(), b2.to_ascii_lowercase()];
                        if matches!(&pair, b"2e" | b"2f" | b"5c") {
                            return Err(PathError::DoubleEncoded);
                        }
                    }
                    out.push_str("%25");
                }
                v if v < 0x20 || v == 0x7f => return Err(PathError::ForbiddenCharacter),
                v if is_unreserved(v) => out.push(v as char),
                v => {
                    out.push('%');
                    out.push(HEX[usize::from(v >> 4)] as char);
                    out.push(HEX[usize::from(v & 0xf)] as char);
                }
            }
            i += 3;
            continue;
        }
        flush_high(&mut high, &mut out)?;
        if !is_plain_path_byte(b) {
            return Err(PathError::ForbiddenCharacter);
        }
        out.push(b as char);
        i += 1;
    }
    flush_high(&mut high, &mut out)?;
    Ok(out)
}

/// Re-encodes a run of escaped non-ASCII bytes after checking it is valid UTF-8, which rules
/// out overlong encodings of `.` and `/` (`%C0%AE`, `%C0%AF`).
fn flush_high(high: &mut Vec<u8>, out: &mut String) -> Result<(), PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if high.is_empty() {
        return Ok(());
    }
    if std::str::from_utf8(high).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    for &v in high.iter() {
        out.push('%');
        out.push(HEX[usize::from(v >> 4)] as char);
        out.push(HEX[usize::from(v & 0xf)] as char);
    }
    high.clear();
    Ok(())
}

/// RFC 3986 section 5.2.4 on a decoded absolute path, also collapsing empty segments.
fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        trailing_slash = false;
        match segment {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        NormalizedPath::parse(p).map(|n| n.0)
    }

    #[test]
    fn canonical_paths_pass_unchanged() {
        for p in [
            "/",
            "/orders",
            "/orders/",
            "/a/b.json",
            "/a/.well-known/x",
            "/a/b..c",
            "/~u/x-y_z",
        ] {
            assert_eq!(norm(p).as_deref(), Ok(p));
        }
    }

    #[test]
    fn rfc3986_dot_segment_vectors() {
        assert_eq!(norm("/a/b/c/./../../g").as_deref(), Ok("/a/g"));
        assert_eq!(norm("/a/b/..").as_deref(), Ok("/a/"));
        assert_eq!(norm("/a/.").as_deref(), Ok("/a/"));
        assert_eq!(norm("/public/../admin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/public/%2e%2e/admin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/public/.%2E/admin").as_deref(), Ok("/admin"));
    }

    #[test]
    fn duplicate_slashes_collapse() {
        assert_eq!(norm("//admin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/public//../admin").as_deref(), Ok("/admin"));
        assert_eq!(norm("/a///b//").as_deref(), Ok("/a/b/"));
    }

    #[test]
    fn unreserved_escapes_decode_once_and_others_are_uppercased() {
        assert_eq!(norm("/%7Esmith/%41").as_deref(), Ok("/~smith/A"));
        assert_eq!(norm("/a%3fb").as_deref(), Ok("/a%3Fb"));
        assert_eq!(norm("/a%20b").as_deref(), Ok("/a%20b"));
        assert_eq!(norm("/100%25").as_deref(), Ok("/100%25"));
        assert_eq!(norm("/caf%C3%A9").as_deref(), Ok("/caf%C3%A9"));
    }

    #[test]
    fn hostile_paths_are_rejected() {
        let cases: &[(&str, PathError)] = &[
            ("/a%2Fb", PathError::EncodedSeparator),
            ("/a%2fb", PathError::EncodedSeparator),
            ("/a%5cb", PathError::EncodedSeparator),
            ("/a%00b", PathError::EncodedSeparator),
            ("/public/%252e%252e/admin", PathError::DoubleEncoded),
            ("/a%252Fb", PathError::DoubleEncoded),
            ("/a%255Cb", PathError::DoubleEncoded),
            ("/public\\..\\admin", PathError::ForbiddenCharacter),
            ("/admin;x=1/users", PathError::ForbiddenCharacter),
            ("/a#frag", PathError::ForbiddenCharacter),
            ("/a%2", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/%C0%AE%C0%AE/admin", PathError::InvalidUtf8),
            ("/a%0d%0aX", PathError::ForbiddenCharacter),
            ("/../x", PathError::AboveRoot),
            ("/a/../../x", PathError::AboveRoot),
            ("*", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (input, expected) in cases {
            assert_eq!(norm(input), Err(*expected), "{input}");
        }
    }

    #[test]
    fn percent_encoded_query_delimiter_never_splits() {
        assert_eq!(norm("/public%3F/../admin").as_deref(), Ok("/admin"));
    }

    #[test]
    fn normalization_is_idempotent_on_samples() {
        for p in ["/a/./b/../c//d/", "/%7e/%2e/x", "/a%20b/%c3%a9"] {
            let once = norm(p).unwrap();
            assert_eq!(norm(&once).unwrap(), once, "{p}");
        }
    }
}
