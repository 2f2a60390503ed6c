//! The Rokt click id (rtid): where Rokt's browser plugin or the landing URL put it (SPEC D2).

use crate::Json;

/// The integration name Segment events carry Rokt's settings under.
pub const INTEGRATION_NAME: &str = "Rokt Conversions API";

/// The rtid of an event: `integrations["Rokt Conversions API"].rtid` (set by Rokt's browser
/// plugin) when it is a non-blank string or a number, else the `rtid` query parameter of
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
    from_parts(plugin, || event.get("context").and_then(|c| c.get("page")))
}

/// [`from_event`] from what it reads: the plugin's `rtid` and, only when that gives none,
/// `context.page`.
pub(crate) fn from_parts<'p, 'a: 'p>(
    plugin: Option<&Json<'_>>,
    page: impl FnOnce() -> Option<&'p Json<'a>>,
) -> Option<String> {
    match plugin {
        Some(Json::Str(s)) if !s.trim().is_empty() => return Some(s.to_string()),
        Some(Json::Number(n)) => return Some(crate::mapping::js::number_to_string(n)),
        _ => {}
    }
    let page = page()?;
    match page.get("search") {
        Some(Json::Str(search)) => from_query(search),
        Some(other) if !other.is_null() => None,
        _ => {
            let url = page.get("url")?.as_str()?;
            let query = url.split_once('?')?.1;
            from_query(query.split('#').next().unwrap_or(query))
        }
    }
}

/// The first `rtid` parameter of a query string (with or without its leading `?`),
/// percent-decoded; `None` when absent or blank.
pub fn from_query(query: &str) -> Option<String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "rtid")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.trim().is_empty())
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
        let e = Json::parse(r#"{"integrations":{"Rokt Conversions API":{"rtid":" "}},"context":{"page":{"url":"https://x/?rtid=u"}}}"#).unwrap();
        assert_eq!(from_event(&e).as_deref(), Some("u"));
    }
}
