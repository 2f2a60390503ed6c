//! A destination configuration: a list of subscriptions, each a trigger plus a preset or
//! mapping, as Segment's UI lists them. Routing an event yields the batch of every
//! subscription it matches.
//!
//! ```
//! use rokt_capi::subscription::Destination;
//! let config = r#"{"subscriptions": [
//!     {"name": "Conversions", "trigger": "type = \"track\" and event = \"Order Completed\"", "preset": "send"},
//!     {"name": "Engage audiences", "trigger": "type = \"identify\"", "preset": "sync_engage_audience",
//!      "mapping": {"hashingConfiguration": {"hashEmail": true}}}
//! ]}"#;
//! let destination = Destination::from_json(config).unwrap();
//! let event = serde_json::json!({"type": "identify", "userId": "u-1", "messageId": "m-1",
//!     "timestamp": "2026-03-04T05:06:07Z", "traits": {"email": "a@b.co"}});
//! let routed = destination.route(&event);
//! assert_eq!(routed.len(), 1);
//! assert_eq!(routed[0].subscription, "Engage audiences");
//! assert!(routed[0].batch.as_ref().unwrap().user_identities.other.is_some());
//! ```

use crate::error::Error;
use crate::json::{DocValue, Json};
use crate::mapping::{Preset, SendMapping};
use crate::pipeline::{Encoded, Pipeline};
use crate::rokt::Batch;
use crate::segment::sealed::Reader;
use crate::segment::{AsEvent, check_mappable};
use crate::trigger::Trigger;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One subscription as configured: when it fires and how it maps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Subscription {
    /// A name for reports and logs.
    pub name: String,
    /// When it fires, in Segment's subscription syntax.
    pub trigger: Trigger,
    /// The preset its mapping starts from.
    #[serde(default = "default_preset")]
    pub preset: Preset,
    /// Overrides in Segment's mapping JSON, each top-level key replacing that field, in the
    /// order of the configuration's text.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::json::owned_option"
    )]
    pub mapping: Option<Json<'static>>,
    /// Disabled subscriptions are kept in the configuration but never fire.
    #[serde(default = "enabled", skip_serializing_if = "is_enabled")]
    pub enabled: bool,
}

fn default_preset() -> Preset {
    Preset::Send
}
fn enabled() -> bool {
    true
}
fn is_enabled(b: &bool) -> bool {
    *b
}

impl Subscription {
    /// A subscription for a preset with its own trigger and no overrides.
    pub fn preset(name: impl Into<String>, preset: Preset) -> Result<Subscription, Error> {
        let trigger = Trigger::parse(preset.trigger())
            .map_err(|e| crate::error::ConfigError::new("trigger", e.to_string()))?;
        Ok(Subscription {
            name: name.into(),
            trigger,
            preset,
            mapping: None,
            enabled: true,
        })
    }

    /// A subscription with a trigger and overrides.
    pub fn new(
        name: impl Into<String>,
        trigger: Trigger,
        preset: Preset,
        mapping: Option<Json<'static>>,
    ) -> Subscription {
        Subscription {
            name: name.into(),
            trigger,
            preset,
            mapping,
            enabled: true,
        }
    }
}

/// The configuration as saved: the subscriptions, in order.
///
/// Loading is lenient by default, as Segment is: a trigger Segment accepts is accepted, even
/// one cut short (`type = "track" and` matches every track call there). A loader that wants
/// to hear of such triggers uses the strict forms, [`Destination::from_json_strict`] and
/// [`Destination::new_strict`], or [`check_strict`](Self::check_strict).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DestinationConfig {
    /// The subscriptions.
    pub subscriptions: Vec<Subscription>,
}

impl DestinationConfig {
    /// Checks every subscription's trigger (disabled ones too) with
    /// [`Trigger::check_strict`].
    ///
    /// # Errors
    ///
    /// The first trigger refused: an [`Error::Config`] for the setting `trigger` whose message
    /// names the subscription and says what is wrong and where.
    pub fn check_strict(&self) -> Result<(), Error> {
        for s in &self.subscriptions {
            s.trigger.check_strict().map_err(|e| {
                crate::error::ConfigError::new(
                    "trigger",
                    format!("subscription `{}`: {e} (strict loading)", s.name),
                )
            })?;
        }
        Ok(())
    }
}

/// One subscription's encoded batch for an event, or why it has none.
pub(crate) type EncodedRoute = (Arc<str>, Result<Encoded, Error>);

/// A compiled destination: every subscription's trigger and mapping ready to apply.
#[derive(Clone, Debug)]
pub struct Destination {
    config: DestinationConfig,
    /// The enabled subscriptions; the name is shared with every outcome that names it.
    compiled: Vec<(Arc<str>, Trigger, Pipeline)>,
}

/// The outcome of one matching subscription for one event.
#[derive(Debug)]
#[non_exhaustive]
pub struct Routed<'d> {
    /// The subscription's name.
    pub subscription: &'d str,
    /// The batch, or why the event was rejected under this subscription's mapping.
    pub batch: Result<Batch, Error>,
}

