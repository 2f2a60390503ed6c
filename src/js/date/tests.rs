use super::{from_number, parse};

/// Each string and what Node 20's `Date.parse` (TZ=UTC) gives for it, `None` for NaN.
fn check(cases: &[(&str, Option<i64>)]) {
    for &(s, want) in cases {
        assert_eq!(parse(s), want, "Date.parse({s:?})");
    }
}

#[test]
fn iso_forms_read_as_v8_reads_them() {
    check(&[
        ("2026-03-04T05:06:07.891Z", Some(1_772_600_767_891)),
        ("+002026-03-04T05:06:07Z", Some(1_772_600_767_000)),
        ("-002026-03-04T05:06:07Z", Some(-126_096_202_433_000)),
        ("2026-03-04T05:06:07+0530", Some(1_772_580_967_000)),
        ("2026-03-04T05:06:07+05:30", Some(1_772_580_967_000)),
        ("2026-03-04T05:06:07-01:00", Some(1_772_604_367_000)),
        ("2026-03-04T05:06Z", Some(1_772_600_760_000)),
        ("2026-03-04T24:00:00Z", Some(1_772_668_800_000)),
        ("2026-03-04T24:00", Some(1_772_668_800_000)),
        ("2026-02-30", Some(1_772_409_600_000)),
        ("2026-03", Some(1_772_323_200_000)),
        ("2026", Some(1_767_225_600_000)),
        ("2026T10:00Z", Some(1_767_261_600_000)),
        ("2026-03-04T05:06:07", Some(1_772_600_767_000)),
        ("2026-03-04t05:06:07z", Some(1_772_600_767_000)),
        ("2026-03-04 05:06:07", Some(1_772_600_767_000)),
        // Fraction digits beyond three are cut, not rounded; the value keeps at most nine
        // digits after leading zeros, which V8 then scales by the whole length.
        (
            "2026-03-04T05:06:07.1234567890123Z",
            Some(1_772_600_767_123),
        ),
        ("2026-03-04T05:06:07.9Z", Some(1_772_600_767_900)),
        ("2026-01-01T00:00:00.0001234567Z", Some(1_767_225_600_001)),
        ("+275760-09-13T00:00:00Z", Some(8_640_000_000_000_000)),
        ("-271821-04-20T00:00:00Z", Some(-8_640_000_000_000_000)),
        ("0000-01-01", Some(-62_167_219_200_000)),
        // Not ISO any more, so the legacy reader's two-digit years apply.
        ("0049-01-01T00:00:00.000+2", None),
    ]);
}

#[test]
fn iso_mistakes_are_refused() {
    check(&[
        (" 2026-01-01T00:00:00Z", None),
        ("2026-01-01T00:00:60Z", None),
        ("2026-01-01T24:00:01Z", None),
        ("2026-01-01T24:00:00.001Z", None),
        ("2026-01-01T00:60Z", None),
        ("2026-01-01T25:00Z", None),
        ("2026-01-01T00:00+24:00", None),
        ("2026-01-01T00:00+0060", None),
        ("2026-01-01T00:00:00Zjunk", None),
        ("2026-01-01T", None),
        ("2026-13-01", None),
        ("+275760-09-13T00:00:00.001Z", None),
        ("-271821-04-19T23:59:59.999Z", None),
        ("1e21", None),
        // A digit string is a year (of its first nine significant digits), and far too late.
        ("1772600767000", None),
        ("", None),
    ]);
}

