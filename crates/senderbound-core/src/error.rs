//! One error enum for every way a request can fail, each variant mapped to
//! exactly one HTTP status, one RFC 6750 / RFC 9449 error code, one short
//! public description and one audit severity.
//!
//! Rendering (`WWW-Authenticate`, bodies) lives in the `senderbound` crate;
//! this module only says *what* each failure means, so the mapping is in one
//! place and can be tested without a server.

use std::fmt;

/// The `error=` code of a `WWW-Authenticate` challenge (RFC 6750 §3.1,
/// RFC 9449 §7.1 and §12.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`: the request is malformed (400).
    InvalidRequest,
    /// `invalid_token`: the access token is bad, expired, revoked or wrongly bound (401).
    InvalidToken,
    /// `invalid_dpop_proof`: the DPoP proof is missing or bad (401).
    InvalidDpopProof,
    /// `insufficient_scope`: the token lacks a required scope (403).
    InsufficientScope,
    /// `use_dpop_nonce`: the server requires a fresh nonce in the proof (401).
    UseDpopNonce,
    /// `insufficient_user_authentication`: the user's authentication behind
    /// the token is not strong or recent enough (401, RFC 9470 §3).
    InsufficientUserAuthentication,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::InsufficientUserAuthentication => "insufficient_user_authentication",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an incident reviewer should read a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Expected in normal operation: no credentials, expired token, stale proof,
    /// missing scope.
    Routine,
    /// Points at an attack or a stolen credential: replay, forged or tampered
    /// signature, a valid token with another key's proof, a downgrade.
    Suspicious,
    /// The server could not decide (a dependency is down or full); the request
    /// was refused to stay safe.
    Infrastructure,
    /// Suspicious refusals for one key or one client crossed the operator's
    /// threshold within their window: no longer noise. Never a single
    /// failure's severity; the Layer's incident signals raise it.
    Incident,
}

impl Severity {
    /// Lower-case name used in audit events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Routine => "routine",
            Severity::Suspicious => "suspicious",
            Severity::Infrastructure => "infrastructure",
            Severity::Incident => "incident",
        }
    }
}

