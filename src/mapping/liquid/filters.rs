//! liquidjs's filters, with its JavaScript semantics (numbers are doubles, strings are
//! UTF-16, `+x || 0` conversions) and its memory accounting.

use super::runtime::charge;
use super::tags::equals;
use super::view::{Js, UNDEFINED, join, js_number, js_of, number, stringify, to_number};
use crate::js;
use liquid_core::error::{Error, Result};
use liquid_core::model::{Value, ValueCow, ValueView};
use liquid_core::parser::{FilterArguments, ParameterReflection};
use liquid_core::{Expression, Filter, FilterReflection, ParseFilter, Runtime};
use std::borrow::Cow;
use std::fmt;

/// What a filter receives: its input and its evaluated arguments, and the runtime to charge.
pub(super) struct Call<'c> {
    runtime: &'c dyn Runtime,
    input: &'c dyn ValueView,
    args: Vec<ValueCow<'c>>,
    keywords: Vec<(&'c str, ValueCow<'c>)>,
}

impl<'c> Call<'c> {
    /// An argument; undefined when not given.
    fn arg(&self, i: usize) -> &dyn ValueView {
        self.args
            .get(i)
            .map_or(&UNDEFINED as &dyn ValueView, |v| v.as_view())
    }

    /// Whether an argument was given (and is not undefined): JavaScript's default parameters
    /// apply otherwise.
    fn given(&self, i: usize) -> bool {
        !matches!(js_of(self.arg(i)), Js::Undefined)
    }

    fn charge(&self, units: usize) -> Result<()> {
        charge(self.runtime, units)
    }

    fn input_str(&self) -> Cow<'_, str> {
        stringify(self.input)
    }
}

