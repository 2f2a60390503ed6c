//! A client's settings as plain data: read from a configuration file or from the `ROKT_*`
//! environment variables, handed to [`ClientBuilder::settings`].

use super::{ClientBuilder, HISTORICAL_AFTER, RetryPolicy};
use crate::Json;
use crate::error::{ConfigError, Error};
use crate::mapping::Preset;
use crate::request::{Endpoint, Limits};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::time::Duration;

/// The environment variable holding the API key, read by [`ClientSettings::from_env`].
pub const ENV_API_KEY: &str = "ROKT_API_KEY";
/// The environment variable holding the API secret, read by [`ClientSettings::from_env`].
pub const ENV_API_SECRET: &str = "ROKT_API_SECRET";
/// The environment variable naming the endpoint (optional): `rokt`, a pod name (`us1`, `us2`,
/// `eu1`, `au1`) or a base URL.
pub const ENV_ENDPOINT: &str = "ROKT_ENDPOINT";

/// Every setting of a [`ClientBuilder`] that is data (not a clock or a prebuilt pipeline), to
/// keep in a configuration file and hand to [`ClientBuilder::settings`]. Missing fields take
/// their defaults, unknown ones are refused, durations are written `"250ms"`, `"30s"`,
/// `"30days"`, and nothing is judged until [`build`](ClientBuilder::build), whose errors name
/// the setting.
///
/// **Secrets**: `api_key` and `api_secret` are read but never written: `Serialize` leaves
/// them out, `Debug` only says whether they are set, and a user name or password in `proxy`
/// or `endpoint` is written as `redacted`. Keep them in the environment
/// ([`from_env`](Self::from_env)) or a secret store rather than in the file.
///
/// A service's configuration, in JSON:
///
/// ```
/// use rokt_capi::client::{Client, ClientSettings, Dispatcher, DispatcherSettings};
/// use std::time::Duration;
///
/// #[derive(serde::Deserialize)]
/// struct Config {
///     rokt: ClientSettings,
///     dispatcher: DispatcherSettings,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rokt_capi::Error> {
/// let text = r#"{
///   "rokt": {
///     "endpoint": "eu1",
///     "request_timeout": "10s",
///     "retry": {"max_attempts": 3, "base_delay": "250ms", "deadline": "30s"},
///     "limits": {"max_items": 50},
///     "preset": "send",
///     "overrides": {"ip": {"@path": "$.context.ip"}}
///   },
///   "dispatcher": {"concurrency": 8, "flush_interval": "250ms", "rate_limit": 270.0}
/// }"#;
/// let config: Config = serde_json::from_str(text).unwrap();
/// assert_eq!(config.rokt.request_timeout, Duration::from_secs(10));
/// assert_eq!(config.rokt.retry.max_attempts, 3);
///
/// // The secrets come from elsewhere (here literals; `ClientSettings::from_env` reads them).
/// let client = Client::builder()
///     .settings(config.rokt)
///     .api_key("my-key")
///     .api_secret("my-secret")
///     .build()?;
/// assert_eq!(client.endpoint().base().as_str(), "https://s2s.eu1.mparticle.com/v2");
/// let dispatcher = Dispatcher::builder(client).settings(config.dispatcher).build()?;
/// dispatcher.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// The same in TOML (what the crate's tests read with the `toml` crate; turn on its
/// `preserve_order` feature, or it reads the overrides' members, and so the attributes they
/// send, in sorted order):
///
/// ```toml
/// [rokt]
/// endpoint = "eu1"
/// request_timeout = "10s"
/// preset = "send"
/// retry = { max_attempts = 3, base_delay = "250ms", deadline = "30s" }
/// limits = { max_items = 50 }
/// overrides = { ip = { "@path" = "$.context.ip" } }
///
/// [dispatcher]
/// concurrency = 8
/// flush_interval = "250ms"
/// rate_limit = 270.0
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientSettings {
    /// The API key: see [`ClientBuilder::api_key`]. Never serialized.
    #[serde(skip_serializing)]
    pub api_key: Option<String>,
    /// The API secret: see [`ClientBuilder::api_secret`]. Never serialized.
    #[serde(skip_serializing)]
    pub api_secret: Option<String>,
    /// `rokt`, a pod name (`us1`, `us2`, `eu1`, `au1`) or a base URL, judged by `build` as
    /// [`ClientBuilder::endpoint_url`] judges it (default: Rokt's inbound host).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "redacted_url"
    )]
    pub endpoint: Option<String>,
    /// Hosts plain `http` may go to: see [`ClientBuilder::allow_plain_http_to`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_plain_http_to: Vec<String>,
    /// An egress proxy URL: see [`ClientBuilder::proxy`].
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "redacted_url"
    )]
    pub proxy: Option<String>,
    /// See [`ClientBuilder::connect_timeout`] (default `"10s"`).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// See [`ClientBuilder::request_timeout`] (default `"30s"`).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// See [`ClientBuilder::retry`].
    pub retry: RetryPolicy,
    /// See [`ClientBuilder::user_agent`] (default the crate's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// `send` or `sync_engage_audience`: see [`ClientBuilder::preset`] (default `send`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// Mapping overrides in Segment's JSON, kept in the order they are written (the order
    /// attributes are sent in): see [`ClientBuilder::overrides`].
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::json::owned_option"
    )]
    pub overrides: Option<Json<'static>>,
    /// Bulk size limits: see [`ClientBuilder::limits`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// See [`ClientBuilder::historical_after`] (default `"30days"`).
    #[serde(with = "humantime_serde")]
    pub historical_after: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            api_key: None,
            api_secret: None,
            endpoint: None,
            allow_plain_http_to: Vec::new(),
            proxy: None,
            connect_timeout: super::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: super::DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
            user_agent: None,
            preset: None,
            overrides: None,
            limits: None,
            historical_after: HISTORICAL_AFTER,
        }
    }
}

