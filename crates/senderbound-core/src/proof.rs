//! DPoP proofs (RFC 9449 §4): parsing and every check a resource server
//! makes (§4.3), except replay, which needs a store and lives in the Layer.
//!
//! Checks run cheapest first, and the signature last, so junk costs little:
//! size → compact JWS → `typ` → `crit` → `alg` on the allow-list → public
//! `jwk` that fits `alg` → required claims → `htm` → `htu` → `iat` window →
//! `exp`/`nbf` when present → `ath` → signature (the nonce is checked by the
//! caller, right after).
//!
//! ```
//! use senderbound_core::proof::{ProofPolicy, RequestFacts};
//! use senderbound_core::Error;
//!
//! let policy = ProofPolicy::new();
//! let facts = RequestFacts {
//!     method: "GET",
//!     htu: "https://api.example.com/items",
//!     access_token_hash: None,
//!     now: 1_700_000_000,
//! };
//! assert_eq!(policy.verify("not-a-jws", &facts).unwrap_err(), Error::ProofMalformed);
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;

use crate::alg::{Algorithm, AlgorithmSet};
use crate::error::Error;
use crate::htu;
use crate::jwk::{JwkError, PublicJwk};
use crate::jws::{CompactJws, Segments};
use crate::key_cache::{CheckedHeader, DEFAULT_KEY_CACHE_CAPACITY, KeyCache};

/// Default largest accepted `DPoP` header value, in bytes. A proof with an
/// RSA-4096 `jwk` is about 1.5 KB; 8 KiB leaves room without inviting abuse.
pub const DEFAULT_MAX_PROOF_BYTES: usize = 8 * 1024;
/// Default largest accepted `jti`, in bytes.
pub const DEFAULT_MAX_JTI_BYTES: usize = 256;
/// Default age after which a proof's `iat` is too old (seconds).
pub const DEFAULT_MAX_AGE_SECS: u64 = 60;
/// Default allowance for a client clock running ahead (seconds). FAPI 2.0
/// requires a proof 10 s in the future to pass; the MCP DPoP profile requires
/// one 5 minutes off to fail.
pub const DEFAULT_MAX_FUTURE_SKEW_SECS: u64 = 15;

/// What the resource server accepts in a DPoP proof.
#[derive(Debug, Clone)]
pub struct ProofPolicy {
    algorithms: AlgorithmSet,
    max_age: u64,
    max_future_skew: u64,
    max_proof_bytes: usize,
    max_jti_bytes: usize,
    keys: Option<Arc<KeyCache>>,
}

impl Default for ProofPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl ProofPolicy {
    /// Defaults: every supported algorithm, `iat` accepted from 60 s in the
    /// past to 15 s in the future, proofs up to 8 KiB, `jti` up to 256 bytes.
    pub fn new() -> Self {
        ProofPolicy {
            algorithms: AlgorithmSet::all(),
            max_age: DEFAULT_MAX_AGE_SECS,
            max_future_skew: DEFAULT_MAX_FUTURE_SKEW_SECS,
            max_proof_bytes: DEFAULT_MAX_PROOF_BYTES,
            max_jti_bytes: DEFAULT_MAX_JTI_BYTES,
            keys: Some(Arc::new(KeyCache::new(DEFAULT_KEY_CACHE_CAPACITY))),
        }
    }

    /// Remember the proof headers of up to `capacity` clients, so each
    /// client's header and key are read (decoded, parsed, validated,
    /// thumbprinted) once rather than on every proof; 0 reads every proof's
    /// header afresh. Default
    /// [`DEFAULT_KEY_CACHE_CAPACITY`]. See [`crate::key_cache`].
    pub fn key_cache_capacity(mut self, capacity: usize) -> Self {
        self.keys = (capacity > 0).then(|| Arc::new(KeyCache::new(capacity)));
        self
    }

    /// Accept only these algorithms. An empty set accepts no proof at all.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }

    /// Reject proofs whose `iat` is more than `age` in the past (whole
    /// seconds; a fraction is dropped).
    pub fn max_age(mut self, age: std::time::Duration) -> Self {
        self.max_age = age.as_secs();
        self
    }

