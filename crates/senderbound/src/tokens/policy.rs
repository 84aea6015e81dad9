//! [`TokenPolicy`]: what an access token must look like, beyond issuer and
//! audience.

use std::time::Duration;

use senderbound_core::token::{TokenRules, TypPolicy};
use senderbound_core::{Algorithm, AlgorithmSet};

/// The rules every access token is held to besides its issuer and audience,
/// and how many verified tokens are cached. Every setting has a default;
/// set only what differs.
///
/// ```
/// use std::time::Duration;
/// use senderbound::Algorithm;
/// use senderbound::tokens::{TokenPolicy, TypPolicy};
///
/// let tokens = TokenPolicy::new()
///     .algorithms([Algorithm::ES256, Algorithm::PS256])
///     .max_lifetime(Duration::from_secs(3600))
///     .typ(TypPolicy::AllowJwt);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenPolicy {
    pub(crate) algorithms: Option<AlgorithmSet>,
    typ: TypPolicy,
    leeway: Option<Duration>,
    max_lifetime: Option<Duration>,
    max_bytes: Option<usize>,
    pub(crate) cache_capacity: u64,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            algorithms: None,
            typ: TypPolicy::default(),
            leeway: None,
            max_lifetime: None,
            max_bytes: None,
            cache_capacity: super::cache::DEFAULT_TOKEN_CACHE_CAPACITY,
        }
    }
}

impl TokenPolicy {
    /// The defaults: every algorithm, `typ` `at+jwt` required (RFC 9068
    /// §4), 10 s leeway for `exp`/`nbf`, no lifetime limit, tokens up to
    /// 16 KiB, 10,000 verified tokens cached.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept tokens signed with these algorithms only (default: all
    /// supported, [`Algorithm::ALL`]: the authorization server is trusted
    /// to choose). A [profile](crate::profile) narrows this unless it is set.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// How strictly the JWT `typ` header is checked (default:
    /// [`TypPolicy::RequireAtJwt`], `at+jwt` required as RFC 9068 §4 says).
    pub fn typ(mut self, typ: TypPolicy) -> Self {
        self.typ = typ;
        self
    }

    /// Leeway for token `exp` / `nbf` against this server's clock (default
    /// 10 s; whole seconds).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Refuse tokens issued to live longer than `lifetime` (`exp - iat`);
    /// tokens without `iat` or `nbf` are then refused too. Default: no limit.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// Refuse access tokens larger than `bytes` (default 16 KiB).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// How many verified tokens to cache, by SHA-256 of the token (default
    /// 10,000). A cached token is still checked for time, revocation and its
    /// signing key on every request.
    pub fn cache_capacity(mut self, tokens: u64) -> Self {
        self.cache_capacity = tokens;
        self
    }

    /// The core rules for these issuers and audiences.
    pub(crate) fn rules(
        &self,
        issuers: Vec<String>,
        audiences: Vec<String>,
        algorithms: AlgorithmSet,
    ) -> TokenRules {
        let mut rules = TokenRules::new(issuers, audiences)
            .algorithms(algorithms.iter())
            .typ_policy(self.typ);
        if let Some(leeway) = self.leeway {
            rules = rules.leeway(leeway);
        }
        if let Some(bytes) = self.max_bytes {
            rules = rules.max_token_bytes(bytes);
        }
        if let Some(lifetime) = self.max_lifetime {
            rules = rules.max_lifetime(lifetime);
        }
        rules
    }
}
