//! A compact JSON [`serde::Serializer`] for the Rokt wire types: exactly the bytes
//! `serde_json::to_vec` writes, written faster.
//!
//! The shape of the JSON still comes from the serde derives on [`Batch`](super::Batch) and its
//! parts; this module only decides how each token is spelled, and spells it as serde_json's
//! compact formatter does — integers as `itoa` prints them, unit variants as their name, newtype,
//! tuple and struct variants wrapped in a one-key object, bytes as an array of numbers — with one
//! exception: an `f64` is spelled as JavaScript's `JSON.stringify` spells it, because that is what
//! the reference sends (shortest round-trip digits, `1` not `1.0`, `0` for `-0`, `1e+21`,
//! `0.000001`, `1e-7`; non-finite as `null`). The tests compare every other shape with serde_json
//! itself, so an upgrade that changes a spelling fails them.
//!
//! Why it exists: a batch is mostly strings (hex digests, ids, attribute keys), and
//! serde_json's escaper looks each byte up in a table before copying the run. Here a scan eight
//! bytes at a time (SWAR, on `u64` words) finds the next byte that needs escaping, and clean runs
//! are copied whole. Output goes straight into a `Vec<u8>` rather than through `io::Write`.
//!
//! What it does not support it refuses with an [`Error`] (map keys that are not strings, and
//! serde_json's private `arbitrary_precision` / `raw_value` tokens, whose spelling only
//! serde_json knows), so a caller can fall back to serde_json and still send the same bytes.

use serde::ser::{self, Serialize};

/// Serializes `value` as compact JSON, appending to `out`. On error `out` may hold a partial
/// document.
pub(crate) fn to_writer<T: ?Sized + Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(Writer { out })
}

/// Serializes `value` as compact JSON.
#[cfg(test)]
pub(crate) fn to_vec<T: ?Sized + Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(128);
    to_writer(&mut out, value)?;
    Ok(out)
}

/// Why a value could not be written.
#[derive(Debug)]
pub(crate) struct Error(Box<str>);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string().into())
    }
}

fn unsupported(what: &str) -> Error {
    Error(format!("the wire serializer does not support {what}").into())
}

/// serde_json recognises structs with these names (behind its `arbitrary_precision` and
/// `raw_value` features) and writes their content verbatim. Cargo may unify those features in
/// from some other crate, so such a struct is refused rather than written as an object.
const SERDE_JSON_PRIVATE: &str = "$serde_json::private::";

// --- strings ------------------------------------------------------------------------------

/// `0x01` in every byte of a word.
const ONES: u64 = u64::from_le_bytes([0x01; 8]);
/// `0x80` in every byte of a word.
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// Bit 7 of a byte of the result is set where the corresponding byte of `word` needs escaping:
/// a control byte (< 0x20), `"` or `\`.
///
/// These are the classic "has a byte less than n" / "has a zero byte" tricks: a flag can be
/// spuriously set only in a byte *above* a truly flagged one (a borrow carries upward), so the
/// lowest flag, the only one used, is always exact. Bytes >= 0x80 (UTF-8 beyond ASCII) are never
/// flagged by themselves, since `!word` clears their bit 7.
#[inline]
fn escape_flags(word: u64) -> u64 {
    let control = word.wrapping_sub(ONES * 0x20);
    let q = word ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = word ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    ((control & !word) | quote | backslash) & HIGHS
}

/// Eight spaces: padding that never needs escaping.
const SPACES: u64 = ONES * 0x20;

/// The bytes of a slice shorter than a word as the low bytes of a little-endian word, the rest
/// spaces (which never need escaping).
#[inline]
fn load_short(b: &[u8]) -> u64 {
    crate::words::short_le_word(b) | SPACES << ((b.len() & 7) * 8)
}

/// Appends a word's first `keep` bytes. Writing all eight and truncating is one 8-byte store
/// where copying `keep` bytes would be a `memcpy` call (`write_str` reserves the room for the
/// overshoot).
#[inline]
fn push_word_prefix(out: &mut Vec<u8>, word: u64, keep: usize) {
    let len = out.len();
    out.extend_from_slice(&word.to_le_bytes());
    out.truncate(len + keep);
}