type Run = fn(&Call<'_>) -> Result<Value>;

/// A filter definition: its name and what it does.
#[derive(Clone)]
pub(super) struct JsFilter {
    name: &'static str,
    run: Run,
}

impl FilterReflection for JsFilter {
    fn name(&self) -> &str {
        self.name
    }
    fn description(&self) -> &str {
        ""
    }
    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for JsFilter {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        Ok(Box::new(Bound {
            name: self.name,
            run: self.run,
            args: arguments.positional.collect(),
            keywords: arguments.keyword.map(|(k, v)| (k.to_owned(), v)).collect(),
        }))
    }
    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

/// A filter the reference disables; naming it fails when the template is loaded.
#[derive(Clone)]
pub(super) struct DisabledFilter(pub(super) &'static str);

impl FilterReflection for DisabledFilter {
    fn name(&self) -> &str {
        self.0
    }
    fn description(&self) -> &str {
        "disabled"
    }
    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &[]
    }
}

impl ParseFilter for DisabledFilter {
    fn parse(&self, _: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        Err(Error::with_msg(format!(
            "filter \"{}\" is disabled",
            self.0
        )))
    }
    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

/// A filter with its argument expressions, as it appears in a template.
struct Bound {
    name: &'static str,
    run: Run,
    args: Vec<Expression>,
    keywords: Vec<(String, Expression)>,
}

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter").field("name", &self.name).finish()
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Filter for Bound {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let mut args = Vec::with_capacity(self.args.len());
        for a in &self.args {
            args.push(a.evaluate(runtime)?);
        }
        let mut keywords = Vec::with_capacity(self.keywords.len());
        for (k, a) in &self.keywords {
            keywords.push((k.as_str(), a.evaluate(runtime)?));
        }
        let call = Call {
            runtime,
            input,
            args,
            keywords,
        };
        charge(runtime, 0)?;
        (self.run)(&call)
    }
}

/// Every filter liquidjs has, but those the reference disables.
pub(super) fn all() -> Vec<JsFilter> {
    macro_rules! filters {
        ($($name:literal => $run:expr),* $(,)?) => {
            vec![$(JsFilter { name: $name, run: $run }),*]
        };
    }
    filters![
        // html
        "escape" => |c| html_escape(c, &c.input_str()),
        "xml_escape" => |c| html_escape(c, &c.input_str()),
        "escape_once" => |c| {
            let s = unescape(c, &c.input_str())?;
            html_escape(c, &s)
        },
        "unescape" => |c| unescape(c, &c.input_str()).map(Value::scalar),
        "strip_html" => strip_html,
        // math
        "abs" => |c| math(c, |v| v[0].abs()),
        "at_least" => |c| math(c, |v| v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        "at_most" => |c| math(c, |v| v.iter().copied().fold(f64::INFINITY, f64::min)),
        "ceil" => |c| math(c, |v| v[0].ceil()),
        "floor" => |c| math(c, |v| v[0].floor()),
        "divided_by" => |c| math(c, |v| {
            let q = v[0] / v.get(1).copied().unwrap_or(f64::NAN);
            if v.get(2).is_some_and(|&i| i != 0.0) { q.floor() } else { q }
        }),
        "minus" => |c| math(c, |v| v[0] - v.get(1).copied().unwrap_or(f64::NAN)),
        "plus" => |c| math(c, |v| v[0] + v.get(1).copied().unwrap_or(f64::NAN)),
        "times" => |c| math(c, |v| v[0] * v.get(1).copied().unwrap_or(f64::NAN)),
        "modulo" => |c| math(c, |v| {
            let a = v.get(1).copied().unwrap_or(f64::NAN);
            ((v[0] % a) + a) % a
        }),
        "round" => round,
        // url
        "url_decode" => url_decode,
        "url_encode" => |c| Ok(Value::scalar(encode_uri_component(&c.input_str()).replace("%20", "+"))),
        "cgi_escape" => |c| {
            let s = encode_uri_component(&c.input_str()).replace("%20", "+");
            let mut out = String::with_capacity(s.len());
            for ch in s.chars() {
                match ch {
                    '!' | '\'' | '(' | ')' | '*' => out.push_str(&format!("%{:X}", ch as u32)),
                    ch => out.push(ch),
                }
            }
            Ok(Value::scalar(out))
        },
        "uri_escape" => |c| Ok(Value::scalar(
            encode_uri(&c.input_str()).replace("%5B", "[").replace("%5D", "]"),
        )),
        "slugify" => slugify,
        // array
        "join" => |c| {
            let items = to_array(c.input);
            let sep = if js_of(c.arg(0)).is_nil() { Cow::Borrowed(" ") } else { stringify(c.arg(0)) };
            let out = match &items {
                Items::One(v) => match js_of(*v) {
                    Js::Array(a) => join(a, &sep),
                    _ => join_values(&[*v], &sep),
                },
                Items::None => String::new(),
            };
            c.charge(js::utf16_len(&out))?;
            Ok(Value::scalar(out))
        },
        "first" => |c| Ok(array_like_at(c.input, 0)),
        "last" => |c| Ok(array_like_at(c.input, -1)),
        "size" => |c| Ok(Value::scalar(match js_of(c.input) {
            Js::Str(s) => js::utf16_len(&s) as i64,
            Js::Array(a) => a.size(),
            Js::Object(o) => o.get("length").map_or(0, |l| {
                let n = js_number(l);
                if n.is_nan() || n == 0.0 { 0 } else { n as i64 }
            }),
            _ => 0,
        })),
        "sum" => |c| {
            let mut total = 0.0;
            for item in array_items(c.input) {
                let v = if c.given(0) {
                    property(item, &stringify(c.arg(0)))
                } else {
                    Some(item.to_value())
                };
                let n = v.as_ref().map_or(f64::NAN, |v| js_number(v));
                total += if n.is_nan() { 0.0 } else { n };
            }
            Ok(number(total))
        },
        "compact" => |c| {
            let items = array_items(c.input);
            c.charge(items.len())?;
            Ok(Value::Array(items.into_iter().filter(|i| !js_of(*i).is_nil()).map(ValueView::to_value).collect()))
        },
        "push" => |c| {
            let mut items: Vec<Value> = array_items(c.input).into_iter().map(ValueView::to_value).collect();
            c.charge(items.len() + 1)?;
            items.push(c.arg(0).to_value());
            Ok(Value::Array(items))
        },
        "unshift" => |c| {
            let mut items: Vec<Value> = array_items(c.input).into_iter().map(ValueView::to_value).collect();
            c.charge(items.len())?;
            items.insert(0, c.arg(0).to_value());
            Ok(Value::Array(items))
        },
        "pop" => |c| {
            let mut items: Vec<Value> = array_items(c.input).into_iter().map(ValueView::to_value).collect();
            c.charge(items.len())?;
            items.pop();
            Ok(Value::Array(items))
        },
        "shift" => |c| {
            let mut items: Vec<Value> = array_items(c.input).into_iter().map(ValueView::to_value).collect();
            c.charge(items.len())?;
            if !items.is_empty() {
                items.remove(0);
            }
            Ok(Value::Array(items))
        },
        "slice" => slice,
        "where" => |c| {
            let items = array_items(c.input);
            c.charge(items.len())?;
            let path = stringify(c.arg(0)).into_owned();
            let mut out = Vec::new();
            for item in items {
                let value = property(item, &path).unwrap_or(Value::Nil);
                let keep = if c.given(1) { equals(&value, c.arg(1)) } else { js_of(&value).truthy() };
                if keep {
                    out.push(item.to_value());
                }
            }
            Ok(Value::Array(out))
        },
        "sample" => |c| {
            let items: Vec<Value> = match js_of(c.input) {
                Js::Array(a) => a.values().map(ValueView::to_value).collect(),
                Js::Undefined | Js::Null | Js::Nil => return Ok(Value::Array(Vec::new())),
                _ => c.input_str().encode_utf16().map(|u| Value::scalar(String::from_utf16_lossy(&[u]))).collect(),
            };
            c.charge(items.len())?;
            let mut shuffled = items;
            fastrand::shuffle(&mut shuffled);
            let count = if c.given(0) { to_number(c.arg(0)) } else { 1.0 };
            if count == 1.0 {
                return Ok(shuffled.into_iter().next().unwrap_or(Value::Nil));
            }
            let n = clamp_index(count, shuffled.len());
            shuffled.truncate(n);
            Ok(Value::Array(shuffled))
        },
        // date
        "date" => |c| super::date::date_filter(c.runtime, c.input, c.arg(0), c.given(0), c.arg(1), c.given(1)),
        "date_to_xmlschema" => |c| {
            let format = Value::scalar("%Y-%m-%dT%H:%M:%S%:z");
            super::date::date_filter(c.runtime, c.input, &format, true, &UNDEFINED, false)
        },
        "date_to_rfc822" => |c| {
            let format = Value::scalar("%a, %d %b %Y %H:%M:%S %z");
            super::date::date_filter(c.runtime, c.input, &format, true, &UNDEFINED, false)
        },
        "date_to_string" => |c| super::date::date_to_string(c.runtime, c.input, false, c.arg(0), c.arg(1)),
        "date_to_long_string" => |c| super::date::date_to_string(c.runtime, c.input, true, c.arg(0), c.arg(1)),
        // string
        "append" => |c| {
            if c.args.is_empty() {
                return Err(Error::with_msg("append expect 2 arguments"));
            }
            let (l, r) = (c.input_str(), stringify(c.arg(0)));
            c.charge(l.len() + r.len())?;
            Ok(Value::scalar(format!("{l}{r}")))
        },
        "prepend" => |c| {
            if c.args.is_empty() {
                return Err(Error::with_msg("prepend expect 2 arguments"));
            }
            let (l, r) = (c.input_str(), stringify(c.arg(0)));
            c.charge(l.len() + r.len())?;
            Ok(Value::scalar(format!("{r}{l}")))
        },
        "lstrip" => |c| strip(c, true, false),
        "rstrip" => |c| strip(c, false, true),
        "strip" => |c| strip(c, true, true),
        "downcase" => |c| {
            let s = c.input_str();
            c.charge(s.len())?;
            Ok(Value::scalar(s.to_lowercase()))
        },
        "upcase" => |c| {
            let s = c.input_str();
            c.charge(s.len())?;
            Ok(Value::scalar(s.to_uppercase()))
        },
        "capitalize" => |c| {
            let s = c.input_str();
            c.charge(s.len())?;
            let mut chars = s.chars();
            Ok(Value::scalar(match chars.next() {
                // `charAt(0)` is one UTF-16 unit: half of an astral character has no case.
                Some(first) if first.len_utf16() == 1 => {
                    format!("{}{}", first.to_uppercase(), chars.as_str().to_lowercase())
                }
                Some(first) => format!("{first}{}", chars.as_str().to_lowercase()),
                None => String::new(),
            }))
        },
        "remove" => |c| {
            let (s, p) = (c.input_str(), stringify(c.arg(0)));
            c.charge(s.len() + p.len())?;
            Ok(Value::scalar(if p.is_empty() { s.into_owned() } else { s.replace(p.as_ref(), "") }))
        },
        "remove_first" => |c| {
            let (s, p) = (c.input_str(), stringify(c.arg(0)));
            c.charge(s.len() + p.len())?;
            Ok(Value::scalar(s.replacen(p.as_ref(), "", 1)))
        },
        "remove_last" => |c| {
            let (s, p) = (c.input_str(), stringify(c.arg(0)));
            c.charge(s.len() + p.len())?;
            Ok(Value::scalar(match s.rfind(p.as_ref()) {
                Some(i) => format!("{}{}", &s[..i], &s[i + p.len()..]),
                None => s.into_owned(),
            }))
        },
        "split" => |c| {
            let s = c.input_str();
            c.charge(s.len())?;
            let mut parts = split(&s, &stringify(c.arg(0)));
            // Trailing empty strings go, as in Ruby's split.
            while parts.last().is_some_and(String::is_empty) {
                parts.pop();
            }
            Ok(Value::Array(parts.into_iter().map(Value::scalar).collect()))
        },
        "strip_newlines" => |c| {
            let s = c.input_str();
            c.charge(s.len())?;
            Ok(Value::scalar(s.replace("\r\n", "").replace('\n', "")))
        },
        "squish" => |c| {
            let s = c.input_str();
            c.charge(s.len())?;
            Ok(Value::scalar(js::trim(&collapse_space(&s)).to_owned()))
        },
        "normalize_whitespace" => |c| {
            let s = c.input_str();
            c.charge(s.len())?;
            Ok(Value::scalar(collapse_space(&s)))
        },
        "replace" => |c| {
            let (s, p, r) = (c.input_str(), stringify(c.arg(0)), stringify(c.arg(1)));
            let parts = split(&s, &p);
            let size = s.len() + parts.len().saturating_sub(1) * r.len();
            c.charge(size)?;
            Ok(Value::scalar(parts.join(r.as_ref())))
        },
        "replace_first" => |c| {
            let (s, p, r) = (c.input_str(), stringify(c.arg(0)), stringify(c.arg(1)));
            c.charge(s.len() + p.len() + r.len())?;
            Ok(Value::scalar(s.replacen(p.as_ref(), &r, 1)))
        },
        "replace_last" => |c| {
            let (s, p, r) = (c.input_str(), stringify(c.arg(0)), stringify(c.arg(1)));
            c.charge(s.len() + p.len() + r.len())?;
            Ok(Value::scalar(match s.rfind(p.as_ref()) {
                Some(i) => format!("{}{r}{}", &s[..i], &s[i + p.len()..]),
                None => s.into_owned(),
            }))
        },
        "truncate" => truncate,
        "truncatewords" => truncatewords,
        "number_of_words" => |c| {
            let s = c.input_str();
            c.charge(s.len())?;
            let t = js::trim(&s);
            if t.is_empty() {
                return Ok(Value::scalar(0i64));
            }
            let mode = stringify(c.arg(0));
            let cjk = t.chars().filter(|&ch| is_cjk(ch)).count();
            let words = || split_space(t).len();
            let non_cjk = || t.split(|ch: char| is_cjk(ch) || js::is_js_whitespace(ch)).filter(|w| !w.is_empty()).count();
            Ok(Value::scalar(match mode.as_ref() {
                "cjk" => (cjk + non_cjk()) as i64,
                "auto" if cjk > 0 => (cjk + non_cjk()) as i64,
                _ => words() as i64,
            }))
        },
        "base64_encode" => |c| {
            use base64::Engine;
            let s = c.input_str();
            c.charge(s.len())?;
            Ok(Value::scalar(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())))
        },
        "base64_decode" => |c| {
            use base64::Engine;
            let s = c.input_str();
            c.charge(s.len())?;
            let cleaned: String = s.chars().filter(|ch| !matches!(ch, '\t' | '\n' | '\u{c}' | '\r' | ' ')).collect();
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                    .with_decode_allow_trailing_bits(true),
            );
            match engine.decode(cleaned.as_bytes()) {
                Ok(bytes) => Ok(Value::scalar(String::from_utf8_lossy(&bytes).into_owned())),
                Err(_) => Err(Error::with_msg("invalid base64 provided to base64_decode")),
            }
        },
        "sha256" => |c| {
            use sha2::Digest;
            let s = c.input_str();
            c.charge(s.len())?;
            Ok(Value::scalar(hex::encode(sha2::Sha256::digest(s.as_bytes()))))
        },
        "hmac_sha256" => |c| {
            let (s, k) = (c.input_str(), stringify(c.arg(0)));
            c.charge(s.len() + k.len())?;
            Ok(Value::scalar(hex::encode(hmac_sha256(k.as_bytes(), s.as_bytes()))))
        },
        // misc
        "default" => |c| {
            let fallback = || c.arg(0).to_value();
            Ok(match js_of(c.input) {
                Js::Str(s) if s.is_empty() => fallback(),
                Js::Array(a) if a.size() == 0 => fallback(),
                Js::Str(_) | Js::Array(_) => c.input.to_value(),
                Js::Bool(false)
                    if c.keywords.iter().any(|(k, v)| *k == "allow_false" && js_of(v.as_view()).truthy()) =>
                {
                    Value::scalar(false)
                }
                j if !j.truthy() => fallback(),
                _ => c.input.to_value(),
            })
        },
        "raw" => |c| Ok(c.input.to_value()),
        "json" => json,
        "jsonify" => json,
        "inspect" => json,
        "to_integer" => |c| Ok(number(js_number(c.input))),
    ]
}

/// The filters the reference disables.
pub(super) const DISABLED: [&str; 20] = [
    "array_to_sentence_string",
    "concat",
    "find",
    "find_exp",
    "find_index",
    "find_index_exp",
    "group_by",
    "group_by_exp",
    "has",
    "has_exp",
    "map",
    "newline_to_br",
    "reject",
    "reject_exp",
    "reverse",
    "sort",
    "sort_natural",
    "uniq",
    "where_exp",
    "type",
];

/// `argumentsToNumber(fn)`: the input and every argument given, through `toNumber`.
fn math(c: &Call<'_>, f: impl Fn(&[f64]) -> f64) -> Result<Value> {
    let mut v = Vec::with_capacity(c.args.len() + 1);
    v.push(to_number(c.input));
    v.extend(c.args.iter().map(|a| to_number(a.as_view())));
    Ok(number(f(&v)))
}

/// liquidjs's `round`: decimal shifting through the number's text, half away from zero.
fn round(c: &Call<'_>) -> Result<Value> {
    let v = to_number(c.input);
    let places = to_number(c.arg(0));
    let shift = |n: f64, exponent: f64| {
        let text = js::f64_to_string(n);
        let (mantissa, power) = text.split_once('e').unwrap_or((&text, "0"));
        let power = super::view::string_to_number(power) + exponent;
        super::view::string_to_number(&format!("{mantissa}e{}", js::f64_to_string(power)))
    };
    let scaled = shift(v.abs(), places);
    if scaled.is_nan() || scaled > 9_007_199_254_740_991.0 {
        return Ok(number(v));
    }
    // Math.round on a non-negative number: ties go up.
    let floor = scaled.floor();
    let rounded = if scaled - floor >= 0.5 {
        floor + 1.0
    } else {
        floor
    };
    let rounded = shift(rounded, -places);
    Ok(number(if v < 0.0 { -rounded } else { rounded }))
}

enum Items<'v> {
    None,
    One(&'v dyn ValueView),
}

/// `toArray`: nil is empty, an array is itself, anything else is a one-item array.
fn to_array(v: &dyn ValueView) -> Items<'_> {
    if js_of(v).is_nil() {
        Items::None
    } else {
        Items::One(v)
    }
}

