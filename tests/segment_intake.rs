//! The forwarder example as Segment's tracking API: raw HTTP calls on loopback, as Segment's
//! SDKs and its documentation make them, with a mock Rokt on loopback behind it. The scenarios
//! live in `intake_support` (the SDK test runs them too).
//!
//! `cargo test` builds the examples; when a test runs without them (e.g. `cargo test --test
//! segment_intake` alone), it says so and passes.

mod intake_support;
mod support;

use intake_support::example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_accepted_and_its_events_reach_rokt() {
    if let Some(exe) = example("forwarder") {
        intake_support::every_documented_route_is_accepted_and_its_events_reach_rokt(&exe).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_keys_are_taken_from_basic_auth_or_the_body_and_the_token_still_works() {
    if let Some(exe) = example("forwarder") {
        intake_support::write_keys_are_taken_from_basic_auth_or_the_body_and_the_token_still_works(
            &exe,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_is_read_with_a_cap_and_other_encodings_get_415() {
    if let Some(exe) = example("forwarder") {
        intake_support::gzip_is_read_with_a_cap_and_other_encodings_get_415(&exe).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_unreadable_bodies_get_400_and_bad_events_do_not_spoil_a_batch() {
    if let Some(exe) = example("forwarder") {
        intake_support::oversized_or_unreadable_bodies_get_400_and_bad_events_do_not_spoil_a_batch(
            &exe,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_clock_forty_days_behind_is_corrected_and_sent_as_real_time() {
    if let Some(exe) = example("forwarder") {
        intake_support::a_client_clock_forty_days_behind_is_corrected_and_sent_as_real_time(&exe)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_and_nothing_is_lost() {
    if let Some(exe) = example("forwarder") {
        intake_support::a_full_queue_answers_503_with_retry_after_and_nothing_is_lost(&exe).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_id_from_the_landing_page_reaches_a_later_conversion() {
    if let Some(exe) = example("forwarder") {
        intake_support::a_click_id_from_the_landing_page_reaches_a_later_conversion(&exe).await;
    }
}
