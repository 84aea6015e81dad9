//! Property tests (proptest) of the pure checks:
//! - `htu`: every spelling of a URI that RFC 3986 §6.2.2–6.2.3 calls
//!   equivalent compares equal, and different paths never do;
//! - RFC 7638 thumbprints do not change with member order, whitespace or
//!   extra members;
//! - any single-byte change to a valid DPoP proof or access token is
//!   rejected.

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::select;
use senderbound_client::DpopKey;
use senderbound_core::htu::normalize;
use senderbound_core::jwk::{JwkSet, PublicJwk};
use senderbound_core::proof::{ProofPolicy, RequestFacts};
use senderbound_core::token::TokenRules;
use senderbound_suite::TestIssuer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------- htu ----

/// Path segment characters that are not percent-encoded in normal form.
const SEGMENT_CHARS: &[u8] = b"abcXYZ019-._~!$&'()*+,;=:@";
/// Escapes that stay escaped in normal form (reserved or non-ASCII bytes).
const KEPT_ESCAPES: &[&str] = &["%2F", "%3F", "%23", "%25", "%20", "%C3%A9"];

/// One path segment in normal form: unreserved and sub-delim characters
/// and escapes of other bytes, never `.` or `..`.
fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => select(SEGMENT_CHARS).prop_map(|b| char::from(b).to_string()),
            1 => select(KEPT_ESCAPES).prop_map(str::to_owned),
        ],
        1..6,
    )
    .prop_map(|parts| parts.concat())
    .prop_filter("not a dot segment", |s| s != "." && s != "..")
}

/// A path in normal form: `/` or `/seg/seg…`, maybe with a trailing slash.
fn normal_path() -> impl Strategy<Value = String> {
    (prop::collection::vec(segment(), 0..5), any::<bool>()).prop_map(|(segments, slash)| {
        let mut path = format!("/{}", segments.join("/"));
        if slash && !segments.is_empty() {
            path.push('/');
        }
        path
    })
}

#[derive(Debug, Clone)]
struct Uri {
    https: bool,
    host: String,
    port: Option<u16>,
    path: String,
}

fn uri() -> impl Strategy<Value = Uri> {
    (
        any::<bool>(),
        prop_oneof![
            "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
            Just("127.0.0.1".to_owned()),
            Just("[::1]".to_owned()),
        ],
        prop::option::of(1u16..),
        normal_path(),
    )
        .prop_map(|(https, host, port, path)| Uri {
            https,
            host,
            port,
            path,
        })
}

impl Uri {
    /// The canonical spelling: lowercase, no default port.
    fn canonical(&self) -> String {
        let (scheme, default) = if self.https {
            ("https", 443)
        } else {
            ("http", 80)
        };
        match self.port.filter(|p| *p != default) {
            Some(port) => format!("{scheme}://{}:{port}{}", self.host, self.path),
            None => format!("{scheme}://{}{}", self.host, self.path),
        }
    }
}

/// Choices for respelling a URI without changing what it identifies.
#[derive(Debug, Clone)]
struct Respelling {
    upper_scheme: Vec<bool>,
    upper_host: Vec<bool>,
    explicit_port: u8,
    encode_unreserved: Vec<bool>,
    lower_hex: Vec<bool>,
    dots: Vec<u8>,
    empty_path_without_slash: bool,
    suffix: u8,
}

fn respelling() -> impl Strategy<Value = Respelling> {
    (
        prop::collection::vec(any::<bool>(), 5),
        prop::collection::vec(any::<bool>(), 64),
        0u8..3,
        prop::collection::vec(any::<bool>(), 64),
        prop::collection::vec(any::<bool>(), 64),
        prop::collection::vec(0u8..4, 8),
        any::<bool>(),
        0u8..4,
    )
        .prop_map(
            |(upper_scheme, upper_host, explicit_port, encode, hex, dots, empty, suffix)| {
                Respelling {
                    upper_scheme,
                    upper_host,
                    explicit_port,
                    encode_unreserved: encode,
                    lower_hex: hex,
                    dots,
                    empty_path_without_slash: empty,
                    suffix,
                }
            },
        )
}

