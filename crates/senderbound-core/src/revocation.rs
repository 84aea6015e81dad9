//! Run-time revocation: the [`RevocationCheck`] trait the `senderbound`
//! Layer consults on every request, after the token and its binding
//! verified (cached tokens included) and before the handler runs.
//!
//! Defined here so that a store crate implements it without the HTTP stack.
//! `senderbound::revocation::Revocations` is the ready-made in-memory list.

use std::future::Future;

use crate::token::AccessToken;

/// The revocation list cannot be consulted: the request is refused with
/// 503 ([`Error::RevocationUnavailable`](crate::Error::RevocationUnavailable)),
/// never let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationUnavailable;

/// Decides whether an otherwise valid token is revoked.
///
/// Any `Fn(&AccessToken, Option<&str>) -> bool` closure is a check; for one
/// that needs to wait, implement the trait. It runs on every request: keep
/// the common answer ("not revoked") cheap.
///
/// ```
/// use senderbound_core::revocation::RevocationCheck;
/// use senderbound_core::token::AccessToken;
///
/// fn check(_: &impl RevocationCheck) {}
/// // Refuse every token of one subject.
/// check(&|token: &AccessToken, _proof_jkt: Option<&str>| {
///     token.subject.as_deref() == Some("user-42")
/// });
/// ```
pub trait RevocationCheck: Send + Sync + 'static {
    /// `Ok(true)` to refuse this request's token (`invalid_token`,
    /// "revoked"); `Err` when the answer cannot be known (503). `proof_jkt`
    /// is the thumbprint of the key that signed the DPoP proof.
    fn is_revoked(
        &self,
        token: &AccessToken,
        proof_jkt: Option<&str>,
    ) -> impl Future<Output = Result<bool, RevocationUnavailable>> + Send;
}

impl<F> RevocationCheck for F
where
    F: Fn(&AccessToken, Option<&str>) -> bool + Send + Sync + 'static,
{
    fn is_revoked(
        &self,
        token: &AccessToken,
        proof_jkt: Option<&str>,
    ) -> impl Future<Output = Result<bool, RevocationUnavailable>> + Send {
        std::future::ready(Ok(self(token, proof_jkt)))
    }
}
