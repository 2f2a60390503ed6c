//! The Rokt click id (rtid): where Rokt's browser plugin or the landing URL put it. The query
//! is parsed as a URL query (the exact key `rtid`, its first occurrence, percent-decoded), not
//! split on the text `rtid=` as the reference does.

use crate::Json;
use crate::text::Text;
use std::borrow::Cow;

/// The integration name Segment events carry Rokt's settings under.
pub const INTEGRATION_NAME: &str = "Rokt Conversions API";

/// The rtid of an event, trimmed, or `None` when there is none or it is blank:
/// `integrations["Rokt Conversions API"].rtid` (set by Rokt's browser plugin) as Liquid prints
/// it when it is a string, a number or an array, else the `rtid` query parameter of
/// `context.page.search`, or of `context.page.url`'s query when the page has no `search`.
///
/// ```
/// let event = rokt_capi::Json::parse(r#"{"context":{"page":{"search":"?grtid=9&rtid=a%20b"}}}"#).unwrap();
/// assert_eq!(rokt_capi::rtid::from_event(&event).as_deref(), Some("a b"));
/// ```
pub fn from_event(event: &Json<'_>) -> Option<String> {
    let plugin = event
        .get("integrations")
        .and_then(|i| i.get(INTEGRATION_NAME))
        .and_then(|r| r.get("rtid"));
    let rtid = from_parts(plugin, || event.get("context").and_then(|c| c.get("page")))?;
    let rtid = crate::js::trim(&rtid);
    (!rtid.is_empty()).then(|| rtid.to_owned())
}

/// [`from_event`] from what it reads: the plugin's `rtid` and, only when that gives none,
/// `context.page`. Borrows the event's text where the rtid is written plainly in it.
pub(crate) fn from_parts<'p, 'a: 'p>(
    plugin: Option<&Json<'a>>,
    page: impl FnOnce() -> Option<&'p Json<'a>>,
) -> Option<Cow<'a, str>> {
    match plugin {
        // The plugin's value, as Liquid prints it, whenever Liquid counts it as true: a string
        // as it is (blank too: then there is no rtid, and the page is not read), a number as
        // text, an array as its elements printed one after another. Cloning a borrowed string
        // keeps it borrowed.
        Some(Json::Str(s)) => return Some(s.clone()),
        Some(v @ (Json::Number(_) | Json::Array(_))) => {
            let mut printed = String::new();
            crate::js::push_liquid(&mut printed, v);
            return Some(Cow::Owned(printed));
        }
        // Absent, null and false are Liquid's false. `true` and objects would print as
        // "true" and "[object Object]" in the reference, which are no click ids: they are
        // ignored, and the page is read.
        None | Some(Json::Null | Json::Bool(_) | Json::Object(_)) => {}
    }
    let page = page()?;
    match page.get("search") {
        Some(Json::Str(search)) => query_rtid(search),
        Some(other) if !other.is_null() => None,
        _ => {
            let url = match page.get("url")? {
                Json::Str(url) => url,
                _ => return None,
            };
            // The query: after the first `?`, up to a `#` (none without a `?`).
            let query = url.clone().trimmed(|u| {
                let query = u.split_once('?').map_or("", |(_, q)| q);
                query.split('#').next().unwrap_or(query)
            });
            query_rtid(&query)
        }
    }
}

/// The `rtid` parameter of a URL query (a leading `?` is skipped): the first pair whose
/// decoded name is exactly `rtid`, its value form-decoded (`+` is a space, `%XX` a byte), or
/// `None` when that is blank.
///
/// ```
/// assert_eq!(rokt_capi::rtid::from_query("?utm=1&rtid=a%20b").as_deref(), Some("a b"));
/// assert_eq!(rokt_capi::rtid::from_query("?grtid=9"), None);
/// ```
pub fn from_query(query: &str) -> Option<String> {
    query_rtid(&Cow::Borrowed(query)).map(Cow::into_owned)
}

/// [`from_query`], borrowing the value from `query` when it needs no decoding (the common case:
/// click ids are URL-safe). Names or values with escapes go through `form_urlencoded`.
fn query_rtid<'a>(query: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    let whole: &str = query;
    let bytes = whole.as_bytes();
    let first = usize::from(bytes.first() == Some(&b'?'));
    let encoded = |s: &[u8]| s.iter().any(|&b| b == b'%' || b == b'+');
    // A byte scan: `str::split` searches through a general pattern matcher, which cost more
    // than the rest of the event's rtid handling for a query this short.
    let mut start = first;
    let value = loop {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'&')
            .map_or(bytes.len(), |i| start + i);
        let pair = &bytes[start..end];
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], start + i + 1..end),
            None => (pair, end..end),
        };
        if encoded(name) {
            // A name with escapes may decode to `rtid`: let the full decoder decide.
            return decoded_rtid(&whole[first..]);
        }
        if name == b"rtid" {
            break value;
        }
        if end == bytes.len() {
            return None;
        }
        start = end + 1;
    };
    // The range ends at `&` or the end and starts after `=`, so it is on char boundaries.
    let text = whole.get(value.clone())?;
    if encoded(text.as_bytes()) {
        return decoded_rtid(&whole[first..]);
    }
    if text.trim().is_empty() {
        return None;
    }
    // `value` was checked against this same text above.
    Some(query.clone().trimmed(|q| q.get(value).unwrap_or_default()))
}