    /// Reject proofs whose `iat` is more than `skew` in the future (whole
    /// seconds).
    pub fn max_future_skew(mut self, skew: std::time::Duration) -> Self {
        self.max_future_skew = skew.as_secs();
        self
    }

    /// Reject `DPoP` header values longer than `bytes`.
    pub fn max_proof_bytes(mut self, bytes: usize) -> Self {
        self.max_proof_bytes = bytes;
        self
    }

    /// Reject `jti` values longer than `bytes`.
    pub fn max_jti_bytes(mut self, bytes: usize) -> Self {
        self.max_jti_bytes = bytes;
        self
    }

    /// The accepted algorithms.
    pub fn accepted_algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    /// Seconds a proof stays acceptable after its `iat`.
    pub fn proof_max_age(&self) -> u64 {
        self.max_age
    }

    /// The configured future skew allowance, in seconds.
    pub fn proof_max_future_skew(&self) -> u64 {
        self.max_future_skew
    }

    /// The configured header size limit.
    pub fn proof_max_bytes(&self) -> usize {
        self.max_proof_bytes
    }

    /// The header's checks (RFC 9449 §4.3 steps 4–7): `typ`, no `crit`, an
    /// accepted `alg`, and a public key in `jwk` that fits it.
    fn check_header(&self, header: &[u8]) -> Result<(Algorithm, Arc<PublicJwk>), Error> {
        let header: ProofHeader<'_> =
            serde_json::from_slice(header).map_err(|_| Error::ProofMalformed)?;
        let typ = header.typ.as_deref().ok_or(Error::ProofType)?;
        if !is_media_type(typ, "dpop+jwt") {
            return Err(Error::ProofType);
        }
        if header.crit {
            return Err(Error::ProofCriticalHeader);
        }
        let alg = header
            .alg
            .as_deref()
            .and_then(Algorithm::from_name)
            .filter(|a| self.algorithms.contains(*a))
            .ok_or(Error::ProofAlgorithm)?;
        let raw_jwk = header.jwk.ok_or(Error::ProofKeyInvalid)?;
        let jwk = PublicJwk::from_slice(raw_jwk.get().as_bytes())
            .map(Arc::new)
            .map_err(|e| match e {
                JwkError::Private => Error::ProofKeyPrivate,
                JwkError::Invalid | JwkError::Unsupported => Error::ProofKeyInvalid,
            })?;
        if !jwk.fits(alg) {
            return Err(Error::ProofKeyAlgorithmMismatch);
        }
        Ok((alg, jwk))
    }

