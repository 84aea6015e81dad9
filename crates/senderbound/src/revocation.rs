//! Run-time revocation: deny a token id, a subject, a client, a DPoP key or
//! a client certificate
//! from the next request on, including tokens already verified and cached.
//!
//! The Layer asks its [`RevocationCheck`] on every request, after the token
//! and its binding verified and before the handler runs. [`Revocations`] is
//! the ready-made, shared in-memory list; implement the trait to consult
//! your own store (keep it fast: it runs on every request).
//!
//! ```
//! use senderbound::revocation::Revocations;
//!
//! let revocations = Revocations::new();
//! // Hand a clone to the builder: `.revocations(revocations.clone())`.
//! revocations.revoke_key("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
//! revocations.revoke_subject("user-42");
//! assert!(revocations.is_subject_revoked("user-42"));
//! revocations.restore_subject("user-42");
//! assert!(!revocations.is_subject_revoked("user-42"));
//! ```

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

pub use senderbound_core::revocation::{RevocationCheck, RevocationUnavailable};
use senderbound_core::token::{AccessToken, Binding};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`RevocationCheck`] as a trait object (the Layer holds any check).
pub(crate) trait DynRevocationCheck: Send + Sync + 'static {
    fn is_revoked_boxed<'a>(
        &'a self,
        token: &'a AccessToken,
        proof_jkt: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, RevocationUnavailable>>;
}

impl<R: RevocationCheck> DynRevocationCheck for R {
    fn is_revoked_boxed<'a>(
        &'a self,
        token: &'a AccessToken,
        proof_jkt: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, RevocationUnavailable>> {
        Box::pin(self.is_revoked(token, proof_jkt))
    }
}

#[derive(Default)]
struct Lists {
    token_ids: HashSet<String>,
    subjects: HashSet<String>,
    clients: HashSet<String>,
    keys: HashSet<String>,
    certificates: HashSet<String>,
}

/// A shared, in-memory revocation list. Clones share the same list, so
/// keep one to revoke with and give another to the builder.
#[derive(Clone, Default)]
pub struct Revocations {
    lists: Arc<RwLock<Lists>>,
}

impl fmt::Debug for Revocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Revocations");
        if let Ok(l) = self.lists.read() {
            d.field("token_ids", &l.token_ids.len())
                .field("subjects", &l.subjects.len())
                .field("clients", &l.clients.len())
                .field("keys", &l.keys.len())
                .field("certificates", &l.certificates.len());
        }
        d.finish()
    }
}

macro_rules! list_methods {
    ($field:ident, $revoke:ident, $restore:ident, $is:ident, $what:literal) => {
        #[doc = concat!("Refuses tokens with this ", $what, " from the next request on.")]
        pub fn $revoke(&self, value: impl Into<String>) {
            if let Ok(mut l) = self.lists.write() {
                l.$field.insert(value.into());
            }
        }

        #[doc = concat!("Accepts tokens with this ", $what, " again.")]
        pub fn $restore(&self, value: &str) {
            if let Ok(mut l) = self.lists.write() {
                l.$field.remove(value);
            }
        }

        #[doc = concat!("`true` if this ", $what, " is revoked.")]
        pub fn $is(&self, value: &str) -> bool {
            // A poisoned lock fails closed: everything counts as revoked.
            self.lists.read().map_or(true, |l| l.$field.contains(value))
        }
    };
}

impl Revocations {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    list_methods!(
        token_ids,
        revoke_token_id,
        restore_token_id,
        is_token_id_revoked,
        "token id (`jti`)"
    );
    list_methods!(
        subjects,
        revoke_subject,
        restore_subject,
        is_subject_revoked,
        "subject (`sub`)"
    );
    list_methods!(
        clients,
        revoke_client,
        restore_client,
        is_client_revoked,
        "client (`client_id`)"
    );
    list_methods!(
        keys,
        revoke_key,
        restore_key,
        is_key_revoked,
        "DPoP key thumbprint (`jkt`, as bound in `cnf` or signing the proof)"
    );
    list_methods!(
        certificates,
        revoke_certificate,
        restore_certificate,
        is_certificate_revoked,
        "client certificate thumbprint (`x5t#S256`, as bound in `cnf`)"
    );
}

impl RevocationCheck for Revocations {
    fn is_revoked(
        &self,
        token: &AccessToken,
        proof_jkt: Option<&str>,
    ) -> impl Future<Output = Result<bool, RevocationUnavailable>> + Send {
        std::future::ready(Ok(self.revokes(token, proof_jkt)))
    }
}

impl Revocations {
    /// `true` if any list names this token, its binding or `proof_jkt` (the
    /// key that signed the request's DPoP proof): what the Layer asks.
    pub fn revokes(&self, token: &AccessToken, proof_jkt: Option<&str>) -> bool {
        let Ok(l) = self.lists.read() else {
            return true;
        };
        let hit = |set: &HashSet<String>, v: Option<&str>| v.is_some_and(|v| set.contains(v));
        let (bound_jkt, bound_cert) = match &token.binding {
            Binding::Dpop { jkt } => (Some(jkt.as_str()), None),
            Binding::Mtls { x5t_s256 } => (None, Some(x5t_s256.as_str())),
            Binding::Unbound => (None, None),
        };
        hit(&l.token_ids, token.token_id.as_deref())
            || hit(&l.subjects, token.subject.as_deref())
            || hit(&l.clients, token.client_id.as_deref())
            || hit(&l.keys, bound_jkt)
            || hit(&l.keys, proof_jkt)
            || hit(&l.certificates, bound_cert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AccessToken {
        AccessToken::from_json_claims(
            br#"{"iss":"https://as","aud":"https://rs","exp":2000,"sub":"alice","client_id":"app",
                "jti":"t-1","cnf":{"jkt":"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn each_list_revokes_and_restores() {
        let r = Revocations::new();
        let t = token();
        assert!(!r.revokes(&t, None));
        type Toggle<'a> = &'a dyn Fn(&Revocations);
        let cases: [(Toggle<'_>, Toggle<'_>); 5] = [
            (&|r| r.revoke_token_id("t-1"), &|r| {
                r.restore_token_id("t-1")
            }),
            (&|r| r.revoke_subject("alice"), &|r| {
                r.restore_subject("alice")
            }),
            (&|r| r.revoke_client("app"), &|r| r.restore_client("app")),
            (
                &|r| r.revoke_key("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"),
                &|r| r.restore_key("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"),
            ),
            (&|r| r.revoke_key("proof-key"), &|r| {
                r.restore_key("proof-key")
            }),
        ];
        for (revoke, restore) in cases {
            let shared = r.clone();
            revoke(&shared);
            assert!(r.revokes(&t, Some("proof-key")));
            restore(&shared);
            assert!(!r.revokes(&t, Some("proof-key")));
        }
        r.revoke_subject("bob");
        assert!(!r.revokes(&t, None));
    }

    #[test]
    fn certificates_are_revoked_by_thumbprint() {
        let x5t = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";
        let t = AccessToken::from_json_claims(
            format!(r#"{{"iss":"https://as","aud":"https://rs","exp":2000,"cnf":{{"x5t#S256":"{x5t}"}}}}"#)
                .as_bytes(),
        )
        .unwrap();
        let r = Revocations::new();
        r.revoke_key(x5t); // a key thumbprint list does not name certificates
        assert!(!r.revokes(&t, None));
        r.revoke_certificate(x5t);
        assert!(r.revokes(&t, None));
        r.restore_certificate(x5t);
        assert!(!r.revokes(&t, None));
    }
}