impl Routed<'_> {
    /// The one outcome of an event rejected before any subscription saw it (text that is not
    /// JSON, or not an object): no subscription name, and the reason.
    pub fn rejected(error: Error) -> Routed<'static> {
        Routed {
            subscription: "",
            batch: Err(error),
        }
    }
}

impl Destination {
    /// Compiles a configuration: every trigger was parsed when it was read; every mapping is
    /// compiled here, and an error names the subscription.
    pub fn new(config: DestinationConfig) -> Result<Destination, Error> {
        Self::with_pipeline(config, Pipeline::builder())
    }

    /// Like [`new`](Self::new), with the credentials, endpoint and limits of `base` applied to
    /// every subscription's pipeline.
    pub fn with_pipeline(
        config: DestinationConfig,
        base: crate::PipelineBuilder,
    ) -> Result<Destination, Error> {
        let mut compiled = Vec::with_capacity(config.subscriptions.len());
        for s in config.subscriptions.iter().filter(|s| s.enabled) {
            let overrides = s.mapping.clone().unwrap_or(Json::Object(Vec::new()));
            let mapping = SendMapping::new(s.preset, overrides).map_err(|mut e| {
                e.location = format!("subscription `{}` {}", s.name, e.location);
                Error::Mapping(e)
            })?;
            let pipeline = base.clone().mapping(mapping).build()?;
            compiled.push((Arc::from(s.name.as_str()), s.trigger.clone(), pipeline));
        }
        Ok(Destination { config, compiled })
    }

    /// The two presets, each with its own trigger: what Segment sets up by default.
    pub fn presets() -> Destination {
        let subscriptions = [Preset::Send, Preset::SyncEngageAudience]
            .into_iter()
            .filter_map(|p| Subscription::preset(p.name(), p).ok())
            .collect();
        Destination::new(DestinationConfig { subscriptions })
            .unwrap_or_else(|e| unreachable!("the presets compile: {e}"))
    }

    /// Like [`new`](Self::new), refusing first any trigger that
    /// [`DestinationConfig::check_strict`] refuses.
    pub fn new_strict(config: DestinationConfig) -> Result<Destination, Error> {
        config.check_strict()?;
        Destination::new(config)
    }

    /// Like [`from_json`](Self::from_json), refusing any trigger that Segment accepts but
    /// that is cut short or suspicious ([`Trigger::check_strict`] lists what), with an
    /// [`Error::Config`] naming the subscription.
    ///
    /// ```
    /// use rokt_capi::subscription::Destination;
    /// let config = r#"{"subscriptions": [
    ///     {"name": "Orders", "trigger": "type = \"track\" and", "preset": "send"}
    /// ]}"#;
    /// assert!(Destination::from_json(config).is_ok()); // as Segment: every track call
    /// let err = Destination::from_json_strict(config).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid setting `trigger`: subscription `Orders`: the trigger ends after `and`: \
    ///      a condition is missing at column 19 (strict loading)"
    /// );
    /// ```
    pub fn from_json_strict(text: &str) -> Result<Destination, Error> {
        Destination::new_strict(Destination::read_config(text)?)
    }

    /// Reads and compiles a configuration from JSON.
    pub fn from_json(text: &str) -> Result<Destination, Error> {
        Destination::new(Destination::read_config(text)?)
    }

    fn read_config(text: &str) -> Result<DestinationConfig, Error> {
        serde_json::from_str(text)
            .map_err(|e| crate::error::ConfigError::new("subscriptions", e.to_string()).into())
    }

