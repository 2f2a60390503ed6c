//! Requests as values (sans-I/O): method, URL, headers and body bytes, ready for any HTTP
//! client. Building a request never touches the network; the [`client`](crate::client) only
//! sends what is built here.

use crate::credentials::Credentials;
use crate::error::{ConfigError, ParsePodError};
use crate::rokt::Batch;
use bytes::Bytes;
use url::Url;

/// Rokt's inbound endpoint (mParticle's S2S API), where the reference sends.
pub const ROKT_INBOUND: &str = "https://inbound.mparticle.com/s2s/v2";

/// The `User-Agent` this library sends.
pub const USER_AGENT: &str = concat!("rokt-capi-rust/", env!("CARGO_PKG_VERSION"));

/// mParticle's limits (docs/behaviour.md §2) that shape bulk requests.
///
/// As data (serde), a missing field takes its default and an unknown one is refused; the
/// limits are judged where they are used ([`PipelineBuilder::build`](crate::PipelineBuilder::build)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Batches per bulk request.
    pub max_items: usize,
    /// Bytes per batch.
    pub max_item_bytes: usize,
    /// Bytes per request body.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_items: 100,
            max_item_bytes: 128 * 1024,
            max_request_bytes: 256 * 1024,
        }
    }
}

impl Limits {
    /// Limits with a different item count per request (clamped to 1..=100).
    pub fn with_max_items(mut self, n: usize) -> Self {
        self.max_items = n.clamp(1, 100);
        self
    }

    /// A batch of `bytes` within the per-batch limit, or the error that says it is not.
    pub(crate) fn check_item(&self, bytes: usize) -> Result<(), crate::Error> {
        match bytes > self.max_item_bytes {
            true => Err(crate::Error::TooLarge {
                bytes,
                limit: self.max_item_bytes,
            }),
            false => Ok(()),
        }
    }

    /// Whether a batch must open a new request rather than join a body that holds `items`
    /// batches and would, with it (commas and brackets counted), be `bytes` long. A first
    /// batch always stays.
    pub(crate) fn starts_new_request(&self, items: usize, bytes: usize) -> bool {
        items > 0 && (items >= self.max_items || bytes > self.max_request_bytes)
    }
}

/// An mParticle data pod, for accounts that are not on Rokt's inbound host.
///
/// Written `us1`, `us2`, `eu1` or `au1` (serde, [`FromStr`](std::str::FromStr) and
/// [`Display`](std::fmt::Display); parsing ignores case):
///
/// ```
/// use rokt_capi::request::Pod;
/// assert_eq!("eu1".parse::<Pod>(), Ok(Pod::Eu1));
/// assert_eq!("EU1".parse::<Pod>(), Ok(Pod::Eu1));
/// let err = "eu2".parse::<Pod>().unwrap_err();
/// assert_eq!(err.to_string(), "unknown pod: expected one of us1, us2, eu1, au1");
/// assert_eq!(Pod::Au1.to_string(), "au1");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Pod {
    /// `s2s.us1.mparticle.com`
    Us1,
    /// `s2s.us2.mparticle.com`
    Us2,
    /// `s2s.eu1.mparticle.com`
    Eu1,
    /// `s2s.au1.mparticle.com`
    Au1,
}

impl Pod {
    /// Every pod, in the order the error for an unknown one lists them.
    pub const ALL: [Pod; 4] = [Pod::Us1, Pod::Us2, Pod::Eu1, Pod::Au1];

    /// Its name: `us1`, `us2`, `eu1` or `au1`.
    pub fn name(self) -> &'static str {
        match self {
            Pod::Us1 => "us1",
            Pod::Us2 => "us2",
            Pod::Eu1 => "eu1",
            Pod::Au1 => "au1",
        }
    }
}

impl std::fmt::Display for Pod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Pod {
    type Err = ParsePodError;

