//! # senderbound-client
//!
//! DPoP (RFC 9449) for Rust clients and agents: generate a key, sign a proof
//! for each request, and compute the key's `jkt` for binding tokens.
//!
//! ```
//! use senderbound_client::DpopKey;
//!
//! # fn main() -> Result<(), senderbound_client::InvalidUrl> {
//! let key = DpopKey::generate();
//! let proof = key
//!     .proof("GET", "https://api.example.com/items?page=2")?
//!     .access_token("eyJ...token")
//!     .sign();
//! // Send: `Authorization: DPoP eyJ...token` and `DPoP: <proof>`.
//! assert_eq!(proof.split('.').count(), 3);
//! assert_eq!(key.jkt().len(), 43);
//! # Ok(()) }
//! ```
//!
//! For agents: [`TaskKeys`] gives each task its own key; a [`DpopSession`]
//! keeps a key's server nonces and the token bound to it, and with feature
//! `reqwest` asks the authorization server for that token
//! (`request_token`) and signs requests (`send_with_token`); with feature
//! `rmcp`, `mcp::DpopMcpClient` signs the requests of rmcp's MCP client.
//!
//! Keys are ES256 (P-256), the algorithm every DPoP server must support.
//! Private key material never leaves the [`DpopKey`]; its `Debug` output
//! shows only the thumbprint.

#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tower")]
mod layer;
#[cfg(feature = "rmcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "rmcp")))]
pub mod mcp;
mod session;
mod signer;
mod tasks;
#[cfg(feature = "reqwest")]
mod token_request;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{Dpop, DpopBody, DpopLayer};
pub use session::{DpopSession, asks_for_nonce};
pub use tasks::TaskKeys;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use token_request::{TokenError, TokenRequest, TokenResponse};

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

/// The URL type [`DpopKey::proof_for_url`] takes (the `url` crate's,
/// which reqwest uses).
pub use url;

/// Why a URL cannot be the target of a DPoP proof: it is not an absolute
/// `http` or `https` URL with a host, as the WHATWG URL Standard reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUrl;

impl fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an absolute http(s) URL with a host")
    }
}

impl std::error::Error for InvalidUrl {}

/// Parses `url` as reqwest does (the `url` crate, WHATWG rules: `\` reads
/// as `/`, so `http://evil\@api.example/` is a request to `evil`), so the
/// proof names the server the request really goes to.
pub(crate) fn parse_target(url: &str) -> Result<Url, InvalidUrl> {
    let url = Url::parse(url).map_err(|_| InvalidUrl)?;
    check_target(&url)?;
    Ok(url)
}

fn check_target(url: &Url) -> Result<(), InvalidUrl> {
    match (url.scheme(), url.host_str()) {
        ("http" | "https", Some(host)) if !host.is_empty() => Ok(()),
        _ => Err(InvalidUrl),
    }
}

/// `scheme://host[:port]` of `url`, default port left out (RFC 6454).
pub(crate) fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The `htu` of a request to `url`: its origin and path, without user
/// information, query and fragment (RFC 9449 §4.2).
fn htu_of(url: &Url) -> String {
    let mut htu = origin_of(url);
    htu.push_str(url.path());
    htu
}

/// An ES256 key pair used to sign DPoP proofs, held by the crypto backend
/// the crate's features choose (aws-lc-rs by default, pure-Rust `p256` with
/// `rust-crypto` alone).
#[derive(Clone)]
pub struct DpopKey {
    signing: signer::Signer,
    public_jwk: Value,
    jkt: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A fresh random P-256 key from the operating system's RNG.
    ///
    /// # Panics
    /// If the operating system has no random number generator at all (no
    /// key can be made without one).
    pub fn generate() -> Self {
        match signer::Signer::generate() {
            Some(signing) => Self::from_signer(signing),
            None => panic!("no random number generator to make a DPoP key with"),
        }
    }

