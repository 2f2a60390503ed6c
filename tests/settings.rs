//! Settings as data: a configuration file in TOML (the `toml` crate) read into the same
//! settings as the JSON documented on `ClientSettings`, and `Client::from_env` reading the
//! process environment of a child process.

use rokt_capi::client::{Client, ClientSettings, DispatcherSettings};
use std::time::Duration;

#[derive(Debug, PartialEq, serde::Deserialize)]
struct Config {
    rokt: ClientSettings,
    dispatcher: DispatcherSettings,
}

/// The TOML example of `ClientSettings`'s documentation.
const TOML: &str = r#"
[rokt]
endpoint = "eu1"
request_timeout = "10s"
preset = "send"
retry = { max_attempts = 3, base_delay = "250ms", deadline = "30s" }
limits = { max_items = 50 }
overrides = { ip = { "@path" = "$.context.ip" } }

[dispatcher]
concurrency = 8
flush_interval = "250ms"
rate_limit = 270.0
"#;

/// The JSON example of the same documentation.
const JSON: &str = r#"{
  "rokt": {
    "endpoint": "eu1",
    "request_timeout": "10s",
    "retry": {"max_attempts": 3, "base_delay": "250ms", "deadline": "30s"},
    "limits": {"max_items": 50},
    "preset": "send",
    "overrides": {"ip": {"@path": "$.context.ip"}}
  },
  "dispatcher": {"concurrency": 8, "flush_interval": "250ms", "rate_limit": 270.0}
}"#;

#[test]
fn the_toml_example_reads_as_the_json_example() {
    let from_toml: Config = toml::from_str(TOML).unwrap();
    let from_json: Config = serde_json::from_str(JSON).unwrap();
    assert_eq!(from_toml, from_json);
    assert_eq!(from_toml.rokt.retry.base_delay, Duration::from_millis(250));
    assert_eq!(from_toml.dispatcher.rate_limit, Some(270.0));
    assert_eq!(from_toml.rokt.limits.unwrap().max_items, 50);
}

#[test]
fn settings_written_as_toml_read_back_the_same() {
    let config: Config = toml::from_str(TOML).unwrap();
    let text = toml::to_string(&config.dispatcher).unwrap();
    assert!(text.contains(r#"flush_interval = "250ms""#), "{text}");
    let back: DispatcherSettings = toml::from_str(&text).unwrap();
    assert_eq!(back, config.dispatcher);
    let text = toml::to_string(&config.rokt).unwrap();
    let back: ClientSettings = toml::from_str(&text).unwrap();
    assert_eq!(back, config.rokt);
}

#[test]
fn a_misspelled_toml_setting_is_refused_by_name() {
    let err =
        toml::from_str::<Config>("[rokt]\nrequest_timeuot = \"1s\"\n[dispatcher]\n").unwrap_err();
    assert!(err.to_string().contains("request_timeuot"), "{err}");
}

/// Set in the child process `client_from_env_reads_the_rokt_variables` starts.
const CHILD: &str = "ROKT_SETTINGS_TEST_CHILD";

#[test]
fn client_from_env_reads_the_rokt_variables() {
    if std::env::var_os(CHILD).is_some() {
        // The child: the variables are set by the parent below.
        match std::env::var(CHILD).as_deref() {
            Ok("complete") => {
                let client = Client::from_env().unwrap();
                assert_eq!(
                    client.endpoint().base().as_str(),
                    "https://s2s.us2.mparticle.com/v2"
                );
            }
            _ => {
                let err = Client::from_env().unwrap_err();
                let printed = format!("{err} {err:?}");
                assert!(printed.contains("ROKT_API_SECRET"), "{printed}");
                assert!(!printed.contains("key-value"), "{printed}");
            }
        }
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for (mode, secret) in [("complete", Some("secret-value")), ("missing", None)] {
        let mut child = std::process::Command::new(&exe);
        child
            .args(["--exact", "client_from_env_reads_the_rokt_variables"])
            .env(CHILD, mode)
            .env("ROKT_API_KEY", "key-value")
            .env("ROKT_ENDPOINT", "us2")
            .env_remove("ROKT_API_SECRET");
        if let Some(secret) = secret {
            child.env("ROKT_API_SECRET", secret);
        }
        let out = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: {stdout}");
        assert!(stdout.contains("1 passed"), "{mode}: {stdout}");
    }
}