fn flip(s: &str, upper: &[bool]) -> String {
    s.chars()
        .zip(upper.iter().cycle())
        .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
        .collect()
}

/// `uri` spelled differently but equivalently (RFC 3986 §6.2.2, §6.2.3).
fn respell(uri: &Uri, r: &Respelling) -> String {
    let scheme = flip(if uri.https { "https" } else { "http" }, &r.upper_scheme);
    let mut out = format!("{scheme}://{}", flip(&uri.host, &r.upper_host));
    let default = if uri.https { 443 } else { 80 };
    match (uri.port.filter(|p| *p != default), r.explicit_port) {
        (Some(port), _) => out.push_str(&format!(":{port}")),
        (None, 1) => out.push_str(&format!(":{default}")),
        (None, 2) => out.push(':'),
        (None, _) => {}
    }
    if uri.path == "/" && r.empty_path_without_slash {
        // An empty path is `/`.
    } else {
        let mut flags = r.encode_unreserved.iter().cycle();
        let mut hex = r.lower_hex.iter().cycle();
        let mut dots = r.dots.iter().cycle();
        for (i, segment) in uri.path.split('/').enumerate().skip(1) {
            // Dot segments that cancel out: `./` and `x/../`.
            match dots.next() {
                Some(1) => out.push_str("/."),
                Some(2) => out.push_str("/zz/.."),
                Some(3) if i > 1 => out.push_str("/%2e"),
                _ => {}
            }
            out.push('/');
            let mut rest = segment;
            while let Some(c) = rest.chars().next() {
                if c == '%' {
                    let escape = &rest[..3];
                    out.push_str(&if *hex.next().unwrap() {
                        escape.to_ascii_lowercase()
                    } else {
                        escape.to_owned()
                    });
                    rest = &rest[3..];
                    continue;
                }
                let unreserved = c.is_ascii_alphanumeric() || "-._~".contains(c);
                if unreserved && *flags.next().unwrap() {
                    out.push_str(&format!("%{:02X}", c as u8));
                } else {
                    out.push(c);
                }
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    // `%2e` alone as a segment before the last one would leave "/." which
    // normalises away; it was only inserted where a segment follows.
    match r.suffix {
        1 => out.push_str("?a=1&b=%2F"),
        2 => out.push_str("#frag"),
        3 => out.push_str("?q#f"),
        _ => {}
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn equivalent_spellings_of_a_uri_compare_equal(uri in uri(), a in respelling(), b in respelling()) {
        let canonical = normalize(&uri.canonical()).unwrap();
        prop_assert_eq!(&canonical, &uri.canonical(), "the canonical spelling is the normal form");
        prop_assert_eq!(normalize(&respell(&uri, &a)).unwrap(), canonical.clone(), "{}", respell(&uri, &a));
        prop_assert_eq!(normalize(&respell(&uri, &a)).unwrap(), normalize(&respell(&uri, &b)).unwrap());
    }

    #[test]
    fn different_paths_never_compare_equal(
        uri in uri(),
        other in normal_path(),
        a in respelling(),
        b in respelling(),
    ) {
        prop_assume!(other != uri.path);
        let other = Uri { path: other, ..uri.clone() };
        prop_assert_ne!(normalize(&respell(&uri, &a)).unwrap(), normalize(&respell(&other, &b)).unwrap());
        // Case matters in paths (RFC 3986 §6.2.2.1 only folds scheme and host).
        let shouted = Uri { path: uri.path.to_ascii_uppercase(), ..uri.clone() };
        if shouted.path != uri.path && !uri.path.contains('%') {
            prop_assert_ne!(normalize(&uri.canonical()).unwrap(), normalize(&shouted.canonical()).unwrap());
        }
    }
}

// ---------------------------------------------------------- thumbprints --

/// Members a public JWK may carry beside the key itself: registered ones
/// (with values of their registered type: RFC 7517 refuses a numeric
/// `kid`) and unknown ones with any value.
fn extra_members() -> impl Strategy<Value = Vec<(String, Value)>> {
    let any_value = prop_oneof![
        "[ -~]{0,12}".prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        Just(json!({"nested": ["kty", "EC"], "d": "not a private member here"})),
        Just(Value::Null),
    ];
    prop::collection::vec(
        prop_oneof![
            (select(&["kid", "x5t"][..]), "[ -~]{0,12}")
                .prop_map(|(name, value)| (name.to_owned(), Value::from(value))),
            ("x-[a-z]{1,8}|[A-Z]{1,3}", any_value),
        ],
        0..4,
    )
}

fn test_keys() -> &'static [(Value, String)] {
    static KEYS: OnceLock<Vec<(Value, String)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys: Vec<(Value, String)> = (0u8..3)
            .map(|i| {
                let key = DpopKey::from_secret_bytes(&Sha256::digest([i]).into()).unwrap();
                (key.public_jwk().clone(), key.jkt().to_owned())
            })
            .collect();
        keys.push((
            json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
            // RFC 8037 §A.3.
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".to_owned(),
        ));
        keys
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn thumbprints_ignore_member_order_whitespace_and_extra_members(
        which in 0..4usize,
        extras in extra_members(),
        order in Just((0..8usize).collect::<Vec<_>>()).prop_shuffle(),
        spaces in prop::collection::vec(select(&["", " ", "\n", "\t "][..]), 8),
    ) {
        let (jwk, expected) = &test_keys()[which];
        let mut members: Vec<(String, Value)> = jwk
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, value) in extras {
            if !members.iter().any(|(n, _)| *n == name) {
                members.push((name, value));
            }
        }
        // At most 4 key members and 4 extras: `order` covers every index.
        let positions: Vec<usize> = order.into_iter().filter(|i| *i < members.len()).collect();
        let text = format!(
            "{{{}}}",
            positions
                .iter()
                .zip(spaces.iter().cycle())
                .map(|(i, space)| format!("{space}{}{space}:{space}{}", json!(members[*i].0), members[*i].1))
                .collect::<Vec<_>>()
                .join(",")
        );
        let key = PublicJwk::from_json(&text).unwrap_or_else(|e| panic!("{e:?}: {text}"));
        prop_assert_eq!(key.thumbprint(), expected.as_str(), "{}", text);
    }
}

// ------------------------------------------------- single-byte changes --

const NOW: u64 = 1_800_000_000;
const HTU: &str = "https://api.example.com/resource";
const AUDIENCE: &str = "https://api.example.com/";

struct Signed {
    proof: String,
    token: String,
    keys: JwkSet,
    token_hash: [u8; 32],
}

fn signed() -> &'static Signed {
    static SIGNED: OnceLock<Signed> = OnceLock::new();
    SIGNED.get_or_init(|| {
        let client = DpopKey::generate();
        let issuer = TestIssuer::new("https://as.example.com");
        let token = issuer.sign(&issuer.claims(AUDIENCE, Some(client.jkt()), "read", NOW));
        let proof = client
            .proof("POST", HTU)
            .unwrap()
            .access_token(&token)
            .issued_at(NOW)
            .sign();
        Signed {
            token_hash: Sha256::digest(&token).into(),
            keys: JwkSet::from_json(&issuer.jwks_json()).unwrap(),
            proof,
            token,
        }
    })
}

/// The request the signed proof was made for.
fn facts_of(s: &Signed) -> RequestFacts<'_> {
    RequestFacts {
        method: "POST",
        htu: HTU,
        access_token_hash: Some(&s.token_hash),
        now: NOW,
    }
}

