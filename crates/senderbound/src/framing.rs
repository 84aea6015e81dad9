//! Request framing, checked before anything else: the request names exactly
//! one well-formed authority, without user information or fragment.
//!
//! - HTTP/1.1: exactly one `Host`, a valid `host[:port]` (RFC 9112 §3.2: a
//!   server "MUST respond with a 400" otherwise); an absolute-form target
//!   names its authority itself, and the client must send the same in `Host`
//!   (§3.2). An origin server may ignore such a `Host` (§3.2.2); refusing a
//!   request whose two authorities differ is stricter, and leaves no doubt
//!   which host a proof was checked against. HTTP/1.0 may leave `Host` out.
//! - HTTP/2 and later: the authority is `:authority` (RFC 9113 §8.3.1); a
//!   `Host` naming another one makes the request malformed. No authority at
//!   all is malformed too.
//! - User information in the target or `Host` is not HTTP (RFC 9110 §4.2.4),
//!   and a request target never carries a fragment (RFC 9112 §3.2, RFC 9113
//!   §8.3.1).
//!
//! Every failure is 400 `invalid_request` (RFC 6750 §3.1: "malformed").
//! Only syntax is checked here; whether this resource serves the host is the
//! origin check's business (see `target_uri`).

use http::{HeaderMap, Uri, Version};
use senderbound_core::Error;
use senderbound_core::authority::{Authority, InvalidAuthority};

/// Put in a request's extensions by a server that saw a fragment (`#…`) in
/// the request target: the `http` crate drops fragments when it parses a
/// URI, so only the server reading the request line can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInTarget;

/// Checks the framing of a request; see the module docs.
pub(crate) fn check(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Result<(), Error> {
    if extensions.get::<FragmentInTarget>().is_some() {
        return Err(Error::FragmentInTarget);
    }
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Err(Error::MultipleHostHeaders),
        (Some(value), None) => {
            let text = value.to_str().map_err(|_| Error::InvalidHost)?;
            Some(Authority::parse(text).map_err(refusal)?).filter(|h| !h.is_empty())
        }
        (None, None) => None,
    };
    let target = match uri.authority() {
        Some(authority) => Some(Authority::parse(authority.as_str()).map_err(refusal)?),
        None => None,
    };
    match (target, host) {
        (Some(target), Some(host)) => {
            let default_port = match uri.scheme_str() {
                Some(s) if s.eq_ignore_ascii_case("http") => 80,
                _ => 443,
            };
            if target.same_as(&host, default_port) {
                Ok(())
            } else {
                Err(Error::HostMismatch)
            }
        }
        // HTTP/2's `:authority` alone is how the authority is sent; an
        // HTTP/1.1 client must send `Host` even with an absolute-form target.
        (Some(_), None) if version != Version::HTTP_11 => Ok(()),
        (Some(_), None) | (None, None) if version != Version::HTTP_10 => Err(Error::MissingHost),
        _ => Ok(()),
    }
}

fn refusal(e: InvalidAuthority) -> Error {
    match e {
        InvalidAuthority::Userinfo => Error::UserinfoInTarget,
        InvalidAuthority::Syntax => Error::InvalidHost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(version: Version, uri: &str, hosts: &[&[u8]]) -> Result<(), Error> {
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(
                http::header::HOST,
                http::HeaderValue::from_bytes(h).unwrap(),
            );
        }
        check(
            version,
            &uri.parse().unwrap(),
            &headers,
            &http::Extensions::new(),
        )
    }

    const H11: Version = Version::HTTP_11;
    const H2: Version = Version::HTTP_2;

    #[test]
    fn http1() {
        assert_eq!(framing(H11, "/a", &[b"api.test"]), Ok(()));
        assert_eq!(framing(H11, "/a", &[b"API.test:8443"]), Ok(()));
        assert_eq!(framing(H11, "/a", &[]), Err(Error::MissingHost));
        assert_eq!(framing(H11, "/a", &[b""]), Err(Error::MissingHost));
        assert_eq!(framing(Version::HTTP_10, "/a", &[]), Ok(()));
        assert_eq!(
            framing(H11, "/a", &[b"a.test", b"a.test"]),
            Err(Error::MultipleHostHeaders)
        );
        assert_eq!(
            framing(Version::HTTP_10, "/a", &[b"a.test", b"b.test"]),
            Err(Error::MultipleHostHeaders)
        );
        for bad in [&b"a b"[..], b"a/b", b"a:x", b"a.test/", b"\xffa", b"a?b"] {
            assert_eq!(
                framing(H11, "/a", &[bad]),
                Err(Error::InvalidHost),
                "{bad:?}"
            );
        }
        assert_eq!(
            framing(H11, "/a", &[b"user@a.test"]),
            Err(Error::UserinfoInTarget)
        );
    }

    #[test]
    fn absolute_form() {
        assert_eq!(framing(H11, "http://a.test/x", &[b"a.test"]), Ok(()));
        assert_eq!(framing(H11, "http://a.test:80/x", &[b"A.TEST"]), Ok(()));
        assert_eq!(framing(H11, "https://a.test/x", &[b"a.test:443"]), Ok(()));
        assert_eq!(
            framing(H11, "http://a.test/x", &[b"b.test"]),
            Err(Error::HostMismatch)
        );
        assert_eq!(
            framing(H11, "https://a.test/x", &[b"a.test:80"]),
            Err(Error::HostMismatch)
        );
        assert_eq!(
            framing(H11, "http://u@a.test/x", &[b"a.test"]),
            Err(Error::UserinfoInTarget)
        );
        assert_eq!(
            framing(H11, "http://a.test/x", &[]),
            Err(Error::MissingHost)
        );
    }

    #[test]
    fn http2() {
        assert_eq!(framing(H2, "https://a.test/x", &[]), Ok(()));
        assert_eq!(framing(H2, "https://a.test/x", &[b"a.test"]), Ok(()));
        assert_eq!(
            framing(H2, "https://a.test/x", &[b"b.test"]),
            Err(Error::HostMismatch)
        );
        assert_eq!(framing(H2, "/x", &[b"a.test"]), Ok(()));
        assert_eq!(framing(H2, "/x", &[]), Err(Error::MissingHost));
        assert_eq!(
            framing(H2, "https://u:p@a.test/x", &[]),
            Err(Error::UserinfoInTarget)
        );
    }

    #[test]
    fn fragments_seen_by_the_server() {
        let mut extensions = http::Extensions::new();
        extensions.insert(FragmentInTarget);
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, http::HeaderValue::from_static("a.test"));
        assert_eq!(
            check(H11, &"/a".parse().unwrap(), &headers, &extensions),
            Err(Error::FragmentInTarget)
        );
    }
}
