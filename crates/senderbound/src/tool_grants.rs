//! Tool grants for agents (RFC 9396): the token's `authorization_details`
//! name the MCP tools it may call, and optionally what their arguments may
//! be. A [`Policy`] for [`AuthorizeLayer`](crate::AuthorizeLayer).
//!
//! Scopes say "may write notes"; a grant says "may call `add_note`, with a
//! text of at most 200 characters, on this server". An authorization server
//! that supports rich authorization requests issues it when the agent (or
//! the human approving the agent's task) asks for it, and the token carries
//! it (RFC 9396 §9.1, or §9.2 in an introspection answer):
//!
//! ```json
//! "authorization_details": [{
//!   "type": "mcp_tools",
//!   "locations": ["https://api.example.com/mcp"],
//!   "tools": [
//!     "list_notes",
//!     {"name": "add_note", "arguments": {"text": {"maxLength": 200}}},
//!     {"name": "send_payment",
//!      "arguments": {"currency": {"enum": ["EUR"]}, "amount": {"maximum": 100}}}
//!   ]
//! }]
//! ```
//!
//! - **`type`**: [`DEFAULT_DETAIL_TYPE`] (`mcp_tools`) unless
//!   [`detail_type`](ToolGrants::detail_type) names another. Details of
//!   other types are not read.
//! - **`locations`** (RFC 9396 §2.2), optional: the detail applies only at
//!   these resources. It is compared with [`resource`](ToolGrants::resource);
//!   a detail with `locations` grants nothing where no resource is set.
//! - **`tools`**: names, or objects with a `name` and `arguments`. Each
//!   argument constraint is an object of JSON Schema keywords: `const`,
//!   `enum`, `minimum`, `maximum` (numbers), `maxLength` (characters). A
//!   constrained argument must be present and meet every keyword; arguments
//!   not named are not constrained. Integers compare exactly; a number
//!   with a fraction or an exponent compares as an IEEE double (an integer
//!   beyond 2^53 against one meets nothing). Grant money as integers of the
//!   smallest unit (`"maximum": 10000` cents), or as strings with `enum`.
//!
//! What is not understood grants nothing, never more: a keyword not listed
//! here, a tool entry with a member other than `name` and `arguments`, a
//! detail with a member other than `type`, `locations` and `tools` (such as
//! RFC 9396's `actions` or `identifier`, whose meaning for tools this policy
//! would have to guess).
//!
//! A call is allowed when any entry of any applicable detail allows it.
//! Otherwise it is refused with `403 insufficient_scope` (a token with a
//! wider grant would do, RFC 6750 §3.1) and an audit event whose `detail`
//! says why: no grant for this resource, the tool not granted, or which
//! argument fell outside which keyword (never the argument's value).
//!
//! Only `tools/call` messages are governed, whatever the HTTP method that
//! carries them; other MCP methods (`initialize`, `tools/list`, …) and
//! requests without a body (an MCP session's stream and its end) pass. On
//! an [`AuthorizeLayer`](crate::AuthorizeLayer) without
//! [`inspect_mcp_calls`](crate::AuthorizeLayer::inspect_mcp_calls) every
//! request is refused: the grant could not be checked.
//!
//! Name the same resource here and in the metadata's `resource`, and the
//! same type in its `authorization_details_types_supported`: they are set
//! apart. A client that answers any `insufficient_scope` by asking for more
//! scopes gets the same token again; ask the authorization server for the
//! tool in `authorization_details` instead.
//!
//! ```
//! use axum::{Router, routing::post};
//! use senderbound::AuthorizeLayer;
//! use senderbound::metadata::ResourceMetadata;
//! use senderbound::tool_grants::ToolGrants;
//!
//! let grants = ToolGrants::new().resource("https://api.example.com/mcp");
//! let app: Router = Router::new()
//!     .route("/mcp", post(|| async { "…" }))
//!     .route_layer(AuthorizeLayer::new(grants).inspect_mcp_calls());
//! // Say so in the RFC 9728 metadata, for clients that ask.
//! let metadata = ResourceMetadata::new().authorization_details_types_supported(["mcp_tools"]);
//! # let _ = metadata;
//! ```

use std::borrow::Cow;
use std::future::Future;

