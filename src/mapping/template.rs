//! `@template`: `{{path}}` and `{{{path}}}` placeholders, split once into literal text and
//! compiled paths.
//!
//! The reference replaces triple-brace placeholders first and then runs the double-brace pass
//! over the result, so a value inserted by `{{{…}}}` can itself contain `{{…}}` that is then
//! replaced. A template without triple braces is compiled completely; one with them keeps its
//! first pass compiled and scans the intermediate text per event.

use super::path::Path;
use super::value::Val;
use crate::Json;
use crate::js;

/// A compiled `@template` string.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Template {
    parts: Vec<Part>,
    /// Whether `parts` is the triple-brace pass, whose output is scanned again.
    rescan: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Placeholder(Path),
}

impl Template {
    /// Compiles a template the way the reference renders it.
    pub(crate) fn compile(source: &str) -> Template {
        let mut parts = Vec::new();
        if next_placeholder(source, 3).is_some() {
            split(source, 3, &mut parts);
            Template {
                parts,
                rescan: true,
            }
        } else {
            split(source, 2, &mut parts);
            Template {
                parts,
                rescan: false,
            }
        }
    }

    /// Renders against the payload; missing values render as the empty string.
    pub(crate) fn render(&self, payload: &Json<'_>) -> String {
        let mut out = String::new();
        render_parts(&self.parts, payload, &mut out);
        if self.rescan {
            let mut second = Vec::new();
            split(&out, 2, &mut second);
            let mut done = String::with_capacity(out.len());
            render_parts(&second, payload, &mut done);
            done
        } else {
            out
        }
    }
}

fn render_parts(parts: &[Part], payload: &Json<'_>, out: &mut String) {
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            // `value ?? ''`, then String(value).
            Part::Placeholder(path) => {
                let v = path.lookup(payload);
                if v.exists() {
                    v.push_js_string(out);
                }
            }
        }
    }
}

/// Splits at every `{`×n + one or more non-`}` + `}`×n, as the reference's regex matches.
fn split(text: &str, n: usize, parts: &mut Vec<Part>) {
    let mut rest = text;
    while let Some((before, inner, after)) = next_placeholder(rest, n) {
        if !before.is_empty() {
            parts.push(Part::Text(before.to_owned()));
        }
        parts.push(Part::Placeholder(Path::placeholder(js::trim(inner))));
        rest = after;
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
}

/// Finds the first `{`×n + one or more non-`}` + `}`×n.
fn next_placeholder(s: &str, n: usize) -> Option<(&str, &str, &str)> {
    let open = &"{{{"[..n];
    let close = &"}}}"[..n];
    let mut from = 0;
    while let Some(pos) = s[from..].find(open) {
        let start = from + pos;
        let inner_start = start + n;
        let inner_len = s[inner_start..].find('}').unwrap_or(s.len() - inner_start);
        let inner_end = inner_start + inner_len;
        if inner_len > 0 && s[inner_end..].starts_with(close) {
            return Some((&s[..start], &s[inner_start..inner_end], &s[inner_end + n..]));
        }
        // `{` is one byte, so the next candidate starts one byte on.
        from = start + 1;
    }
    None
}

/// `Val` is used by the directive that evaluates a template computed at run time.
pub(crate) fn render_dynamic<'r, 'a>(source: &str, payload: &Json<'a>) -> Val<'r, 'a> {
    Val::string(Template::compile(source).render(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, event: &str) -> String {
        Template::compile(t).render(&Json::parse(event).unwrap())
    }

    #[test]
    fn renders_placeholders_and_text() {
        let event = r#"{"a":"x","n":19.5,"o":{"k":1},"l":[1,null,"z"],"f":false,"z":0}"#;
        assert_eq!(
            render("[{{ a }}]-{{{n}}}-{{o}}-{{l}}-{{missing}}-{{}}", event),
            "[x]-19.5-[object Object]-1,,z--{{}}"
        );
        // node: render('{{f}}{{z}}{{ }}', …) === 'false0[object Object]'
        assert_eq!(render("{{f}}{{z}}{{ }}", event), "false0[object Object]");
    }

    #[test]
    fn triple_brace_output_is_scanned_again() {
        // node: transform({v: {'@template': '{{{t}}}'}}, {t: '{{n}}', n: [1, 2]}) → {v: '1,2'}
        assert_eq!(render("{{{t}}}", r#"{"t":"{{n}}","n":[1,2]}"#), "1,2");
        // The text around a triple placeholder combines with its value (node: 'B').
        assert_eq!(render("{{ {{{a}}} }}", r#"{"a":"b","b":"B"}"#), "B");
        // node: '}}', '' and 'Q'
        assert_eq!(render("{{{{t}}}}}", r#"{"t":"n","n":7}"#), "}}");
        assert_eq!(render("{{{{a}}}", r#"{"a":1}"#), "");
        assert_eq!(render("{{{{a}}}", r#"{"a":1,"{a":"Q"}"#), "Q");
    }

    #[test]
    fn placeholders_do_not_strip_the_dollar() {
        assert_eq!(render("{{$.a}}|{{ a }}", r#"{"a":"x"}"#), "|x");
    }
}
