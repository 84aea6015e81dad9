//! The DPoP `htu` comparison: HTTP target URIs normalised per RFC 3986
//! §6.2.2 (syntax-based) and §6.2.3 (scheme-based), without query and
//! fragment (RFC 9449 §4.3 check 9).
//!
//! What is normalised: scheme and host case, an empty or default port
//! (80 for `http`, 443 for `https`), an empty path (`/`), the case of
//! percent-encoding hex digits, percent-encoded unreserved characters, and
//! dot segments. What is **not**: the case of the path (paths are
//! case-sensitive), repeated slashes, and anything else a server might treat
//! as different. Query and fragment are dropped on both sides.
//!
//! ```
//! use senderbound_core::htu::normalize;
//!
//! assert_eq!(
//!     normalize("HTTPS://API.Example.COM:443/a/./b/../c%7e?x=1#frag").unwrap(),
//!     "https://api.example.com/a/c~"
//! );
//! assert_ne!(normalize("https://a.example/Path").unwrap(), normalize("https://a.example/path").unwrap());
//! ```

use std::fmt;

use crate::authority::Authority;

/// Why a URI could not be used as an `htu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUri;

impl fmt::Display for InvalidUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an absolute http(s) URI")
    }
}

impl std::error::Error for InvalidUri {}

/// Normalises an absolute `http` or `https` URI for comparison, dropping the
/// query and fragment.
///
/// Refused: other schemes, relative references, a userinfo part (RFC 9110
/// §4.2.4), an empty host, a bad port, a malformed percent-encoding, and any
/// byte outside printable ASCII.
pub fn normalize(uri: &str) -> Result<String, InvalidUri> {
    if !uri.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(InvalidUri);
    }
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    let uri = &uri[..end];
    if is_plain_uri(uri) {
        return Ok(uri.to_owned());
    }
    normalize_full(uri)
}

/// [`normalize`] by the full rules (query and fragment already cut), with
/// no shortcut for a URI already in normal form.
fn normalize_full(uri: &str) -> Result<String, InvalidUri> {
    let colon = uri.find(':').ok_or(InvalidUri)?;
    let scheme = &uri[..colon];
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        return Err(InvalidUri);
    };
    let rest = uri[colon + 1..].strip_prefix("//").ok_or(InvalidUri)?;
    let path_start = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(path_start);
    let (host, port) = split_host_port(authority)?;

    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(if default_port == 443 {
        "https://"
    } else {
        "http://"
    });
    for c in host.chars() {
        out.push(c.to_ascii_lowercase());
    }
    if let Some(port) = port.filter(|p| *p != default_port) {
        out.push(':');
        out.push_str(&port.to_string());
    }
    let path = normalize_percent_encoding(path)?;
    remove_dot_segments(&path, &mut out);
    Ok(out)
}

/// `true` if `path` (an absolute path, without query) is already in normal
/// form: no `.` or `..` segments (also percent-encoded) and no
/// percent-encoded unreserved characters. Routers match the path as sent, so
/// a request path that normalisation would change is refused: otherwise the
/// URI the proof is checked against would not be the resource served.
///
/// ```
/// use senderbound_core::htu::is_normalized_path;
/// assert!(is_normalized_path("/api/items/%2F"));
/// assert!(!is_normalized_path("/files/../admin"));
/// assert!(!is_normalized_path("/%61dmin"));
/// ```
pub fn is_normalized_path(path: &str) -> bool {
    is_plain_path(path) || is_normalized_path_full(path)
}

/// [`is_normalized_path`] by the full rules.
fn is_normalized_path_full(path: &str) -> bool {
    if !path.starts_with('/') || !path.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return false;
    }
    let Ok(decoded) = normalize_percent_encoding(path) else {
        return false;
    };
    // Percent-encoding hex case does not change what a router sees as
    // different, so only decoded unreserved characters count.
    if decoded.len() != path.len() {
        return false;
    }
    let mut out = String::with_capacity(path.len());
    remove_dot_segments(&decoded, &mut out);
    out == decoded
}

/// [`normalize`] for a URI already in a `String`: returned as it is, with
/// no copy, when normalisation would not change it (the usual case).
pub fn normalize_owned(uri: String) -> Result<String, InvalidUri> {
    if is_plain_uri(&uri) {
        return Ok(uri);
    }
    normalize(&uri)
}

