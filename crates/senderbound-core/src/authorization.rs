//! The `Authorization` request header (RFC 9110 §11.6.2): the `DPoP`
//! (RFC 9449 §7.1) and `Bearer` (RFC 6750 §2.1) schemes.
//!
//! ```
//! use senderbound_core::authorization::{parse, Scheme};
//!
//! let creds = parse(b"dpop eyJhbGciOi.x.y").unwrap();
//! assert_eq!(creds.scheme, Scheme::DPoP);
//! assert_eq!(creds.token, "eyJhbGciOi.x.y");
//! ```

use crate::error::Error;

/// An authentication scheme senderbound understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `Authorization: DPoP <token>`, with a `DPoP` proof header.
    DPoP,
    /// `Authorization: Bearer <token>`.
    Bearer,
}

impl Scheme {
    /// The scheme name as senderbound writes it in challenges.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::DPoP => "DPoP",
            Scheme::Bearer => "Bearer",
        }
    }
}

/// The scheme and token of an `Authorization` header. Its `Debug` output
/// redacts the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The scheme (matched case-insensitively, RFC 9110 §11.1).
    pub scheme: Scheme,
    /// The token68 value.
    pub token: &'a str,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("scheme", &self.scheme)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Parses an `Authorization` header value.
///
/// A scheme other than `DPoP` or `Bearer` is [`Error::UnsupportedScheme`];
/// anything that is not `<scheme> 1*SP <token68>` is
/// [`Error::MalformedAuthorization`].
pub fn parse(value: &[u8]) -> Result<Credentials<'_>, Error> {
    let value = trim_trailing_whitespace(value);
    let space = value.iter().position(|b| *b == b' ');
    let (scheme, rest) = match space {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, &value[value.len()..]),
    };
    if scheme.is_empty() || !scheme.iter().all(|b| is_tchar(*b)) {
        return Err(Error::MalformedAuthorization);
    }
    let scheme = if scheme.eq_ignore_ascii_case(b"dpop") {
        Scheme::DPoP
    } else if scheme.eq_ignore_ascii_case(b"bearer") {
        Scheme::Bearer
    } else {
        return Err(Error::UnsupportedScheme);
    };
    let token = trim_leading_spaces(rest);
    if !is_token68(token) {
        return Err(Error::MalformedAuthorization);
    }
    // token68 is ASCII, so this cannot fail; map defensively all the same.
    let token = std::str::from_utf8(token).map_err(|_| Error::MalformedAuthorization)?;
    Ok(Credentials { scheme, token })
}

fn trim_trailing_whitespace(v: &[u8]) -> &[u8] {
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(0, |i| i + 1);
    &v[..end]
}

fn trim_leading_spaces(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != b' ').unwrap_or(v.len());
    &v[start..]
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §11.2 `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(v: &[u8]) -> bool {
    let body_end = v.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    body_end > 0 && v[..body_end].iter().all(|b| TOKEN68[usize::from(*b)])
}

/// The token68 characters but `=`, as a table: a token is read byte by byte
/// on every request, and a lookup is cheaper than the comparisons.
const TOKEN68: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_case_insensitive() {
        for v in ["DPoP abc", "dpop abc", "DPOP  abc", "DPoP abc  "] {
            assert_eq!(
                parse(v.as_bytes()).unwrap(),
                Credentials {
                    scheme: Scheme::DPoP,
                    token: "abc"
                }
            );
        }
        assert_eq!(parse(b"BEARER a.b.c").unwrap().scheme, Scheme::Bearer);
        assert_eq!(parse(b"Bearer abc==").unwrap().token, "abc==");
    }

    #[test]
    fn other_schemes_and_malformed_values() {
        assert_eq!(parse(b"Basic dXNlcjpwYXNz"), Err(Error::UnsupportedScheme));
        assert_eq!(parse(b"DPoPabc"), Err(Error::UnsupportedScheme));
        for bad in [
            &b""[..],
            b"DPoP",
            b"DPoP ",
            b"DPoP a b",
            b"DPoP a,b",
            b"DPoP ===",
            b"DPoP a=b",
            b" DPoP abc",
            b"DPoP \xff",
            b"DPoP\tabc",
        ] {
            assert!(
                matches!(
                    parse(bad),
                    Err(Error::MalformedAuthorization | Error::UnsupportedScheme)
                ),
                "{bad:?}"
            );
        }
        assert_eq!(parse(b"DPoP a b"), Err(Error::MalformedAuthorization));
        assert_eq!(parse(b"DPoP"), Err(Error::MalformedAuthorization));
    }
}