impl std::fmt::Debug for ClientSettings {
    /// Shows whether the secrets are set, never their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("has_api_key", &self.api_key.is_some())
            .field("has_api_secret", &self.api_secret.is_some())
            .field("endpoint", &self.endpoint.as_deref().map(redact))
            .field("allow_plain_http_to", &self.allow_plain_http_to)
            .field("proxy", &self.proxy.as_deref().map(redact))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .field("preset", &self.preset)
            .field("has_overrides", &self.overrides.is_some())
            .field("limits", &self.limits)
            .field("historical_after", &self.historical_after)
            .finish()
    }
}

/// A URL with any user name and password replaced by `redacted`; text that is not a URL is
/// kept only when it has no `@` (a pod name, `rokt`).
fn redact(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("redacted");
            let _ = url.set_password(Some("redacted"));
            url.into()
        }
        Ok(_) => text.to_owned(),
        Err(_) if text.contains('@') => "redacted".to_owned(),
        Err(_) => text.to_owned(),
    }
}

// serde's `serialize_with` passes the field by reference.
#[allow(clippy::ref_option)]
fn redacted_url<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(u) => s.serialize_str(&redact(u)),
        None => s.serialize_none(),
    }
}

impl ClientSettings {
    /// The defaults with the credentials and endpoint from the environment:
    /// [`ROKT_API_KEY`](ENV_API_KEY) and [`ROKT_API_SECRET`](ENV_API_SECRET) (required), and
    /// [`ROKT_ENDPOINT`](ENV_ENDPOINT) (optional: `rokt`, a pod name or a base URL).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] whose [`setting`](ConfigError::setting) is the variable's name, when
    /// a required one is missing or empty, one is not Unicode, or the endpoint is not valid.
    /// The message never contains a variable's value.
    pub fn from_env() -> Result<ClientSettings, Error> {
        ClientSettings::from_lookup(|name| std::env::var_os(name))
    }

