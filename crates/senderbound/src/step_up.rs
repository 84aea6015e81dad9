//! Step-up authentication (RFC 9470): a route, or an MCP tool, that needs a
//! stronger or more recent authentication of the user than the token
//! records.
//!
//! A [`StepUp`] names what is needed: an authentication context class
//! (`acr`, one of [`acr_values`](StepUp::acr_values)) and/or an
//! authentication no older than [`max_age`](StepUp::max_age) (`auth_time`).
//! Both come from the token, a JWT's claims or an introspection answer's
//! members. A token that falls short is refused with `401` and
//! `error="insufficient_user_authentication"` on the challenge of the
//! scheme used, with `acr_values="…"` and/or `max_age="…"` (RFC 9470 §3),
//! so the client (an agent) goes back to the authorization server for a
//! token that records the stronger authentication: a human's approval, a
//! second factor.
//!
//! A `StepUp` is a [`Policy`]: put it on a route with
//! [`AuthorizeLayer`](crate::AuthorizeLayer). In a policy of your own (per
//! MCP tool, say), refuse with
//! [`Denied::needs_authentication`](crate::authorize::Denied::needs_authentication).
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::post};
//! use senderbound::AuthorizeLayer;
//! use senderbound::authorize::{Denied, PolicyRequest};
//! use senderbound::step_up::StepUp;
//!
//! // A payment needs the "mfa" context, at most five minutes old.
//! let payments = StepUp::new()
//!     .acr_values(["urn:example:mfa"])
//!     .max_age(Duration::from_secs(300));
//! let app: Router = Router::new()
//!     .route("/payments", post(|| async { "paid" }))
//!     .route_layer(AuthorizeLayer::new(payments.clone()));
//!
//! // The same for one MCP tool, in a policy of your own.
//! let tools = AuthorizeLayer::new(move |req: &PolicyRequest| {
//!     match req.tool() {
//!         Some("send_payment") if !payments.is_met_by(req) => {
//!             Err(Denied::new("send_payment needs a recent MFA")
//!                 .needs_authentication(payments.clone()))
//!         }
//!         _ => Ok(()),
//!     }
//! })
//! .inspect_mcp_calls();
//! # let _ = tools;
//! ```

use std::future::Future;
use std::time::Duration;

use crate::authorize::{Denied, Policy, PolicyRequest};

/// A user-authentication requirement (RFC 9470); see the [module](self)
/// docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct StepUp {
    acr_values: Vec<String>,
    max_age: Option<Duration>,
}

impl StepUp {
    /// No requirement yet; add [`acr_values`](Self::acr_values) and/or
    /// [`max_age`](Self::max_age).
    pub fn new() -> Self {
        Self::default()
    }

    /// The token's `acr` must be one of these (in order of preference, as
    /// the challenge lists them). Each must be a string without spaces,
    /// quotes or backslashes to be named in the challenge; a requirement
    /// naming one that is not is still enforced, and the challenge leaves
    /// `acr_values` out.
    pub fn acr_values<I: IntoIterator<Item = S>, S: Into<String>>(mut self, values: I) -> Self {
        self.acr_values = values.into_iter().map(Into::into).collect();
        self
    }

    /// The user must have authenticated at most this long ago (`auth_time`;
    /// a token without one falls short). Whole seconds.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The acceptable `acr` values.
    pub fn acr(&self) -> &[String] {
        &self.acr_values
    }

    /// The longest ago the user may have authenticated.
    pub fn age(&self) -> Option<Duration> {
        self.max_age
    }

    /// `true` if the request's token meets the requirement, now: its
    /// `acr` is one of the values (exactly, case included), and its
    /// `auth_time` is at most `max_age` ago and not later than now (plus
    /// the token leeway: an authentication in the future is a forgery or a
    /// broken clock, never a recent one). A requirement with neither is
    /// never met: a configuration mistake refuses, it does not admit.
    pub fn is_met_by(&self, request: &PolicyRequest) -> bool {
        if self.acr_values.is_empty() && self.max_age.is_none() {
            return false;
        }
        let sender = request.sender();
        let now = request.now();
        let acr_met = self.acr_values.is_empty()
            || sender
                .acr()
                .is_some_and(|acr| self.acr_values.iter().any(|v| v == acr));
        let age_met = self.max_age.is_none_or(|max| {
            sender.auth_time().is_some_and(|at| {
                at <= now.saturating_add(request.leeway())
                    && now.saturating_sub(at) <= max.as_secs()
            })
        });
        acr_met && age_met
    }
}

impl Policy for StepUp {
    fn check(&self, request: &PolicyRequest) -> impl Future<Output = Result<(), Denied>> + Send {
        let answer = if self.is_met_by(request) {
            Ok(())
        } else {
            Err(
                Denied::new("user authentication too weak or too old (step-up)")
                    .needs_authentication(self.clone()),
            )
        };
        std::future::ready(answer)
    }
}
