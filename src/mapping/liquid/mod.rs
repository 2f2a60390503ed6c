//! `@liquid`: templates parsed once with the `liquid` crate, rendered with the semantics of the
//! reference's liquidjs 10 engine.
//!
//! The `liquid` crate provides the template syntax and the simple tags (`assign`, `capture`,
//! `comment`, `raw`, `cycle`, `increment`, …). What liquidjs does differently from Ruby-style
//! Liquid is replaced: variables resolve with JavaScript semantics (a missing variable is
//! undefined, not an error), values print as JavaScript prints them, conditions follow
//! liquidjs's operators and precedence, and every filter is liquidjs's. The reference's limits
//! apply: templates of at most 1000 characters, the tags `case`, `for`, `include`, `layout`,
//! `render`, `tablerow` and twenty filters refused when the template is loaded, and a memory
//! and a time budget per render.

mod date;
mod filters;
mod runtime;
mod tags;
mod view;

use super::value::Val;
use super::{ApplyError, MappingError};
use crate::Json;
use liquid_core::{Language, Renderable, Template};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

/// The tags the reference disables.
const DISABLED_TAGS: [&str; 6] = ["case", "for", "include", "layout", "render", "tablerow"];

/// A compiled `@liquid` template.
#[derive(Clone)]
pub(crate) struct Liquid {
    source: String,
    template: Arc<Template>,
    location: String,
}

impl PartialEq for Liquid {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for Liquid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Liquid")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The language every template is parsed with, built once.
fn language() -> &'static Language {
    static LANGUAGE: OnceLock<Language> = OnceLock::new();
    LANGUAGE.get_or_init(|| {
        use liquid_lib::stdlib;
        let mut l = Language::empty();
        l.tags
            .register("assign".into(), Box::new(stdlib::AssignTag));
        l.tags.register("break".into(), Box::new(stdlib::BreakTag));
        l.tags
            .register("continue".into(), Box::new(stdlib::ContinueTag));
        l.tags.register("cycle".into(), Box::new(stdlib::CycleTag));
        l.tags
            .register("increment".into(), Box::new(stdlib::IncrementTag));
        l.tags
            .register("decrement".into(), Box::new(stdlib::DecrementTag));
        l.tags.register("echo".into(), Box::new(tags::EchoTag));
        for name in DISABLED_TAGS {
            l.tags
                .register(name.into(), Box::new(tags::DisabledTag(name)));
        }
        l.blocks.register("raw".into(), Box::new(stdlib::RawBlock));
        l.blocks
            .register("comment".into(), Box::new(stdlib::CommentBlock));
        l.blocks
            .register("capture".into(), Box::new(stdlib::CaptureBlock));
        l.blocks
            .register("ifchanged".into(), Box::new(stdlib::IfChangedBlock));
        l.blocks
            .register("if".into(), Box::new(tags::IfBlock { unless: false }));
        l.blocks
            .register("unless".into(), Box::new(tags::IfBlock { unless: true }));
        for filter in filters::all() {
            let name = liquid_core::FilterReflection::name(&filter).to_owned();
            l.filters.register(name, Box::new(filter));
        }
        for name in filters::DISABLED {
            l.filters
                .register(name.into(), Box::new(filters::DisabledFilter(name)));
        }
        l
    })
}

/// The first line of a Liquid error: the later lines can quote the values being rendered,
/// which are event data.
fn describe(e: &liquid_core::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("liquid: ").unwrap_or(first).to_owned()
}

impl Liquid {
    /// Parses a template (already checked for length), refusing the disabled tags and filters.
    pub(crate) fn compile(source: &str, location: &str) -> Result<Liquid, MappingError> {
        // The parser is not expected to panic, but a template is user input.
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            liquid_core::parser::parse(source, language())
        }));
        match parsed {
            Ok(Ok(elements)) => Ok(Liquid {
                source: source.to_owned(),
                template: Arc::new(Template::new(elements)),
                location: location.to_owned(),
            }),
            Ok(Err(e)) => Err(MappingError::new(location, parse_message(&e))),
            Err(_) => Err(MappingError::new(
                location,
                "the Liquid template cannot be parsed",
            )),
        }
    }

    /// Renders the template against the payload.
    pub(crate) fn eval<'r, 'a>(&'r self, payload: &'r Json<'a>) -> Result<Val<'r, 'a>, ApplyError> {
        let mut out = Vec::new();
        let rendered = catch_unwind(AssertUnwindSafe(|| {
            let runtime = runtime::JsRuntime::new(
                liquid_core::runtime::RuntimeBuilder::new().build(),
                payload,
            );
            self.template.render_to(&mut out, &runtime)
        }));
        match rendered {
            Ok(Ok(())) => Ok(Val::string(String::from_utf8_lossy(&out).into_owned())),
            Ok(Err(e)) => Err(ApplyError::new(&self.location, describe(&e))),
            Err(_) => Err(ApplyError::new(
                &self.location,
                "the Liquid template failed to render",
            )),
        }
    }
}

/// A parse error's message: the reference's wording for disabled tags and filters, the
/// parser's first line otherwise.
fn parse_message(e: &liquid_core::Error) -> String {
    let text = e.to_string();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("is disabled") {
            return line.strip_prefix("liquid: ").unwrap_or(line).to_owned();
        }
    }
    // Parse errors quote the template, not the event, so they can be shown whole.
    text.trim()
        .strip_prefix("liquid: ")
        .unwrap_or(text.trim())
        .to_owned()
}

#[cfg(test)]
mod reference_tests;

#[cfg(test)]
mod tests {
    use crate::mapping::Mapping;
    use serde_json::json;

    fn render(template: &str, event: serde_json::Value) -> Result<String, String> {
        Mapping::compile(&json!({"v": {"@liquid": template}}))
            .map_err(|e| e.message)?
            .apply(&event)
            .map(|v| v["v"].as_str().unwrap_or_default().to_owned())
            .map_err(|e| e.message)
    }

    #[test]
    fn render_errors_do_not_quote_event_data() {
        let e = render("{{ s | url_decode }}", json!({"s": "secret%E2"})).unwrap_err();
        assert_eq!(e, "URI malformed");
    }

    #[test]
    fn memory_is_bounded() {
        // node: succeeds (a 4 MB string, captured, not printed).
        let step = "{% capture s %}{{s}}{{s}}{% endcapture %}";
        let template = format!("{{% assign s = 'xxxxxxxxxxxxxxxx' %}}{}", step.repeat(18));
        assert_eq!(render(&template, json!({})).unwrap(), "");
        // node: "memory alloc limit exceeded" (filters are charged).
        let appends = format!(
            "{{% assign s = 'xxxxxxxxxxxxxxxx' %}}{}",
            "{% assign s = s | append: s %}".repeat(28)
        );
        assert_eq!(
            render(&appends, json!({})).unwrap_err(),
            "memory alloc limit exceeded"
        );
    }

    #[test]
    fn templates_are_parsed_once() {
        let m = Mapping::compile(&json!({"v": {"@liquid": "{{ a | plus: 1 }}"}})).unwrap();
        for i in 0..3 {
            assert_eq!(
                m.apply(&json!({"a": i})).unwrap(),
                json!({"v": (i + 1).to_string()})
            );
        }
    }
}