    /// Like [`from_env`](Self::from_env), reading each variable from `lookup` instead of the
    /// process environment (for tests, or variables kept elsewhere).
    ///
    /// ```
    /// use rokt_capi::client::ClientSettings;
    /// let vars = [("ROKT_API_KEY", "key"), ("ROKT_API_SECRET", "s3cret"), ("ROKT_ENDPOINT", "eu1")];
    /// let lookup = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into());
    /// let settings = ClientSettings::from_lookup(lookup).unwrap();
    /// assert_eq!(settings.endpoint.as_deref(), Some("eu1"));
    ///
    /// let err = ClientSettings::from_lookup(|_| None).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid setting `ROKT_API_KEY`: the environment variable is not set");
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<ClientSettings, Error> {
        let read = |name: &'static str| -> Result<Option<String>, ConfigError> {
            match lookup(name) {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v) => v.into_string().map(Some).map_err(|_| {
                    ConfigError::new(name, "the environment variable is not valid Unicode")
                }),
            }
        };
        let required = |name: &'static str| {
            read(name)?.ok_or_else(|| ConfigError::new(name, "the environment variable is not set"))
        };
        let api_key = required(ENV_API_KEY)?;
        let api_secret = required(ENV_API_SECRET)?;
        let endpoint = read(ENV_ENDPOINT)?;
        if let Some(e) = &endpoint {
            Endpoint::from_setting(e, &[])
                .map_err(|err| ConfigError::new(ENV_ENDPOINT, err.message))?;
        }
        Ok(ClientSettings {
            api_key: Some(api_key),
            api_secret: Some(api_secret),
            endpoint,
            ..ClientSettings::default()
        })
    }
}

impl ClientBuilder {
    /// Takes every setting in `settings`, replacing what was set before by the methods of the
    /// same names (the API key and secret only when `settings` has them, so they can come
    /// from elsewhere). A clock, a pipeline and credentials given as [`Credentials`] are kept.
    /// Nothing is checked until [`build`](Self::build).
    ///
    /// [`Credentials`]: crate::Credentials
    pub fn settings(mut self, settings: ClientSettings) -> Self {
        let ClientSettings {
            api_key,
            api_secret,
            endpoint,
            allow_plain_http_to,
            proxy,
            connect_timeout,
            request_timeout,
            retry,
            user_agent,
            preset,
            overrides,
            limits,
            historical_after,
        } = settings;
        if api_key.is_some() {
            self.api_key = api_key;
        }
        if api_secret.is_some() {
            self.api_secret = api_secret;
        }
        self.endpoint = endpoint.map(super::EndpointSetting::Url);
        self.plain_http_hosts = allow_plain_http_to;
        self.proxy = proxy;
        self.connect_timeout = connect_timeout;
        self.request_timeout = request_timeout;
        self.retry = retry;
        self.user_agent = user_agent;
        if let Some(preset) = preset {
            self = self.preset(preset);
        }
        if let Some(overrides) = overrides {
            self = self.overrides(overrides);
        }
        if let Some(limits) = limits {
            self = self.limits(limits);
        }
        self.historical_after = historical_after;
        self
    }

    /// A builder with the credentials and endpoint from the `ROKT_*` environment variables
    /// (see [`ClientSettings::from_env`]), to add other settings to.
    ///
    /// # Errors
    ///
    /// As [`ClientSettings::from_env`]: an [`Error::Config`] naming the variable.
    pub fn from_env() -> Result<ClientBuilder, Error> {
        Ok(ClientBuilder::default().settings(ClientSettings::from_env()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn env_errors_name_the_variable_and_never_its_value() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[], "ROKT_API_KEY"),
            (&[("ROKT_API_KEY", "k-value")], "ROKT_API_SECRET"),
            (
                &[("ROKT_API_KEY", "k-value"), ("ROKT_API_SECRET", "")],
                "ROKT_API_SECRET",
            ),
            (
                &[
                    ("ROKT_API_KEY", "k-value"),
                    ("ROKT_API_SECRET", "s3cret-value"),
                    ("ROKT_ENDPOINT", "http://s3cret-value.example"),
                ],
                "ROKT_ENDPOINT",
            ),
        ];
        for (vars, variable) in cases {
            let err = ClientSettings::from_lookup(lookup(vars)).unwrap_err();
            let Error::Config(config) = &err else {
                panic!("a config error: {err:?}")
            };
            assert_eq!(config.setting, variable);
            let printed = format!("{err} {err:?}");
            assert!(!printed.contains("value"), "{printed}");
        }
    }

