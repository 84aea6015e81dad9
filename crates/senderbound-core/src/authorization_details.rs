//! Rich authorization requests (RFC 9396): the `authorization_details` a
//! token carries, as a JWT claim (§9.1) or an introspection member (§9.2).
//!
//! Each detail is a JSON object with a string `type` (§2) that says how to
//! read the rest; the common members (`locations`, `actions`, `datatypes`,
//! `identifier`, `privileges`, §2.2) have accessors, any other member is
//! read with [`get`](AuthorizationDetail::get) or by deserializing the
//! whole detail into a type of your own.
//!
//! ```
//! use senderbound_core::token::AccessToken;
//!
//! let token = AccessToken::from_json_claims(br#"{
//!     "iss": "https://as", "aud": "https://api", "exp": 2000,
//!     "authorization_details": [
//!         {"type": "payment_initiation", "actions": ["initiate"],
//!          "instructedAmount": {"currency": "EUR", "amount": "123.50"}}
//!     ]
//! }"#).unwrap();
//! let detail = &token.authorization_details[0];
//! assert_eq!(detail.detail_type(), "payment_initiation");
//! assert_eq!(detail.actions().collect::<Vec<_>>(), ["initiate"]);
//! assert_eq!(detail.get("instructedAmount").unwrap()["currency"], "EUR");
//! ```

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// One authorization detail (RFC 9396 §2): an object with a string `type`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationDetail {
    members: Map<String, Value>,
}

impl AuthorizationDetail {
    /// The detail's `type` (RFC 9396 §2): which kind of access it
    /// describes, and so how its other members are read.
    pub fn detail_type(&self) -> &str {
        self.members
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `locations` (§2.2): where the resource is, as URIs.
    pub fn locations(&self) -> impl Iterator<Item = &str> {
        self.strings("locations")
    }

    /// `actions` (§2.2): the kinds of action allowed.
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.strings("actions")
    }

    /// `datatypes` (§2.2): the kinds of data asked for.
    pub fn datatypes(&self) -> impl Iterator<Item = &str> {
        self.strings("datatypes")
    }

    /// `privileges` (§2.2): the privileges asked for.
    pub fn privileges(&self) -> impl Iterator<Item = &str> {
        self.strings("privileges")
    }

    /// `identifier` (§2.2): one specific resource.
    pub fn identifier(&self) -> Option<&str> {
        self.members.get("identifier").and_then(Value::as_str)
    }

    /// `true` if the detail names a member `name` (even as `null`): a
    /// member a reader does not know how to honour should refuse, not be
    /// skipped.
    pub fn has(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// Any member, as received.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members.get(name)
    }

    /// Every member, `type` included.
    pub fn members(&self) -> &Map<String, Value> {
        &self.members
    }

    /// The whole detail read as `T` (a type of your own for this detail
    /// `type`).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(Value::Object(self.members.clone()))
    }

    /// The strings of the array member `name`; nothing if it is absent or
    /// not an array. (A member of the wrong type was refused when read.)
    fn strings(&self, name: &str) -> impl Iterator<Item = &str> {
        self.members
            .get(name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }
}

/// Reads `authorization_details`: a JSON array of objects, each with a
/// non-empty string `type`, and the common members (§2.2) of their types
/// (arrays of strings; `identifier` a string). `None` if it is anything
/// else, or names a member twice anywhere: a token whose grants cannot be
/// read unambiguously is refused, never read as granting nothing (or more).
pub(crate) fn parse(raw: &str) -> Option<Vec<AuthorizationDetail>> {
    let Value::Array(items) = crate::strict_json::from_str(raw)? else {
        return None;
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Object(members) = item else {
                return None;
            };
            let type_ok = matches!(members.get("type"), Some(Value::String(t)) if !t.is_empty());
            let strings_ok = |name: &str| match members.get(name) {
                None => true,
                Some(Value::Array(values)) => values.iter().all(Value::is_string),
                Some(_) => false,
            };
            let common_ok = ["locations", "actions", "datatypes", "privileges"]
                .into_iter()
                .all(strings_ok)
                && members.get("identifier").is_none_or(Value::is_string);
            (type_ok && common_ok).then_some(AuthorizationDetail { members })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_read_strictly() {
        let details =
            parse(r#"[{"type":"a","locations":["https://x"],"identifier":"i"},{"type":"b"}]"#)
                .unwrap();
        assert_eq!(details.len(), 2);
        assert_eq!(details[0].locations().collect::<Vec<_>>(), ["https://x"]);
        assert_eq!(details[0].identifier(), Some("i"));
        assert_eq!(details[1].detail_type(), "b");
        assert_eq!(parse("[]"), Some(vec![]));
        for bad in [
            r#"{"type":"a"}"#,
            r#"[{"type":""}]"#,
            r#"[{"type":7}]"#,
            r#"[{}]"#,
            r#"["a"]"#,
            r#"[{"type":"a","type":"b"}]"#,
            r#"[{"type":"a","x":{"y":1,"y":2}}]"#,
            r#"[{"type":"a","locations":"https://x"}]"#,
            r#"[{"type":"a","actions":["read",1]}]"#,
            r#"[{"type":"a","identifier":["i"]}]"#,
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
