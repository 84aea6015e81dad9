//! Access tokens: RFC 9068 JWT verification against a key set, the claims
//! senderbound uses, and the checks on them (issuer, audience per RFC 8707,
//! time, `cnf` binding per RFC 9449 §6 / RFC 8705 §3, scope).
//!
//! ```
//! use senderbound_core::token::{Audience, TokenRules};
//!
//! let rules = TokenRules::new(["https://as.example.com"], ["https://api.example.com"]);
//! assert!(rules.trusts_issuer("https://as.example.com"));
//! assert!(rules.accepts_audience(&Audience::from(vec!["https://api.example.com".to_owned()])));
//! ```

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;

use crate::alg::{Algorithm, AlgorithmSet};
use crate::error::Error;
use crate::jwk::JwkSet;
use crate::jws::CompactJws;
use crate::proof::is_media_type;

/// Default largest accepted access token, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Default leeway for `exp` and `nbf`, in seconds.
pub const DEFAULT_TOKEN_LEEWAY_SECS: u64 = 10;

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audience(Vec<String>);

impl Audience {
    /// The audience values.
    pub fn values(&self) -> &[String] {
        &self.0
    }
}

impl From<Vec<String>> for Audience {
    fn from(v: Vec<String>) -> Self {
        Audience(v)
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => Audience(vec![s]),
            OneOrMany::Many(v) => Audience(v),
        })
    }
}

/// How the token is bound to its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// No `cnf`: a bearer token.
    Unbound,
    /// `cnf.jkt`: bound to a DPoP key with this RFC 7638 thumbprint.
    Dpop {
        /// The key thumbprint.
        jkt: String,
    },
    /// `cnf["x5t#S256"]`: bound to a client certificate with this SHA-256 thumbprint.
    Mtls {
        /// The certificate thumbprint (base64url SHA-256 of the DER).
        x5t_s256: String,
    },
}

impl Binding {
    /// The DPoP key thumbprint, for [`Binding::Dpop`].
    pub fn jkt(&self) -> Option<&str> {
        match self {
            Binding::Dpop { jkt } => Some(jkt),
            _ => None,
        }
    }

    /// The certificate thumbprint, for [`Binding::Mtls`].
    pub fn x5t_s256(&self) -> Option<&str> {
        match self {
            Binding::Mtls { x5t_s256 } => Some(x5t_s256),
            _ => None,
        }
    }

    /// `true` unless [`Binding::Unbound`].
    pub fn is_bound(&self) -> bool {
        !matches!(self, Binding::Unbound)
    }

    /// Checks that the token is bound to the DPoP key with thumbprint `jkt`,
    /// in constant time.
    pub fn check_dpop(&self, jkt: &str) -> Result<(), Error> {
        match self {
            Binding::Dpop { jkt: bound } if bool::from(bound.as_bytes().ct_eq(jkt.as_bytes())) => {
                Ok(())
            }
            Binding::Dpop { .. } | Binding::Mtls { .. } => Err(Error::TokenBindingMismatch),
            Binding::Unbound => Err(Error::TokenNotBound),
        }
    }

    /// Checks that the token is bound to the client certificate with
    /// SHA-256 thumbprint `x5t_s256` (RFC 8705 §3), in constant time.
    pub fn check_mtls(&self, x5t_s256: &str) -> Result<(), Error> {
        match self {
            Binding::Mtls { x5t_s256: bound }
                if bool::from(bound.as_bytes().ct_eq(x5t_s256.as_bytes())) =>
            {
                Ok(())
            }
            Binding::Mtls { .. } => Err(Error::TokenCertificateMismatch),
            Binding::Dpop { .. } => Err(Error::TokenBindingMismatch),
            Binding::Unbound => Err(Error::TokenNotBound),
        }
    }
}