fn array_items(v: &dyn ValueView) -> Vec<&dyn ValueView> {
    match js_of(v) {
        Js::Array(a) => a.values().collect(),
        j if j.is_nil() => Vec::new(),
        _ => vec![v],
    }
}

fn join_values(items: &[&dyn ValueView], sep: &str) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        if !js_of(*item).is_nil() {
            out.push_str(&super::view::js_string(*item));
        }
    }
    out
}

/// `first` / `last`: arrays and strings by index, `''` for anything else.
fn array_like_at(v: &dyn ValueView, index: i64) -> Value {
    match js_of(v) {
        Js::Array(a) => {
            let i = if index < 0 { a.size() + index } else { index };
            if (0..a.size()).contains(&i) {
                a.get(i).map_or(Value::Nil, ValueView::to_value)
            } else {
                Value::Nil
            }
        }
        Js::Str(s) => {
            let len = js::utf16_len(&s) as i64;
            let i = if index < 0 { len + index } else { index };
            usize::try_from(i)
                .ok()
                .and_then(|i| js::utf16_unit_at(&s, i))
                .map_or(Value::Nil, Value::scalar)
        }
        _ => Value::scalar(""),
    }
}

/// A dotted property path read from an item (`where`, `sum`).
fn property(item: &dyn ValueView, path: &str) -> Option<Value> {
    let mut current = item.to_value();
    for key in path.split('.') {
        let next = match js_of(&current) {
            Js::Object(o) => o.get(key).map(ValueView::to_value),
            Js::Array(a) => key
                .parse::<i64>()
                .ok()
                .and_then(|i| a.get(i))
                .map(ValueView::to_value),
            _ => None,
        };
        current = next?;
    }
    Some(current)
}

