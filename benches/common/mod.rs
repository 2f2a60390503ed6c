//! The benchmarks' input: realistic events, one JSON text per line.

/// Events from `ROKT_BENCH_EVENTS` (an NDJSON file), else from the shared generator
/// (`../shared/bench/make-events.py 2000`), else from the bundled example file.
pub fn event_lines() -> Vec<String> {
    let text = if let Ok(path) = std::env::var("ROKT_BENCH_EVENTS") {
        std::fs::read_to_string(path).expect("ROKT_BENCH_EVENTS is readable")
    } else {
        let generator = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/bench/make-events.py"
        );
        std::process::Command::new("python3")
            .args([generator, "2000"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .unwrap_or_else(|| include_str!("../../examples/data/events.ndjson").to_owned())
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}