/// The verified claims of an access token that senderbound uses.
///
/// Built by a token verifier (JWT, introspection, …) only after the token's
/// signature or the authorization server vouched for it: with
/// [`from_json_claims`](Self::from_json_claims) or
/// [`from_introspection`](Self::from_introspection) (it grows new fields).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccessToken {
    /// `iss`
    pub issuer: String,
    /// `sub`, if any.
    pub subject: Option<String>,
    /// `client_id` (or `azp` when `client_id` is absent), if any.
    pub client_id: Option<String>,
    /// `aud`
    pub audience: Audience,
    /// `scope` split on spaces (or the `scp` array some servers send).
    pub scopes: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
    /// `nbf`, if any.
    pub not_before: Option<u64>,
    /// `iat`, if any.
    pub issued_at: Option<u64>,
    /// `jti`, if any.
    pub token_id: Option<String>,
    /// The sender binding from `cnf`.
    pub binding: Binding,
    /// The RFC 7638 thumbprint of the authorization server's key that
    /// verified the token's signature; `None` when the token was not
    /// verified by a key (introspection). Lets a cached token be held to
    /// its key: it stops working when the key is withdrawn.
    pub key_thumbprint: Option<String>,
    /// `acr`, the authentication context class (OpenID Connect Core §2,
    /// RFC 9470), if it is a string.
    pub acr: Option<String>,
    /// `amr`, the authentication methods (RFC 8176), the strings of the
    /// array; empty when absent.
    pub amr: Vec<String>,
    /// `auth_time`, when the user authenticated (seconds since the epoch),
    /// if it is a number.
    pub auth_time: Option<u64>,
    /// `authorization_details` (RFC 9396 §9.1 for JWTs, §9.2 for
    /// introspection answers); empty when absent. A claim that is not an
    /// array of objects with a string `type` (or that names a member twice)
    /// refuses the token.
    pub authorization_details: Vec<crate::authorization_details::AuthorizationDetail>,
    /// Every claim as received (the JWT payload or the introspection
    /// answer), for typed access to claims not named above. A member named
    /// twice keeps its last value here (the named claims above refuse
    /// duplicates); empty if the payload holds a value JSON cannot
    /// represent faithfully (a lone surrogate, a number out of range).
    pub claims: std::sync::Arc<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawClaims<'a> {
    #[serde(borrow)]
    iss: Option<Cow<'a, str>>,
    sub: Option<String>,
    client_id: Option<String>,
    azp: Option<String>,
    aud: Option<Audience>,
    scope: Option<String>,
    scp: Option<Scp>,
    #[serde(default, deserialize_with = "crate::numeric_date::deserialize_option")]
    exp: Option<u64>,
    #[serde(default, deserialize_with = "crate::numeric_date::deserialize_option")]
    nbf: Option<u64>,
    #[serde(default, deserialize_with = "crate::numeric_date::deserialize_option")]
    iat: Option<u64>,
    jti: Option<String>,
    /// Read as raw JSON, then leniently (a value of the wrong type is
    /// absent); as known members, a duplicate is refused like any other.
    #[serde(borrow)]
    acr: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    amr: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    auth_time: Option<&'a serde_json::value::RawValue>,
    /// Read strictly: a malformed one (`null` included) refuses the token,
    /// as "invalid for other reasons" (RFC 6750 §3.1 `invalid_token`): a
    /// grant that cannot be read one way only is no grant.
    #[serde(default, borrow, deserialize_with = "raw_even_null")]
    authorization_details: Option<&'a serde_json::value::RawValue>,
    /// Absent → `None`; present (even `null`) → `Some`, so a `null` or
    /// otherwise unusable `cnf` is refused, never read as "unbound".
    #[serde(default, deserialize_with = "present_cnf")]
    cnf: Option<Option<RawCnf>>,
}

