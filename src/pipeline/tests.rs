//! The bulk writer (bodies written in place) is held to `bulk_encoded` (events encoded one by
//! one, then joined): the same requests, split in the same places, and the same outcome for
//! every event.

use super::{Pipeline, Request};
use crate::request::{Limits, RequestKind};
use crate::synthetic::synthetic_event;
use crate::{Error, Preset};
use proptest::prelude::*;

/// A request's route, item count and body, to compare.
fn shape(r: &Request) -> (String, usize, String) {
    let body = String::from_utf8_lossy(&r.body).into_owned();
    (r.path.clone(), r.items, body)
}

/// An event outcome, to compare: the request index, or the error's wording.
fn outcome(item: &Result<usize, Error>) -> Result<usize, String> {
    item.as_ref().map(|&i| i).map_err(ToString::to_string)
}

/// The `i`th event of a test stream: generated events, some of them padded to a given size,
/// not JSON, not an object, or rejected by validation.
fn event(i: usize, kind: u8, padding: usize) -> String {
    let mut e = synthetic_event(i);
    match kind {
        0 => "not json".to_owned(),
        1 => "[1,2]".to_owned(),
        2 => {
            e["timestamp"] = serde_json::json!("never");
            e.to_string()
        }
        _ => {
            e["event"] = serde_json::json!("e".repeat(padding));
            e.to_string()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_bulk_writer_makes_the_requests_bulk_encoded_makes(
        kinds in proptest::collection::vec((0u8..12, 0usize..3000), 0..120),
        max_items in 1usize..=100,
        max_request_bytes in 1500usize..40_000,
        max_item_bytes in 1200usize..4000,
        preset in prop_oneof![Just(Preset::Send), Just(Preset::SyncEngageAudience)],
    ) {
        let limits = Limits { max_items, max_item_bytes, max_request_bytes };
        let pipeline = Pipeline::builder().preset(preset).limits(limits).build();
        // Limits the builder refuses (a request smaller than an item) are not a case.
        prop_assume!(pipeline.is_ok());
        let pipeline = pipeline.expect("checked");
        let events: Vec<String> = kinds
            .iter()
            .zip(0..)
            .map(|(&(kind, padding), i)| event(i, kind, padding))
            .collect();

        let written = pipeline.bulk(&events);
        let encoded: Vec<_> = events.iter().map(|e| pipeline.encode(e)).collect();
        // Already-encoded batches pushed into a writer, as the preview's workers hand them
        // over, each request recycled into the next once "sent" (its shape taken), as the
        // preview does.
        let mut writer = pipeline.bulk_writer(RequestKind::Bulk);
        let (mut pushed_requests, mut pushed_items) = (Vec::new(), Vec::new());
        for e in &encoded {
            let (item, completed) = match e {
                Ok(bytes) => match writer.push_encoded(bytes) {
                    Ok(full) => (Ok(pushed_requests.len() + usize::from(full.is_some())), full),
                    Err(e) => (Err(e.to_string()), None),
                },
                Err(e) => (Err(e.to_string()), None),
            };
            pushed_items.push(item);
            for request in completed.into_iter().chain(writer.take_full()) {
                pushed_requests.push(shape(&request));
                writer.recycle(request);
            }
        }
        pushed_requests.extend(writer.finish().as_ref().map(shape));
        let joined = pipeline.bulk_encoded(RequestKind::Bulk, encoded);

        let shapes = |rs: &[Request]| rs.iter().map(shape).collect::<Vec<_>>();
        prop_assert_eq!(shapes(&written.requests), shapes(&joined.requests));
        let outcomes = |items: &[Result<usize, Error>]| items.iter().map(outcome).collect::<Vec<_>>();
        prop_assert_eq!(outcomes(&written.items), outcomes(&joined.items));
        prop_assert_eq!(&pushed_requests, &shapes(&joined.requests));
        prop_assert_eq!(&pushed_items, &outcomes(&joined.items));
    }
}

#[test]
fn a_body_holding_the_item_limit_can_be_taken_at_once() {
    let limits = Limits::default().with_max_items(2);
    let pipeline = Pipeline::builder()
        .limits(limits)
        .build()
        .expect("pipeline");
    let mut writer = pipeline.bulk_writer(RequestKind::Bulk);
    let events: Vec<String> = (0..5).map(|i| synthetic_event(i).to_string()).collect();
    let returned: Vec<(Option<usize>, Option<usize>)> = events
        .iter()
        .map(|e| {
            let pushed = writer.push(e).expect("valid").map(|r| r.items);
            (pushed, writer.take_full().map(|r| r.items))
        })
        .collect();
    assert_eq!(
        returned,
        [
            (None, None),
            (None, Some(2)),
            (None, None),
            (None, Some(2)),
            (None, None)
        ]
    );
    assert_eq!(writer.pending(), 1);
    assert!(format!("{writer:?}").contains("body_bytes"));
    assert_eq!(writer.finish().map(|r| r.items), Some(1));
}

#[test]
fn encode_all_gives_each_events_encoding_in_order_on_any_number_of_threads() {
    let pipeline = Pipeline::new(Preset::Send);
    let events: Vec<String> = (0..23)
        .map(|i| match i % 5 {
            3 => "not json".to_owned(),
            _ => synthetic_event(i).to_string(),
        })
        .collect();
    let one_by_one: Vec<_> = events
        .iter()
        .map(|e| pipeline.encode(e).map_err(|e| e.to_string()))
        .collect();
    for threads in [1, 2, 3, 4, 23, 40] {
        let all: Vec<_> = pipeline
            .encode_all(&events, threads)
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
        assert_eq!(all, one_by_one, "{threads} threads");
    }
    assert!(pipeline.encode_all::<String>(&[], 2).is_empty());
}