    /// A key from its 32-byte secret scalar; `None` if the bytes are not a
    /// valid P-256 scalar. Meant for reproducible tests.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Option<Self> {
        signer::Signer::from_secret_bytes(secret).map(Self::from_signer)
    }

    fn from_signer(signing: signer::Signer) -> Self {
        // Uncompressed: 0x04, then 32 bytes each of x and y.
        let point = signing.public_point();
        let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let jkt = b64(&Sha256::digest(thumbprint_input.as_bytes()));
        DpopKey {
            signing,
            public_jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
            jkt,
        }
    }

    /// The RFC 7638 thumbprint of the public key: the `cnf.jkt` a token
    /// bound to this key carries (and `dpop_jkt` in an authorization request).
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The public key as a JWK (no private members).
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// Starts a proof for a request with `method` to `url`.
    ///
    /// `url` is parsed as reqwest parses it (the WHATWG URL Standard, with
    /// the `url` crate), so the proof names the server the request is sent
    /// to; give the same string to your HTTP client. The query, fragment
    /// and any `user:password@` are left out of `htu` (RFC 9449 §4.2).
    /// Anything but an absolute `http(s)` URL with a host is refused.
    ///
    /// ```
    /// # use senderbound_client::DpopKey;
    /// let key = DpopKey::generate();
    /// let proof = key.proof("GET", r"http://evil\@api.example/mcp").unwrap();
    /// assert_eq!(proof.claims()["htu"], "http://evil/@api.example/mcp");
    /// assert!(key.proof("GET", "/relative").is_err());
    /// ```
    pub fn proof(&self, method: &str, url: &str) -> Result<ProofBuilder<'_>, InvalidUrl> {
        Ok(self.proof_for(method, &parse_target(url)?))
    }

    /// [`proof`](Self::proof) for a URL already parsed (a reqwest
    /// request's `url()`, say). An `http(s)` URL without a host gets a
    /// proof no server accepts.
    pub fn proof_for_url(&self, method: &str, url: &Url) -> Result<ProofBuilder<'_>, InvalidUrl> {
        check_target(url)?;
        Ok(self.proof_for(method, url))
    }

    fn proof_for(&self, method: &str, url: &Url) -> ProofBuilder<'_> {
        ProofBuilder {
            key: self,
            htm: method.to_owned(),
            htu: htu_of(url),
            ath: None,
            nonce: None,
            iat: None,
            jti: None,
        }
    }

    /// Signs an arbitrary JOSE header and claims set with this key (ES256)
    /// and returns the compact JWS. Low level: for custom profiles, tests,
    /// and demo token issuers. The header is used as given.
    ///
    /// # Panics
    /// If the crypto backend fails internally (it does not for a valid key).
    pub fn sign_compact(&self, header: &Value, claims: &Value) -> String {
        let mut out = String::with_capacity(512);
        URL_SAFE_NO_PAD.encode_string(header.to_string(), &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut out);
        // The backend fails only on an internal error (no message or key
        // of ours can cause one): say so loudly rather than send a proof
        // that every server would refuse without telling why.
        let Some(signature) = self.signing.sign(out.as_bytes()) else {
            panic!("the crypto backend failed to sign a DPoP proof");
        };
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut out);
        out
    }
}

/// A DPoP proof being built; finish with [`ProofBuilder::sign`].
#[derive(Debug)]
pub struct ProofBuilder<'k> {
    key: &'k DpopKey,
    htm: String,
    htu: String,
    ath: Option<String>,
    nonce: Option<String>,
    iat: Option<u64>,
    jti: Option<String>,
}