/// `cnf` must be an object (RFC 7800 §3.1), never an array read by position.
fn present_cnf<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<RawCnf>>, D::Error> {
    match Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)? {
        None => Ok(Some(None)),
        Some(members) => RawCnf::deserialize(serde_json::Value::Object(members))
            .map(|cnf| Some(Some(cnf)))
            .map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scp {
    Many(Vec<String>),
    One(String),
}

#[derive(Deserialize)]
struct RawCnf {
    jkt: Option<String>,
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
}

/// A SHA-256 thumbprint: 43 characters of unpadded base64url.
fn is_sha256_thumbprint(s: &str) -> bool {
    s.len() == 43 && crate::jws::b64url_decode(s).is_ok_and(|b| b.len() == 32)
}

impl RawCnf {
    fn into_binding(self) -> Result<Binding, Error> {
        match (self.jkt, self.x5t_s256) {
            (Some(jkt), None) if is_sha256_thumbprint(&jkt) => Ok(Binding::Dpop { jkt }),
            (None, Some(x5t_s256)) if is_sha256_thumbprint(&x5t_s256) => {
                Ok(Binding::Mtls { x5t_s256 })
            }
            // A cnf we cannot check (bound both ways, malformed, or another
            // confirmation method such as a raw `jwk`) must not be treated as
            // unbound: refuse it.
            _ => Err(Error::TokenConfirmationInvalid),
        }
    }
}

impl AccessToken {
    /// Builds the claims from a JSON object (a JWT payload or an
    /// introspection response). `iss`, `aud` and `exp` are required.
    pub fn from_json_claims(json: &[u8]) -> Result<Self, Error> {
        Self::from_claims(json, None)
    }

    /// Builds the claims from an RFC 7662 introspection response by
    /// `issuer`'s introspection endpoint. Only `"active": true` is active;
    /// `iss`, when present, must be `issuer`; `aud` and `exp` are required
    /// (a token without them cannot be checked for this resource, or cached
    /// safely). A `token_type` of `DPoP` requires a `cnf.jkt` (RFC 9449 §6.2).
    ///
    /// ```
    /// use senderbound_core::{Error, token::AccessToken};
    ///
    /// let t = AccessToken::from_introspection(
    ///     br#"{"active":true,"aud":"https://api","exp":2000,"scope":"read"}"#,
    ///     "https://as",
    /// ).unwrap();
    /// assert_eq!(t.issuer, "https://as");
    /// assert_eq!(
    ///     AccessToken::from_introspection(br#"{"active":false}"#, "https://as").unwrap_err(),
    ///     Error::TokenInactive,
    /// );
    /// ```
    pub fn from_introspection(json: &[u8], issuer: &str) -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Envelope {
            active: Option<serde_json::Value>,
            token_type: Option<serde_json::Value>,
        }
        if !crate::jws::is_json_object(json) {
            return Err(Error::TokenVerifierUnavailable);
        }
        let envelope: Envelope =
            serde_json::from_slice(json).map_err(|_| Error::TokenVerifierUnavailable)?;
        if envelope.active != Some(serde_json::Value::Bool(true)) {
            return Err(Error::TokenInactive);
        }
        let token = Self::from_claims(json, Some(issuer))?;
        if token.issuer != issuer {
            return Err(Error::TokenIssuer);
        }
        let says_dpop = envelope
            .token_type
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("DPoP"));
        if says_dpop && !matches!(token.binding, Binding::Dpop { .. }) {
            return Err(Error::TokenConfirmationInvalid);
        }
        Ok(token)
    }

    fn from_claims(json: &[u8], default_issuer: Option<&str>) -> Result<Self, Error> {
        let raw: RawClaims<'_> = serde_json::from_slice(json).map_err(|_| {
            match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(json) {
                Ok(_) => Error::TokenMissingClaim,
                Err(_) => Error::TokenMalformed,
            }
        })?;
        let issuer = match (raw.iss, default_issuer) {
            (Some(iss), _) => iss.into_owned(),
            (None, Some(default)) => default.to_owned(),
            (None, None) => return Err(Error::TokenMissingClaim),
        };
        let audience = raw.aud.ok_or(Error::TokenMissingClaim)?;
        let expires_at = raw.exp.ok_or(Error::TokenMissingClaim)?;
        let scopes = match (raw.scope, raw.scp) {
            (Some(s), _) => s
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            (None, Some(Scp::Many(v))) => v,
            (None, Some(Scp::One(s))) => s
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            (None, None) => Vec::new(),
        };
        let binding = match raw.cnf {
            Some(Some(cnf)) => cnf.into_binding()?,
            Some(None) => return Err(Error::TokenConfirmationInvalid),
            None => Binding::Unbound,
        };
        let lenient = |raw: Option<&serde_json::value::RawValue>| {
            raw.and_then(|r| serde_json::from_str::<serde_json::Value>(r.get()).ok())
        };
        let acr = match lenient(raw.acr) {
            Some(serde_json::Value::String(acr)) => Some(acr),
            _ => None,
        };
        let amr = match lenient(raw.amr) {
            Some(serde_json::Value::Array(methods)) => methods
                .into_iter()
                .filter_map(|m| match m {
                    serde_json::Value::String(m) => Some(m),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let auth_time = lenient(raw.auth_time).and_then(|t| {
            t.as_u64().or_else(|| {
                t.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
        });
        let authorization_details = match raw.authorization_details {
            None => Vec::new(),
            Some(raw) => {
                crate::authorization_details::parse(raw.get()).ok_or(Error::TokenMissingClaim)?
            }
        };
        // Every claim, for typed access; parsed once per verified token
        // (cached after). Never a reason to refuse: a payload with a member
        // serde_json's `Value` cannot hold (a lone surrogate, a number out
        // of range, deep nesting) was accepted before, and still is, with
        // no claims to read.
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(json).unwrap_or_default();
        Ok(AccessToken {
            issuer,
            subject: raw.sub,
            client_id: raw.client_id.or(raw.azp),
            audience,
            scopes,
            expires_at,
            not_before: raw.nbf,
            issued_at: raw.iat,
            token_id: raw.jti,
            binding,
            key_thumbprint: None,
            acr,
            amr,
            auth_time,
            authorization_details,
            claims: std::sync::Arc::new(claims),
        })
    }

    /// Checks `exp` and `nbf` against `now`, allowing `leeway` seconds of skew.
    pub fn check_time(&self, now: u64, leeway: u64) -> Result<(), Error> {
        if self.expires_at.saturating_add(leeway) <= now {
            return Err(Error::TokenExpired);
        }
        if self
            .not_before
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(Error::TokenNotYetValid);
        }
        Ok(())
    }

    /// `true` if the token carries every scope in `required`.
    pub fn has_scopes<'s>(&self, required: impl IntoIterator<Item = &'s str>) -> bool {
        required
            .into_iter()
            .all(|r| self.scopes.iter().any(|s| s == r))
    }
}

/// How strictly the JOSE `typ` of a JWT access token is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TypPolicy {
    /// `typ` must be `at+jwt` (RFC 9068 §2.1). The default.
    #[default]
    RequireAtJwt,
    /// `at+jwt`, `JWT` or no `typ` at all, for authorization servers that do
    /// not implement RFC 9068 yet. Any other `typ` (such as `dpop+jwt`) is
    /// still refused.
    AllowJwt,
}

