//! Each hand-written replacement of a library beside the library doing the same job on the
//! same realistic inputs: whether it still pays for itself.
//!
//! ```text
//! cargo bench --bench handwritten            # 40 rounds; ROKT_BENCH_ROUNDS to change
//! ```
//!
//! The pairs run interleaved, round after round, and each keeps its fastest round: on a shared
//! machine another process only ever adds time, so the minimum is the repeatable figure where a
//! mean or a median moves with the load.

mod common;

use rokt_capi::hashing::sha256_hex;
use rokt_capi::mapping::Preset;
use rokt_capi::payload::SendPayload;
use rokt_capi::rokt::Batch;
use rokt_capi::{Json, Pipeline};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let lines = common::event_lines();
    let pipeline = Pipeline::builder()
        .preset(Preset::Send)
        .overrides(serde_json::json!({"hashingConfiguration": {
            "hashEmail": true, "hashFirstName": true, "hashLastName": true,
            "hashMobile": true, "hashBillingZipcode": true}}))
        .build()
        .expect("the benchmark mapping compiles");
    let batches: Vec<Batch> = lines
        .iter()
        .filter_map(|l| pipeline.batch(l.as_str()).ok())
        .collect();
    let docs = || lines.iter().filter_map(|l| Json::parse(l).ok());
    // The values an event hashes, cleaned, as the builder hands them over.
    let plain: Vec<String> = docs()
        .filter_map(|d| SendPayload::from_event(pipeline.mapping(), &d).ok())
        .flat_map(|p| [p.email, p.firstname, p.lastname, p.mobile, p.billingzipcode])
        .flatten()
        .collect();
    let queries: Vec<String> = docs()
        .filter_map(|d| {
            let page = d.get("context")?.get("page")?;
            Some(page.get("search")?.as_str()?.to_owned())
        })
        .collect();

    type Pair<'a> = (&'a str, usize, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>);
    let pairs: Vec<Pair<'_>> = vec![
        (
            "JSON parser (Json::parse vs serde_json::from_str::<Json>), per event",
            lines.len(),
            Box::new(|| lines.iter().for_each(|l| drop(black_box(Json::parse(l))))),
            Box::new(|| {
                lines
                    .iter()
                    .for_each(|l| drop(black_box(serde_json::from_str::<Json<'_>>(l))))
            }),
        ),
        (
            "wire writer (Batch::to_json_bytes vs serde_json::to_writer), per batch",
            batches.len(),
            Box::new(|| {
                batches
                    .iter()
                    .for_each(|b| drop(black_box(b.to_json_bytes())))
            }),
            Box::new(|| {
                batches.iter().for_each(|b| {
                    let mut out = Vec::with_capacity(1024);
                    drop(black_box(serde_json::to_writer(&mut out, b)));
                    drop(black_box(out));
                })
            }),
        ),
        (
            "SHA-256 one-block padding (sha256_hex vs Sha256::digest, same hex), per value",
            plain.len(),
            Box::new(|| plain.iter().for_each(|v| drop(black_box(sha256_hex(v))))),
            Box::new(|| {
                plain
                    .iter()
                    .for_each(|v| drop(black_box(library_sha256_hex(v))))
            }),
        ),
        (
            "URL decoding (rtid::from_query vs form_urlencoded::parse), per query",
            queries.len(),
            Box::new(|| {
                queries
                    .iter()
                    .for_each(|q| drop(black_box(rokt_capi::rtid::from_query(q))))
            }),
            Box::new(|| {
                queries
                    .iter()
                    .for_each(|q| drop(black_box(library_rtid(q))))
            }),
        ),
    ];

    let rounds: usize = std::env::var("ROKT_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        f();
        start.elapsed().as_secs_f64()
    };
    let mut best = vec![(f64::MAX, f64::MAX); pairs.len()];
    for _ in 0..rounds {
        for ((_, _, hand, library), best) in pairs.iter().zip(&mut best) {
            best.0 = best.0.min(time(hand));
            best.1 = best.1.min(time(library));
        }
    }
    println!(
        "fastest of {rounds} interleaved rounds, {} events",
        lines.len()
    );
    for ((name, items, _, _), (hand, library)) in pairs.iter().zip(best) {
        let per = |t: f64| t / (*items).max(1) as f64 * 1e9;
        println!(
            "{name}: hand-written {:.1} ns, library {:.1} ns, library / hand-written {:.2}",
            per(hand),
            per(library),
            library / hand
        );
    }
}

/// `sha256_hex` with the library's own padding and buffering (`Sha256::digest`), the digits
/// spelled as the crate spells them, so that only the padding differs.
fn library_sha256_hex(value: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
    let mut out = [0u8; 64];
    for (digits, word) in out.chunks_exact_mut(8).zip(digest.chunks_exact(4)) {
        let word = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        let mut x = u64::from(word);
        x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
        x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
        x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
        let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
        let ascii = x + 0x3030_3030_3030_3030 + letters * 39;
        digits.copy_from_slice(&ascii.to_be_bytes());
    }
    std::str::from_utf8(&out)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// `rtid::from_query` done wholly by the `url` crate's form decoder.
fn library_rtid(query: &str) -> Option<String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "rtid")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.trim().is_empty())
}
