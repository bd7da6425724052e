//! What the property tests of the parsers share (issue 16, "hostile input at volume"): the
//! case count, and strategies for the shapes an attacker sends — JSON of any shape (huge
//! numbers, deep nesting, wrong types), base64url segments, JWTs with random headers, `alg`,
//! `kid` and claims, and real tokens mutated. Each parser's properties live beside it, named
//! `fuzz_<parser>_…` so that `scripts/fuzz` can run them one parser at a time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Proptest's configuration with `cases` cases, unless `PROPTEST_CASES` sets the count
/// (`scripts/fuzz` runs a million). Cheap parsers keep proptest's 256; the ones that verify
/// signatures or build a whole configuration run fewer under `cargo test`.
pub fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Numbers at and past the edges of every integer and float type a parser may read them as.
pub fn edge_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // JSON numbers are finite (a filter would reject too often over a million cases).
        any::<f64>().prop_map(|f| Value::from(if f.is_finite() { f } else { 0.0 })),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1.0e300)),
        Just(json!(253_402_300_800_i64)),
        Just(json!(-377_705_116_800_i64)),
    ]
}

/// A string that is sometimes short, sometimes long, sometimes not ASCII.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => ".{0,24}",
        2 => "[a-zA-Z0-9._~+/=-]{0,300}",
        1 => (1usize..10_000).prop_map(|n| "x".repeat(n)),
    ]
}

/// Any JSON value, nested a few levels.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        edge_number(),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON text as an attacker writes it: well-formed values of any shape, numbers no integer
/// type holds, nesting past any recursion limit, truncated or not JSON at all.
pub fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => json_value().prop_map(|v| v.to_string()),
        1 => (1usize..400).prop_map(|n| "1".repeat(n)),
        1 => (1usize..50).prop_map(|n| format!("1e{}", "9".repeat(n))),
        1 => (1usize..5_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        1 => (1usize..5_000).prop_map(|n| "{\"a\":".repeat(n)),
        1 => json_value().prop_flat_map(|v| {
            let s = v.to_string();
            let len = s.len();
            (Just(s), 0..=len)
        })
        .prop_map(|(s, cut)| s.chars().take(cut).collect()),
        1 => ".{0,64}",
    ]
}

/// A JSON object with some of `names` (values of any type, or of the type they should have)
/// and perhaps other members.
pub fn object_with(
    names: &'static [&'static str],
    plausible: impl Strategy<Value = Value> + Clone + 'static,
) -> impl Strategy<Value = Value> {
    let member = (
        prop::sample::select(names),
        prop_oneof![2 => plausible, 1 => json_value()],
    );
    (
        prop::collection::vec(member, 0..=names.len() + 2),
        prop::collection::btree_map(text(), json_value(), 0..3),
    )
        .prop_map(|(members, extra)| {
            let mut object: serde_json::Map<String, Value> = extra.into_iter().collect();
            for (name, value) in members {
                object.insert(name.to_string(), value);
            }
            Value::Object(object)
        })
}

/// A JOSE header: `alg` among the real ones, `none`, HMAC and nonsense; `kid` one of
/// `kids` or random; `typ` among those a verifier looks for.
pub fn jwt_header(kids: Vec<String>) -> impl Strategy<Value = Value> {
    let alg = prop_oneof![
        prop::sample::select(vec![
            "none", "None", "HS256", "HS512", "RS256", "RS384", "PS256", "ES256", "ES384", "EdDSA",
            "", "RSA-OAEP",
        ])
        .prop_map(Value::from),
        json_value(),
    ];
    let kid = if kids.is_empty() {
        text().prop_map(Value::from).boxed()
    } else {
        prop_oneof![
            3 => prop::sample::select(kids).prop_map(Value::from),
            1 => text().prop_map(Value::from),
            1 => json_value(),
        ]
        .boxed()
    };
    let typ = prop_oneof![
        prop::sample::select(vec![
            "at+jwt",
            "application/at+jwt",
            "JWT",
            "logout+jwt",
            "AT+JWT"
        ])
        .prop_map(Value::from),
        json_value(),
    ];
    (
        prop::option::of(alg),
        prop::option::of(kid),
        prop::option::of(typ),
        prop::collection::btree_map(
            prop::sample::select(vec!["jku", "jwk", "x5u", "crit", "cty", "b64", "zip"]),
            json_value(),
            0..2,
        ),
    )
        .prop_map(|(alg, kid, typ, extra)| {
            let mut header = serde_json::Map::new();
            for (name, value) in [("alg", alg), ("kid", kid), ("typ", typ)] {
                if let Some(value) = value {
                    header.insert(name.into(), value);
                }
            }
            for (name, value) in extra {
                header.insert(name.into(), value);
            }
            Value::Object(header)
        })
}

/// Claims with the registered names at random types and values, and `issuer` sometimes
/// right.
pub fn jwt_claims(issuer: &'static str) -> impl Strategy<Value = Value> {
    let plausible = prop_oneof![
        Just(Value::from(issuer)),
        text().prop_map(Value::from),
        edge_number(),
        Just(json!(4_000_000_000_i64)),
    ];
    object_with(
        &[
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "client_id",
            "scope",
            "sid",
            "auth_time",
            "gid",
            "nonce",
            "tid",
            "oid",
        ],
        plausible,
    )
}

/// A compact JWS with these parts: the header and claims as JSON (or not), a signature of
/// random bytes.
pub fn jws(header: Value, claims: Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// Strings shaped like JWTs, from the plainly wrong to the nearly right: random text,
/// dots and base64url, segments that are not JSON, and JWS with random headers and claims.
pub fn jwt_shaped(kids: Vec<String>, issuer: &'static str) -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[A-Za-z0-9_-]{0,80}",
        json_text().prop_map(|t| b64(t.as_bytes())),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| b64(&b)),
        ".{0,12}",
    ];
    prop_oneof![
        1 => ".{0,200}",
        1 => prop::collection::vec(segment, 0..6).prop_map(|s| s.join(".")),
        4 => (
            jwt_header(kids),
            jwt_claims(issuer),
            prop::collection::vec(any::<u8>(), 0..600)
        )
            .prop_map(|(h, c, s)| jws(h, c, &s)),
    ]
}

/// A real token changed a little: a character replaced, inserted or removed, a segment
/// swapped or dropped, the end cut off.
pub fn mutated(token: String) -> impl Strategy<Value = String> {
    let len = token.len().max(1);
    (0..len, any::<char>(), 0u8..6).prop_map(move |(at, c, how)| {
        let mut chars: Vec<char> = token.chars().collect();
        let at = at.min(chars.len().saturating_sub(1));
        match how {
            0 if !chars.is_empty() => chars[at] = c,
            1 => chars.insert(at, c),
            2 if !chars.is_empty() => {
                chars.remove(at);
            }
            3 => chars.truncate(at),
            4 => {
                let parts: Vec<&str> = token.split('.').collect();
                let mut swapped = parts.clone();
                swapped.reverse();
                return swapped.join(".");
            }
            _ => {
                let parts: Vec<&str> = token.split('.').collect();
                return parts.iter().take(2).copied().collect::<Vec<_>>().join(".") + ".";
            }
        }
        chars.into_iter().collect()
    })
}
