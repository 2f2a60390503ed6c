//! Building one Rokt batch from a validated payload (docs/behaviour.md §5): pure, no I/O.

use super::SendPayload;
use crate::hashing::{Cleaning, DigestSlots, plain_or_digest, sha256_hex};
use crate::rokt::{
    AttributeMap, AttributeValue, Batch, CustomEvent, CustomEventData, CustomEventType,
    IntegrationAttributes, RoktIntegration, Text, UserAttributes, UserIdentities,
};
use std::borrow::Cow;

impl<S: Text> From<SendPayload<S>> for Batch<S> {
    fn from(p: SendPayload<S>) -> Batch<S> {
        build(p)
    }
}

/// `YYYYMMDD`, as Rokt takes a date of birth.
pub(crate) fn compact_date(d: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    // `parse_date` only accepts four-digit years, so eight digits always suffice; writing them
    // directly avoids the formatting machinery on every event with a birthday.
    let (y, m, day) = (d.year(), d.month(), d.day());
    if !(0..=9999).contains(&y) {
        return format!("{y:04}{m:02}{day:02}");
    }
    let y = y as u32;
    let digits = [
        y / 1000,
        y / 100 % 10,
        y / 10 % 10,
        y % 10,
        m / 10,
        m % 10,
        day / 10,
        day % 10,
    ];
    let mut text = String::with_capacity(8);
    for n in digits {
        text.push(char::from(b'0' + n as u8));
    }
    text
}

/// Builds the batch object Rokt receives for one validated payload. Strings the payload holds
/// are moved (or, borrowed, stay borrowed); only digests, cleaned emails and dates are made.
pub fn build<S: Text>(p: SendPayload<S>) -> Batch<S> {
    build_with(p, |v| S::from(sha256_hex(v)))
}

/// [`build`] for a payload that borrows its strings, with its digests spelled into `slots`
/// (five cover every hashed field) rather than allocated.
pub(crate) fn build_borrowed<'d>(
    p: SendPayload<Cow<'d, str>>,
    slots: &'d mut [[u8; 64]],
) -> Batch<Cow<'d, str>> {
    let mut slots = DigestSlots::new(slots);
    build_with(p, |v| slots.digest(v))
}