fn clamp_index(n: f64, len: usize) -> usize {
    if n.is_nan() || n <= 0.0 {
        0
    } else if n >= len as f64 {
        len
    } else {
        n as usize
    }
}

fn slice(c: &Call<'_>) -> Result<Value> {
    let length = if c.given(1) { js_number(c.arg(1)) } else { 1.0 };
    let begin = js_number(c.arg(0));
    match js_of(c.input) {
        Js::Undefined | Js::Null | Js::Nil => Ok(Value::Array(Vec::new())),
        Js::Array(a) => {
            let len = a.size() as f64;
            let begin = if begin < 0.0 { len + begin } else { begin };
            if begin < 0.0 || length < 0.0 {
                return Ok(Value::Array(Vec::new()));
            }
            c.charge(clamp_index(length, usize::MAX))?;
            // Array.prototype.slice(begin, begin + length), with ToIntegerOrInfinity.
            let start = clamp_index(begin.trunc(), a.size() as usize);
            let end = clamp_index((begin + length).trunc(), a.size() as usize);
            Ok(Value::Array(
                (start..end.max(start))
                    .filter_map(|i| a.get(i as i64).map(ValueView::to_value))
                    .collect(),
            ))
        }
        _ => {
            let s = c.input_str();
            let chars: Vec<char> = s.chars().collect();
            let begin = if begin < 0.0 {
                chars.len() as f64 + begin
            } else {
                begin
            };
            if begin < 0.0 || length < 0.0 {
                return Ok(Value::scalar(""));
            }
            c.charge(clamp_index(length, usize::MAX))?;
            // advanceCodePoints counts `i < count`, so a fraction counts as a whole step.
            let steps = |n: f64| {
                if n.is_nan() {
                    0
                } else {
                    clamp_index(n.ceil(), chars.len())
                }
            };
            let start = steps(begin);
            let end = (start + steps(length)).min(chars.len());
            Ok(Value::scalar(chars[start..end].iter().collect::<String>()))
        }
    }
}