    /// Runs every stateless check of RFC 9449 §4.3 on the `DPoP` header value.
    pub fn verify(&self, proof: &str, facts: &RequestFacts<'_>) -> Result<VerifiedProof, Error> {
        if proof.len() > self.max_proof_bytes {
            return Err(Error::ProofTooLarge);
        }
        let segments = Segments::split(proof).map_err(|_| Error::ProofMalformed)?;
        // A header seen before, byte for byte, passed the checks below then
        // and would pass them again: only the algorithm set is looked at
        // again (a cloned policy shares the cache). See `key_cache`.
        let known = self
            .keys
            .as_ref()
            .and_then(|cache| cache.get(segments.header))
            .filter(|known| self.algorithms.contains(known.alg));
        let (jws, alg, jwk) = match known {
            Some(CheckedHeader { alg, jwk }) => (
                CompactJws::decode(segments, false).map_err(|_| Error::ProofMalformed)?,
                alg,
                jwk,
            ),
            None => {
                let jws = CompactJws::decode(segments, true).map_err(|_| Error::ProofMalformed)?;
                let (alg, jwk) = self.check_header(jws.header())?;
                if let Some(cache) = &self.keys {
                    cache.insert(
                        segments.header,
                        CheckedHeader {
                            alg,
                            jwk: jwk.clone(),
                        },
                    );
                }
                (jws, alg, jwk)
            }
        };

        let claims: ProofClaims<'_> = serde_json::from_slice(jws.payload()).map_err(|_| {
            // A JSON object with a claim of the wrong type is a claim problem;
            // anything else is not a JWT at all.
            match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(
                jws.payload(),
            ) {
                Ok(_) => Error::ProofMissingClaim,
                Err(_) => Error::ProofMalformed,
            }
        })?;
        let jti = claims.jti.ok_or(Error::ProofMissingClaim)?;
        let htm = claims.htm.ok_or(Error::ProofMissingClaim)?;
        let claimed_htu = claims.htu.ok_or(Error::ProofMissingClaim)?;
        let iat = claims.iat.ok_or(Error::ProofMissingClaim)?;
        if jti.is_empty() || jti.len() > self.max_jti_bytes {
            return Err(Error::ProofMissingClaim);
        }

        if htm != facts.method {
            return Err(Error::ProofMethodMismatch);
        }
        // The htu as sent is usually already in normal form, and then the
        // same text as the request's (which is normalised): no copy.
        debug_assert_eq!(
            htu::normalize(facts.htu).as_deref(),
            Ok(facts.htu),
            "RequestFacts::htu must be normalised"
        );
        if claimed_htu != facts.htu {
            let claimed = htu::normalize(&claimed_htu).map_err(|_| Error::ProofUriMismatch)?;
            if claimed != facts.htu {
                return Err(Error::ProofUriMismatch);
            }
        }

        if iat.saturating_add(self.max_age) < facts.now {
            return Err(Error::ProofExpired);
        }
        if iat > facts.now.saturating_add(self.max_future_skew) {
            return Err(Error::ProofIssuedInFuture);
        }
        // A proof is a JWT (§4.2): an `exp` or `nbf` it carries must hold
        // (RFC 7519 §4.1.4–4.1.5), with the same clock allowance as `iat`.
        // `iat` stays the freshness rule: a far `exp` extends nothing.
        if claims
            .exp
            .is_some_and(|exp| exp.saturating_add(self.max_future_skew) <= facts.now)
        {
            return Err(Error::ProofExpPassed);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > facts.now.saturating_add(self.max_future_skew))
        {
            return Err(Error::ProofNotYetValid);
        }

        if let Some(expected) = facts.access_token_hash {
            let ath = claims.ath.ok_or(Error::ProofAthMissing)?;
            // A SHA-256 is 43 characters, 32 bytes: decoded on the stack
            // (anything longer does not fit, and cannot match either).
            let mut decoded = [0u8; 33];
            let len = URL_SAFE_NO_PAD
                .decode_slice(ath.as_bytes(), &mut decoded)
                .map_err(|_| Error::ProofAthMismatch)?;
            if !bool::from(decoded[..len].ct_eq(expected.as_slice())) {
                return Err(Error::ProofAthMismatch);
            }
        }

        if !jwk.verify(alg, jws.signing_input.as_bytes(), jws.signature()) {
            return Err(Error::ProofSignature);
        }

        Ok(VerifiedProof {
            alg,
            jwk,
            jti: jti.into_owned(),
            iat,
            accept_until: iat.saturating_add(self.max_age),
            nonce: claims.nonce.map(Cow::into_owned),
        })
    }
}

/// What a proof that failed its checks *claims*, unverified: for the audit
/// record of the refusal (which key was named, how far its clock was off),
/// never for a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claimed {
    /// The RFC 7638 thumbprint of the header's `jwk`, if it is a public key
    /// this library reads.
    pub jkt: Option<String>,
    /// The payload's `iat`, if it is a number.
    pub iat: Option<u64>,
}

impl Claimed {
    /// Reads what `proof` claims; empty if it is not a compact JWS.
    ///
    /// ```
    /// use senderbound_core::proof::Claimed;
    ///
    /// assert_eq!(Claimed::read("junk"), Claimed::default());
    /// ```
    pub fn read(proof: &str) -> Claimed {
        #[derive(Deserialize)]
        struct Header<'a> {
            #[serde(borrow)]
            jwk: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct Payload {
            #[serde(default, deserialize_with = "crate::numeric_date::deserialize_option")]
            iat: Option<u64>,
        }
        let Ok(jws) = CompactJws::parse(proof) else {
            return Claimed::default();
        };
        let jkt = serde_json::from_slice::<Header<'_>>(jws.header())
            .ok()
            .and_then(|h| h.jwk)
            .and_then(|jwk| PublicJwk::from_slice(jwk.get().as_bytes()).ok())
            .map(|jwk| jwk.thumbprint().to_owned());
        let iat = serde_json::from_slice::<Payload>(jws.payload())
            .ok()
            .and_then(|p| p.iat);
        Claimed { jkt, iat }
    }
}