    fn from_str(s: &str) -> Result<Pod, ParsePodError> {
        Pod::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(ParsePodError::new)
    }
}

/// Where requests go: a base URL to which `/events`, `/bulkevents` and
/// `/bulkevents/historical` are appended.
///
/// As text (serde, [`FromStr`](std::str::FromStr)) an endpoint is `rokt` (Rokt's inbound
/// host), a pod name (`us1`, `us2`, `eu1`, `au1`) or a base URL judged as
/// [`custom`](Self::custom) judges it; it is written back as its base URL.
///
/// ```
/// use rokt_capi::request::{Endpoint, Pod};
/// assert_eq!("eu1".parse::<Endpoint>(), Ok(Endpoint::pod(Pod::Eu1)));
/// assert_eq!("rokt".parse::<Endpoint>(), Ok(Endpoint::rokt()));
/// let e: Endpoint = serde_json::from_str(r#""https://example.com/v2""#).unwrap();
/// assert_eq!(serde_json::to_string(&e).unwrap(), r#""https://example.com/v2""#);
/// assert!("http://example.com".parse::<Endpoint>().is_err()); // plain http off loopback
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    base: Url,
}

impl std::str::FromStr for Endpoint {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Endpoint, ConfigError> {
        Endpoint::from_setting(s, &[])
    }
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.base.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Endpoint, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Endpoint::from_setting(&text, &[]).map_err(serde::de::Error::custom)
    }
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint::rokt()
    }
}

impl Endpoint {
    /// Rokt's inbound host, `https://inbound.mparticle.com/s2s/v2`.
    pub fn rokt() -> Endpoint {
        Endpoint {
            base: Url::parse(ROKT_INBOUND).unwrap_or_else(|_| unreachable!("constant URL")),
        }
    }

    /// An mParticle pod, `https://s2s.<pod>.mparticle.com/v2`.
    pub fn pod(pod: Pod) -> Endpoint {
        let host = pod.name();
        Endpoint {
            base: Url::parse(&format!("https://s2s.{host}.mparticle.com/v2"))
                .unwrap_or_else(|_| unreachable!("constant URL")),
        }
    }

    /// Any base URL. It must be `https`, or plain `http` to a loopback address (for tests and
    /// local receivers); it must not carry credentials, a query or a fragment.
    ///
    /// ```
    /// use rokt_capi::request::Endpoint;
    /// assert!(Endpoint::custom("https://example.com/v2").is_ok());
    /// assert!(Endpoint::custom("http://127.0.0.1:8080").is_ok());
    /// assert!(Endpoint::custom("http://example.com").is_err());
    /// assert!(Endpoint::custom("https://user:pw@example.com").is_err());
    /// ```
    pub fn custom(url: &str) -> Result<Endpoint, ConfigError> {
        Endpoint::custom_with(url, &[])
    }

    /// An endpoint as a setting names it: `rokt`, a pod name, or a base URL for
    /// [`custom_with`](Self::custom_with).
    pub(crate) fn from_setting(
        text: &str,
        plain_http_hosts: &[String],
    ) -> Result<Endpoint, ConfigError> {
        let name = text.trim();
        if name.eq_ignore_ascii_case("rokt") {
            return Ok(Endpoint::rokt());
        }
        if let Ok(pod) = name.parse::<Pod>() {
            return Ok(Endpoint::pod(pod));
        }
        Endpoint::custom_with(text, plain_http_hosts)
    }

    /// [`custom`](Self::custom), also accepting plain `http` to the hosts named in
    /// `plain_http_hosts` (the client's explicit opt-in).
    pub(crate) fn custom_with(
        url: &str,
        plain_http_hosts: &[String],
    ) -> Result<Endpoint, ConfigError> {
        let base =
            Url::parse(url).map_err(|e| ConfigError::new("endpoint", format!("not a URL: {e}")))?;
        check_transport(&base, plain_http_hosts, "endpoint")?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(ConfigError::new(
                "endpoint",
                "the URL must not have a query or fragment",
            ));
        }
        Ok(Endpoint { base })
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The path of a request kind under this endpoint, e.g. `/s2s/v2/bulkevents`.
    pub fn path(&self, kind: RequestKind) -> String {
        format!(
            "{}{}",
            self.base.path().trim_end_matches('/'),
            kind.suffix()
        )
    }

