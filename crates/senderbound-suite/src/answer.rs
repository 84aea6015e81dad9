//! [`Answer`]: an HTTP response from a server under test, reduced to what
//! end-to-end tests look at.

use serde_json::Value;

/// Status, every `WWW-Authenticate` value (joined by ` | `), JSON body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// All `WWW-Authenticate` field values, joined by ` | `.
    pub www_authenticate: String,
    /// The body as JSON (`Null` if it is not JSON).
    pub body: Value,
    /// The `DPoP-Nonce` header, if any.
    pub dpop_nonce: Option<String>,
}

impl Answer {
    /// Reads `response` to the end.
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let www_authenticate = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned())
            .collect::<Vec<_>>()
            .join(" | ");
        let dpop_nonce = response
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.unwrap_or_default();
        Answer {
            status,
            www_authenticate,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            dpop_nonce,
        }
    }

    /// Sends `request` and reads the answer.
    pub async fn of(request: reqwest::RequestBuilder) -> Answer {
        Answer::read(request.send().await.expect("request sent")).await
    }

    /// Asserts the exact refusal: status, `error=` code (`None`: no code,
    /// as for a scheme that is not accepted or a 503), and which check (by
    /// its `error_description`).
    #[track_caller]
    pub fn refused(&self, status: u16, code: Option<&str>, which: senderbound::Error) {
        assert_eq!(self.status, status, "{self:?}");
        match code {
            Some(code) => {
                assert!(
                    self.www_authenticate.contains(&format!("error=\"{code}\"")),
                    "{self:?}"
                );
                assert_eq!(self.body["error"], code, "{self:?}");
            }
            None => assert!(!self.www_authenticate.contains("error="), "{self:?}"),
        }
        assert_eq!(
            self.body["error_description"],
            which.description(),
            "{self:?}"
        );
    }
}
