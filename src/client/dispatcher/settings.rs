//! A dispatcher's settings as plain data, to read from a configuration file.

use super::DispatcherBuilder;
use crate::request::RequestKind;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Every setting of a [`DispatcherBuilder`] that is data (not the client, the outcome sink,
/// the spool or the rtid memory), to keep in a configuration file and hand to
/// [`DispatcherBuilder::settings`]. Missing fields take their defaults, unknown ones are
/// refused, durations are written as `"500ms"`, `"5s"` or `"1h 30m"`, and nothing is judged
/// until [`build`](DispatcherBuilder::build), whose errors name the setting (as the
/// builder's own methods name it).
///
/// ```
/// use rokt_capi::client::DispatcherSettings;
/// use std::time::Duration;
/// let settings: DispatcherSettings = serde_json::from_str(r#"{
///     "queue_capacity": 50000,
///     "concurrency": 8,
///     "flush_interval": "250ms",
///     "rate_limit": 270.0,
///     "max_batch_items": 50
/// }"#).unwrap();
/// assert_eq!(settings.flush_interval, Duration::from_millis(250));
/// assert_eq!(settings.kind, None); // chosen by each event's age
/// assert_eq!(settings.spool_retry_window, None); // only with a spool
/// let again = serde_json::to_string(&settings).unwrap();
/// assert!(again.contains(r#""flush_interval":"250ms""#));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DispatcherSettings {
    /// See [`DispatcherBuilder::queue_capacity`] (default 10 000).
    pub queue_capacity: usize,
    /// See [`DispatcherBuilder::concurrency`] (default 4).
    pub concurrency: usize,
    /// See [`DispatcherBuilder::flush_interval`] (default `"500ms"`).
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Events (batches) per second: see [`DispatcherBuilder::rate_limit`] (default none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    /// `"single"`, `"bulk"` or `"historical"`: see [`DispatcherBuilder::kind`] (default
    /// none: by each event's age).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<RequestKind>,
    /// See [`DispatcherBuilder::max_batch_items`] (default none: the client's limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_items: Option<usize>,
    /// See [`DispatcherBuilder::spool_retry_window`] (default none: 24 hours, with a spool).
    /// Setting it without a spool is an error at `build`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub spool_retry_window: Option<Duration>,
    /// See [`DispatcherBuilder::spool_max_backoff`] (default none: 60 s, with a spool).
    /// Setting it without a spool is an error at `build`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub spool_max_backoff: Option<Duration>,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        DispatcherSettings {
            queue_capacity: 10_000,
            concurrency: 4,
            flush_interval: Duration::from_millis(500),
            rate_limit: None,
            kind: None,
            max_batch_items: None,
            spool_retry_window: None,
            spool_max_backoff: None,
        }
    }
}

impl DispatcherBuilder {
    /// Takes every setting in `settings`, replacing what was set before by the methods of the
    /// same names; the client, outcome sink, spool and rtid memory are kept. Nothing is
    /// checked until [`build`](Self::build).
    ///
    /// ```
    /// # use rokt_capi::client::{Client, Dispatcher, DispatcherSettings};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let client = Client::builder().api_key("k").api_secret("s").endpoint_url("http://127.0.0.1:9").build()?;
    /// let settings: DispatcherSettings = serde_json::from_str(r#"{"concurrency": 0}"#)?;
    /// let err = Dispatcher::builder(client).settings(settings).build().unwrap_err();
    /// assert!(err.to_string().contains("`concurrency`"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn settings(mut self, settings: DispatcherSettings) -> Self {
        let DispatcherSettings {
            queue_capacity,
            concurrency,
            flush_interval,
            rate_limit,
            kind,
            max_batch_items,
            spool_retry_window,
            spool_max_backoff,
        } = settings;
        self.capacity = queue_capacity;
        self.concurrency = concurrency;
        self.flush_interval = flush_interval;
        self.rate = rate_limit;
        self.kind = kind;
        self.max_items = max_batch_items;
        if let Some(window) = spool_retry_window {
            self = self.spool_retry_window(window);
        }
        if let Some(backoff) = spool_max_backoff {
            self = self.spool_max_backoff(backoff);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;

    fn client() -> Client {
        Client::builder()
            .api_key("k")
            .api_secret("s")
            .endpoint_url("http://127.0.0.1:9")
            .build()
            .unwrap()
    }

    #[test]
    fn the_default_settings_are_the_builders_defaults() {
        let fresh = crate::client::Dispatcher::builder(client());
        let d = DispatcherSettings::default();
        assert_eq!(
            (fresh.capacity, fresh.concurrency, fresh.flush_interval),
            (d.queue_capacity, d.concurrency, d.flush_interval)
        );
        assert_eq!(
            (fresh.rate, fresh.kind, fresh.max_items),
            (None, None, None)
        );
        assert!(fresh.spool.is_none());
        let applied = crate::client::Dispatcher::builder(client()).settings(d);
        assert!(applied.spool.is_none(), "no spool settings unless given");
    }

    #[test]
    fn settings_replace_what_the_methods_set() {
        let settings = DispatcherSettings {
            queue_capacity: 7,
            kind: Some(RequestKind::Single),
            spool_max_backoff: Some(Duration::from_secs(5)),
            ..DispatcherSettings::default()
        };
        let b = crate::client::Dispatcher::builder(client())
            .concurrency(9)
            .settings(settings);
        assert_eq!((b.capacity, b.concurrency), (7, 4));
        assert_eq!(b.kind, Some(RequestKind::Single));
        let spool = b.spool.as_ref().unwrap();
        assert_eq!(spool.max_backoff, Duration::from_secs(5));
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_refused_by_name() {
        let err = serde_json::from_str::<DispatcherSettings>(r#"{"concurency": 3}"#).unwrap_err();
        assert!(err.to_string().contains("concurency"), "{err}");
        let err =
            serde_json::from_str::<DispatcherSettings>(r#"{"flush_interval": 500}"#).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        let err = serde_json::from_str::<DispatcherSettings>(r#"{"flush_interval": "5 parsecs"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("expected a duration"), "{err}");
    }

    #[tokio::test]
    async fn spool_settings_without_a_spool_fail_at_build() {
        let settings = DispatcherSettings {
            spool_retry_window: Some(Duration::from_secs(60)),
            ..DispatcherSettings::default()
        };
        let err = crate::client::Dispatcher::builder(client())
            .settings(settings)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("spool"), "{err}");
    }
}
