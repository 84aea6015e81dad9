//! JSON read so that no two readers can disagree: a member named twice in
//! any object, at any depth, is an error (RFC 8259 §4 leaves duplicates to
//! the reader; `serde_json` keeps the last, other parsers the first).
//!
//! For values that decide access and are read again by someone else: the
//! `authorization_details` of a token (RFC 9396), the arguments of an MCP
//! tool call that a grant constrains.
//!
//! ```
//! use senderbound_core::strict_json;
//!
//! assert!(strict_json::from_str(r#"{"a":{"b":1,"c":[{"d":2}]}}"#).is_some());
//! assert!(strict_json::from_str(r#"{"a":{"b":1,"b":2}}"#).is_none());
//! ```

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Deepest nesting read (`serde_json` itself stops at 128).
const MAX_DEPTH: usize = 64;

/// `json` as a [`Value`], or `None` if it is not JSON, names a member twice
/// in one object, or nests deeper than 64 levels.
pub fn from_str(json: &str) -> Option<Value> {
    serde_json::from_str::<Strict>(json).ok().map(|s| s.0)
}

/// `true` if `json` is JSON with no member named twice in any object and
/// no deeper than 64 levels: [`from_str`]'s test, without building the
/// value (the memory it takes is the members' names, not the values).
pub fn is_strict(json: &str) -> bool {
    serde_json::from_str::<Checked>(json).is_ok()
}

/// JSON checked as [`from_str`] reads it, nothing kept.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckVisitor { depth: 0 })
            .map(|()| Checked)
    }
}

/// [`StrictVisitor`]'s checks, keeping nothing but the names of the
/// object being read.
struct CheckVisitor {
    depth: usize,
}

/// A nested value to check.
struct NestedCheck(usize);

impl<'de> serde::de::DeserializeSeed<'de> for NestedCheck {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(CheckVisitor { depth: self.0 })
    }
}

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON without duplicate members")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        StrictVisitor { depth: 0 }.visit_f64(v).map(|_| ())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = nested::<A::Error>(self.depth)?;
        while seq.next_element_seed(NestedCheck(depth))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let depth = nested::<A::Error>(self.depth)?;
        let mut names = std::collections::BTreeSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !names.insert(name) {
                return Err(serde::de::Error::custom("duplicate member"));
            }
            map.next_value_seed(NestedCheck(depth))?;
        }
        Ok(())
    }
}

/// The depth of a container's members, or an error past the limit.
fn nested<E: serde::de::Error>(depth: usize) -> Result<usize, E> {
    if depth >= MAX_DEPTH {
        return Err(E::custom("nested too deeply"));
    }
    Ok(depth + 1)
}

/// A [`Value`] whose objects have no duplicate members.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor { depth: 0 }).map(Strict)
    }
}

/// One level of nesting; `depth` counts the containers above it.
struct StrictVisitor {
    depth: usize,
}

/// A nested value, read with the depth of its container plus one.
struct Nested(usize);

impl<'de> serde::de::DeserializeSeed<'de> for Nested {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor { depth: self.0 })
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON without duplicate members")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.nested::<A::Error>()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Nested(depth))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.nested::<A::Error>()?;
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(serde::de::Error::custom("duplicate member"));
            }
            let value = map.next_value_seed(Nested(depth))?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

impl StrictVisitor {
    /// The depth of this container's members, or an error past the limit.
    fn nested<E: serde::de::Error>(&self) -> Result<usize, E> {
        nested(self.depth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_at_any_depth() {
        for bad in [
            r#"{"a":1,"a":1}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            r#"[{"x":[{"y":1,"y":1}]}]"#,
            r#"{"a\u0062":1,"ab":2}"#,
            "{",
            r#"{"a":1} x"#,
        ] {
            assert_eq!(from_str(bad), None, "{bad}");
            assert!(!is_strict(bad), "{bad}");
        }
        // A number out of range is refused by both readers.
        assert!(!is_strict(r#"{"a":[1,{"b":2,"c":{"b":3}}],"b":1e400}"#));
        assert_eq!(from_str(r#"{"a":[1,{"b":2,"c":{"b":3}}],"b":1e400}"#), None);
        assert!(is_strict(r#"{"a":[1,{"b":2,"c":{"b":3}}]}"#));
        let deep_ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(from_str(&deep_ok).is_some() && is_strict(&deep_ok));
        let too_deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(from_str(&too_deep), None);
        assert!(!is_strict(&too_deep));
        assert_eq!(
            from_str(r#"{"a":[1,-2,3.5,"s",true,null,{}]}"#),
            Some(serde_json::json!({"a":[1,-2,3.5,"s",true,null,{}]}))
        );
    }
}