fn check_proof(proof: &str) -> Result<(), senderbound_core::Error> {
    let s = signed();
    let facts = facts_of(s);
    let fresh = ProofPolicy::new()
        .key_cache_capacity(0)
        .verify(proof, &facts)
        .map(|_| ());
    // The header cache never changes an outcome: a policy that has checked
    // the unchanged proof's header answers every changed proof as a policy
    // without a cache does (a changed header is other text, checked afresh;
    // a changed payload or signature meets a known header).
    static WARM: OnceLock<ProofPolicy> = OnceLock::new();
    let warm = WARM
        .get_or_init(|| {
            let policy = ProofPolicy::new();
            policy.verify(&s.proof, &facts).unwrap();
            policy
        })
        .verify(proof, &facts)
        .map(|_| ());
    assert_eq!(fresh, warm, "the header cache changed the outcome");
    fresh
}

fn check_token(token: &str) -> Result<(), senderbound_core::Error> {
    let rules = TokenRules::new(["https://as.example.com"], [AUDIENCE]);
    rules.verify_jwt(token, &signed().keys).map(|_| ())
}

/// `original` with byte `at` (modulo its length) replaced by `original[at] ^ by`.
fn change(original: &str, at: usize, by: u8) -> Option<String> {
    let mut bytes = original.as_bytes().to_vec();
    let i = at % bytes.len();
    bytes[i] ^= by;
    // A header value that is not text never reaches the checks (the Layer
    // refuses it as malformed), so it is rejected too.
    String::from_utf8(bytes).ok()
}