    /// The full URL of a request kind.
    pub fn url(&self, kind: RequestKind) -> String {
        let mut url = self.base.clone();
        url.set_path(&self.path(kind));
        url.into()
    }
}

/// Whether `url`'s host is a loopback address (or `localhost`).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The transport policy every URL the client sends to must pass: `https`, or plain `http` to
/// a loopback address or to a host named in `plain_http_hosts` (an explicit opt-in), and no
/// user info. `setting` names what is judged in the error; the error never quotes the URL.
pub(crate) fn check_transport(
    url: &Url,
    plain_http_hosts: &[String],
    setting: &'static str,
) -> Result<(), ConfigError> {
    let opted_in = || {
        url.host_str()
            .is_some_and(|h| plain_http_hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url) || opted_in() => {}
        "http" => {
            return Err(ConfigError::new(
                setting,
                "plain http is allowed only to a loopback address or a host named by \
                 `allow_plain_http_to`",
            ));
        }
        other => {
            return Err(ConfigError::new(
                setting,
                format!("unsupported scheme `{other}`"),
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            setting,
            "the URL must not carry user info; use credentials",
        ));
    }
    Ok(())
}

/// Which of mParticle's ingestion routes a request uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestKind {
    /// One batch: `/events`.
    Single,
    /// Up to 100 batches: `/bulkevents`.
    Bulk,
    /// Batches of events older than 30 days: `/bulkevents/historical`.
    Historical,
}

impl RequestKind {
    fn suffix(self) -> &'static str {
        match self {
            RequestKind::Single => "/events",
            RequestKind::Bulk => "/bulkevents",
            RequestKind::Historical => "/bulkevents/historical",
        }
    }
}

/// An HTTP request ready to send. Cheap to clone (the body is shared), so retries do not copy it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// Always `POST`.
    pub method: &'static str,
    /// The route.
    pub kind: RequestKind,
    /// The full URL.
    pub url: String,
    /// The URL's path (`/s2s/v2/events`).
    pub path: String,
    /// `Authorization`, `Content-Type` and `User-Agent`.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Bytes,
    /// How many batches the body carries.
    pub items: usize,
}

impl std::fmt::Debug for Request {
    /// Shows neither the credentials nor the body (it carries personal data).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("items", &self.items)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A request whose body is already encoded. Without credentials (an offline preview) it
    /// has no `Authorization` header.
    pub fn new(
        endpoint: &Endpoint,
        credentials: Option<&Credentials>,
        kind: RequestKind,
        body: Bytes,
        items: usize,
    ) -> Request {
        let mut headers = Vec::with_capacity(3);
        if let Some(c) = credentials {
            headers.push(("authorization", c.authorization()));
        }
        headers.push(("content-type", "application/json".into()));
        headers.push(("user-agent", USER_AGENT.into()));
        Request {
            method: "POST",
            kind,
            url: endpoint.url(kind),
            path: endpoint.path(kind),
            headers,
            body,
            items,
        }
    }

    /// `POST /events` with one batch.
    pub fn single(
        endpoint: &Endpoint,
        credentials: Option<&Credentials>,
        batch: &Batch,
    ) -> Request {
        Request::new(
            endpoint,
            credentials,
            RequestKind::Single,
            batch.to_json_bytes().into(),
            1,
        )
    }