/// The static rules an access token must meet: who may issue it, for which
/// resource, and how its JWT form must look.
#[derive(Debug, Clone)]
pub struct TokenRules {
    issuers: Vec<String>,
    audiences: Vec<String>,
    algorithms: AlgorithmSet,
    typ: TypPolicy,
    leeway: u64,
    max_token_bytes: usize,
    max_lifetime: Option<u64>,
}

impl TokenRules {
    /// Tokens from any of `issuers`, naming any of `audiences`.
    pub fn new<I, A>(issuers: I, audiences: A) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
        A: IntoIterator,
        A::Item: Into<String>,
    {
        TokenRules {
            issuers: issuers.into_iter().map(Into::into).collect(),
            audiences: audiences.into_iter().map(Into::into).collect(),
            algorithms: AlgorithmSet::all(),
            typ: TypPolicy::default(),
            leeway: DEFAULT_TOKEN_LEEWAY_SECS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_lifetime: None,
        }
    }

    /// Refuse tokens meant to live longer than `secs` (`exp` minus `iat`,
    /// or minus `nbf` without `iat`). Tokens with neither are then refused
    /// too, since their lifetime cannot be known.
    pub fn max_lifetime(mut self, lifetime: std::time::Duration) -> Self {
        self.max_lifetime = Some(lifetime.as_secs());
        self
    }

    /// Accept only these token signature algorithms.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }

    /// How strictly `typ` is checked.
    pub fn typ_policy(mut self, typ: TypPolicy) -> Self {
        self.typ = typ;
        self
    }

    /// Leeway for `exp` and `nbf` (whole seconds).
    pub fn leeway(mut self, leeway: std::time::Duration) -> Self {
        self.leeway = leeway.as_secs();
        self
    }

    /// Largest accepted token, in bytes.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// The configured leeway.
    pub fn time_leeway(&self) -> u64 {
        self.leeway
    }

    /// The configured token size limit.
    pub fn token_max_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    /// This resource's identifiers.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// `true` if `iss` is trusted (exact string comparison, RFC 8414 §3.3).
    pub fn trusts_issuer(&self, iss: &str) -> bool {
        self.issuers.iter().any(|i| i == iss)
    }

    /// `true` if the token names one of this resource's identifiers.
    pub fn accepts_audience(&self, aud: &Audience) -> bool {
        aud.values()
            .iter()
            .any(|a| self.audiences.iter().any(|mine| mine == a))
    }

    /// Issuer, audience and lifetime checks, which do not change over a
    /// token's life.
    pub fn check_claims(&self, token: &AccessToken) -> Result<(), Error> {
        if !self.trusts_issuer(&token.issuer) {
            return Err(Error::TokenIssuer);
        }
        if !self.accepts_audience(&token.audience) {
            return Err(Error::TokenAudience);
        }
        if let Some(max) = self.max_lifetime {
            let start = token
                .issued_at
                .or(token.not_before)
                .ok_or(Error::TokenLifetime)?;
            if token.expires_at.saturating_sub(start) > max {
                return Err(Error::TokenLifetime);
            }
        }
        Ok(())
    }