use serde_json::{Map, Value};

use crate::authorize::{Denied, Policy, PolicyRequest};
use crate::tokens::AuthorizationDetail;

/// The detail `type` read by default.
pub const DEFAULT_DETAIL_TYPE: &str = "mcp_tools";

/// The constraint keywords understood.
const KEYWORDS: [&str; 5] = ["const", "enum", "minimum", "maximum", "maxLength"];

/// A tool-grant policy; see the [module](self) docs.
#[derive(Debug, Clone)]
#[must_use]
pub struct ToolGrants {
    detail_type: String,
    resource: Option<String>,
    optional: bool,
}

impl Default for ToolGrants {
    fn default() -> Self {
        ToolGrants::new()
    }
}

impl ToolGrants {
    /// Grants of type [`DEFAULT_DETAIL_TYPE`], without a resource (details
    /// with `locations` grant nothing until [`resource`](Self::resource)
    /// is set).
    pub fn new() -> Self {
        ToolGrants {
            detail_type: DEFAULT_DETAIL_TYPE.to_owned(),
            resource: None,
            optional: false,
        }
    }

    /// Read details of this `type` instead (your authorization server's
    /// name for tool grants).
    pub fn detail_type(mut self, detail_type: impl Into<String>) -> Self {
        self.detail_type = detail_type.into();
        self
    }

    /// This resource's identifier (its RFC 9728 `resource`), which a
    /// detail's `locations` must name for the detail to apply here.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Hold to a grant only the tokens that carry one (a detail of this
    /// type): tokens without are left to their scopes. For a migration, or
    /// a server whose agents ask for grants only for some tasks. By
    /// default a token without a grant may call no tool.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// `Ok` if the request is not a tool call, or the token's grants allow
    /// the tool with these arguments; the refusal otherwise (for use
    /// inside a policy of your own).
    pub fn check_call(&self, request: &PolicyRequest) -> Result<(), Denied> {
        if !request.inspected() {
            return Err(Denied::new(
                "ToolGrants needs AuthorizeLayer::inspect_mcp_calls to see tool calls",
            ));
        }
        let Some(tool) = request.tool() else {
            return Ok(());
        };
        let details = request.sender().authorization_details();
        if self.optional && !details.iter().any(|d| d.detail_type() == self.detail_type) {
            return Ok(());
        }
        self.allows(details, tool, request.tool_arguments())
            .map_err(|reason| Denied::new(reason).needs_grant())
    }

    /// `Ok` if `details` grant `tool` with `arguments` here; otherwise the
    /// reason, for the audit event.
    pub fn allows(
        &self,
        details: &[AuthorizationDetail],
        tool: &str,
        arguments: Option<&Map<String, Value>>,
    ) -> Result<(), Cow<'static, str>> {
        let ours = details
            .iter()
            .filter(|d| d.detail_type() == self.detail_type);
        let mut applicable = ours.filter(|d| self.applies_here(d)).peekable();
        if applicable.peek().is_none() {
            return Err(format!(
                "no {} authorization detail for this resource",
                self.detail_type
            )
            .into());
        }
        // Why not: about this tool if an entry named it, else about a
        // detail that could not be read.
        let mut reason: Option<String> = None;
        let mut unread: Option<String> = None;
        for detail in applicable {
            if let Some(unknown) = detail
                .members()
                .keys()
                .find(|k| !["type", "locations", "tools"].contains(&k.as_str()))
            {
                // The reason, only if this detail would have been the one.
                let names_tool = detail
                    .get("tools")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|e| e.as_str().or_else(|| e.get("name")?.as_str()) == Some(tool));
                if !names_tool {
                    continue;
                }
                unread.get_or_insert_with(|| {
                    format!(
                        "a {} detail with a member not understood (`{unknown}`) grants nothing",
                        self.detail_type
                    )
                });
                continue;
            }
            let entries = detail.get("tools").and_then(Value::as_array);
            for entry in entries.into_iter().flatten() {
                match entry_allows(entry, tool, arguments) {
                    Some(Ok(())) => return Ok(()),
                    Some(Err(why)) => {
                        reason.get_or_insert(why);
                    }
                    None => {}
                }
            }
        }
        Err(reason
            .or(unread)
            .unwrap_or_else(|| format!("tool {tool} is not in the {} grant", self.detail_type))
            .into())
    }

    /// A detail applies here unless it names `locations` without this
    /// resource.
    fn applies_here(&self, detail: &AuthorizationDetail) -> bool {
        if !detail.has("locations") {
            return true;
        }
        self.resource
            .as_deref()
            .is_some_and(|here| detail.locations().any(|l| l == here))
    }
}