#[test]
fn legacy_forms_read_as_v8_reads_them() {
    check(&[
        ("March 4, 2026", Some(1_772_582_400_000)),
        ("March 4", Some(983_664_000_000)), // year 1 → 2001
        ("4 Mar 2026 10:00", Some(1_772_618_400_000)),
        ("2026/03/04", Some(1_772_582_400_000)),
        ("03/04/2026 10:00 PM EST", Some(1_772_679_600_000)),
        ("Wed, 04 Mar 2026 05:06:07 GMT", Some(1_772_600_767_000)),
        (
            "Wed Mar 04 2026 05:06:07 GMT+0000 (Coordinated Universal Time)",
            Some(1_772_600_767_000),
        ),
        ("3/4/99", Some(920_505_600_000)),
        ("3/4/49", Some(2_498_428_800_000)),
        ("12:00 am 2026-01-01", Some(1_767_225_600_000)),
        ("2026-01-01 12:30 pm", Some(1_767_270_600_000)),
        ("2026-01-01 10:00 GMT+0530", Some(1_767_241_800_000)),
        ("2026-01-01 10:00 +5", Some(1_767_243_600_000)),
        ("2026-01-01 10:00 PST", Some(1_767_290_400_000)),
        // `-000000` is no year: its digits are dropped and the rest is month 1, day 1, year 1.
        ("-000000-01-01", Some(978_307_200_000)),
        // The offset sum wraps at 2^32 seconds and must end up below 2^31.
        ("2026-01-01 00:00 +596523:", Some(-380_257_200_000)),
        ("2026-01-01 00:00 +1193047:", Some(1_767_223_696_000)),
    ]);
}

#[test]
fn legacy_mistakes_are_refused() {
    check(&[
        ("2026-01-01 00:00 +596524:", None),
        ("2026-01-01 10:00 +12345", None),
        ("2026-01-01 13:00 pm", None),
        ("2026-01-01 10:00 )", None),
        ("yesterday", None),
        ("2026 yesterday", None),
        ("tomorrow2026", None),
        ("1/2/3/4", None),
        ("10:00", None),
    ]);
}

#[test]
fn whitespace_is_javascripts_and_line_separators_are_letters() {
    check(&[
        ("\u{a0}March 4, 2026", Some(1_772_582_400_000)),
        ("\u{feff}March\u{3000}4, 2026", Some(1_772_582_400_000)),
        ("March 4 2026 10:00 GMT\u{a0}", Some(1_772_618_400_000)),
        ("March 4 2026 10:00 GMT\u{2028}", None),
        ("March 4 2026 10:00 GMT\u{2029}", None),
        ("March 4 2026 10:00 GMT\u{85}", None),
        ("March 4 2026 10:00 GMT\u{200b}", None),
        // A word may start with any of them, and then it is no month name.
        ("\u{180e}March 4 2026", None),
        ("2026-01-01\0junk", Some(1_767_225_600_000)),
    ]);
}

#[test]
fn numbers_are_unix_milliseconds_truncated_toward_zero() {
    assert_eq!(from_number(1_772_600_767_891.9), Some(1_772_600_767_891));
    assert_eq!(from_number(-1.9), Some(-1));
    assert_eq!(from_number(-0.5), Some(0));
    assert_eq!(from_number(8.64e15), Some(8_640_000_000_000_000));
    assert_eq!(from_number(-8.64e15), Some(-8_640_000_000_000_000));
    assert_eq!(from_number(8.64e15 + 1.0), None);
    assert_eq!(from_number(1e21), None);
    assert_eq!(from_number(f64::NAN), None);
    assert_eq!(from_number(f64::INFINITY), None);
    assert_eq!(from_number(f64::NEG_INFINITY), None);
}

/// The shortcut for the common shape answers exactly as the full reader wherever it answers,
/// and answers for the ordinary timestamps Segment sends.
#[test]
fn the_common_shape_shortcut_agrees_with_the_full_reader() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut answered = 0;
    for _ in 0..50_000 {
        let s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}Z",
            next(10_000),
            next(14),
            next(33),
            next(26),
            next(62),
            next(62),
            [String::new(), format!(".{:03}", next(1000))][next(2) as usize],
        );
        let full = super::parse_full(&s);
        if let Some(ms) = super::common_utc(&s) {
            assert_eq!(Some(ms), full, "{s}");
            answered += 1;
        }
    }
    assert!(answered > 10_000, "the shortcut answered {answered} times");
    assert_eq!(
        super::common_utc("2026-03-04T05:06:07.891Z"),
        Some(1_772_600_767_891)
    );
    assert_eq!(super::common_utc("2026-02-30T00:00:00Z"), None);
    assert_eq!(super::common_utc("2026-03-04T24:00:00Z"), None);
}