    /// Verifies a JWT access token (RFC 9068) against `keys`: size, compact
    /// form, `typ`, `crit`, `alg` on the allow-list, the key chosen by `kid`,
    /// the signature, then the claims, `iss` and `aud`. Time is checked
    /// separately ([`AccessToken::check_time`]) because verified tokens are
    /// cached.
    pub fn verify_jwt(&self, token: &str, keys: &JwkSet) -> Result<AccessToken, Error> {
        self.verify_parsed(&self.parse_jwt(token)?, keys)
    }

    /// The size and compact-form checks of [`verify_jwt`](Self::verify_jwt):
    /// split and decode once, then read the issuer
    /// ([`unverified_issuer_of`]) and verify ([`verify_parsed`](Self::verify_parsed))
    /// from the same parse.
    pub fn parse_jwt<'t>(&self, token: &'t str) -> Result<CompactJws<'t>, Error> {
        if token.len() > self.max_token_bytes {
            return Err(Error::TokenTooLarge);
        }
        CompactJws::parse(token).map_err(|_| Error::TokenMalformed)
    }

    /// [`verify_jwt`](Self::verify_jwt) of a token already split by
    /// [`parse_jwt`](Self::parse_jwt).
    pub fn verify_parsed(&self, jws: &CompactJws<'_>, keys: &JwkSet) -> Result<AccessToken, Error> {
        let header: JwtHeader<'_> =
            serde_json::from_slice(jws.header()).map_err(|_| Error::TokenMalformed)?;
        let typ_ok = match (self.typ, header.typ.as_deref()) {
            (_, Some(t)) if is_media_type(t, "at+jwt") => true,
            (TypPolicy::AllowJwt, None) => true,
            (TypPolicy::AllowJwt, Some(t)) => is_media_type(t, "jwt"),
            (TypPolicy::RequireAtJwt, _) => false,
        };
        if !typ_ok {
            return Err(Error::TokenType);
        }
        if header.crit {
            return Err(Error::TokenMalformed);
        }
        let alg = header
            .alg
            .as_deref()
            .and_then(Algorithm::from_name)
            .filter(|a| self.algorithms.contains(*a))
            .ok_or(Error::TokenAlgorithm)?;
        let mut candidates = keys.candidates(alg, header.kid.as_deref()).peekable();
        if candidates.peek().is_none() {
            return Err(Error::TokenUnknownKey);
        }
        let verified_by = candidates
            .take(4) // without a kid, try a few fitting keys, never the whole set
            .find(|key| key.verify(alg, jws.signing_input.as_bytes(), jws.signature()))
            .ok_or(Error::TokenSignature)?;
        let mut claims = AccessToken::from_json_claims(jws.payload())?;
        self.check_claims(&claims)?;
        claims.key_thumbprint = Some(verified_by.thumbprint().to_owned());
        Ok(claims)
    }
}

/// `true` if `token` has the shape of a compact JWS (three dot-separated
/// parts, the first an encoded JSON object). Says nothing about validity:
/// used to choose between local verification and introspection.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("ey") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// The `iss` claim of a JWT, read **without verifying anything**: only to
/// choose which issuer's keys to verify it with. `Err(TokenMalformed)` if
/// the token is not a compact JWS; `Ok(None)` if it has no string `iss`.
pub fn unverified_issuer(token: &str) -> Result<Option<String>, Error> {
    unverified_issuer_of(&CompactJws::parse(token).map_err(|_| Error::TokenMalformed)?)
}

/// [`unverified_issuer`] of an already split token.
pub fn unverified_issuer_of(jws: &CompactJws<'_>) -> Result<Option<String>, Error> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<serde_json::Value>,
    }
    let claims: Iss = serde_json::from_slice(jws.payload()).map_err(|_| Error::TokenMalformed)?;
    Ok(match claims.iss {
        Some(serde_json::Value::String(iss)) => Some(iss),
        _ => None,
    })
}

/// A member's raw JSON, `null` included (`Option`'s own reading makes a
/// `null` absent).
fn raw_even_null<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<&'a serde_json::value::RawValue>, D::Error> {
    <&serde_json::value::RawValue>::deserialize(d).map(Some)
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Ok(true)
}