impl ProofBuilder<'_> {
    /// Binds the proof to the access token it accompanies (`ath`).
    pub fn access_token(mut self, token: &str) -> Self {
        self.ath = Some(b64(&Sha256::digest(token.as_bytes())));
        self
    }

    /// Includes a server-provided nonce (`DPoP-Nonce`).
    pub fn nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// Overrides `iat` (seconds since the epoch); defaults to now.
    pub fn issued_at(mut self, iat: u64) -> Self {
        self.iat = Some(iat);
        self
    }

    /// Overrides `jti`; defaults to 128 random bits.
    pub fn jti(mut self, jti: impl Into<String>) -> Self {
        self.jti = Some(jti.into());
        self
    }

    /// The claims this proof will carry.
    pub fn claims(&self) -> Value {
        let mut claims = json!({
            "jti": self.jti.clone().unwrap_or_else(random_jti),
            "htm": self.htm,
            "htu": self.htu,
            "iat": self.iat.unwrap_or_else(unix_now),
        });
        if let Some(ath) = &self.ath {
            claims["ath"] = json!(ath);
        }
        if let Some(nonce) = &self.nonce {
            claims["nonce"] = json!(nonce);
        }
        claims
    }

    /// The JOSE header this proof will carry.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.public_jwk})
    }

    /// Signs the proof: the value of the `DPoP` request header.
    pub fn sign(self) -> String {
        self.key.sign_compact(&self.header(), &self.claims())
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// 128 random bits, base64url: a `jti` no one can guess or repeat.
pub fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    // getrandom fails only when the OS has no entropy source at all; a
    // counter-free fallback would risk reuse, so fail loudly instead.
    if getrandom::getrandom(&mut bytes).is_err() {
        panic!("no operating-system random number generator available");
    }
    b64(&bytes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use senderbound_core::jwk::PublicJwk;
    use senderbound_core::proof::{ProofPolicy, RequestFacts};

    #[test]
    fn jkt_matches_core_thumbprint() {
        let key = DpopKey::generate();
        let jwk = PublicJwk::from_json(&key.public_jwk().to_string()).unwrap();
        assert_eq!(jwk.thumbprint(), key.jkt());
    }

    fn htu(url: &str) -> Result<String, InvalidUrl> {
        Ok(DpopKey::generate().proof("GET", url)?.claims()["htu"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    #[test]
    fn htu_leaves_out_query_fragment_and_credentials() {
        for (url, expected) in [
            (
                "https://api.example.com/a?x=1#f",
                "https://api.example.com/a",
            ),
            (
                "https://u:p@api.example.com/a/b",
                "https://api.example.com/a/b",
            ),
            ("https://u@api.example.com", "https://api.example.com/"),
            (
                "https://api.example.com/p@th",
                "https://api.example.com/p@th",
            ),
            ("HTTPS://API.example.com:443/A", "https://api.example.com/A"),
            (
                "http://api.example.com:8080/",
                "http://api.example.com:8080/",
            ),
        ] {
            assert_eq!(htu(url).as_deref(), Ok(expected), "{url}");
        }
    }

    /// The WHATWG parser (reqwest's) reads `\` as `/`: the request goes to
    /// `evil`, so the proof must say `evil`, never `api.example`.
    #[test]
    fn htu_names_the_host_the_request_goes_to() {
        for (url, expected) in [
            (
                r"http://evil\@api.example/mcp",
                "http://evil/@api.example/mcp",
            ),
            (
                r"http://evil\api.example/mcp",
                "http://evil/api.example/mcp",
            ),
            ("http://evil#@api.example/mcp", "http://evil/"),
            ("http://evil?@api.example/mcp", "http://evil/"),
            ("http://a@b@evil/x", "http://evil/x"),
        ] {
            assert_eq!(htu(url).as_deref(), Ok(expected), "{url}");
            let sent = reqwest_like_host(url);
            assert!(expected.starts_with(&format!("http://{sent}/")), "{url}");
        }
        for bad in [
            "/relative",
            "ftp://a.example/x",
            "mailto:a@b",
            "http://",
            "nonsense",
        ] {
            assert_eq!(htu(bad), Err(InvalidUrl), "{bad}");
        }
    }

    /// The host a request to `url` is sent to, by the parser reqwest uses.
    fn reqwest_like_host(url: &str) -> String {
        Url::parse(url).unwrap().host_str().unwrap().to_owned()
    }

    #[test]
    fn proof_verifies_with_core() {
        let key = DpopKey::generate();
        let proof = key
            .proof("POST", "https://api.example.com/a?x=1#f")
            .unwrap()
            .access_token("tok")
            .issued_at(1_000)
            .sign();
        let hash = senderbound_core::token_hash("tok");
        let facts = RequestFacts {
            method: "POST",
            htu: "https://api.example.com/a",
            access_token_hash: Some(&hash),
            now: 1_000,
        };
        let verified = ProofPolicy::new().verify(&proof, &facts).unwrap();
        assert_eq!(verified.jkt(), key.jkt());
        assert_eq!(verified.jti().len(), 22);
    }

    #[test]
    fn jtis_are_unique() {
        let a = random_jti();
        assert_ne!(a, random_jti());
        assert_eq!(a.len(), 22);
    }
}