/// Whether a slice of at least eight bytes has nothing to escape. No early exit: strings that
/// need escaping are rare, and OR-ing every word's flags keeps the loop branch-free. The last
/// word overlaps the one before it rather than being padded; rechecking clean bytes is harmless.
#[inline(always)]
fn is_clean_long(bytes: &[u8]) -> bool {
    let mut flags = 0;
    for chunk in bytes.chunks_exact(8) {
        flags |= escape_flags(word(chunk));
    }
    if let Some(last) = bytes.last_chunk::<8>() {
        flags |= escape_flags(u64::from_le_bytes(*last));
    }
    flags == 0
}

/// The little-endian word of an 8-byte chunk (little-endian so that the lowest flag is the
/// first byte in the string, whatever the machine's byte order).
#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_le_bytes(w)
}

/// Appends `bytes` escaped as a JSON string's content: the slow path, taken once something in
/// the string needs escaping. Clean runs are still copied a word at a time.
#[cold]
#[inline(never)]
fn write_escaped(out: &mut Vec<u8>, mut rest: &[u8]) {
    loop {
        // Whole words: scan and copy eight bytes at a time.
        while let Some((chunk, tail)) = rest.split_first_chunk::<8>() {
            let word = u64::from_le_bytes(*chunk);
            let flags = escape_flags(word);
            if flags == 0 {
                out.extend_from_slice(chunk);
                rest = tail;
                continue;
            }
            let clean = (flags.trailing_zeros() / 8) as usize;
            push_word_prefix(out, word, clean);
            write_escape(out, chunk[clean]);
            rest = &rest[clean + 1..];
        }
        // Fewer than eight bytes left: one padded word.
        let word = load_short(rest);
        let flags = escape_flags(word);
        if flags == 0 {
            push_word_prefix(out, word, rest.len());
            return;
        }
        // Padding is never flagged, so the flag is inside `rest`.
        let clean = (flags.trailing_zeros() / 8) as usize;
        push_word_prefix(out, word, clean);
        write_escape(out, rest[clean]);
        rest = &rest[clean + 1..];
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the escape for one byte `escape_flags` flagged, spelled as serde_json spells it.
#[inline]
fn write_escape(out: &mut Vec<u8>, byte: u8) {
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            let hex = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ];
            out.extend_from_slice(&hex);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

/// Appends `s` as a JSON string. `/`, DEL and non-ASCII characters are written as they are.
///
/// Always inlined: for struct keys and variant names the string is a constant, so the scan
/// folds away and what is left is a few stores.
#[inline(always)]
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    // The quotes, plus up to seven bytes a word write puts past the end before truncating: with
    // this one reservation the writes below never reallocate unless something is escaped.
    out.reserve(s.len() + 2 + 7);
    out.push(b'"');
    write_contents(out, s.as_bytes());
    out.push(b'"');
}

/// Appends a string's content: the fast paths for strings with nothing to escape, else
/// [`write_escaped`]. Works on bytes, not `str`: only ASCII bytes are ever escaped, so a UTF-8
/// sequence passes through whole.
#[inline(always)]
fn write_contents(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() < 8 {
        // One padded word: scanned, and if clean written with a single store.
        let word = load_short(bytes);
        if escape_flags(word) == 0 {
            push_word_prefix(out, word, bytes.len());
        } else {
            write_escaped(out, bytes);
        }
    } else if is_clean_long(bytes) {
        out.extend_from_slice(bytes);
    } else {
        write_escaped(out, bytes);
    }
}

// --- numbers ------------------------------------------------------------------------------

#[inline]
fn write_int<I: itoa::Integer>(out: &mut Vec<u8>, n: I) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// An f64 as `JSON.stringify` writes it.
#[inline]
fn write_js_number(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.extend_from_slice(b"null");
    } else if f == 0.0 {
        // Both zeros: ryu-js would spell -0 as `-0`.
        out.push(b'0');
    } else {
        out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes());
    }
}