#[derive(Deserialize)]
struct JwtHeader<'a> {
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_serde_json_cannot_hold_do_not_refuse_the_token() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for extra in [r#""\ud800""#, "1e400", deep.as_str()] {
            let json = format!(
                r#"{{"iss":"https://as","aud":"https://rs","exp":2000,"acr":"urn:mfa","x":{extra}}}"#
            );
            let token = AccessToken::from_json_claims(json.as_bytes())
                .unwrap_or_else(|e| panic!("{extra}: {e:?}"));
            assert_eq!(token.acr.as_deref(), Some("urn:mfa"), "{extra}");
            assert!(token.claims.is_empty(), "{extra}: no claims to read");
        }
    }

    #[test]
    fn acr_amr_auth_time_are_read_leniently_but_never_twice() {
        let parse = |extra: &str| {
            AccessToken::from_json_claims(
                format!(r#"{{"iss":"https://as","aud":"https://rs","exp":2000,{extra}}}"#)
                    .as_bytes(),
            )
        };
        let t = parse(r#""acr":5,"amr":"pwd","auth_time":"yesterday""#).unwrap();
        assert_eq!((t.acr, t.amr.len(), t.auth_time), (None, 0, None));
        let t = parse(r#""acr":"a","amr":["pwd",1,"otp"],"auth_time":1700000000.9"#).unwrap();
        assert_eq!(t.acr.as_deref(), Some("a"));
        assert_eq!(t.amr, ["pwd", "otp"]);
        assert_eq!(t.auth_time, Some(1_700_000_000));
        assert_eq!(parse(r#""auth_time":-1"#).unwrap().auth_time, None);
        // Two readings of a claim a handler decides on: refused.
        for dup in [
            r#""acr":"urn:low","acr":"urn:mfa""#,
            r#""amr":["pwd"],"amr":["otp"]"#,
            r#""auth_time":1,"auth_time":2"#,
        ] {
            assert_eq!(parse(dup).unwrap_err(), Error::TokenMissingClaim, "{dup}");
        }
    }

    #[test]
    fn authorization_details_are_read_strictly_from_jwts_and_introspection() {
        let jwt = |details: &str| {
            AccessToken::from_json_claims(
                format!(r#"{{"iss":"https://as","aud":"https://rs","exp":2000,"authorization_details":{details}}}"#)
                    .as_bytes(),
            )
        };
        let t = jwt(r#"[{"type":"mcp_tools","tools":["a"]}]"#).unwrap();
        assert_eq!(t.authorization_details[0].detail_type(), "mcp_tools");
        assert!(
            AccessToken::from_json_claims(claims("").as_bytes())
                .unwrap()
                .authorization_details
                .is_empty()
        );
        let t = AccessToken::from_introspection(
            br#"{"active":true,"aud":"https://rs","exp":2000,"authorization_details":[{"type":"t","actions":["read"]}]}"#,
            "https://as",
        )
        .unwrap();
        assert_eq!(
            t.authorization_details[0].actions().collect::<Vec<_>>(),
            ["read"]
        );
        // Grants read two ways, or not at all: the token is refused.
        for bad in [
            r#"{"type":"a"}"#,
            r#"[{"type":"a","tools":["x"],"tools":["y"]}]"#,
            r#"[{"type":5}]"#,
            "null",
        ] {
            assert_eq!(jwt(bad).unwrap_err(), Error::TokenMissingClaim, "{bad}");
        }
        assert_eq!(
            AccessToken::from_json_claims(
                br#"{"iss":"https://as","aud":"https://rs","exp":2000,"authorization_details":[],"authorization_details":[{"type":"a"}]}"#
            )
            .unwrap_err(),
            Error::TokenMissingClaim
        );
    }

    const JKT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    fn claims(extra: &str) -> String {
        format!(r#"{{"iss":"https://as","aud":"https://rs","exp":2000{extra}}}"#)
    }

    #[test]
    fn required_claims() {
        assert!(AccessToken::from_json_claims(claims("").as_bytes()).is_ok());
        for json in [
            r#"{"aud":"https://rs","exp":2000}"#,
            r#"{"iss":"https://as","exp":2000}"#,
            r#"{"iss":"https://as","aud":"https://rs"}"#,
            r#"{"iss":"https://as","aud":"https://rs","exp":"2000"}"#,
            r#"{"iss":7,"aud":"https://rs","exp":2000}"#,
        ] {
            assert_eq!(
                AccessToken::from_json_claims(json.as_bytes()).unwrap_err(),
                Error::TokenMissingClaim,
                "{json}"
            );
        }
        assert_eq!(
            AccessToken::from_json_claims(b"[1]").unwrap_err(),
            Error::TokenMalformed
        );
    }

    #[test]
    fn confirmation_shapes() {
        let t = AccessToken::from_json_claims(
            claims(&format!(r#","cnf":{{"jkt":"{JKT}"}}"#)).as_bytes(),
        )
        .unwrap();
        assert_eq!(t.binding, Binding::Dpop { jkt: JKT.into() });
        assert!(t.binding.check_dpop(JKT).is_ok());
        assert_eq!(
            t.binding
                .check_dpop("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            Err(Error::TokenBindingMismatch)
        );
        let t = AccessToken::from_json_claims(claims("").as_bytes()).unwrap();
        assert_eq!(t.binding.check_dpop(JKT), Err(Error::TokenNotBound));
        let mtls = Binding::Mtls {
            x5t_s256: JKT.into(),
        };
        assert!(mtls.check_mtls(JKT).is_ok());
        assert_eq!(
            mtls.check_mtls("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            Err(Error::TokenCertificateMismatch)
        );
        assert_eq!(mtls.check_dpop(JKT), Err(Error::TokenBindingMismatch));
        assert_eq!(
            Binding::Dpop { jkt: JKT.into() }.check_mtls(JKT),
            Err(Error::TokenBindingMismatch)
        );
        assert_eq!(t.binding.check_mtls(JKT), Err(Error::TokenNotBound));
        for cnf in [
            format!(r#","cnf":{{"jkt":"{JKT}","x5t#S256":"{JKT}"}}"#),
            r#","cnf":{"jkt":"short"}"#.to_owned(),
            r#","cnf":{"jkt":5}"#.to_owned(),
            r#","cnf":{"x5t#S256":"short"}"#.to_owned(),
            r#","cnf":{"x5t#S256":["a"]}"#.to_owned(),
            r#","cnf":{"x5t#S256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"}"#.to_owned(),
            r#","cnf":{"x5t":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}"#.to_owned(),
            r#","cnf":{"jwk":{"kty":"EC"}}"#.to_owned(),
            r#","cnf":{}"#.to_owned(),
        ] {
            assert!(
                matches!(
                    AccessToken::from_json_claims(claims(&cnf).as_bytes()),
                    Err(Error::TokenConfirmationInvalid | Error::TokenMissingClaim)
                ),
                "{cnf}"
            );
        }
        for cnf in [r#","cnf":{"jwk":{}}"#, r#","cnf":null"#] {
            assert_eq!(
                AccessToken::from_json_claims(claims(cnf).as_bytes()).unwrap_err(),
                Error::TokenConfirmationInvalid,
                "{cnf}"
            );
        }
    }

    #[test]
    fn time_and_scope() {
        let t = AccessToken::from_json_claims(
            claims(r#","nbf":1000,"scope":"read  write","client_id":"c""#).as_bytes(),
        )
        .unwrap();
        assert_eq!(t.scopes, ["read", "write"]);
        assert!(t.has_scopes(["read"]));
        assert!(!t.has_scopes(["read", "admin"]));
        assert!(t.check_time(1500, 0).is_ok());
        assert_eq!(t.check_time(2000, 0), Err(Error::TokenExpired));
        assert!(t.check_time(2000, 10).is_ok());
        assert_eq!(t.check_time(989, 10), Err(Error::TokenNotYetValid));
        assert!(t.check_time(990, 10).is_ok());
    }

    #[test]
    fn issuer_and_audience() {
        let rules = TokenRules::new(["https://as"], ["https://rs", "https://rs2"]);
        let mut t = AccessToken::from_json_claims(claims("").as_bytes()).unwrap();
        assert!(rules.check_claims(&t).is_ok());
        t.audience = Audience(vec!["https://other".into(), "https://rs2".into()]);
        assert!(rules.check_claims(&t).is_ok());
        t.audience = Audience(vec!["https://other".into()]);
        assert_eq!(rules.check_claims(&t), Err(Error::TokenAudience));
        t.issuer = "https://as/".into();
        assert_eq!(rules.check_claims(&t), Err(Error::TokenIssuer));
    }

    #[test]
    fn max_lifetime() {
        let rules = TokenRules::new(["https://as"], ["https://rs"])
            .max_lifetime(std::time::Duration::from_secs(600));
        let mut t = AccessToken::from_json_claims(claims(r#","iat":1400"#).as_bytes()).unwrap();
        assert!(rules.check_claims(&t).is_ok());
        t.issued_at = Some(1399);
        assert_eq!(rules.check_claims(&t), Err(Error::TokenLifetime));
        t.issued_at = None;
        assert_eq!(rules.check_claims(&t), Err(Error::TokenLifetime));
        t.not_before = Some(1500);
        assert!(rules.check_claims(&t).is_ok());
        let no_limit = TokenRules::new(["https://as"], ["https://rs"]);
        t.not_before = None;
        assert!(no_limit.check_claims(&t).is_ok());
    }

    #[test]
    fn introspection_answers() {
        let ok = |json: &str| AccessToken::from_introspection(json.as_bytes(), "https://as");
        let t = ok(&format!(
            r#"{{"active":true,"aud":["https://rs"],"exp":2000,"token_type":"DPoP","cnf":{{"jkt":"{JKT}"}},"client_id":"c"}}"#
        ))
        .unwrap();
        assert_eq!(t.issuer, "https://as");
        assert_eq!(t.binding, Binding::Dpop { jkt: JKT.into() });
        for inactive in [
            r#"{"active":false,"aud":"https://rs","exp":2000}"#,
            r#"{"active":"true","aud":"https://rs","exp":2000}"#,
            r#"{"active":1,"aud":"https://rs","exp":2000}"#,
            r#"{"aud":"https://rs","exp":2000}"#,
        ] {
            assert_eq!(
                ok(inactive).unwrap_err(),
                Error::TokenInactive,
                "{inactive}"
            );
        }
        assert_eq!(
            ok(r#"{"active":true,"iss":"https://evil","aud":"https://rs","exp":2000}"#)
                .unwrap_err(),
            Error::TokenIssuer
        );
        assert_eq!(
            ok(r#"{"active":true,"aud":"https://rs","exp":2000,"token_type":"DPoP"}"#).unwrap_err(),
            Error::TokenConfirmationInvalid
        );
        assert_eq!(
            ok(r#"{"active":true,"aud":"https://rs"}"#).unwrap_err(),
            Error::TokenMissingClaim
        );
        assert_eq!(
            ok(r#"{"active":true,"exp":2000}"#).unwrap_err(),
            Error::TokenMissingClaim
        );
        // The server's fault, not the client's.
        assert_eq!(ok("<html>").unwrap_err(), Error::TokenVerifierUnavailable);
        assert_eq!(ok("[true]").unwrap_err(), Error::TokenVerifierUnavailable);
    }

    #[test]
    fn token_shape_and_unverified_issuer() {
        use crate::jws::b64url_encode;
        let jwt = format!(
            "{}.{}.{}",
            b64url_encode(br#"{"alg":"ES256"}"#),
            b64url_encode(br#"{"iss":"https://as"}"#),
            b64url_encode(b"sig")
        );
        assert!(looks_like_jwt(&jwt));
        assert_eq!(
            unverified_issuer(&jwt).unwrap().as_deref(),
            Some("https://as")
        );
        let no_iss = format!(
            "{}.{}.{}",
            b64url_encode(br#"{"alg":"ES256"}"#),
            b64url_encode(br#"{"iss":5}"#),
            b64url_encode(b"sig")
        );
        assert_eq!(unverified_issuer(&no_iss).unwrap(), None);
        for opaque in ["2YotnFZFEjr1zCsicMWpAA", "a.b", "ey.a.b.c"] {
            assert!(!looks_like_jwt(opaque), "{opaque}");
        }
        assert_eq!(unverified_issuer("a.b"), Err(Error::TokenMalformed));
    }

    #[test]
    fn arrays_are_never_read_as_objects() {
        // serde fills a struct from an array by position: refused instead.
        // Not UTF-8 in a member nobody reads: not JSON (RFC 8259 §8.1).
        let latin1 = b"{\"active\":true,\"aud\":\"a\",\"exp\":2000,\"x\":\"caf\xe9\"}";
        assert_eq!(
            AccessToken::from_introspection(latin1, "https://as").unwrap_err(),
            Error::TokenVerifierUnavailable
        );
        let array = br#"[true, "DPoP"]"#;
        assert_eq!(
            AccessToken::from_introspection(array, "https://as").unwrap_err(),
            Error::TokenVerifierUnavailable
        );
        let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        let claims =
            |cnf: &str| format!(r#"{{"iss":"https://as","aud":"a","exp":2000,"cnf":{cnf}}}"#);
        let by_position = claims(&format!(r#"["{jkt}"]"#));
        assert!(AccessToken::from_json_claims(by_position.as_bytes()).is_err());
        let object = claims(&format!(r#"{{"jkt":"{jkt}"}}"#));
        assert_eq!(
            AccessToken::from_json_claims(object.as_bytes())
                .unwrap()
                .binding,
            Binding::Dpop { jkt: jkt.into() }
        );
    }
}
