//! [`DpopSession`]: a key plus the server nonces it was given, per origin,
//! and the nonce dance of RFC 9449 §8: on `401 use_dpop_nonce` remember the
//! `DPoP-Nonce` and retry once.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use url::Url;

use crate::{DpopKey, InvalidUrl, origin_of, parse_target};

/// A DPoP key, the latest nonce each server (origin) handed out, and the
/// access token bound to the key. Nonces are kept per origin: an
/// authorization server and a resource server on one origin overwrite each
/// other's, which costs a retry, never a failure.
///
/// ```
/// use senderbound_client::{DpopKey, DpopSession, asks_for_nonce};
///
/// let session = DpopSession::new(DpopKey::generate());
/// let url = "https://api.example.com/items";
/// let first = session.proof("GET", url, Some("token"))?;
/// // The server answered 401, `WWW-Authenticate: DPoP error="use_dpop_nonce"`,
/// // `DPoP-Nonce: n-1`:
/// assert!(asks_for_nonce(401, ["DPoP error=\"use_dpop_nonce\", algs=\"ES256\""]));
/// session.remember_nonce(url, "n-1");
/// assert_eq!(session.nonce_for("https://API.example.com/other"), Some("n-1".into()));
/// let retry = session.proof("GET", url, Some("token"))?; // carries "nonce": "n-1"
/// # let _ = (first, retry);
/// # Ok::<(), senderbound_client::InvalidUrl>(())
/// ```
pub struct DpopSession {
    key: DpopKey,
    nonces: Mutex<HashMap<String, String>>,
    access_token: RwLock<Option<String>>,
}

impl std::fmt::Debug for DpopSession {
    // Never the token: only the key's public thumbprint.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopSession")
            .field("jkt", &self.key.jkt())
            .field("holds_token", &self.access_token().is_some())
            .finish_non_exhaustive()
    }
}

impl DpopSession {
    /// A session for `key`, with no nonces yet.
    pub fn new(key: DpopKey) -> Self {
        DpopSession {
            key,
            nonces: Mutex::new(HashMap::new()),
            access_token: RwLock::new(None),
        }
    }

    /// Holds `token` (an access token bound to this session's key) with the
    /// key, for [`send_with_token`](Self::send_with_token) and its kin.
    pub fn hold_token(&self, token: impl Into<String>) {
        if let Ok(mut held) = self.access_token.write() {
            *held = Some(token.into());
        }
    }

    /// The access token held with the key, if any.
    pub fn access_token(&self) -> Option<String> {
        self.access_token.read().ok()?.clone()
    }

    /// The session's key.
    pub fn key(&self) -> &DpopKey {
        &self.key
    }

    /// A signed proof for `method` `url` (with `ath` for `access_token`),
    /// carrying the nonce `url`'s origin gave last, if any. `url` is read
    /// as reqwest reads it (see [`DpopKey::proof`]).
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<String, InvalidUrl> {
        Ok(self.proof_for_url(method, &parse_target(url)?, access_token))
    }

    /// [`proof`](Self::proof) for a URL already parsed.
    pub(crate) fn proof_for_url(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&str>,
    ) -> String {
        let mut proof = self.key.proof_for(method, url);
        if let Some(token) = access_token {
            proof = proof.access_token(token);
        }
        if let Some(nonce) = self.nonce_for_url(url) {
            proof = proof.nonce(nonce);
        }
        proof.sign()
    }

    /// Remembers `nonce` (a `DPoP-Nonce` response header) for `url`'s
    /// origin; a URL that is not an absolute http(s) URL is ignored.
    pub fn remember_nonce(&self, url: &str, nonce: &str) {
        if let Ok(url) = parse_target(url) {
            self.remember_nonce_for_url(&url, nonce);
        }
    }

    pub(crate) fn remember_nonce_for_url(&self, url: &Url, nonce: &str) {
        if let Ok(mut nonces) = self.nonces.lock() {
            nonces.insert(origin_of(url), nonce.to_owned());
        }
    }

    /// The nonce `url`'s origin gave last.
    pub fn nonce_for(&self, url: &str) -> Option<String> {
        self.nonce_for_url(&parse_target(url).ok()?)
    }

    pub(crate) fn nonce_for_url(&self, url: &Url) -> Option<String> {
        self.nonces.lock().ok()?.get(&origin_of(url)).cloned()
    }
}