/// `typ` values are media types: compared case-insensitively, with an
/// optional `application/` prefix (RFC 7515 §4.1.9).
pub(crate) fn is_media_type(typ: &str, expected: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case(expected)
}

/// An optional string member, borrowed from the JSON text when it has no
/// escapes: serde's `borrow` does not reach a `Cow` inside an `Option`, and
/// would copy every member of every proof. `null` is absent, as `Option`
/// reads it.
fn borrowed_str<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct Str;
    impl<'de> serde::de::Visitor<'de> for Str {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }
    struct Optional;
    impl<'de> serde::de::Visitor<'de> for Optional {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(Str).map(Some)
        }
    }
    d.deserialize_option(Optional)
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Ok(true)
}

#[derive(Deserialize)]
struct ProofHeader<'a> {
    #[serde(default, borrow, deserialize_with = "borrowed_str")]
    typ: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_str")]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    jwk: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

#[derive(Deserialize)]
struct ProofClaims<'a> {
    #[serde(default, borrow, deserialize_with = "borrowed_str")]
    jti: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_str")]
    htm: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_str")]
    htu: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "crate::numeric_date::deserialize_option")]
    iat: Option<u64>,
    /// Optional, but a number when present (RFC 7519 §4.1.4).
    #[serde(default, deserialize_with = "crate::numeric_date::deserialize_option")]
    exp: Option<u64>,
    /// Optional, but a number when present (RFC 7519 §4.1.5).
    #[serde(default, deserialize_with = "crate::numeric_date::deserialize_option")]
    nbf: Option<u64>,
    #[serde(default, borrow, deserialize_with = "borrowed_str")]
    ath: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_str")]
    nonce: Option<Cow<'a, str>>,
}

/// What the request looked like, for the proof to be checked against.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The request method, exactly as received (`GET`, `POST`, …).
    pub method: &'a str,
    /// The request's public URI, already [`htu::normalize`]d.
    pub htu: &'a str,
    /// SHA-256 of the access token presented with the proof, if any: the
    /// proof must then carry a matching `ath`.
    pub access_token_hash: Option<&'a [u8; 32]>,
    /// Current time, seconds since the epoch.
    pub now: u64,
}

/// A proof that passed every stateless check. Still to do: binding to the
/// token (`cnf.jkt`) and the replay check.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    alg: Algorithm,
    jwk: Arc<PublicJwk>,
    jti: String,
    iat: u64,
    accept_until: u64,
    nonce: Option<String>,
}

impl VerifiedProof {
    /// The algorithm the proof was signed with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The client's public key.
    pub fn jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// The client's public key, shared (it is cached across proofs): to
    /// keep its thumbprint without copying it.
    pub fn shared_jwk(&self) -> &Arc<PublicJwk> {
        &self.jwk
    }

    /// RFC 7638 thumbprint of the client's key (compare with `cnf.jkt`).
    pub fn jkt(&self) -> &str {
        self.jwk.thumbprint()
    }

    /// The proof's unique identifier.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// When the proof was made (seconds since the epoch).
    pub fn iat(&self) -> u64 {
        self.iat
    }

    /// The last second at which this proof's `iat` is still accepted: the
    /// replay store must remember the `jti` at least until then.
    pub fn accept_until(&self) -> u64 {
        self.accept_until
    }

    /// The `nonce` claim, if present.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    /// A proof with this header, good claims and a signature that is not one.
    fn unsigned(header: &str) -> String {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let claims = r#"{"jti":"j1","htm":"GET","htu":"https://a.test/r","iat":100}"#;
        format!("{}.{}.AQID", b64(header), b64(claims))
    }