#[test]
fn the_unchanged_proof_and_token_are_accepted() {
    let s = signed();
    check_proof(&s.proof).unwrap();
    check_token(&s.token).unwrap();
    // The proof is bound to this token: the hash of another token fails.
    let other: [u8; 32] = Sha256::digest(b"another token").into();
    let facts = RequestFacts {
        method: "POST",
        htu: HTU,
        access_token_hash: Some(&other),
        now: NOW,
    };
    assert!(ProofPolicy::new().verify(&s.proof, &facts).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_single_byte_change_to_a_proof_is_rejected(at in any::<usize>(), by in 1u8..) {
        if let Some(changed) = change(&signed().proof, at, by) {
            prop_assert!(check_proof(&changed).is_err(), "accepted: byte {} ^ {by:#x}", at % changed.len());
        }
    }

    #[test]
    fn any_single_byte_change_to_a_token_is_rejected(at in any::<usize>(), by in 1u8..) {
        if let Some(changed) = change(&signed().token, at, by) {
            prop_assert!(check_token(&changed).is_err(), "accepted: byte {} ^ {by:#x}", at % changed.len());
        }
    }
}

/// Every position, not only a sample: the last character of each base64url
/// part is where lax decoders ignore bits.
#[test]
fn every_position_of_proof_and_token_matters() {
    let s = signed();
    for (original, check) in [
        (
            &s.proof,
            check_proof as fn(&str) -> Result<(), senderbound_core::Error>,
        ),
        (
            &s.token,
            check_token as fn(&str) -> Result<(), senderbound_core::Error>,
        ),
    ] {
        for at in 0..original.len() {
            for by in [0x01, 0x02, 0x04, 0x08, 0x20] {
                if let Some(changed) = change(original, at, by) {
                    assert!(check(&changed).is_err(), "accepted: byte {at} ^ {by:#x}");
                }
            }
        }
    }
}

/// A cloned policy shares the header cache; one that no longer accepts the
/// header's algorithm refuses it though the header is known.
#[test]
fn a_known_header_is_refused_where_its_algorithm_is_not_accepted() {
    let s = signed();
    let facts = facts_of(s);
    let policy = ProofPolicy::new();
    policy.verify(&s.proof, &facts).unwrap();
    let narrower = policy
        .clone()
        .algorithms([senderbound_core::Algorithm::EdDSA]);
    assert_eq!(
        narrower.verify(&s.proof, &facts).unwrap_err(),
        senderbound_core::Error::ProofAlgorithm
    );
    policy.verify(&s.proof, &facts).unwrap();
}