/// `true` for a path that normalisation leaves as it is, without copying it:
/// it starts with `/`, has only printable ASCII but `%`, `?` and `#`, and no
/// `.` or `..` segment. Most request paths are such.
pub fn is_plain_path(path: &str) -> bool {
    path.starts_with('/')
        && path
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'%' | b'?' | b'#'))
        && !path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

/// `true` for an absolute URI (query and fragment already cut) that
/// [`normalize`] leaves as it is: `https://` or `http://`, a host of
/// lower-case letters, digits, `-` and `.` with no port, and a plain path
/// ([`is_plain_path`]).
fn is_plain_uri(uri: &str) -> bool {
    let Some(rest) = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
    else {
        return false;
    };
    let Some(slash) = rest.find('/') else {
        return false;
    };
    let (host, path) = rest.split_at(slash);
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && is_plain_path(path)
}

/// Splits `host[:port]` with [`Authority::parse`]. Percent-encoded hosts are
/// refused: no client needs them, and they would need decoding to compare.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), InvalidUri> {
    let authority = Authority::parse(authority).map_err(|_| InvalidUri)?;
    if authority.is_empty() || authority.host().contains('%') {
        return Err(InvalidUri);
    }
    Ok((authority.host(), authority.port()))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Upper-cases percent-encoding hex digits and decodes percent-encoded
/// unreserved characters (RFC 3986 §6.2.2.1–6.2.2.2).
fn normalize_percent_encoding(path: &str) -> Result<String, InvalidUri> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(InvalidUri)?;
            let hi = (hex[0] as char).to_digit(16).ok_or(InvalidUri)?;
            let lo = (hex[1] as char).to_digit(16).ok_or(InvalidUri)?;
            let decoded = (hi * 16 + lo) as u8;
            if is_unreserved(decoded) {
                out.push(decoded as char);
            } else {
                out.push('%');
                out.push(hex[0].to_ascii_uppercase() as char);
                out.push(hex[1].to_ascii_uppercase() as char);
            }
            i += 3;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    Ok(out)
}