    fn facts() -> RequestFacts<'static> {
        RequestFacts {
            method: "GET",
            htu: "https://a.test/r",
            access_token_hash: None,
            now: 100,
        }
    }

    #[test]
    fn refused_headers_are_refused_every_time_and_not_kept() {
        let policy = ProofPolicy::new();
        let private = KEY.replace(
            '}',
            r#","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#,
        );
        for (header, error) in [
            (
                format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{private}}}"#),
                Error::ProofKeyPrivate,
            ),
            (
                r#"{"typ":"dpop+jwt","alg":"EdDSA","jwk":{}}"#.to_owned(),
                Error::ProofKeyInvalid,
            ),
            (
                format!(r#"{{"typ":"jwt","alg":"EdDSA","jwk":{KEY}}}"#),
                Error::ProofType,
            ),
            (
                format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{KEY}}}"#),
                Error::ProofKeyAlgorithmMismatch,
            ),
            (
                format!(r#"{{"typ":"dpop+jwt","alg":"HS256","jwk":{KEY}}}"#),
                Error::ProofAlgorithm,
            ),
        ] {
            for _ in 0..2 {
                let refused = policy.verify(&unsigned(&header), &facts()).unwrap_err();
                assert_eq!(refused, error, "{header}");
            }
        }
        assert!(policy.keys.as_ref().unwrap().is_empty());
    }

    #[test]
    fn a_known_header_is_checked_once_and_the_rest_every_time() {
        let policy = ProofPolicy::new();
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{KEY}}}"#);
        // The header passes, the signature does not: the header is kept.
        for _ in 0..2 {
            let refused = policy.verify(&unsigned(&header), &facts()).unwrap_err();
            assert_eq!(refused, Error::ProofSignature);
        }
        assert_eq!(policy.keys.as_ref().unwrap().len(), 1);
        // A hit is taken as checked: given an entry for a header that would
        // fail (`typ`), the signature is what fails. So the cache is read.
        let cache = policy.keys.as_ref().unwrap();
        let good = unsigned(&header);
        let known = cache.get(good.split('.').next().unwrap()).unwrap();
        let bad = unsigned(&format!(r#"{{"typ":"jwt","alg":"EdDSA","jwk":{KEY}}}"#));
        assert_eq!(policy.verify(&bad, &facts()).unwrap_err(), Error::ProofType);
        cache.insert(bad.split('.').next().unwrap(), known);
        assert_eq!(
            policy.verify(&bad, &facts()).unwrap_err(),
            Error::ProofSignature
        );
        // A known header does not excuse the payload: claims and the
        // signature are still read from the proof.
        let proof = unsigned(&header);
        let [h, _, sig] = <[&str; 3]>::try_from(proof.split('.').collect::<Vec<_>>()).unwrap();
        let other = URL_SAFE_NO_PAD
            .encode(r#"{"jti":"j1","htm":"POST","htu":"https://a.test/r","iat":100}"#);
        assert_eq!(
            policy
                .verify(&format!("{h}.{other}.{sig}"), &facts())
                .unwrap_err(),
            Error::ProofMethodMismatch
        );
        let array = URL_SAFE_NO_PAD.encode("[1]");
        assert_eq!(
            policy
                .verify(&format!("{h}.{array}.{sig}"), &facts())
                .unwrap_err(),
            Error::ProofMalformed
        );
        assert_eq!(
            policy
                .verify(&format!("{h}.{other}.A"), &facts())
                .unwrap_err(),
            Error::ProofMalformed
        );
    }

    #[test]
    fn media_type_comparison() {
        assert!(is_media_type("dpop+jwt", "dpop+jwt"));
        assert!(is_media_type("DPoP+JWT", "dpop+jwt"));
        assert!(is_media_type("application/dpop+jwt", "dpop+jwt"));
        assert!(!is_media_type("jwt+dpop", "dpop+jwt"));
        assert!(!is_media_type("JWT", "dpop+jwt"));
        assert!(!is_media_type("application/", "dpop+jwt"));
        assert!(!is_media_type("text/dpop+jwt", "dpop+jwt"));
    }
}