fn truncate(c: &Call<'_>) -> Result<Value> {
    let s = c.input_str();
    let ellipsis = if c.given(1) {
        stringify(c.arg(1))
    } else {
        Cow::Borrowed("...")
    };
    c.charge(s.len() + ellipsis.len())?;
    let limit = if c.given(0) {
        js_number(c.arg(0))
    } else {
        50.0
    };
    let chars: Vec<char> = s.chars().collect();
    let steps = |n: f64| {
        if n.is_nan() || n <= 0.0 {
            0
        } else {
            clamp_index(n.ceil(), chars.len())
        }
    };
    if js::utf16_len(&s) as f64 <= limit || steps(limit) >= chars.len() {
        return Ok(c.input.to_value());
    }
    let keep = (limit - ellipsis.chars().count() as f64).max(0.0);
    let kept: String = chars[..steps(keep)].iter().collect();
    Ok(Value::scalar(format!("{kept}{ellipsis}")))
}

fn truncatewords(c: &Call<'_>) -> Result<Value> {
    let s = c.input_str();
    let ellipsis = if c.given(1) {
        stringify(c.arg(1))
    } else {
        Cow::Borrowed("...")
    };
    c.charge(s.len() + ellipsis.len())?;
    let mut words = if c.given(0) {
        js_number(c.arg(0))
    } else {
        15.0
    };
    if words <= 0.0 {
        words = 1.0;
    }
    let start = s.trim_start_matches(js::is_js_whitespace);
    let arr = split_space(start);
    let n = clamp_index(words.trunc(), arr.len());
    let mut out = arr[..n].join(" ");
    if arr.len() as f64 >= words {
        out.push_str(&ellipsis);
    }
    Ok(Value::scalar(out))
}