/// [`build`], with `digest` spelling the hex digest of a cleaned value.
fn build_with<S: Text>(p: SendPayload<S>, mut digest: impl FnMut(&str) -> S) -> Batch<S> {
    let h = p.hashing;
    let mut ids = UserIdentities {
        customerid: p.customerid,
        other2: p.rtid.clone(),
        ..Default::default()
    };
    (ids.email, ids.other) = plain_or_digest(p.email, h.email, Cleaning::Email, &mut digest);

    let mut user = UserAttributes::default();
    let mut split =
        |value: Option<S>, on: bool| plain_or_digest(value, on, Cleaning::Trim, &mut digest);
    (user.firstname, user.firstnamesha256) = split(p.firstname, h.first_name);
    (user.lastname, user.lastnamesha256) = split(p.lastname, h.last_name);
    (user.mobile, user.mobilesha256) = split(p.mobile, h.mobile);
    (user.billingzipcode, user.billingzipsha256) = split(p.billingzipcode, h.billing_zipcode);
    user.dob = p.dob.map(|d| S::from(compact_date(d)));
    user.gender = p.gender;
    user.extra = p.extra_user_attributes;

    let details = p.event_details;
    let ms = details.timestamp_unixtime_ms;
    let mut events = Vec::with_capacity(2);
    if let Some(audience) = &p.audience {
        let status = crate::rokt::membership_status(audience.member);
        let mut attrs = AttributeMap::default();
        attrs.push_new(
            "audience_name",
            AttributeValue::String(audience.name.clone()),
        );
        attrs.push_new("status", AttributeValue::String(S::from_static(status)));
        events.push(CustomEvent::new(CustomEventData {
            custom_event_type: CustomEventType::Other,
            source_message_id: S::from(crate::rokt::audience_message_id(
                &details.source_message_id,
            )),
            timestamp_unixtime_ms: ms,
            event_name: S::from_static("audiencemembershipupdate"),
            custom_attributes: attrs,
        }));
        user.extra.insert(
            crate::rokt::membership_attribute(&audience.name),
            audience.member,
        );
    }
    if let Some(conversiontype) = details.conversiontype {
        // The four known keys are distinct, so they are appended without a search.
        let mut attrs = AttributeMap::default();
        attrs.push_new("conversiontype", AttributeValue::String(conversiontype));
        if let Some(r) = details.confirmationref {
            attrs.push_new("confirmationref", AttributeValue::String(r));
        }
        if let Some(a) = crate::rokt::conversion_amount(details.amount) {
            attrs.push_new("amount", AttributeValue::from(a));
        }
        if let Some(c) = details.currency {
            attrs.push_new("currency", AttributeValue::String(c));
        }
        for (k, v) in p.event_properties.into_iter() {
            attrs.insert(k, v);
        }
        events.push(CustomEvent::new(CustomEventData {
            custom_event_type: CustomEventType::Transaction,
            source_message_id: details.source_message_id,
            timestamp_unixtime_ms: ms,
            event_name: S::from_static("conversion"),
            custom_attributes: attrs,
        }));
    }

    Batch {
        environment: Default::default(),
        device_info: p.device_info,
        user_attributes: user,
        integration_attributes: p.rtid.map(|rtid| IntegrationAttributes {
            rokt: RoktIntegration {
                passbackconversiontrackingid: rtid,
            },
        }),
        user_identities: ids,
        events,
        ip: p.ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::HashingConfiguration;
    use chrono::NaiveDate;

    /// A payload with every hashed field set, borrowing from `text`.
    fn hashed_payload(text: &str) -> SendPayload<Cow<'_, str>> {
        let field = |i: usize| Some(Cow::Borrowed(text.split(',').nth(i).unwrap_or_default()));
        SendPayload {
            email: field(0),
            firstname: field(1),
            lastname: field(2),
            mobile: field(3),
            billingzipcode: field(4),
            hashing: HashingConfiguration::all(),
            ..Default::default()
        }
    }

    #[test]
    fn borrowed_builds_spell_digests_into_the_slots() {
        let text = "Jane@Example.com,Jane,Sato,+1 415 555 0100,94107";
        let mut slots = [[0u8; 64]; 5];
        let range = slots.as_ptr_range();
        let in_slots = |s: &str| range.contains(&s.as_ptr().cast());
        let batch = build_borrowed(hashed_payload(text), &mut slots);
        let digests = [
            &batch.user_identities.other,
            &batch.user_attributes.firstnamesha256,
            &batch.user_attributes.lastnamesha256,
            &batch.user_attributes.mobilesha256,
            &batch.user_attributes.billingzipsha256,
        ];
        for d in digests {
            assert!(matches!(d, Some(Cow::Borrowed(s)) if in_slots(s)), "{d:?}");
        }
        let allocated = build(hashed_payload(text));
        assert_eq!(batch.to_json_bytes(), allocated.to_json_bytes());
    }

    #[test]
    fn digests_past_the_slots_are_allocated() {
        let text = "a@b.co,Jane,Sato,+1 415 555 0100,94107";
        let mut slots = [[0u8; 64]; 2];
        let batch = build_borrowed(hashed_payload(text), &mut slots);
        assert!(matches!(
            batch.user_attributes.lastnamesha256,
            Some(Cow::Owned(_))
        ));
        assert_eq!(
            batch.to_json_bytes(),
            build(hashed_payload(text)).to_json_bytes()
        );
    }

    #[test]
    fn compact_date_pads_every_part() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(compact_date(d(1990, 7, 4)), "19900704");
        assert_eq!(compact_date(d(5, 1, 31)), "00050131");
        assert_eq!(compact_date(d(9999, 12, 1)), "99991201");
        assert_eq!(compact_date(d(10000, 1, 1)), "100000101");
    }
}
