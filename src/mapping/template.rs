//! `@template`: `{{path}}` and `{{{path}}}` placeholders, split once into literal text and
//! compiled paths.

use super::Resolved;
use super::js::push_js_string;
use super::path::Path;
use crate::Json;

/// A compiled `@template` string.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Placeholder(Path),
}

impl Template {
    /// Compiles a template the way the reference renders it: triple braces are replaced
    /// first, then double braces; a placeholder is `{{` + anything but `}` + `}}`, trimmed.
    pub(crate) fn compile(source: &str) -> Template {
        let mut parts = Vec::new();
        // Triple braces first: their output is plain text, never re-scanned for `{{`.
        let mut text = String::new();
        let mut rest = source;
        while let Some((before, inner, after)) = next_placeholder(rest, 3) {
            text.push_str(before);
            split_doubles(&text, &mut parts);
            text.clear();
            parts.push(Part::Placeholder(Path::placeholder(inner.trim())));
            rest = after;
        }
        text.push_str(rest);
        split_doubles(&text, &mut parts);
        Template { parts }
    }

    /// Renders against the event; missing values render as the empty string.
    pub(crate) fn render(&self, event: &Json<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Placeholder(path) => match path.lookup(event) {
                    Resolved::Undefined => {}
                    Resolved::Ref(Json::Null) | Resolved::Owned(Json::Null) => {}
                    other => {
                        if let Some(v) = other.as_json() {
                            push_js_string(&mut out, v);
                        }
                    }
                },
            }
        }
        out
    }
}

fn split_doubles(text: &str, parts: &mut Vec<Part>) {
    let mut rest = text;
    while let Some((before, inner, after)) = next_placeholder(rest, 2) {
        if !before.is_empty() {
            parts.push(Part::Text(before.to_owned()));
        }
        parts.push(Part::Placeholder(Path::placeholder(inner.trim())));
        rest = after;
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
}

/// Finds the first `{`×n + one or more non-`}` + `}`×n, as the reference's regex does.
fn next_placeholder(s: &str, n: usize) -> Option<(&str, &str, &str)> {
    let open = "{".repeat(n);
    let close = "}".repeat(n);
    let mut from = 0;
    while let Some(pos) = s[from..].find(&open) {
        let start = from + pos;
        let inner_start = start + n;
        let inner_len = s[inner_start..].find('}').unwrap_or(s.len() - inner_start);
        let inner_end = inner_start + inner_len;
        if inner_len > 0 && s[inner_end..].starts_with(&close) {
            return Some((&s[..start], &s[inner_start..inner_end], &s[inner_end + n..]));
        }
        from = start + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_text() {
        let event = Json::parse(r#"{"a":"x","n":19.5,"o":{"k":1},"l":[1,null,"z"]}"#).unwrap();
        let t = Template::compile("[{{ a }}]-{{{n}}}-{{o}}-{{l}}-{{missing}}-{{}}");
        assert_eq!(t.render(&event), "[x]-19.5-[object Object]-1,,z--{{}}");
    }
}
