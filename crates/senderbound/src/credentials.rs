//! Finding the credentials in a request: exactly one `Authorization` header,
//! at most one `DPoP` header, and no token in the query string.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use senderbound_core::Error;
use senderbound_core::authorization::{self, Credentials};

use crate::header::DPOP;

/// The credentials a request presents. Deliberately not `Debug`: it holds
/// the token and the proof.
pub(crate) struct Presented<'a> {
    pub(crate) credentials: Credentials<'a>,
    pub(crate) proof: Option<&'a str>,
}

/// Longest `Authorization` scheme plus separator we allow on top of the token limit.
const SCHEME_ALLOWANCE: usize = 16;

pub(crate) fn extract<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
    max_token_bytes: usize,
    max_proof_bytes: usize,
) -> Result<Presented<'a>, Error> {
    let mut auth = headers.get_all(AUTHORIZATION).iter();
    let auth = match (auth.next(), auth.next()) {
        (None, _) => None,
        (Some(v), None) => Some(v),
        (Some(_), Some(_)) => return Err(Error::MultipleAuthorizationHeaders),
    };
    let mut dpop = headers.get_all(DPOP).iter();
    let proof = match (dpop.next(), dpop.next()) {
        (None, _) => None,
        (Some(v), None) => {
            // Size first: a huge header is refused without looking inside.
            if v.len() > max_proof_bytes {
                return Err(Error::ProofTooLarge);
            }
            Some(v.to_str().map_err(|_| Error::ProofMalformed)?)
        }
        (Some(_), Some(_)) => return Err(Error::MultipleDpopHeaders),
    };
    if query.is_some_and(has_access_token_param) {
        return Err(Error::TokenInQuery);
    }
    let Some(auth) = auth else {
        return Err(match proof {
            Some(_) => Error::ProofWithoutToken,
            None => Error::MissingCredentials,
        });
    };
    if auth.len() > max_token_bytes.saturating_add(SCHEME_ALLOWANCE) {
        return Err(Error::TokenTooLarge);
    }
    let credentials = authorization::parse(auth.as_bytes())?;
    Ok(Presented { credentials, proof })
}

/// RFC 6750 §2.3: `access_token` in the query. Refused loudly, since such
/// URIs end up in logs and browser history.
fn has_access_token_param(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next().is_some_and(|k| k == "access_token"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn counts_and_shapes() {
        let e = |h: &HeaderMap, q| extract(h, q, 100, 100).map(|_| ()).unwrap_err();
        assert_eq!(e(&headers(&[]), None), Error::MissingCredentials);
        assert_eq!(
            e(&headers(&[("dpop", "a.b.c")]), None),
            Error::ProofWithoutToken
        );
        assert_eq!(
            e(
                &headers(&[("authorization", "DPoP a"), ("authorization", "DPoP b")]),
                None
            ),
            Error::MultipleAuthorizationHeaders
        );
        assert_eq!(
            e(
                &headers(&[("authorization", "DPoP a"), ("dpop", "x"), ("dpop", "y")]),
                None
            ),
            Error::MultipleDpopHeaders
        );
        assert_eq!(
            e(&headers(&[("dpop", &"x".repeat(101))]), None),
            Error::ProofTooLarge
        );
        assert_eq!(
            e(
                &headers(&[("authorization", &format!("DPoP {}", "x".repeat(200)))]),
                None
            ),
            Error::TokenTooLarge
        );
        assert_eq!(
            e(
                &headers(&[("authorization", "DPoP a")]),
                Some("x=1&access_token=abc")
            ),
            Error::TokenInQuery
        );
        assert_eq!(
            e(&headers(&[("authorization", "Basic abc")]), None),
            Error::UnsupportedScheme
        );
        let h = headers(&[("authorization", "DPoP tok"), ("dpop", "p.r.f")]);
        let p = extract(&h, Some("access_tokens=1"), 100, 100).unwrap();
        assert_eq!(p.credentials.token, "tok");
        assert_eq!(p.proof, Some("p.r.f"));
    }
}