    #[test]
    fn env_settings_build_a_client_for_the_named_pod() {
        let vars = [
            ("ROKT_API_KEY", "k"),
            ("ROKT_API_SECRET", "s"),
            ("ROKT_ENDPOINT", "AU1"),
        ];
        let settings = ClientSettings::from_lookup(lookup(&vars)).unwrap();
        let client = ClientBuilder::default().settings(settings).build().unwrap();
        assert_eq!(
            client.endpoint().base().as_str(),
            "https://s2s.au1.mparticle.com/v2"
        );
    }

    #[test]
    fn secrets_appear_in_no_debug_and_no_serialized_output() {
        let settings = ClientSettings {
            api_key: Some("key-s3cret".into()),
            api_secret: Some("secret-s3cret".into()),
            proxy: Some("http://user-s3cret:pw-s3cret@proxy.internal:3128".into()),
            endpoint: Some("https://u-s3cret@example.com/v2".into()),
            ..ClientSettings::default()
        };
        let printed = format!("{settings:?} {}", serde_json::to_string(&settings).unwrap());
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("proxy.internal:3128"), "{printed}");
        let builder = ClientBuilder::default().settings(settings);
        assert!(!format!("{builder:?}").contains("s3cret"));
        let err = builder.build().unwrap_err();
        assert!(!format!("{err} {err:?}").contains("s3cret"), "{err}");
    }

    #[test]
    fn settings_round_trip_through_json_without_the_secrets() {
        let settings = ClientSettings {
            api_key: Some("k".into()),
            api_secret: Some("s".into()),
            endpoint: Some("eu1".into()),
            request_timeout: Duration::from_millis(2500),
            preset: Some(Preset::SyncEngageAudience),
            limits: Some(Limits::default().with_max_items(10)),
            ..ClientSettings::default()
        };
        let text = serde_json::to_string(&settings).unwrap();
        assert!(text.contains(r#""request_timeout":"2s 500ms""#), "{text}");
        assert!(text.contains(r#""historical_after":"30days""#), "{text}");
        let back: ClientSettings = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back,
            ClientSettings {
                api_key: None,
                api_secret: None,
                ..settings
            }
        );
    }

    #[test]
    fn bad_values_are_judged_at_build_naming_the_setting() {
        let cases = [
            (r#"{"request_timeout": "0s"}"#, "request_timeout"),
            (r#"{"retry": {"max_attempts": 0}}"#, "retry"),
            (r#"{"endpoint": "http://example.com"}"#, "endpoint"),
            (r#"{"limits": {"max_items": 0}}"#, "limits"),
            (r#"{"proxy": "ftp://proxy"}"#, "proxy"),
        ];
        for (text, setting) in cases {
            let settings: ClientSettings = serde_json::from_str(text).unwrap();
            let err = ClientBuilder::default()
                .api_key("k")
                .api_secret("s")
                .settings(settings)
                .build()
                .unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{setting}`")),
                "{text}: {err}"
            );
        }
        let plain = ClientSettings {
            endpoint: Some("http://gateway.internal".into()),
            allow_plain_http_to: vec!["gateway.internal".into()],
            api_key: Some("k".into()),
            api_secret: Some("s".into()),
            ..ClientSettings::default()
        };
        assert!(ClientBuilder::default().settings(plain).build().is_ok());
    }

    #[test]
    fn overrides_keep_the_order_they_are_written_in() {
        let text =
            r#"{"overrides":{"zeta":{"@path":"$.context.ip"},"alpha":{"@path":"$.userId"}}}"#;
        let settings: ClientSettings = serde_json::from_str(text).unwrap();
        let written = serde_json::to_string(&settings).unwrap();
        let zeta = written.find("zeta").unwrap();
        assert!(zeta < written.find("alpha").unwrap(), "{written}");
        let toml_text = toml::to_string(&settings).unwrap();
        let toml_back: ClientSettings = toml::from_str(&toml_text).unwrap();
        assert_eq!(
            toml_back.overrides.as_ref().map(Json::to_value),
            settings.overrides.as_ref().map(Json::to_value),
            "{toml_text}"
        );
        assert_eq!(toml_back, settings, "{toml_text}");
    }
}