/// `str.split(/\s+/)`.
fn split_space(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        match rest.find(js::is_js_whitespace) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = rest[i..].trim_start_matches(js::is_js_whitespace);
            }
            None => {
                out.push(rest);
                return out;
            }
        }
    }
}

/// `str.replace(/\s+/g, ' ')`.
fn collapse_space(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_space = false;
    for c in s.chars() {
        if js::is_js_whitespace(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x3400..=0x4DBF | 0x3040..=0x309F | 0x30A0..=0x30FF | 0xAC00..=0xD7AF)
}

/// `str.split(separator)`: an empty separator splits into UTF-16 code units.
fn split(s: &str, separator: &str) -> Vec<String> {
    if separator.is_empty() {
        s.encode_utf16()
            .map(|u| String::from_utf16_lossy(&[u]))
            .collect()
    } else {
        s.split(separator).map(str::to_owned).collect()
    }
}

fn strip(c: &Call<'_>, start: bool, end: bool) -> Result<Value> {
    let s = c.input_str();
    c.charge(s.len())?;
    let chars = c.args.first().filter(|a| {
        js_of(a.as_view()).truthy() && !matches!(js_of(a.as_view()), Js::Str(ref t) if t.is_empty())
    });
    let out = match chars {
        Some(set) => {
            let set = stringify(set.as_view()).into_owned();
            c.charge(set.len())?;
            let matches = |ch: char| set.contains(ch);
            match (start, end) {
                (true, true) => s.trim_matches(matches),
                (true, false) => s.trim_start_matches(matches),
                _ => s.trim_end_matches(matches),
            }
            .to_owned()
        }
        None => match (start, end) {
            (true, true) => js::trim(&s).to_owned(),
            (true, false) => s.trim_start_matches(js::is_js_whitespace).to_owned(),
            _ => s.trim_end_matches(js::is_js_whitespace).to_owned(),
        },
    };
    Ok(Value::scalar(out))
}

fn html_escape(c: &Call<'_>, s: &str) -> Result<Value> {
    c.charge(s.len())?;
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            ch => out.push(ch),
        }
    }
    Ok(Value::scalar(out))
}