/// RFC 3986 §5.2.4 on an absolute (or empty) path, appending to `out`.
/// An empty path becomes `/` (RFC 3986 §6.2.3).
fn remove_dot_segments(path: &str, out: &mut String) {
    let Some(rest) = path.strip_prefix('/') else {
        out.push('/');
        return;
    };
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in rest.split('/') {
        trailing_slash = false;
        match segment {
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_uris_and_paths_are_left_as_they_are_and_agree_with_the_full_rules() {
        for uri in [
            "https://api.example.com/r",
            "http://a-b.c9.example/x/y/",
            "https://x.example//double//slash",
            "https://x.example/a:b@c!$&'()*+,;=~_-",
        ] {
            assert!(is_plain_uri(uri), "{uri}");
            // The shortcut's answer is the full rules' answer.
            assert_eq!(normalize_full(uri).unwrap(), uri);
            assert_eq!(normalize_owned(uri.to_owned()).unwrap(), uri);
        }
        // Not plain: the full rules apply, and still decide.
        for (uri, normal) in [
            ("https://X.example/r", "https://x.example/r"),
            ("https://x.example:443/r", "https://x.example/r"),
            ("https://x.example/a/./b", "https://x.example/a/b"),
            ("https://x.example/a/../b", "https://x.example/b"),
            ("https://x.example/%7e", "https://x.example/~"),
            ("https://x.example", "https://x.example/"),
            ("https://x.example/.", "https://x.example/"),
        ] {
            assert!(!is_plain_uri(uri), "{uri}");
            assert_eq!(normalize(uri).unwrap(), normal, "{uri}");
            assert_eq!(normalize_owned(uri.to_owned()).unwrap(), normal, "{uri}");
        }
        assert!(!is_plain_uri("https://user@x.example/r"));
        assert!(normalize("https://user@x.example/r").is_err());
        assert!(!is_plain_uri("ftp://x.example/r"));
        for path in ["/", "/a/b", "/a/b/", "/.well-known/x", "/a..b/...", "//"] {
            assert!(is_plain_path(path), "{path}");
            assert!(is_normalized_path_full(path), "{path}");
            assert_eq!(
                normalize_full(&format!("https://x.example{path}")).unwrap(),
                format!("https://x.example{path}")
            );
        }
        for path in ["", "a", "/a/./b", "/..", "/a/%41", "/a?b"] {
            assert!(!is_plain_path(path), "{path}");
        }
        assert!(is_normalized_path("/a/%2F"));
        assert!(!is_normalized_path("/a/%41"));
    }

    /// Every printable-ASCII string of a few characters after a plain
    /// origin: where the shortcut answers, it answers as the full rules do.
    #[test]
    fn the_shortcuts_agree_with_the_full_rules_on_every_short_path() {
        let alphabet = [b'/', b'.', b'%', b'a', b'A', b'2', b'F', b'~', b':', b'?'];
        let mut checked = 0;
        for len in 1..=5u32 {
            for n in 0..alphabet.len().pow(len) {
                let mut path = String::from("/");
                let mut k = n;
                for _ in 0..len {
                    path.push(char::from(alphabet[k % alphabet.len()]));
                    k /= alphabet.len();
                }
                let uri = format!("https://x.example{path}");
                if is_plain_uri(&uri) {
                    assert_eq!(normalize_full(&uri).as_deref(), Ok(uri.as_str()), "{uri}");
                    checked += 1;
                }
                if is_plain_path(&path) {
                    assert!(is_normalized_path_full(&path), "{path}");
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    fn same(a: &str, b: &str) {
        assert_eq!(normalize(a).unwrap(), normalize(b).unwrap(), "{a} vs {b}");
    }

    fn different(a: &str, b: &str) {
        assert_ne!(normalize(a).unwrap(), normalize(b).unwrap(), "{a} vs {b}");
    }

    #[test]
    fn syntax_and_scheme_based_equivalences() {
        same("https://example.com/a", "HTTPS://EXAMPLE.com/a");
        same("https://example.com/a", "https://example.com:443/a");
        same("http://example.com/a", "http://example.com:80/a");
        same("https://example.com/a", "https://example.com:/a");
        same("https://example.com", "https://example.com/");
        same("https://example.com/a%7eb", "https://example.com/a~b");
        same("https://example.com/a%2fb", "https://example.com/a%2Fb");
        same("https://example.com/a/./b/../c", "https://example.com/a/c");
        same("https://example.com/a/%2E%2E/c", "https://example.com/c");
        same("https://example.com/a?x=1", "https://example.com/a");
        same("https://example.com/a#f", "https://example.com/a?y#z");
        same("https://[::1]:443/a", "https://[::1]/a");
    }

    #[test]
    fn meaningful_differences_remain() {
        different("https://example.com/a", "https://example.com/A");
        different("https://example.com/a", "https://example.com/b");
        different("https://example.com/a", "https://other.example/a");
        different("https://example.com/a", "http://example.com/a");
        different("https://example.com/a", "https://example.com:8443/a");
        different("https://example.com/a/", "https://example.com/a");
        different("https://example.com/a%2Fb", "https://example.com/a/b");
        different("https://example.com//a", "https://example.com/a");
    }

    #[test]
    fn rfc3986_dot_segment_examples() {
        let n = |p: &str| normalize(&format!("http://a{p}")).unwrap();
        assert_eq!(n("/a/b/c/./../../g"), "http://a/a/g");
        assert_eq!(n("/mid/content=5/../6"), "http://a/mid/6");
        assert_eq!(n("/a/b/.."), "http://a/a/");
        assert_eq!(n("/.."), "http://a/");
        assert_eq!(n("/a/."), "http://a/a/");
    }

    #[test]
    fn normal_form_paths() {
        for ok in [
            "/", "/a", "/a/", "/a/b.c", "/a/..b", "/a%2Fb", "/a%2fb", "/a//b", "/~x",
        ] {
            assert!(is_normalized_path(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a/%2E%2E/b",
            "/a/%2e",
            "/%7Ex",
            "/%41",
            "/a b",
            "/%zz",
        ] {
            assert!(!is_normalized_path(bad), "{bad}");
        }
    }

    #[test]
    fn refuses_non_http_uris() {
        for bad in [
            "",
            "/relative",
            "example.com/a",
            "ftp://example.com/a",
            "https:example.com/a",
            "https:///a",
            "https://user@example.com/a",
            "https://example.com:99999/a",
            "https://example.com:x/a",
            "https://example.com/a b",
            "https://example.com/%zz",
            "https://example.com/%4",
            "https://exämple.com/",
            "https://ex%41mple.com/",
            "https://[::1/a",
            "https://a:b:c/",
        ] {
            assert_eq!(normalize(bad), Err(InvalidUri), "{bad:?}");
        }
    }
}