impl Policy for ToolGrants {
    fn check(&self, request: &PolicyRequest) -> impl Future<Output = Result<(), Denied>> + Send {
        std::future::ready(self.check_call(request))
    }
}

/// `None` if `entry` is not about `tool`; otherwise whether it allows the
/// call, and why not.
fn entry_allows(
    entry: &Value,
    tool: &str,
    arguments: Option<&Map<String, Value>>,
) -> Option<Result<(), String>> {
    let (name, constraints, unknown) = match entry {
        Value::String(name) => (name.as_str(), None, None),
        Value::Object(entry) => (
            entry.get("name").and_then(Value::as_str)?,
            entry.get("arguments"),
            entry
                .keys()
                .find(|k| !["name", "arguments"].contains(&k.as_str())),
        ),
        _ => return None,
    };
    if name != tool {
        return None;
    }
    if let Some(unknown) = unknown {
        return Some(Err(format!(
            "tool {tool}: the grant has a member not understood (`{unknown}`)"
        )));
    }
    let Some(constraints) = constraints else {
        return Some(Ok(()));
    };
    let Some(constraints) = constraints.as_object() else {
        return Some(Err(format!(
            "tool {tool}: the grant's arguments are not an object"
        )));
    };
    for (argument, constraint) in constraints {
        let value = arguments.and_then(|a| a.get(argument));
        if let Err(why) = meets(value, constraint) {
            return Some(Err(format!("tool {tool}: argument `{argument}` {why}")));
        }
    }
    Some(Ok(()))
}

/// Whether `value` meets one argument's constraint; why not otherwise.
fn meets(value: Option<&Value>, constraint: &Value) -> Result<(), String> {
    let Some(keywords) = constraint.as_object() else {
        return Err("has a constraint that is not an object".into());
    };
    if let Some(unknown) = keywords.keys().find(|k| !KEYWORDS.contains(&k.as_str())) {
        return Err(format!("has a constraint not understood (`{unknown}`)"));
    }
    let Some(value) = value else {
        return Err("missing, and the grant constrains it".into());
    };
    for (keyword, bound) in keywords {
        let ok = match keyword.as_str() {
            "const" => same(value, bound),
            "enum" => bound
                .as_array()
                .is_some_and(|choices| choices.iter().any(|c| same(value, c))),
            "minimum" => number_cmp(value, bound).is_some_and(|o| o.is_ge()),
            "maximum" => number_cmp(value, bound).is_some_and(|o| o.is_le()),
            "maxLength" => match (value.as_str(), bound.as_u64()) {
                (Some(s), Some(max)) => (s.chars().count() as u64) <= max,
                _ => false,
            },
            _ => false,
        };
        if !ok {
            return Err(format!("outside the grant (`{keyword}`)"));
        }
    }
    Ok(())
}

/// JSON equality, numbers by value (`1` and `1.0` are the same); arrays
/// and objects member by member, so a number inside compares by value too.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => number_cmp(a, b).is_some_and(|o| o.is_eq()),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Integers up to this magnitude are exact as `f64`.
const EXACT_IN_F64: u64 = 1 << 53;