/// `true` if a response says the proof needs a (new) server nonce: status
/// 401 and a `DPoP` challenge with `error="use_dpop_nonce"` (quoted or not;
/// several challenges may share one header line, RFC 9110 §11.6.1).
pub fn asks_for_nonce<'a>(
    status: u16,
    www_authenticate: impl IntoIterator<Item = &'a str>,
) -> bool {
    status == 401
        && www_authenticate.into_iter().any(|line| {
            challenges(line).any(|(scheme, params)| {
                scheme.eq_ignore_ascii_case("dpop")
                    && params.iter().any(|p| {
                        p.split_once('=').is_some_and(|(name, value)| {
                            name.trim().eq_ignore_ascii_case("error")
                                && value.trim().trim_matches('"') == "use_dpop_nonce"
                        })
                    })
            })
        })
}

/// The challenges of one `WWW-Authenticate` line: (scheme, parameters).
/// Splits on commas outside quoted strings; an element whose first word has
/// no `=` starts a new challenge.
fn challenges(line: &str) -> impl Iterator<Item = (&str, Vec<&str>)> {
    let mut elements = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                elements.push(line[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    elements.push(line[start..].trim());
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for element in elements.into_iter().filter(|e| !e.is_empty()) {
        let (first, rest) = element.split_once(' ').unwrap_or((element, ""));
        if first.contains('=') {
            if let Some((_, params)) = out.last_mut() {
                params.push(element);
            }
        } else {
            let params = if rest.trim().is_empty() {
                Vec::new()
            } else {
                vec![rest.trim()]
            };
            out.push((first, params));
        }
    }
    out.into_iter()
}

#[cfg(feature = "reqwest")]
mod http {
    use super::{DpopSession, asks_for_nonce};

    /// `DPoP-Nonce`.
    const DPOP_NONCE: &str = "dpop-nonce";

    impl DpopSession {
        /// Sends `request` with `Authorization: DPoP <access_token>` and a
        /// fresh proof. Any `DPoP-Nonce` in the answer is remembered; if the
        /// server asks for a nonce (`401 use_dpop_nonce`), the request is
        /// sent once more with it (unless its body cannot be replayed).
        pub async fn send(
            &self,
            request: reqwest::RequestBuilder,
            access_token: &str,
        ) -> reqwest::Result<reqwest::Response> {
            let (client, request) = request.build_split();
            let request = request?;
            let url = request.url().clone();
            let retry = request.try_clone();
            let used = self.nonce_for_url(&url);
            let response = client
                .execute(self.authorize(request, access_token))
                .await?;
            let asked = self.observe(&response);
            // Retry once, and only with a nonce other than the one refused
            // (a nonce from another origin, after a redirect, is not one).
            match retry {
                Some(retry) if asked && self.nonce_for_url(&url) != used => {
                    let response = client.execute(self.authorize(retry, access_token)).await?;
                    self.observe(&response);
                    Ok(response)
                }
                _ => Ok(response),
            }
        }

        /// [`send`](Self::send) with the token held with the key
        /// ([`hold_token`](Self::hold_token)); without one, the request
        /// goes out with a proof but no `Authorization`, and the server
        /// will refuse it.
        pub async fn send_with_token(
            &self,
            request: reqwest::RequestBuilder,
        ) -> reqwest::Result<reqwest::Response> {
            let token = self.access_token().unwrap_or_default();
            self.send(request, &token).await
        }

        /// Sends one `HEAD url` with the held token and a proof, only to
        /// learn the server's current nonce; `true` if it gave a new one.
        pub(crate) async fn probe_nonce(&self, http: &reqwest::Client, url: &str) -> bool {
            let Ok(request) = http.head(url).build() else {
                return false;
            };
            let url = request.url().clone();
            let before = self.nonce_for_url(&url);
            let token = self.access_token().unwrap_or_default();
            if let Ok(response) = http.execute(self.authorize(request, &token)).await {
                self.observe(&response);
            }
            self.nonce_for_url(&url).is_some_and(|n| Some(n) != before)
        }

        /// The request with `Authorization` and a proof for its own URL,
        /// the one reqwest sends it to.
        fn authorize(&self, mut request: reqwest::Request, access_token: &str) -> reqwest::Request {
            let proof = self.proof_for_url(
                request.method().as_str(),
                request.url(),
                (!access_token.is_empty()).then_some(access_token),
            );
            let headers = request.headers_mut();
            if !access_token.is_empty()
                && let Ok(value) = format!("DPoP {access_token}").parse()
            {
                headers.insert(reqwest::header::AUTHORIZATION, value);
            }
            if let Ok(value) = proof.parse() {
                headers.insert("dpop", value);
            }
            request
        }

        /// Remembers the response's nonce for the origin that answered
        /// (where redirects ended); `true` if it asks for one.
        pub(crate) fn observe(&self, response: &reqwest::Response) -> bool {
            if let Some(nonce) = response
                .headers()
                .get(DPOP_NONCE)
                .and_then(|v| v.to_str().ok())
            {
                self.remember_nonce_for_url(response.url(), nonce);
            }
            let challenges = response
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok());
            asks_for_nonce(response.status().as_u16(), challenges)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_belong_to_origins_as_reqwest_reads_them() {
        let s = DpopSession::new(DpopKey::generate());
        s.remember_nonce("HTTPS://u:p@A.example:443/x?y#z", "n-1");
        assert_eq!(
            s.nonce_for("https://a.example/other").as_deref(),
            Some("n-1")
        );
        s.remember_nonce("http://a.example:80", "n-2");
        assert_eq!(s.nonce_for("http://a.example/").as_deref(), Some("n-2"));
        assert_eq!(s.nonce_for("http://a.example:443/"), None);
        // `\` is `/` to reqwest: this nonce is `evil`'s, not api.example's.
        s.remember_nonce(r"http://evil\@api.example/mcp", "n-evil");
        assert_eq!(s.nonce_for("http://evil/").as_deref(), Some("n-evil"));
        assert_eq!(s.nonce_for("http://api.example/mcp"), None);
        let proof = s
            .proof("GET", r"http://evil\@api.example/mcp", None)
            .unwrap();
        let claims = proof.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["htu"], "http://evil/@api.example/mcp");
        assert_eq!(claims["nonce"], "n-evil");
        s.remember_nonce("nonsense", "ignored");
        assert_eq!(s.nonce_for("nonsense"), None);
        assert_eq!(s.proof("GET", "nonsense", None), Err(InvalidUrl));
    }

    #[test]
    fn nonce_requests_are_recognised() {
        assert!(asks_for_nonce(401, ["DPoP error=\"use_dpop_nonce\""]));
        assert!(asks_for_nonce(
            401,
            ["Bearer", "dpop algs=\"ES256\", error=\"use_dpop_nonce\""]
        ));
        assert!(!asks_for_nonce(400, ["DPoP error=\"use_dpop_nonce\""]));
        assert!(!asks_for_nonce(401, ["DPoP error=\"invalid_dpop_proof\""]));
        assert!(!asks_for_nonce(401, ["Bearer error=\"use_dpop_nonce\""]));
        assert!(asks_for_nonce(401, ["DPoP error=use_dpop_nonce"]));
        assert!(asks_for_nonce(
            401,
            ["Bearer realm=\"a, b\", DPoP error=\"use_dpop_nonce\", algs=\"ES256\""]
        ));
        assert!(!asks_for_nonce(
            401,
            ["DPoP algs=\"ES256\", Bearer error=\"use_dpop_nonce\""]
        ));
        assert!(!asks_for_nonce(
            401,
            ["DPoP error_description=\"error=use_dpop_nonce\""]
        ));
        assert!(!asks_for_nonce(401, []));
    }

    #[test]
    fn nonces_are_kept_per_origin() {
        let s = DpopSession::new(DpopKey::generate());
        s.remember_nonce("https://a.example/x", "n-a");
        s.remember_nonce("https://b.example/x", "n-b");
        s.remember_nonce("https://a.example/y", "n-a2");
        assert_eq!(s.nonce_for("https://a.example/z").as_deref(), Some("n-a2"));
        assert_eq!(s.nonce_for("https://b.example").as_deref(), Some("n-b"));
        assert_eq!(s.nonce_for("https://c.example"), None);
        assert_eq!(
            s.nonce_for("http://a.example"),
            None,
            "scheme is part of the origin"
        );
    }
}
