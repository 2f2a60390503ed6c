//! The few pieces of JavaScript semantics the reference leans on: `Number(x)`, `String(x)`,
//! `String.prototype.slice` on UTF-16 code units, and the names of built-in prototype members
//! that a JS property lookup finds even when the JSON data does not have them.

/// A primitive as the reference's `getTokenValue` produces it.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Prim {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl Prim {
    /// `String(value)`.
    pub(super) fn to_js_string(&self) -> String {
        match self {
            Prim::Str(s) => s.clone(),
            Prim::Num(n) => number_to_string(*n),
            Prim::Bool(b) => b.to_string(),
        }
    }

    /// `Number(value)`.
    pub(super) fn to_number(&self) -> f64 {
        match self {
            Prim::Str(s) => string_to_number(s),
            Prim::Num(n) => *n,
            Prim::Bool(b) => f64::from(u8::from(*b)),
        }
    }
}

/// `String(n)` for a JS number.
pub(super) fn number_to_string(n: f64) -> String {
    crate::mapping::js::f64_to_string(n)
}

/// `Number(s)` for a string.
pub(super) fn string_to_number(s: &str) -> f64 {
    crate::mapping::js::string_to_number(s)
}

/// `s.slice(start, end)` measured in UTF-16 code units, as the reference slices `match()`
/// patterns. May split a surrogate pair, hence the `Vec<u16>`.
pub(super) fn slice_utf16(s: &str, drop_front: usize, drop_back: usize) -> Vec<u16> {
    let units: Vec<u16> = s.encode_utf16().collect();
    let end = units.len().saturating_sub(drop_back);
    units
        .get(drop_front.min(end)..end)
        .unwrap_or_default()
        .to_vec()
}

/// Members of `Object.prototype` (Node 20), which every JS object inherits.
pub(super) const OBJECT_PROTO: &[&str] = &[
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
    "__proto__",
    "constructor",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toLocaleString",
    "toString",
    "valueOf",
];

/// Members of `Array.prototype` (Node 20).
pub(super) const ARRAY_PROTO: &[&str] = &[
    "at",
    "concat",
    "constructor",
    "copyWithin",
    "entries",
    "every",
    "fill",
    "filter",
    "find",
    "findIndex",
    "findLast",
    "findLastIndex",
    "flat",
    "flatMap",
    "forEach",
    "includes",
    "indexOf",
    "join",
    "keys",
    "lastIndexOf",
    "map",
    "pop",
    "push",
    "reduce",
    "reduceRight",
    "reverse",
    "shift",
    "slice",
    "some",
    "sort",
    "splice",
    "toLocaleString",
    "toReversed",
    "toSorted",
    "toSpliced",
    "toString",
    "unshift",
    "values",
    "with",
];

/// Members of `String.prototype` (Node 20).
pub(super) const STRING_PROTO: &[&str] = &[
    "anchor",
    "at",
    "big",
    "blink",
    "bold",
    "charAt",
    "charCodeAt",
    "codePointAt",
    "concat",
    "constructor",
    "endsWith",
    "fixed",
    "fontcolor",
    "fontsize",
    "includes",
    "indexOf",
    "isWellFormed",
    "italics",
    "lastIndexOf",
    "link",
    "localeCompare",
    "match",
    "matchAll",
    "normalize",
    "padEnd",
    "padStart",
    "repeat",
    "replace",
    "replaceAll",
    "search",
    "slice",
    "small",
    "split",
    "startsWith",
    "strike",
    "sub",
    "substr",
    "substring",
    "sup",
    "toLocaleLowerCase",
    "toLocaleUpperCase",
    "toLowerCase",
    "toString",
    "toUpperCase",
    "toWellFormed",
    "trim",
    "trimEnd",
    "trimLeft",
    "trimRight",
    "trimStart",
    "valueOf",
];

/// Members of `Number.prototype` (Node 20).
pub(super) const NUMBER_PROTO: &[&str] = &[
    "constructor",
    "toExponential",
    "toFixed",
    "toLocaleString",
    "toPrecision",
    "toString",
    "valueOf",
];

/// Members of `Boolean.prototype` (Node 20).
pub(super) const BOOLEAN_PROTO: &[&str] = &["constructor", "toString", "valueOf"];