    /// The configuration as JSON, to save.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.config).unwrap_or_default()
    }

    /// The configuration.
    pub fn config(&self) -> &DestinationConfig {
        &self.config
    }

    /// The enabled subscriptions' pipelines, by name.
    pub fn pipelines(&self) -> impl Iterator<Item = (&str, &Trigger, &Pipeline)> {
        self.compiled.iter().map(|(n, t, p)| (&**n, t, p))
    }

    /// The names of the subscriptions an event matches.
    pub fn matching(&self, event: impl AsEvent) -> Vec<&str> {
        let matching = event.with_json(|doc| {
            Ok(self
                .compiled
                .iter()
                .filter(|(_, t, _)| t.matches(doc))
                .map(|(n, _, _)| &**n)
                .collect())
        });
        // Text that is not JSON matches nothing.
        matching.unwrap_or_default()
    }

    /// The batch of every subscription the event matches, in configuration order. An event
    /// that is not a Segment event gives a single rejection; one that matches nothing gives an
    /// empty list.
    pub fn route(&self, event: impl AsEvent) -> Vec<Routed<'_>> {
        let routed = event.with_json(|doc| {
            check_mappable(doc)?;
            Ok(self
                .compiled
                .iter()
                .filter(|(_, t, _)| t.matches(doc))
                .map(|(name, _, pipeline)| Routed {
                    subscription: name,
                    batch: pipeline.batch(doc),
                })
                .collect())
        });
        routed.unwrap_or_else(|e| vec![Routed::rejected(e)])
    }

    /// How many subscriptions are enabled: the most routes one event can take.
    pub fn len(&self) -> usize {
        self.compiled.len()
    }

    /// Whether no subscription is enabled (every event is then routed nowhere).
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// What the dispatcher queues: [`route`](Self::route) with each batch encoded by its
    /// subscription's pipeline (the direct path where it applies). `Err` when the event is not
    /// a Segment event at all. A `Value` or a typed event is read in place, triggers and all,
    /// when every matching subscription's plan is sure of it; else its document is made once.
    pub(crate) fn encoded(&self, event: impl AsEvent) -> Result<Vec<EncodedRoute>, Error> {
        struct Routes<'d>(&'d Destination);
        impl Reader for Routes<'_> {
            type Output = Vec<EncodedRoute>;
            fn direct<'v>(&mut self, event: impl DocValue<'v>) -> Option<Self::Output> {
                if !event.is_object() {
                    return None;
                }
                let mut routes = Vec::new();
                for (name, trigger, pipeline) in &self.0.compiled {
                    if trigger.matches_value(event) {
                        routes.push((name.clone(), pipeline.encoded_direct(event)?));
                    }
                }
                Some(routes)
            }
            fn general(self, doc: &Json<'_>) -> Result<Self::Output, Error> {
                check_mappable(doc)?;
                Ok(self
                    .0
                    .compiled
                    .iter()
                    .filter(|(_, t, _)| t.matches_value(doc))
                    .map(|(name, _, pipeline)| (name.clone(), pipeline.encoded(doc)))
                    .collect())
            }
            /// A parsed event goes straight to the general path: each pipeline there still
            /// tries its direct plan, and the triggers are evaluated once.
            fn parsed(self, doc: &Json<'_>) -> Result<Self::Output, Error> {
                self.general(doc)
            }
        }
        event.read(Routes(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_the_same_configuration() {
        let d = Destination::presets();
        let again = Destination::from_json(&d.to_json()).unwrap();
        assert_eq!(again.config(), d.config());
        assert_eq!(again.pipelines().count(), 2);
    }

    #[test]
    fn routes_to_every_matching_subscription() {
        let d = Destination::from_json(
            r#"{"subscriptions":[
                {"name":"all tracks","trigger":"type = \"track\""},
                {"name":"orders","trigger":"event = \"Order Completed\"","mapping":{"ip":{"@path":"$.context.ip"}}},
                {"name":"off","trigger":"type = \"track\"","enabled":false}
            ]}"#,
        )
        .unwrap();
        let event = serde_json::json!({"type":"track","event":"Order Completed","userId":"u","messageId":"m","timestamp":"2026-01-01T00:00:00Z"});
        let routed = d.route(&event);
        let names: Vec<&str> = routed.iter().map(|r| r.subscription).collect();
        assert_eq!(names, ["all tracks", "orders"]);
        assert!(routed.iter().all(|r| r.batch.is_ok()));
        assert!(d.route(serde_json::json!({"type":"page"})).is_empty());
        // Mapping never reads `type`: an event without one is routed by its triggers alone.
        assert!(d.route(serde_json::json!({"no":"type"})).is_empty());
        assert!(d.route(serde_json::json!([1]))[0].batch.is_err());
    }

    #[test]
    fn errors_name_the_subscription() {
        let err = Destination::from_json(r#"{"subscriptions":[{"name":"bad","trigger":"type = \"track\"","mapping":{"ip":{"@nope":1}}}]}"#).unwrap_err();
        assert!(err.to_string().contains("subscription `bad`"), "{err}");
        let err =
            Destination::from_json(r#"{"subscriptions":[{"name":"x","trigger":"type = (("}]}"#)
                .unwrap_err();
        assert!(
            err.to_string().contains("trigger") || err.to_string().contains("subscriptions"),
            "{err}"
        );
    }

    #[test]
    fn strict_loading_names_the_subscription_and_the_default_stays_lenient() {
        let config = r#"{"subscriptions":[
            {"name":"Orders","trigger":"type = \"track\" and event = \"Order Completed\""},
            {"name":"Cut short","trigger":"type = \"track\" and"}
        ]}"#;
        // Lenient, as Segment: the cut-short trigger matches every track call.
        let lenient = Destination::from_json(config).unwrap();
        let event = serde_json::json!({"type":"track","event":"Signed Up","userId":"u",
            "messageId":"m","timestamp":"2026-01-01T00:00:00Z"});
        assert_eq!(lenient.matching(&event), ["Cut short"]);

        let err = Destination::from_json_strict(config).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("subscription `Cut short`"), "{text}");
        assert!(text.contains("ends after `and`"), "{text}");
        assert!(!text.contains("Orders"), "{text}");

        // Disabled subscriptions are checked too; a clean configuration loads the same.
        let disabled = config.replace(r#"and"}"#, r#"and","enabled":false}"#);
        assert!(Destination::from_json_strict(&disabled).is_err());
        let clean = Destination::from_json_strict(&Destination::presets().to_json()).unwrap();
        assert_eq!(clean.config(), Destination::presets().config());
    }
}
