//! Fuzz target `json`: `Json::parse` (a hand-written fast parser with serde_json as fallback)
//! against `serde_json::from_str::<Json>` (serde_json alone), and `Json::parse_slice` against
//! `serde_json::from_slice::<Json>`.
//!
//! They must agree exactly: the same value with the same representation (integer or float, the
//! sign of zero, borrowed or owned strings), or the same error message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rokt_capi::Json;
use std::borrow::Cow;

fn same(a: &Json<'_>, b: &Json<'_>) -> bool {
    match (a, b) {
        (Json::Null, Json::Null) => true,
        (Json::Bool(x), Json::Bool(y)) => x == y,
        (Json::Number(x), Json::Number(y)) => {
            x.as_u64() == y.as_u64()
                && x.as_i64() == y.as_i64()
                && x.is_f64() == y.is_f64()
                && x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
        }
        (Json::Str(x), Json::Str(y)) => same_str(x, y),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| same_str(kx, ky) && same(vx, vy))
        }
        _ => false,
    }
}

// The `Cow` itself is the point: borrowed or owned must match too.
#[allow(clippy::ptr_arg)]
fn same_str(x: &Cow<'_, str>, y: &Cow<'_, str>) -> bool {
    x == y && matches!(x, Cow::Borrowed(_)) == matches!(y, Cow::Borrowed(_))
}

fn check(ours: Result<Json<'_>, serde_json::Error>, theirs: Result<Json<'_>, serde_json::Error>) {
    match (ours, theirs) {
        (Ok(a), Ok(b)) => assert!(same(&a, &b), "the values differ"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (Ok(_), Err(e)) => panic!("Json accepted what serde_json rejects: {e}"),
        (Err(e), Ok(_)) => panic!("Json rejected what serde_json accepts: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    check(Json::parse_slice(data), serde_json::from_slice(data));
    if let Ok(text) = std::str::from_utf8(data) {
        check(Json::parse(text), serde_json::from_str(text));
    }
});