fn unescape(c: &Call<'_>, s: &str) -> Result<String> {
    c.charge(s.len())?;
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let found = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&#34;", '"'),
            ("&#39;", '\''),
        ]
        .into_iter()
        .find(|(e, _)| rest.starts_with(e));
        match found {
            Some((e, ch)) => {
                out.push(ch);
                rest = &rest[e.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// liquidjs's `strip_html`: script, style and comment blocks, then any `<…>`.
fn strip_html(c: &Call<'_>) -> Result<Value> {
    let s = c.input_str();
    c.charge(s.len())?;
    let mut blocks: Vec<(&str, &str)> = vec![
        ("<script", "</script>"),
        ("<style", "</style>"),
        ("<!--", "-->"),
        ("<", ">"),
    ];
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        let Some(lt) = s[i..].find('<').map(|p| p + i) else {
            out.push_str(&s[i..]);
            return Ok(Value::scalar(out));
        };
        out.push_str(&s[i..lt]);
        let mut k = 0;
        while k < blocks.len() {
            let (opener, closer) = blocks[k];
            if !s[lt..].starts_with(opener) {
                k += 1;
                continue;
            }
            if let Some(e) = s[lt + opener.len()..].find(closer) {
                i = lt + opener.len() + e + closer.len();
                break;
            }
            blocks.remove(k);
        }
        if i <= lt {
            out.push_str(&s[lt..]);
            return Ok(Value::scalar(out));
        }
    }
    Ok(Value::scalar(out))
}

fn url_decode(c: &Call<'_>) -> Result<Value> {
    let s = c.input_str().replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let malformed = || Error::with_msg("URI malformed");
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = |j: usize| {
            bytes
                .get(j..j + 2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        let first = hex(i + 1).ok_or_else(malformed)?;
        // One escaped UTF-8 sequence must be complete and valid, as decodeURIComponent
        // requires.
        let len = match first {
            0x00..=0x7F => 1,
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return Err(malformed()),
        };
        let mut seq = vec![first];
        for k in 1..len {
            let j = i + 3 * k;
            if bytes.get(j) != Some(&b'%') {
                return Err(malformed());
            }
            seq.push(hex(j + 1).ok_or_else(malformed)?);
        }
        let text = std::str::from_utf8(&seq).map_err(|_| malformed())?;
        out.extend_from_slice(text.as_bytes());
        i += 3 * len;
    }
    String::from_utf8(out)
        .map(Value::scalar)
        .map_err(|_| malformed())
}

fn percent_encode(s: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if keep(ch) {
            out.push(ch);
        } else {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// `encodeURIComponent`.
fn encode_uri_component(s: &str) -> String {
    percent_encode(s, |c| c.is_ascii_alphanumeric() || "-_.!~*'()".contains(c))
}

/// `encodeURI`.
fn encode_uri(s: &str) -> String {
    percent_encode(s, |c| {
        c.is_ascii_alphanumeric() || "-_.!~*'();,/?:@&=+$#".contains(c)
    })
}

fn slugify(c: &Call<'_>) -> Result<Value> {
    let s = c.input_str();
    let mode = if c.given(0) {
        stringify(c.arg(0))
    } else {
        Cow::Borrowed("default")
    };
    let cased =
        js_of(c.arg(1)).truthy() && !matches!(js_of(c.arg(1)), Js::Str(ref t) if t.is_empty());
    // \p{L}, \p{M} and \p{Nd}, approximated by Rust's alphanumeric classes.
    let word = |ch: char| ch.is_alphanumeric();
    let keep: Option<Box<dyn Fn(char) -> bool>> = match mode.as_ref() {
        "raw" => Some(Box::new(|ch| !js::is_js_whitespace(ch))),
        "default" | "latin" => Some(Box::new(word)),
        "pretty" => Some(Box::new(move |ch| {
            word(ch) || "._~!$&'()+,;=@".contains(ch)
        })),
        "ascii" => Some(Box::new(|ch: char| ch.is_ascii_alphanumeric())),
        _ => None,
    };
    let mut text = if mode == "latin" {
        remove_accents(&s)
    } else {
        s.into_owned()
    };
    if let Some(keep) = keep {
        let mut out = String::with_capacity(text.len());
        let mut in_run = false;
        for ch in text.chars() {
            if keep(ch) {
                out.push(ch);
                in_run = false;
            } else if !in_run {
                out.push('-');
                in_run = true;
            }
        }
        let trimmed = out.strip_prefix('-').unwrap_or(&out);
        let trimmed = trimmed.strip_suffix('-').unwrap_or(trimmed);
        text = trimmed.to_owned();
    }
    Ok(Value::scalar(if cased {
        text
    } else {
        text.to_lowercase()
    }))
}

fn remove_accents(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            'à'..='å' => out.push('a'),
            'æ' => out.push_str("ae"),
            'ç' => out.push('c'),
            'è'..='ë' => out.push('e'),
            'ì'..='ï' => out.push('i'),
            'ð' => out.push('d'),
            'ñ' => out.push('n'),
            'ò'..='ö' | 'ø' => out.push('o'),
            'ù'..='ü' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'ß' => out.push_str("ss"),
            'œ' => out.push_str("oe"),
            'þ' => out.push_str("th"),
            'ẞ' => out.push_str("SS"),
            'Œ' => out.push_str("OE"),
            'Þ' => out.push_str("TH"),
            ch => out.push(ch),
        }
    }
    out
}

/// HMAC-SHA-256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// `JSON.stringify(value, null, space)`, charged as liquidjs charges it.
fn json(c: &Call<'_>) -> Result<Value> {
    let indent = match js_of(c.arg(0)) {
        Js::Num(n) if n >= 1.0 => " ".repeat(n.min(10.0) as usize),
        Js::Str(s) => s.chars().take(10).collect(),
        _ => String::new(),
    };
    let mut out = String::new();
    if !write_json(&mut out, c.input, &indent, 0) {
        return Ok(Value::Nil);
    }
    c.charge(out.len())?;
    Ok(Value::scalar(out))
}

/// Writes `JSON.stringify` of a value; false where it gives undefined.
fn write_json(out: &mut String, v: &dyn ValueView, indent: &str, depth: usize) -> bool {
    let newline = |out: &mut String, depth: usize| {
        if !indent.is_empty() {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(indent);
            }
        }
    };
    match js_of(v) {
        Js::Undefined => return false,
        Js::Null | Js::Nil => out.push_str("null"),
        Js::Empty | Js::Blank => out.push_str("\"\""),
        Js::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Js::Num(n) if n.is_finite() => out.push_str(&js::f64_to_string(n)),
        Js::Num(_) => out.push_str("null"),
        Js::Str(s) => js::push_json_string(out, &s),
        Js::Array(a) => {
            out.push('[');
            for (i, item) in a.values().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                if !write_json(out, item, indent, depth + 1) {
                    out.push_str("null");
                }
            }
            if a.size() > 0 {
                newline(out, depth);
            }
            out.push(']');
        }
        Js::Object(o) => {
            out.push('{');
            let mut first = true;
            for (k, item) in o.iter() {
                if matches!(js_of(item), Js::Undefined) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                newline(out, depth + 1);
                js::push_json_string(out, k.as_str());
                out.push(':');
                if !indent.is_empty() {
                    out.push(' ');
                }
                write_json(out, item, indent, depth + 1);
            }
            if !first {
                newline(out, depth);
            }
            out.push('}');
        }
    }
    true
}
