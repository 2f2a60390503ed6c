//! Events shaped like `../shared/bench/make-events.py`'s (Order Completed tracks with identity
//! in `context.traits`, identifies with top-level traits, Engage audience identifies, mobile
//! tracks with device ids and the Rokt plugin's rtid), varied by `i`. Shared by the robustness
//! tests and the unit tests (`src/lib.rs` includes this file by path).

use serde_json::{Value, json};

/// The `i`th synthetic event.
pub fn synthetic_event(i: usize) -> Value {
    let first = ["Jane", "Omar", "Zoë", "Li", "Björn", "  Aiko "][i % 6];
    let last = ["Doe", "Müller", "O'Neil", "Sato", "García"][i % 5];
    let person = json!({
        "email": format!("  {first}.{last}{i}@Example.COM "),
        "first_name": first,
        "last_name": last,
        "phone": format!("+1 (415) 555-{:04}", i % 10000),
        "address": {"postal_code": format!("{}", 94000 + i % 999)},
        "birthday": format!("19{}-{:02}-{:02}", 50 + i % 50, 1 + i % 12, 1 + i % 28),
        "gender": if i % 2 == 0 { "m" } else { "f" },
    });
    let ts = format!(
        "2026-0{}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        1 + i % 9,
        1 + i % 28,
        i % 24,
        i % 60,
        (i * 7) % 60,
        i % 1000
    );
    match i % 4 {
        0 => json!({"type": "track", "event": "Order Completed", "userId": format!("user-{i}"),
            "anonymousId": format!("anon-{i}"), "messageId": format!("msg-{i}"), "timestamp": ts,
            "context": {"ip": format!("203.0.113.{}", i % 250), "userAgent": "Mozilla/5.0",
                "page": {"url": format!("https://shop.example.com/checkout?rtid=rt-{i}&step=2"),
                    "search": format!("?rtid=rt-{i}&step=2")},
                "traits": person, "library": {"name": "analytics.js"}},
            "properties": {"order_id": format!("order-{i}"), "revenue": 5.0 + (i % 50) as f64 / 7.0,
                "currency": "USD", "coupon": "SPRING10", "total": i % 3,
                "products": [{"sku": format!("sku-{}", i % 97), "price": 19.99, "quantity": 1 + i % 3}]}}),
        1 => {
            json!({"type": "identify", "userId": format!("user-{i}"), "messageId": format!("msg-{i}"),
            "timestamp": ts, "traits": person, "context": {"ip": format!("198.51.100.{}", i % 250)}})
        }
        2 => {
            let mut traits = person;
            traits["high_value_buyers"] = json!(i % 3 == 0);
            json!({"type": "identify", "userId": format!("user-{i}"), "messageId": format!("msg-{i}"),
                "timestamp": ts, "traits": traits,
                "context": {"personas": {"computation_key": "high_value_buyers",
                    "computation_class": "audience", "space_id": "spa_1"}}})
        }
        _ => {
            json!({"type": "track", "event": "Subscription Started", "anonymousId": format!("anon-{i}"),
            "messageId": format!("msg-{i}"), "timestamp": ts,
            "integrations": {"Rokt Conversions API": {"rtid": format!("plugin-{i}")}},
            "context": {"device": {"type": if i % 2 == 0 { "ios" } else { "android" },
                "advertisingId": format!("ad-{i:08}"), "id": format!("dev-{i:08}")},
                "userAgent": "okhttp/4.12.0"},
            "properties": {"revenue": 9.99, "currency": "EUR", "plan": "pro"}})
        }
    }
}