/// The general case of [`query_rtid`], through the `url` crate's form decoder.
#[cold]
fn decoded_rtid<'a>(query: &str) -> Option<Cow<'a, str>> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "rtid")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.trim().is_empty())
        .map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_key_first_occurrence_decoded() {
        assert_eq!(from_query("?grtid=9").as_deref(), None);
        assert_eq!(from_query("?grtid=9&rtid=x&rtid=y").as_deref(), Some("x"));
        assert_eq!(from_query("utm=1&rtid=a%20b%26c").as_deref(), Some("a b&c"));
        assert_eq!(from_query("?rtid=").as_deref(), None);
    }

    #[test]
    fn plugin_wins_then_search_then_url() {
        let e = Json::parse(r#"{"integrations":{"Rokt Conversions API":{"rtid":"p"}},"context":{"page":{"search":"?rtid=s"}}}"#).unwrap();
        assert_eq!(from_event(&e).as_deref(), Some("p"));
        let e =
            Json::parse(r#"{"context":{"page":{"search":"?rtid=s","url":"https://x/?rtid=u"}}}"#)
                .unwrap();
        assert_eq!(from_event(&e).as_deref(), Some("s"));
        let e =
            Json::parse(r#"{"context":{"page":{"url":"https://x/?a=1&rtid=u#frag"}}}"#).unwrap();
        assert_eq!(from_event(&e).as_deref(), Some("u"));
        // A plugin value that is a string is used as it is, blank too: then there is no rtid,
        // and the page is not read. false and null fall back to the page; so do true and
        // objects, which are no click ids.
        let rtid = |plugin: &str| {
            let text = format!(
                r#"{{"integrations":{{"Rokt Conversions API":{{"rtid":{plugin}}}}},"context":{{"page":{{"url":"https://x/?rtid=u"}}}}}}"#
            );
            from_event(&Json::parse(&text).unwrap())
        };
        assert_eq!(rtid(r#"" ""#), None);
        assert_eq!(rtid(r#""""#), None);
        assert_eq!(rtid(r#"" r1 ""#).as_deref(), Some("r1"));
        assert_eq!(rtid(r#"["a",["b"],null,7]"#).as_deref(), Some("ab7"));
        assert_eq!(rtid("[]"), None);
        for falls_back in ["false", "null", "true", r#"{"k":1}"#] {
            assert_eq!(rtid(falls_back).as_deref(), Some("u"), "{falls_back}");
        }
    }

    #[test]
    fn plain_click_ids_are_borrowed_from_the_query() {
        let query = String::from("?utm=1&rtid=rt-7&step=2");
        let found = query_rtid(&Cow::Borrowed(query.as_str()));
        match found {
            Some(Cow::Borrowed(v)) => {
                assert_eq!(v, "rt-7");
                assert!(query.as_bytes().as_ptr_range().contains(&v.as_ptr()));
            }
            other => panic!("expected a borrowed rtid, got {other:?}"),
        }
        // Escapes in the value or in a name before it are decoded.
        assert_eq!(from_query("rtid=a+b").as_deref(), Some("a b"));
        assert_eq!(from_query("x%3D=1&rtid=v").as_deref(), Some("v"));
        assert_eq!(
            from_query("%72tid=decoded&rtid=plain").as_deref(),
            Some("decoded")
        );
        assert_eq!(from_query("rtid&rtid=x"), None);
        assert_eq!(from_query("&&rtid=x").as_deref(), Some("x"));
    }

    #[test]
    fn a_url_without_a_query_has_no_rtid() {
        let e = Json::parse(r#"{"context":{"page":{"url":"https://x/rtid=u#rtid=v"}}}"#).unwrap();
        assert_eq!(from_event(&e), None);
        let e = Json::parse(r#"{"context":{"page":{"url":"https://x/?a\u0026rtid=u#rtid=v"}}}"#)
            .unwrap();
        assert_eq!(from_event(&e).as_deref(), Some("u"));
    }

    proptest::proptest! {
        /// The scan agrees with the `url` crate's form decoder on any query.
        #[test]
        fn query_scan_matches_form_decoding(q in "[?]?([rtid=&%+2072a ]{0,6}){0,5}") {
            let reference = url::form_urlencoded::parse(q.strip_prefix('?').unwrap_or(&q).as_bytes())
                .find(|(k, _)| k == "rtid")
                .map(|(_, v)| v.into_owned())
                .filter(|v| !v.trim().is_empty());
            proptest::prop_assert_eq!(from_query(&q), reference.clone());
            let owned: Cow<'_, str> = Cow::Owned(q.clone());
            proptest::prop_assert_eq!(query_rtid(&owned).map(Cow::into_owned), reference);
        }
    }
}

pub mod memory;
