//! The authority a request is addressed to (RFC 3986 §3.2, RFC 9110 §7.2):
//! the value of a `Host` header, of an absolute-form request target's
//! authority, or of HTTP/2's `:authority`.
//!
//! ```
//! use senderbound_core::authority::{Authority, InvalidAuthority};
//!
//! let a = Authority::parse("API.example.com:443").unwrap();
//! assert!(a.same_as(&Authority::parse("api.example.com").unwrap(), 443));
//! assert_eq!(Authority::parse("user@api.example.com"), Err(InvalidAuthority::Userinfo));
//! assert_eq!(Authority::parse("api.example.com/x"), Err(InvalidAuthority::Syntax));
//! ```

use std::fmt;

/// Why a string is not a `host[:port]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidAuthority {
    /// It carries user information (`user@host`), which HTTP forbids
    /// (RFC 9110 §4.2.4).
    Userinfo,
    /// Anything else: a character outside the host grammar (space, `/`,
    /// `?`, `#`, …), a malformed IP literal, a port that is not a number
    /// up to 65535.
    Syntax,
}

impl fmt::Display for InvalidAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidAuthority::Userinfo => "authority carries user information",
            InvalidAuthority::Syntax => "not a valid host[:port]",
        })
    }
}

impl std::error::Error for InvalidAuthority {}

/// A syntactically valid `host[:port]`, borrowed from the text it was read
/// from. The host may be empty (an HTTP/1.1 client sends an empty `Host`
/// for a target URI without authority, RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority<'a> {
    host: &'a str,
    port: Option<u16>,
}

impl<'a> Authority<'a> {
    /// Reads `uri-host [ ":" port ]` (RFC 9110 §7.2): an IP literal in
    /// brackets, or a registered name or IPv4 address made of unreserved
    /// characters, percent-encodings and sub-delimiters. An empty port is
    /// no port (RFC 3986 §6.2.3).
    pub fn parse(text: &'a str) -> Result<Self, InvalidAuthority> {
        if text.contains('@') {
            return Err(InvalidAuthority::Userinfo);
        }
        let (host, port) = if text.starts_with('[') {
            let close = text.find(']').ok_or(InvalidAuthority::Syntax)?;
            let (host, after) = text.split_at(close + 1);
            match after {
                "" => (host, ""),
                _ => (
                    host,
                    after.strip_prefix(':').ok_or(InvalidAuthority::Syntax)?,
                ),
            }
        } else {
            text.rsplit_once(':').unwrap_or((text, ""))
        };
        let valid_host = match host.strip_prefix('[') {
            Some(literal) => is_ip_literal(&literal[..literal.len().saturating_sub(1)]),
            None => is_reg_name(host),
        };
        if !valid_host {
            return Err(InvalidAuthority::Syntax);
        }
        let port = match port {
            "" => None,
            digits if digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(digits.parse().map_err(|_| InvalidAuthority::Syntax)?)
            }
            _ => return Err(InvalidAuthority::Syntax),
        };
        Ok(Authority { host, port })
    }

    /// The host, as written (an IP literal keeps its brackets).
    pub fn host(&self) -> &'a str {
        self.host
    }

    /// The port, if one was written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// `true` for an empty host.
    pub fn is_empty(&self) -> bool {
        self.host.is_empty()
    }

    /// `true` if both name the same origin server after RFC 3986 §6.2.2–6.2.3
    /// normalisation: hosts compared without regard to case, an absent
    /// port equal to the scheme's `default_port`.
    pub fn same_as(&self, other: &Authority<'_>, default_port: u16) -> bool {
        self.host.eq_ignore_ascii_case(other.host)
            && self.port.unwrap_or(default_port) == other.port.unwrap_or(default_port)
    }
}

/// RFC 3986 `reg-name` (which includes IPv4 addresses):
/// `*( unreserved / pct-encoded / sub-delims )`.
fn is_reg_name(host: &str) -> bool {
    let bytes = host.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// The inside of an RFC 3986 `IP-literal`: an IPv6 address (as the standard
/// library reads one, embedded IPv4 included) or `v<hex>.<chars>`.
fn is_ip_literal(inner: &str) -> bool {
    if let Some(future) = inner.strip_prefix(['v', 'V']) {
        let Some((version, rest)) = future.split_once('.') else {
            return false;
        };
        return !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_hexdigit())
            && !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&b));
    }
    inner.parse::<std::net::Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_authorities() {
        for (text, host, port) in [
            ("api.example.com", "api.example.com", None),
            ("api.example.com:8443", "api.example.com", Some(8443)),
            ("api.example.com:", "api.example.com", None),
            ("127.0.0.1:3000", "127.0.0.1", Some(3000)),
            ("[::1]:443", "[::1]", Some(443)),
            ("[2001:db8::7]", "[2001:db8::7]", None),
            ("[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]", None),
            ("[v1.fe80::a+en1]", "[v1.fe80::a+en1]", None),
            ("xn--bcher-kva.example", "xn--bcher-kva.example", None),
            ("a%41b", "a%41b", None),
            ("", "", None),
        ] {
            let a = Authority::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((a.host(), a.port()), (host, port), "{text}");
        }
    }

    #[test]
    fn invalid_authorities() {
        for text in ["user@api.example.com", "u:p@a", "@a", "a@"] {
            assert_eq!(
                Authority::parse(text),
                Err(InvalidAuthority::Userinfo),
                "{text}"
            );
        }
        for text in [
            "a b",
            "a/b",
            "a/",
            "a?b",
            "a#b",
            "a\\b",
            "a\"b",
            "a:b:c",
            "a:99999",
            "a:65536",
            "a:123456",
            "a:-1",
            "a: 80",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[]",
            "[:]",
            "[1:2:3]",
            "[zz::1]",
            "[v.x]",
            "::1",
            "a%4",
            "a%zz",
            "ex\u{e4}mple.com",
            "a\tb",
        ] {
            assert_eq!(
                Authority::parse(text),
                Err(InvalidAuthority::Syntax),
                "{text:?}"
            );
        }
        assert_eq!(Authority::parse("a:65535").unwrap().port(), Some(65535));
    }

    #[test]
    fn same_origin_server() {
        let a = |t| Authority::parse(t).unwrap();
        assert!(a("API.Example.com").same_as(&a("api.example.com:443"), 443));
        assert!(a("api.example.com:80").same_as(&a("api.example.com"), 80));
        assert!(!a("api.example.com:80").same_as(&a("api.example.com"), 443));
        assert!(!a("api.example.com").same_as(&a("api.example.org"), 443));
        assert!(a("[::A]").same_as(&a("[::a]:443"), 443));
    }
}