/// `value` compared with `bound`, both numbers, exactly: integers as
/// integers (`i128` holds every `i64` and `u64`); an integer against a
/// fraction only while the integer is exact as `f64` (otherwise `None`:
/// no answer, so no grant).
fn number_cmp(value: &Value, bound: &Value) -> Option<std::cmp::Ordering> {
    let (Value::Number(v), Value::Number(b)) = (value, bound) else {
        return None;
    };
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(v), int(b)) {
        (Some(v), Some(b)) => Some(v.cmp(&b)),
        (Some(i), None) | (None, Some(i)) if i.unsigned_abs() > u128::from(EXACT_IN_F64) => None,
        _ => v.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn details(json: Value) -> Vec<AuthorizationDetail> {
        let claims = json!({"iss": "https://as", "aud": "https://rs", "exp": 2000,
            "authorization_details": json});
        senderbound_core::token::AccessToken::from_json_claims(claims.to_string().as_bytes())
            .unwrap()
            .authorization_details
    }

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn grants_allow_exactly_what_they_name() {
        let grants = ToolGrants::new().resource("https://rs/mcp");
        let d = details(json!([
            {"type": "mcp_tools", "tools": ["whoami",
                {"name": "pay", "arguments": {"currency": {"enum": ["EUR"]}, "amount": {"minimum": 1, "maximum": 100}}},
                {"name": "note", "arguments": {"text": {"maxLength": 3}, "kind": {"const": 1}}}]},
            {"type": "other", "tools": ["delete_all"]},
            {"type": "mcp_tools", "locations": ["https://elsewhere/mcp"], "tools": ["admin"]},
            {"type": "mcp_tools", "locations": ["https://rs/mcp"], "tools": ["here_only"]},
        ]));
        let ok = |tool: &str, a: Option<Value>| grants.allows(&d, tool, a.map(args).as_ref());
        assert_eq!(ok("whoami", None), Ok(()));
        assert_eq!(ok("here_only", None), Ok(()));
        assert_eq!(
            ok("pay", Some(json!({"currency": "EUR", "amount": 100}))),
            Ok(())
        );
        assert_eq!(
            ok(
                "pay",
                Some(json!({"currency": "EUR", "amount": 1.0, "memo": "x"}))
            ),
            Ok(())
        );
        assert_eq!(
            ok("note", Some(json!({"text": "héé", "kind": 1.0}))),
            Ok(())
        );
        let refused = |tool: &str, a: Option<Value>, why: &str| {
            assert_eq!(ok(tool, a.clone()).unwrap_err(), why, "{tool} {a:?}");
        };
        refused(
            "delete_all",
            None,
            "tool delete_all is not in the mcp_tools grant",
        );
        refused("admin", None, "tool admin is not in the mcp_tools grant");
        refused(
            "pay",
            Some(json!({"currency": "EUR", "amount": 101})),
            "tool pay: argument `amount` outside the grant (`maximum`)",
        );
        refused(
            "pay",
            Some(json!({"currency": "EUR", "amount": 0})),
            "tool pay: argument `amount` outside the grant (`minimum`)",
        );
        refused(
            "pay",
            Some(json!({"currency": "EUR", "amount": "50"})),
            "tool pay: argument `amount` outside the grant (`maximum`)",
        );
        refused(
            "pay",
            Some(json!({"currency": "USD", "amount": 5})),
            "tool pay: argument `currency` outside the grant (`enum`)",
        );
        refused(
            "pay",
            Some(json!({"currency": "EUR"})),
            "tool pay: argument `amount` missing, and the grant constrains it",
        );
        refused(
            "pay",
            None,
            "tool pay: argument `amount` missing, and the grant constrains it",
        );
        refused(
            "note",
            Some(json!({"text": "long", "kind": 1})),
            "tool note: argument `text` outside the grant (`maxLength`)",
        );
        refused(
            "note",
            Some(json!({"text": "ok", "kind": 2})),
            "tool note: argument `kind` outside the grant (`const`)",
        );
        // Without the resource, a detail restricted by locations grants nothing.
        assert_eq!(
            ToolGrants::new().allows(&d, "here_only", None).unwrap_err(),
            "tool here_only is not in the mcp_tools grant"
        );
        assert_eq!(ToolGrants::new().allows(&d, "whoami", None), Ok(()));
        // Another detail type, configured.
        assert_eq!(
            ToolGrants::new()
                .detail_type("other")
                .allows(&d, "delete_all", None),
            Ok(())
        );
        assert_eq!(
            ToolGrants::new().allows(&[], "whoami", None).unwrap_err(),
            "no mcp_tools authorization detail for this resource"
        );
    }

    #[test]
    fn constraints_not_understood_grant_nothing() {
        let d = details(json!([{"type": "mcp_tools", "tools": [
            {"name": "a", "arguments": {"x": {"pattern": "^a"}}},
            {"name": "b", "arguments": ["x"]},
            {"name": "c", "arguments": {"x": "exact"}},
            {"name": "d", "arguments": {"x": {"maxLength": "3"}}},
            {"name": "e", "arguments": {"x": {"enum": "v"}}},
            {"tools": "no name"}, 7
        ]}]));
        let grants = ToolGrants::new();
        let x = args(json!({"x": "v"}));
        for (tool, why) in [
            (
                "a",
                "tool a: argument `x` has a constraint not understood (`pattern`)",
            ),
            ("b", "tool b: the grant's arguments are not an object"),
            (
                "c",
                "tool c: argument `x` has a constraint that is not an object",
            ),
            ("d", "tool d: argument `x` outside the grant (`maxLength`)"),
            ("e", "tool e: argument `x` outside the grant (`enum`)"),
        ] {
            assert_eq!(grants.allows(&d, tool, Some(&x)).unwrap_err(), why);
        }
        // A second entry for the same tool may allow what the first does not.
        let d = details(json!([{"type": "mcp_tools", "tools": [
            {"name": "a", "arguments": {"x": {"const": "w"}}}, {"name": "a", "arguments": {"x": {"const": "v"}}}
        ]}]));
        assert_eq!(grants.allows(&d, "a", Some(&x)), Ok(()));
    }

    #[test]
    fn members_not_understood_grant_nothing() {
        let d = details(json!([
            {"type": "mcp_tools", "tools": [{"name": "pay", "args": {"amount": {"maximum": 10}}}]},
            {"type": "mcp_tools", "actions": ["read"], "tools": ["list"]},
            {"type": "mcp_tools", "locations": [], "tools": ["here"]},
        ]));
        let grants = ToolGrants::new().resource("https://rs/mcp");
        assert_eq!(
            grants
                .allows(&d, "pay", Some(&args(json!({"amount": 5}))))
                .unwrap_err(),
            "tool pay: the grant has a member not understood (`args`)"
        );
        assert_eq!(
            grants.allows(&d, "list", None).unwrap_err(),
            "a mcp_tools detail with a member not understood (`actions`) grants nothing"
        );
        // `locations: []` names no resource: it applies nowhere.
        assert_eq!(
            grants.allows(&d, "here", None).unwrap_err(),
            "tool here is not in the mcp_tools grant"
        );
    }

    #[test]
    fn numbers_compare_exactly() {
        let d = details(json!([{"type": "mcp_tools", "tools": [
            {"name": "get", "arguments": {"id": {"const": 1234567890123456789_u64}}},
            {"name": "cap", "arguments": {"n": {"maximum": 9007199254740992_u64}}},
            {"name": "frac", "arguments": {"n": {"maximum": 10.5}}},
            {"name": "neg", "arguments": {"n": {"minimum": -5, "maximum": 0}}},
            {"name": "in", "arguments": {"v": {"enum": [[1, 2], {"a": 1}]}}},
        ]}]));
        let grants = ToolGrants::new();
        let check = |tool: &str, a: Value| grants.allows(&d, tool, Some(&args(a))).is_ok();
        assert!(check("get", json!({"id": 1234567890123456789_u64})));
        assert!(!check("get", json!({"id": 1234567890123456788_u64})));
        assert!(!check("get", json!({"id": 1234567890123456800_u64})));
        assert!(check("cap", json!({"n": 9007199254740992_u64})));
        assert!(!check("cap", json!({"n": 9007199254740993_u64})));
        assert!(!check("cap", json!({"n": u64::MAX})));
        assert!(check("frac", json!({"n": 10})));
        assert!(check("frac", json!({"n": 10.5})));
        assert!(!check("frac", json!({"n": 11})));
        // Beyond 2^53 against a fraction: no exact answer, no grant.
        assert!(!check("frac", json!({"n": -9007199254740993_i64})));
        assert!(check("neg", json!({"n": -0.0})));
        assert!(check("neg", json!({"n": -5})));
        assert!(!check("neg", json!({"n": -6})));
        assert!(check("in", json!({"v": [1.0, 2]})));
        assert!(check("in", json!({"v": {"a": 1.0}})));
        assert!(!check("in", json!({"v": [1, 2, 3]})));
    }
}
