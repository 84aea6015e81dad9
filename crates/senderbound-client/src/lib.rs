//! # senderbound-client
//!
//! DPoP (RFC 9449) for Rust clients and agents: generate a key, sign a proof
//! for each request, and compute the key's `jkt` for binding tokens.
//!
//! ```
//! use senderbound_client::DpopKey;
//!
//! let key = DpopKey::generate();
//! let proof = key
//!     .proof("GET", "https://api.example.com/items?page=2")
//!     .access_token("eyJ...token")
//!     .sign();
//! // Send: `Authorization: DPoP eyJ...token` and `DPoP: <proof>`.
//! assert_eq!(proof.split('.').count(), 3);
//! assert_eq!(key.jkt().len(), 43);
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
#![warn(missing_docs)]

#[cfg(feature = "rmcp")]
pub mod mcp;
mod session;
mod tasks;
#[cfg(feature = "reqwest")]
mod token_request;

pub use session::{DpopSession, asks_for_nonce};
pub use tasks::TaskKeys;
#[cfg(feature = "reqwest")]
pub use token_request::{TokenError, TokenRequest, TokenResponse};

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `uri` without query, fragment and user information.
fn htu_of(uri: &str) -> String {
    let uri = &uri[..uri.find(['?', '#']).unwrap_or(uri.len())];
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{}", &rest[authority_end..]),
        None => uri.to_owned(),
    }
}

/// An ES256 key pair used to sign DPoP proofs.
#[derive(Clone)]
pub struct DpopKey {
    signing: SigningKey,
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
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::random(&mut rand_core::OsRng))
    }

    /// A key from its 32-byte secret scalar; `None` if the bytes are not a
    /// valid P-256 scalar. Meant for reproducible tests.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Option<Self> {
        SigningKey::from_bytes(secret.into())
            .ok()
            .map(Self::from_signing_key)
    }

    fn from_signing_key(signing: SigningKey) -> Self {
        let point = signing.verifying_key().to_encoded_point(false);
        // An uncompressed point from a valid key always has both coordinates.
        let (x, y) = match (point.x(), point.y()) {
            (Some(x), Some(y)) => (b64(x), b64(y)),
            _ => unreachable!("uncompressed P-256 point without coordinates"),
        };
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

    /// Starts a proof for a request with `method` to `uri`. The query and
    /// fragment of `uri` are dropped, as RFC 9449 §4.2 requires for `htu`,
    /// and so is any `user:password@` (never part of the target URI sent).
    pub fn proof(&self, method: &str, uri: &str) -> ProofBuilder<'_> {
        ProofBuilder {
            key: self,
            htm: method.to_owned(),
            htu: htu_of(uri),
            ath: None,
            nonce: None,
            iat: None,
            jti: None,
        }
    }

    /// Signs an arbitrary JOSE header and claims set with this key (ES256)
    /// and returns the compact JWS. Low level: for custom profiles, tests,
    /// and demo token issuers. The header is used as given.
    pub fn sign_compact(&self, header: &Value, claims: &Value) -> String {
        let mut out = String::with_capacity(512);
        URL_SAFE_NO_PAD.encode_string(header.to_string(), &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut out);
        let signature: Signature = self.signing.sign(out.as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut out);
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

    #[test]
    fn htu_leaves_out_query_fragment_and_credentials() {
        assert_eq!(
            htu_of("https://api.example.com/a?x=1#f"),
            "https://api.example.com/a"
        );
        assert_eq!(
            htu_of("https://u:p@api.example.com/a/b"),
            "https://api.example.com/a/b"
        );
        assert_eq!(
            htu_of("https://u@api.example.com"),
            "https://api.example.com"
        );
        assert_eq!(
            htu_of("https://api.example.com/p@th"),
            "https://api.example.com/p@th"
        );
    }

    #[test]
    fn proof_verifies_with_core() {
        let key = DpopKey::generate();
        let proof = key
            .proof("POST", "https://api.example.com/a?x=1#f")
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