    /// `POST /bulkevents` (or `/bulkevents/historical`) with already-encoded batches, joined
    /// into a JSON array without decoding them again.
    pub fn bulk<'b>(
        endpoint: &Endpoint,
        credentials: Option<&Credentials>,
        kind: RequestKind,
        items: impl IntoIterator<Item = &'b [u8]>,
    ) -> Request {
        let (body, n) = join_array(items);
        Request::new(endpoint, credentials, kind, body.into(), n)
    }

    /// The value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `[a,b,c]` from encoded JSON items.
pub(crate) fn join_array<'b>(items: impl IntoIterator<Item = &'b [u8]>) -> (Vec<u8>, usize) {
    // Sized exactly up front: a bulk body grows to ~100 KB, and doubling from a guess would
    // copy it several times over.
    let items: Vec<&[u8]> = items.into_iter().collect();
    let size = 2 + items.iter().map(|i| i.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    body.push(b'[');
    let mut n = 0;
    for item in items {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
        n += 1;
    }
    body.push(b']');
    (body, n)
}

/// Groups encoded items into bulk requests within `limits`: at most `max_items` per request
/// and a body of at most `max_request_bytes`. Items must already fit `max_item_bytes`.
/// Returns the index ranges of consecutive items, one range per request.
pub fn plan_bulk(sizes: &[usize], limits: &Limits) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut bytes = 2; // the brackets
    for (i, &size) in sizes.iter().enumerate() {
        let added = size + usize::from(i > start);
        if limits.starts_new_request(i - start, bytes + added) {
            ranges.push(start..i);
            start = i;
            bytes = 2 + size;
        } else {
            bytes += added;
        }
    }
    if start < sizes.len() {
        ranges.push(start..sizes.len());
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_per_endpoint() {
        assert_eq!(Endpoint::rokt().path(RequestKind::Single), "/s2s/v2/events");
        assert_eq!(
            Endpoint::pod(Pod::Eu1).url(RequestKind::Historical),
            "https://s2s.eu1.mparticle.com/v2/bulkevents/historical"
        );
        assert_eq!(
            Endpoint::custom("http://127.0.0.1:9/")
                .unwrap()
                .path(RequestKind::Bulk),
            "/bulkevents"
        );
    }

    #[test]
    fn plans_split_by_count_and_bytes() {
        let limits = Limits::default();
        let sizes = vec![10; 250];
        let plan = plan_bulk(&sizes, &limits);
        assert_eq!(plan, vec![0..100, 100..200, 200..250]);
        let big = vec![100 * 1024; 5];
        let plan = plan_bulk(&big, &limits);
        assert_eq!(plan, vec![0..2, 2..4, 4..5]);
        for r in plan {
            let body: usize = 2 + big[r.clone()].iter().sum::<usize>() + r.len() - 1;
            assert!(body <= limits.max_request_bytes);
        }
        assert!(plan_bulk(&[], &limits).is_empty());
    }

    #[test]
    fn debug_hides_auth_and_body() {
        let r = Request::bulk(
            &Endpoint::rokt(),
            Some(&Credentials::new("k", "secret")),
            RequestKind::Bulk,
            [&b"{\"email\":\"x\"}"[..]],
        );
        let d = format!("{r:?}");
        assert!(
            !d.contains("secret")
                && !d.contains("email")
                && !d.contains(&Credentials::new("k", "secret").authorization())
        );
        assert_eq!(&r.body[..], b"[{\"email\":\"x\"}]");
    }
}

#[cfg(test)]
mod join_tests {
    use super::join_array;

    #[test]
    fn joins_items_into_one_exactly_sized_array() {
        let (body, n) = join_array([&b"{}"[..], b"{\"a\":1}", b"[]"]);
        assert_eq!((body.as_slice(), n), (&b"[{},{\"a\":1},[]]"[..], 3));
        assert!(body.capacity() <= body.len() + 1);
        let (empty, n) = join_array(std::iter::empty());
        assert_eq!((empty.as_slice(), n), (&b"[]"[..], 0));
    }
}