/// Declares [`Error`] and [`Error::ALL`] from one list, so no variant can be
/// missing from `ALL` (which the tests go through).
macro_rules! declare_errors {
    ($(#[$meta:meta])* pub enum Error { $($(#[$vmeta:meta])* $variant:ident,)* }) => {
        $(#[$meta])*
        pub enum Error { $($(#[$vmeta])* $variant,)* }

        impl Error {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Error] = &[$(Error::$variant),*];
        }
    };
}

declare_errors! {
/// Every way a request can be refused.
///
/// Each variant maps to exactly one [`status`](Error::status),
/// [`code`](Error::code), [`description`](Error::description) and
/// [`severity`](Error::severity). Descriptions are short, fixed strings: they
/// never contain request data, tokens or key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    // ---- no usable credentials (401, no error code) ----
    /// No `Authorization` header and no DPoP proof.
    MissingCredentials,
    /// An `Authorization` scheme other than the ones this resource accepts.
    UnsupportedScheme,
    /// A DPoP proof came without any access token: a proof alone
    /// authenticates nothing (the token is the credential, RFC 9449 §7.1),
    /// so this is a request without credentials (RFC 6750 §3.1).
    ProofWithoutToken,

    // ---- malformed request (400 invalid_request) ----
    /// More than one `Authorization` header field.
    MultipleAuthorizationHeaders,
    /// The `Authorization` header is not `<scheme> <token68>`.
    MalformedAuthorization,
    /// An access token was sent in the query string (RFC 6750 §2.3); only the
    /// `Authorization` header is accepted.
    TokenInQuery,
    /// The request has no host: an HTTP/1.1 request without `Host` (RFC
    /// 9112 §3.2), or no host to build the `htu` from.
    MissingHost,
    /// More than one `Host` header field (RFC 9112 §3.2).
    MultipleHostHeaders,
    /// The `Host` header (or the request target's authority) is not a valid
    /// `host[:port]` (RFC 9110 §7.2, RFC 3986 §3.2).
    InvalidHost,
    /// The request target's authority (absolute form, or HTTP/2
    /// `:authority`) and the `Host` header name different hosts (RFC 9112
    /// §3.2, RFC 9113 §8.3.1).
    HostMismatch,
    /// The request target or `Host` carries user information, which HTTP
    /// does not allow (RFC 9110 §4.2.4).
    UserinfoInTarget,
    /// The request target has a fragment, which a request never carries
    /// (RFC 9112 §3.2).
    FragmentInTarget,
    /// The request's host is not one this resource is configured to serve.
    HostNotAllowed,
    /// The request path has dot segments or percent-encoded unreserved
    /// characters: the URI the proof is checked against would not be the
    /// one the router serves.
    PathNotNormalized,
    /// A request body that must be read to authorize the request (an MCP
    /// JSON-RPC message) is larger than the configured limit.
    RequestBodyTooLarge,
    /// A request body that must be read to authorize the request is not a
    /// well-formed JSON-RPC message (or batch) with a string `method`, and a
    /// string `params.name` (and `arguments`, if any, an object with no
    /// member named twice) for `tools/call`: a malformed request (RFC 6750
    /// §3.1 `invalid_request`).
    McpRequestMalformed,

    // ---- bad DPoP proof (401 invalid_dpop_proof) ----
    /// More than one `DPoP` header field: the first check of RFC 9449 §4.3
    /// fails, so the proof is invalid (§7.1).
    MultipleDpopHeaders,
    /// `Authorization: DPoP` without a `DPoP` header.
    ProofMissing,
    /// The `DPoP` header is larger than the configured limit.
    ProofTooLarge,
    /// The `DPoP` header is not one well-formed compact JWS.
    ProofMalformed,
    /// The JOSE header's `typ` is not `dpop+jwt`.
    ProofType,
    /// `alg` is `none`, a MAC, unknown, or not on the allow-list.
    ProofAlgorithm,
    /// The header has no usable public `jwk`.
    ProofKeyInvalid,
    /// The header's `jwk` contains private or symmetric key material.
    ProofKeyPrivate,
    /// The `jwk` key type or curve does not fit `alg`.
    ProofKeyAlgorithmMismatch,
    /// The header names a critical extension (`crit`) this server does not understand.
    ProofCriticalHeader,
    /// A required claim (`jti`, `htm`, `htu`, `iat`) is missing or of the wrong type.
    ProofMissingClaim,
    /// The proof's signature does not verify with its `jwk`.
    ProofSignature,
    /// `htm` differs from the request method.
    ProofMethodMismatch,
    /// `htu` differs from the request URI.
    ProofUriMismatch,
    /// `iat` is older than the acceptance window.
    ProofExpired,
    /// `iat` is further in the future than the allowed clock skew.
    ProofIssuedInFuture,
    /// The proof carries an `exp` that has passed (RFC 7519 §4.1.4).
    ProofExpPassed,
    /// The proof carries an `nbf` still in the future (RFC 7519 §4.1.5).
    ProofNotYetValid,
    /// `ath` is missing although an access token was presented.
    ProofAthMissing,
    /// `ath` is not the hash of the presented access token.
    ProofAthMismatch,
    /// This proof (`jkt`, `jti`) was already used inside its window.
    ProofReplayed,

    // ---- server nonce needed (401 use_dpop_nonce, RFC 9449 §9) ----
    /// The resource requires a server nonce and the proof has none.
    NonceMissing,
    /// The proof's nonce is one of ours but too old (or from the future).
    NonceExpired,
    /// The proof's nonce was not made by this resource (forged or garbled).
    NonceInvalid,

    // ---- bad access token (401 invalid_token) ----
    /// The `Authorization` header is larger than the configured limit.
    TokenTooLarge,
    /// The token is not a well-formed JWT.
    TokenMalformed,
    /// The token's `typ` is not `at+jwt` (RFC 9068 §2.1). Servers whose
    /// authorization server does not set it can relax the check with
    /// `TokenPolicy::typ(TypPolicy::AllowJwt)` in `senderbound`.
    TokenType,
    /// The token's `alg` is not an accepted asymmetric algorithm.
    TokenAlgorithm,
    /// No trusted key matches the token's `kid` / `alg`.
    TokenUnknownKey,
    /// The token's signature does not verify.
    TokenSignature,
    /// A required claim is missing or of the wrong type.
    TokenMissingClaim,
    /// The token was issued by an issuer this resource does not trust.
    TokenIssuer,
    /// The token's `aud` does not name this resource (RFC 8707).
    TokenAudience,
    /// The token has expired.
    TokenExpired,
    /// The token is not valid yet (`nbf`).
    TokenNotYetValid,
    /// The token's `cnf` is malformed or names an unsupported binding.
    TokenConfirmationInvalid,
    /// The token is bound (`cnf.jkt`) to a different key than the proof's.
    TokenBindingMismatch,
    /// A sender-constrained token was presented with the `Bearer` scheme (RFC 9449 §7.2).
    TokenDowngrade,
    /// An unbound token was presented with the `DPoP` scheme.
    TokenNotBound,
    /// The authorization server says the token is not active (RFC 7662 §2.2).
    TokenInactive,
    /// The token was revoked at run time (its `jti`, subject, client or key).
    TokenRevoked,
    /// The token lives longer (`exp - iat`) than this resource accepts.
    TokenLifetime,
    /// An unbound bearer token was presented, and this resource does not accept them.
    BearerNotAccepted,
    /// The token is bound to a client certificate (`cnf["x5t#S256"]`) and the
    /// request came with none (RFC 8705 §3).
    CertificateMissing,
    /// The token is bound to a different client certificate than the one the
    /// request came with (RFC 8705 §3).
    TokenCertificateMismatch,
    /// A trusted proxy forwarded a client certificate (RFC 9440) that cannot
    /// be decoded.
    CertificateMalformed,
    /// The token is certificate-bound, and this resource accepts only
    /// DPoP-bound tokens.
    CertificateBoundNotAccepted,
    /// The key (or certificate) the token is bound to was used, within the
    /// detection window, with a token of another client or subject: keys
    /// shared across clients are refused (key-sharing detection in reject mode).
    KeyShared,

    /// The key (or certificate) was used in too many suspicious requests
    /// within the incident window, and is refused for the configured
    /// cool-down (429 with `Retry-After`).
    KeyCoolingDown,

    /// The route needs a stronger or more recent user authentication than
    /// the token records (`acr`, `auth_time`): step-up (RFC 9470).
    InsufficientUserAuthentication,

    // ---- authorization (403 insufficient_scope) ----
    /// The token lacks a scope the route requires.
    InsufficientScope,
    /// The resource's authorization policy refused the request, and no
    /// other scope would help (403 without an error code or challenge).
    PolicyDenied,

    // ---- the server could not decide (503, fail closed) ----
    /// The replay store is at capacity; refusing rather than forgetting a live `jti`.
    ReplayStoreFull,
    /// The replay store could not be reached.
    ReplayStoreUnavailable,
    /// The revocation list could not be consulted (its store unreachable
    /// for longer than the staleness it may serve).
    RevocationUnavailable,
    /// Key sharing is refused and its fleet store cannot be reached.
    KeySharingUnavailable,
    /// The keys or the token service needed to verify the token are unavailable.
    TokenVerifierUnavailable,
}
}

impl Error {
    /// HTTP status code for this failure.
    pub const fn status(self) -> u16 {
        match self.code() {
            Some(ErrorCode::InvalidRequest) => 400,
            Some(ErrorCode::InsufficientScope) => 403,
            Some(_) => 401,
            None if self.is_unavailable() => 503,
            None if matches!(self, Error::PolicyDenied) => 403,
            // RFC 6585 §4: too many requests (suspicious ones) in a given
            // amount of time; Retry-After says when the cool-down ends.
            None if matches!(self, Error::KeyCoolingDown) => 429,
            None => 401,
        }
    }

    /// `true` for failures of the server's own dependencies (status 503).
    pub const fn is_unavailable(self) -> bool {
        matches!(
            self,
            Error::ReplayStoreFull
                | Error::ReplayStoreUnavailable
                | Error::RevocationUnavailable
                | Error::KeySharingUnavailable
                | Error::TokenVerifierUnavailable
        )
    }

    /// The `error=` code, or `None` when the RFCs say to send none
    /// (no credentials at all, RFC 6750 §3.1) or when the failure is the server's (503).
    pub const fn code(self) -> Option<ErrorCode> {
        use Error::*;
        match self {
            // RFC 6750 §3.1: an unsupported authentication method gets no error code.
            MissingCredentials | UnsupportedScheme | ProofWithoutToken | BearerNotAccepted => None,
            ReplayStoreFull
            | ReplayStoreUnavailable
            | RevocationUnavailable
            | KeySharingUnavailable
            | TokenVerifierUnavailable => None,
            MultipleAuthorizationHeaders
            | MalformedAuthorization
            | TokenInQuery
            | MissingHost
            | MultipleHostHeaders
            | InvalidHost
            | HostMismatch
            | UserinfoInTarget
            | FragmentInTarget
            | HostNotAllowed
            | PathNotNormalized
            | RequestBodyTooLarge
            | McpRequestMalformed => Some(ErrorCode::InvalidRequest),
            MultipleDpopHeaders
            | ProofMissing
            | ProofTooLarge
            | ProofMalformed
            | ProofType
            | ProofAlgorithm
            | ProofKeyInvalid
            | ProofKeyPrivate
            | ProofKeyAlgorithmMismatch
            | ProofCriticalHeader
            | ProofMissingClaim
            | ProofSignature
            | ProofMethodMismatch
            | ProofUriMismatch
            | ProofExpired
            | ProofIssuedInFuture
            | ProofExpPassed
            | ProofNotYetValid
            | ProofAthMissing
            | ProofAthMismatch
            | ProofReplayed => Some(ErrorCode::InvalidDpopProof),
            TokenTooLarge
            | TokenMalformed
            | TokenType
            | TokenAlgorithm
            | TokenUnknownKey
            | TokenSignature
            | TokenMissingClaim
            | TokenIssuer
            | TokenAudience
            | TokenExpired
            | TokenNotYetValid
            | TokenConfirmationInvalid
            | TokenBindingMismatch
            | TokenDowngrade
            | TokenNotBound
            | TokenInactive
            | TokenRevoked
            | TokenLifetime
            | CertificateMissing
            | TokenCertificateMismatch
            | CertificateMalformed
            | CertificateBoundNotAccepted
            | KeyShared => Some(ErrorCode::InvalidToken),
            InsufficientScope => Some(ErrorCode::InsufficientScope),
            InsufficientUserAuthentication => Some(ErrorCode::InsufficientUserAuthentication),
            // A refusal no token would change: no error code, no challenge.
            PolicyDenied => None,
            // A pause, not a credential problem: no challenge (RFC 6585 §4).
            KeyCoolingDown => None,
            NonceMissing | NonceExpired | NonceInvalid => Some(ErrorCode::UseDpopNonce),
        }
    }

    /// A short, fixed, public description for `error_description`.
    pub const fn description(self) -> &'static str {
        use Error::*;
        match self {
            MissingCredentials => "no access token",
            UnsupportedScheme => "unsupported authorization scheme",
            MultipleAuthorizationHeaders => "more than one Authorization header",
            MultipleDpopHeaders => "more than one DPoP header",
            MalformedAuthorization => "malformed Authorization header",
            TokenInQuery => "access tokens are accepted only in the Authorization header",
            ProofWithoutToken => "DPoP proof without an access token",
            MissingHost => "request has no host",
            MultipleHostHeaders => "more than one Host header",
            InvalidHost => "request host is not a valid authority",
            HostMismatch => "request target and Host name different hosts",
            UserinfoInTarget => "request target must not carry user information",
            FragmentInTarget => "request target must not carry a fragment",
            HostNotAllowed => "request host is not served by this resource",
            PathNotNormalized => "request path is not in normal form",
            RequestBodyTooLarge => "request body too large to authorize",
            McpRequestMalformed => "request body is not a well-formed JSON-RPC message",
            ProofMissing => "DPoP proof missing",
            ProofTooLarge => "DPoP proof too large",
            ProofMalformed => "DPoP proof is not a compact JWS",
            ProofType => "DPoP proof typ must be dpop+jwt",
            ProofAlgorithm => "DPoP proof alg not accepted",
            ProofKeyInvalid => "DPoP proof jwk invalid",
            ProofKeyPrivate => "DPoP proof jwk contains private key material",
            ProofKeyAlgorithmMismatch => "DPoP proof jwk does not match alg",
            ProofCriticalHeader => "DPoP proof has unsupported critical header",
            ProofMissingClaim => "DPoP proof has a missing or invalid claim",
            ProofSignature => "DPoP proof signature invalid",
            ProofMethodMismatch => "DPoP proof htm does not match the request method",
            ProofUriMismatch => "DPoP proof htu does not match the request URI",
            ProofExpired => "DPoP proof is too old",
            ProofIssuedInFuture => "DPoP proof iat is in the future",
            ProofExpPassed => "DPoP proof exp has passed",
            ProofNotYetValid => "DPoP proof nbf is in the future",
            ProofAthMissing => "DPoP proof lacks ath",
            ProofAthMismatch => "DPoP proof ath does not match the access token",
            ProofReplayed => "DPoP proof already used",
            NonceMissing => "DPoP proof needs a server nonce",
            NonceExpired => "DPoP proof nonce expired",
            NonceInvalid => "DPoP proof nonce not issued by this server",
            TokenTooLarge => "access token too large",
            TokenMalformed => "access token malformed",
            TokenType => "access token typ must be at+jwt (RFC 9068)",
            TokenAlgorithm => "access token alg not accepted",
            TokenUnknownKey => "access token signed by an unknown key",
            TokenSignature => "access token signature invalid",
            TokenMissingClaim => "access token has a missing or invalid claim",
            TokenIssuer => "access token issuer not trusted",
            TokenAudience => "access token audience does not include this resource",
            TokenExpired => "access token expired",
            TokenNotYetValid => "access token not yet valid",
            TokenConfirmationInvalid => "access token cnf invalid",
            TokenBindingMismatch => "access token is bound to another key",
            TokenDowngrade => "sender-constrained token presented as a bearer token",
            TokenNotBound => "access token is not DPoP-bound",
            TokenInactive => "access token is not active",
            TokenRevoked => "access token has been revoked",
            TokenLifetime => "access token lifetime exceeds the accepted maximum",
            BearerNotAccepted => "bearer tokens are not accepted",
            CertificateMissing => "access token requires the client certificate it is bound to",
            TokenCertificateMismatch => "access token is bound to another client certificate",
            CertificateMalformed => "forwarded client certificate malformed",
            CertificateBoundNotAccepted => "certificate-bound tokens are not accepted",
            KeyShared => "the key this token is bound to is used by another client",
            InsufficientScope => "insufficient scope",
            InsufficientUserAuthentication => {
                "a stronger or more recent user authentication is required"
            }
            PolicyDenied => "request denied by the resource's policy",
            KeyCoolingDown => "key temporarily refused after suspicious use",
            ReplayStoreFull => "temporarily unable to accept requests",
            ReplayStoreUnavailable => "temporarily unable to accept requests",
            RevocationUnavailable => "temporarily unable to check revocations",
            KeySharingUnavailable => "temporarily unable to check key sharing",
            TokenVerifierUnavailable => "temporarily unable to verify tokens",
        }
    }

    /// How an incident reviewer should read this failure.
    pub const fn severity(self) -> Severity {
        use Error::*;
        match self {
            ProofSignature
            | ProofReplayed
            | ProofKeyPrivate
            | ProofAthMismatch
            | TokenSignature
            | TokenBindingMismatch
            | TokenDowngrade
            | TokenAlgorithm
            | TokenRevoked
            | CertificateMissing
            | TokenCertificateMismatch
            | CertificateMalformed
            | NonceInvalid
            | KeyShared
            | KeyCoolingDown => Severity::Suspicious,
            ReplayStoreFull
            | ReplayStoreUnavailable
            | RevocationUnavailable
            | KeySharingUnavailable
            | TokenVerifierUnavailable => Severity::Infrastructure,
            _ => Severity::Routine,
        }
    }

    /// `true` when the failure concerns the DPoP proof rather than the token.
    pub const fn is_proof_error(self) -> bool {
        matches!(self.code(), Some(ErrorCode::InvalidDpopProof))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_codes() {
        assert_eq!(Error::MissingCredentials.status(), 401);
        assert_eq!(Error::MissingCredentials.code(), None);
        // RFC 9449 §4.3 check 1 (one DPoP header) fails: an invalid proof
        // (§7.1), not a malformed request.
        assert_eq!(Error::MultipleDpopHeaders.status(), 401);
        assert_eq!(
            Error::MultipleDpopHeaders.code(),
            Some(ErrorCode::InvalidDpopProof)
        );
        assert_eq!(Error::MultipleAuthorizationHeaders.status(), 400);
        assert_eq!(Error::FragmentInTarget.status(), 400);
        assert_eq!(Error::ProofReplayed.status(), 401);
        assert_eq!(Error::TokenDowngrade.status(), 401);
        assert_eq!(Error::InsufficientScope.status(), 403);
        assert_eq!(Error::ReplayStoreFull.status(), 503);
        assert_eq!(Error::ReplayStoreFull.code(), None);
    }

    #[test]
    fn every_error_maps_to_one_of_the_rfc_statuses() {
        assert_eq!(Error::ALL.first(), Some(&Error::MissingCredentials));
        assert_eq!(Error::ALL.last(), Some(&Error::TokenVerifierUnavailable));
        for e in Error::ALL {
            assert!(matches!(e.status(), 400 | 401 | 403 | 429 | 503), "{e:?}");
            // 429 only for a key's cool-down, with no error code (RFC 6585 §4).
            assert_eq!(e.status() == 429, *e == Error::KeyCoolingDown, "{e:?}");
            // 503 exactly when the server could not decide; then no error code.
            assert_eq!(e.status() == 503, e.is_unavailable(), "{e:?}");
            if e.is_unavailable() {
                assert_eq!(e.code(), None, "{e:?}");
            }
        }
    }

    #[test]
    fn descriptions_are_safe_to_quote() {
        // Every description goes inside a quoted-string of WWW-Authenticate:
        // no quotes, backslashes or control characters, and short.
        for e in Error::ALL {
            let d = e.description();
            assert!(!d.is_empty() && d.len() < 80, "{e:?}");
            assert!(
                d.chars()
                    .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\'),
                "{e:?}"
            );
        }
    }
}
