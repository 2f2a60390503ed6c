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
    // ryu-js prints -0 as "-0"; JS prints it as "0".
    if n == 0.0 {
        return "0".to_owned();
    }
    ryu_js::Buffer::new().format(n).to_owned()
}

/// JS `WhiteSpace` and `LineTerminator` code points, which `Number()` trims.
fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{a}' | '\u{b}' | '\u{c}' | '\u{d}' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// `Number(s)` for a string (ECMAScript `StringToNumber`).
pub(super) fn string_to_number(s: &str) -> f64 {
    let s = s.trim_matches(is_js_space);
    if s.is_empty() {
        return 0.0;
    }
    match s {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    let bytes = s.as_bytes();
    if bytes.len() > 2 && bytes[0] == b'0' {
        let radix = match bytes[1] {
            b'x' | b'X' => Some(16),
            b'o' | b'O' => Some(8),
            b'b' | b'B' => Some(2),
            _ => None,
        };
        if let Some(radix) = radix {
            return parse_power_of_two_radix(&s[2..], radix);
        }
    }
    if is_decimal_literal(bytes) {
        // Rust's parser is correctly rounded, like JS; the grammar check above keeps out the
        // spellings Rust accepts and JS does not ("inf", "nan", ...).
        s.parse::<f64>().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

/// `StrDecimalLiteral` without the `Infinity` spellings: `[+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?`.
fn is_decimal_literal(b: &[u8]) -> bool {
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut digits = i - int_start;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// Parses `0x` / `0o` / `0b` digits with round-half-to-even, as JS does for long literals.
fn parse_power_of_two_radix(digits: &str, radix: u32) -> f64 {
    let bits_per_digit = radix.trailing_zeros() as usize;
    let mut bits: Vec<bool> = Vec::with_capacity(digits.len() * bits_per_digit);
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else {
            return f64::NAN;
        };
        for shift in (0..bits_per_digit).rev() {
            bits.push((d >> shift) & 1 == 1);
        }
    }
    if bits.is_empty() {
        return f64::NAN;
    }
    let first_one = bits.iter().position(|&b| b).unwrap_or(bits.len());
    let bits = &bits[first_one..];
    const MANTISSA_BITS: usize = 53;
    if bits.len() <= MANTISSA_BITS {
        return bits
            .iter()
            .fold(0.0, |acc, &b| acc * 2.0 + f64::from(u8::from(b)));
    }
    let mut mantissa: u64 = bits[..MANTISSA_BITS]
        .iter()
        .fold(0, |acc, &b| (acc << 1) | u64::from(b));
    let round_bit = bits[MANTISSA_BITS];
    let sticky = bits[MANTISSA_BITS + 1..].iter().any(|&b| b);
    if round_bit && (sticky || mantissa & 1 == 1) {
        mantissa += 1;
    }
    let exponent = i32::try_from(bits.len() - MANTISSA_BITS).unwrap_or(i32::MAX);
    // 2^exponent overflows to infinity exactly when the JS result does.
    (mantissa as f64) * 2f64.powi(exponent)
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