#[inline]
fn write_float<F: zmij::Float>(out: &mut Vec<u8>, f: F, finite: bool) {
    if finite {
        out.extend_from_slice(zmij::Buffer::new().format_finite(f).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

// --- the serializer -------------------------------------------------------------------------

/// Writes one value into the buffer.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

/// An array or object being written: whether the next element is the first decides the comma.
struct Compound<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Compound<'a> {
    fn new(out: &'a mut Vec<u8>, open: u8) -> Self {
        out.push(open);
        Compound { out, first: true }
    }

    #[inline]
    fn comma(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    #[inline]
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.comma();
        value.serialize(Writer { out: self.out })
    }

    #[inline(always)]
    fn field<T: ?Sized + Serialize>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        self.comma();
        write_str(self.out, key);
        self.out.push(b':');
        value.serialize(Writer { out: self.out })
    }
}

impl<'a> Writer<'a> {
    /// `{"variant":` — the opening of an externally tagged variant with content.
    fn open_variant(self, variant: &str) -> &'a mut Vec<u8> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        self.out
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        // f32 keeps its own shortest spelling (0.1f32 is `0.1`, not `0.10000000149011612`).
        write_float(self.out, v, v.is_finite());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        write_js_number(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        let mut seq = Compound::new(self.out, b'[');
        for byte in v {
            seq.comma();
            write_int(seq.out, *byte);
        }
        seq.out.push(b']');
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    // Inlined into the derived `serialize` of the enum, where the name is a constant.
    #[inline(always)]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        write_str(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let out = self.open_variant(variant);
        value.serialize(Writer { out: &mut *out })?;
        out.push(b'}');
        Ok(())
    }
    // Length hints are ignored: serde_json writes `[]`/`{}` up front for a zero hint and
    // nothing at the end, which is the same bytes as opening and closing here.
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(Compound::new(self.out, b'['))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a>, Error> {
        Ok(Compound::new(self.out, b'['))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        Ok(Compound::new(self.out, b'['))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        Ok(Compound::new(self.open_variant(variant), b'['))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(Compound::new(self.out, b'{'))
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Compound<'a>, Error> {
        if name.starts_with(SERDE_JSON_PRIVATE) {
            return Err(unsupported(name));
        }
        Ok(Compound::new(self.out, b'{'))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        Ok(Compound::new(self.open_variant(variant), b'{'))
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        // The array, then the `{"variant":` wrapper.
        self.out.extend_from_slice(b"]}");
        Ok(())
    }
}

/// `#[serde(flatten)]` fields arrive here too: serde's `FlatMapSerializer` forwards their
/// entries to the enclosing struct's map, so nothing is buffered.
impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        key.serialize(KeyWriter { out: self.out })?;
        self.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(Writer { out: self.out })
    }
    fn end(self) -> Result<(), Error> {
        self.out.push(b'}');
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;
    // Inlined into the derived `serialize` so the key is a constant there (see `write_str`).
    #[inline(always)]
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.out.push(b'}');
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        // The object, then the `{"variant":` wrapper.
        self.out.extend_from_slice(b"}}");
        Ok(())
    }
}

// --- map keys -----------------------------------------------------------------------------

/// Writes a map key, which must be a string. serde_json also quotes numeric and boolean keys;
/// the Rokt types have none, so those are refused (and a caller falls back to serde_json).
struct KeyWriter<'a> {
    out: &'a mut Vec<u8>,
}

fn non_string_key() -> Error {
    unsupported("map keys that are not strings")
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        write_str(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_bool(self, _: bool) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_i8(self, _: i8) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_i16(self, _: i16) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_i32(self, _: i32) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_i64(self, _: i64) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_u8(self, _: u8) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_u16(self, _: u16) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_u32(self, _: u32) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_u64(self, _: u64) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(non_string_key())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(non_string_key())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(non_string_key())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(non_string_key())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(non_string_key())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(non_string_key())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(non_string_key())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(non_string_key())
    }
}

#[cfg(test)]
mod tests;
