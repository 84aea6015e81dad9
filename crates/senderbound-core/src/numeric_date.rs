//! JWT NumericDate (RFC 7519 §2): seconds since the epoch, integer or not.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// Deserializes a non-negative JSON number, truncating fractions. Negative,
/// non-finite and non-numeric values are errors.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative number of seconds")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("negative NumericDate"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            if (0.0..1.0e19).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::custom("invalid NumericDate"))
            }
        }
    }
    d.deserialize_any(V)
}

/// The same for an optional claim.
pub(crate) fn deserialize_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    deserialize(d).map(Some)
}
