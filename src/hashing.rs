//! SHA-256 of personal data, with the reference's cleaning and already-hashed detection.
//!
//! Every function here is pure. A value that is already a SHA-256 hex digest (64 hex digits,
//! any case) is passed through untouched, hashing switch or not, so callers that hash on their
//! side are never hashed twice.

use crate::text::Text;
use sha2::{Digest, Sha256};

/// What one value becomes: the plain key gets the cleaned value, or the hashed key gets a digest.
#[derive(Clone, PartialEq, Eq)]
pub enum Hashed<S = String> {
    /// Sent in the clear (hashing off), cleaned.
    Plain(S),
    /// Sent as a lowercase hex SHA-256 digest, or a digest the caller supplied as is.
    Digest(S),
}

impl<S: std::fmt::Display> std::fmt::Debug for Hashed<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hashed::Plain(_) => f.write_str("Plain(<redacted>)"),
            Hashed::Digest(d) => write!(f, "Digest({d})"),
        }
    }
}

/// Whether `value` is already a SHA-256 hex digest: exactly 64 characters of `[0-9a-fA-F]`.
///
/// ```
/// use rokt_capi::hashing::is_sha256_hex;
/// assert!(is_sha256_hex(&"ab".repeat(32)));
/// assert!(!is_sha256_hex("jane@example.com"));
/// ```
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Lowercase hex SHA-256 of the UTF-8 bytes of `value`.
///
/// ```
/// assert_eq!(
///     rokt_capi::hashing::sha256_hex("abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn sha256_hex(value: &str) -> String {
    let mut out = [0u8; 64];
    spell_digest(value, &mut out);
    // Hex digits are ASCII, so this never takes the empty default.
    std::str::from_utf8(&out)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// Writes the lowercase hex SHA-256 of `value` into `out`. Each state word is spelled eight
/// digits at a time with integer arithmetic (no table, no per-digit branch).
fn spell_digest(value: &str, out: &mut [u8; 64]) {
    for (digits, word) in out.chunks_exact_mut(8).zip(sha256(value.as_bytes())) {
        digits.copy_from_slice(&hex_word(word));
    }
}

/// The eight lowercase hex digits of `word`, most significant first.
fn hex_word(word: u32) -> [u8; 8] {
    // Spread the nibbles one per byte, least significant in the lowest byte.
    let mut x = u64::from(word);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // A byte is 1 where its nibble is 10 or more (adding 6 carries into bit 4, never further).
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    // '0' + n for digits, 'a' + n - 10 = '0' + n + 39 for letters; no byte overflows.
    let ascii = x + 0x3030_3030_3030_3030 + letters * 39;
    ascii.to_be_bytes()
}

/// SHA-256 of `data`, as the eight words of the final state. Names, emails, phone numbers and
/// zip codes fit one 64-byte block with its padding; for them the block is padded here and
/// compressed directly, which skips the streaming hasher's buffering (five digests per event).
/// Longer input takes the hasher.
fn sha256(data: &[u8]) -> [u32; 8] {
    /// The initial hash value (FIPS 180-4, 5.3.3).
    const INITIAL: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    if data.len() > 55 {
        let digest: [u8; 32] = Sha256::digest(data).into();
        let mut words = [0u32; 8];
        for (word, bytes) in words.iter_mut().zip(digest.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        return words;
    }
    // The block is assembled sixteen bytes at a time in registers and stored that way: the
    // compression loads it in sixteen-byte pieces, and a load that spans several smaller
    // stores (a byte-wise copy, the lone 0x80) waits for them to reach the cache.
    let len = data.len();
    let bits = (len as u64) * 8;
    let mut block = [0u8; 64];
    for (i, piece) in block.chunks_exact_mut(16).enumerate() {
        let start = i * 16;
        let mut word = data.get(start..).map_or(0, crate::words::le_double_word);
        if (start..start + 16).contains(&len) {
            word |= 0x80 << ((len - start) * 8);
        }
        if i == 3 {
            // The length, big-endian, in the last eight bytes.
            word |= u128::from(bits.swap_bytes()) << 64;
        }
        piece.copy_from_slice(&word.to_le_bytes());
    }
    let mut state = INITIAL;
    sha2::compress256(&mut state, &[block.into()]);
    state
}

/// How a value is cleaned before it is sent or hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cleaning {
    /// Emails: Unicode lowercase, then trimmed (JavaScript's `toLocaleLowerCase().trim()`).
    Email,
    /// Names, mobile numbers and zip codes: trimmed.
    Trim,
}

impl Cleaning {
    /// The cleaned value.
    pub fn apply(self, value: &str) -> String {
        self.apply_owned(value.to_owned())
    }

    /// The cleaned value, reusing `value`'s allocation when it can.
    pub fn apply_owned(self, value: String) -> String {
        self.clean(value)
    }

    /// The cleaned value, borrowing or reusing `value` where cleaning leaves it unchanged.
    pub fn clean<S: Text>(self, value: S) -> S {
        // Trimming first is the same as the reference's lowercase-then-trim (lowercasing maps
        // no character to or from whitespace) and leaves less to lowercase.
        let value = value.trimmed(crate::js::trim);
        if self == Cleaning::Email
            && value
                .bytes()
                .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
        {
            let mut text: String = value.into();
            if text.is_ascii() {
                text.make_ascii_lowercase();
            } else {
                text = lowercase(&text);
            }
            return S::from(text);
        }
        value
    }
}

/// `str::to_lowercase`, with ASCII characters lowercased inline: emails are mostly ASCII with
/// a non-ASCII letter or two, and std lowercases every character after the first non-ASCII one
/// through its Unicode tables.
fn lowercase(s: &str) -> String {
    // A capital sigma lowercases by its context (final or not), which std alone decides.
    if s.contains('Σ') {
        return s.to_lowercase();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The email cleaning: Unicode lowercase, then trimmed.
pub fn clean_email(email: &str) -> String {
    Cleaning::Email.apply(email)
}

/// Applies the reference's `maybeHash`: an already-hashed value is kept as a digest; otherwise
/// the cleaned value is hashed when `hash` is on, or sent plain.
///
/// ```
/// use rokt_capi::hashing::{Cleaning, Hashed, maybe_hash, sha256_hex};
/// assert_eq!(maybe_hash(" A@B.co ".into(), false, Cleaning::Email), Hashed::Plain("a@b.co".into()));
/// assert_eq!(maybe_hash(" A@B.co ".into(), true, Cleaning::Email), Hashed::Digest(sha256_hex("a@b.co")));
/// ```
pub fn maybe_hash(value: String, hash: bool, cleaning: Cleaning) -> Hashed {
    maybe_hash_text(value, hash, cleaning, &mut |v| sha256_hex(v))
}

/// The longest ASCII email [`maybe_hash_text`] cleans on the stack (longer ones are rare).
const ASCII_EMAIL_ON_STACK: usize = 128;

/// A value as the batch carries it: under its plain key or, hashed or already a digest, under
/// its digest key (at most one of the two).
pub(crate) fn plain_or_digest<S: Text>(
    value: Option<S>,
    hash: bool,
    cleaning: Cleaning,
    digest: &mut impl FnMut(&str) -> S,
) -> (Option<S>, Option<S>) {
    match value.map(|v| maybe_hash_text(v, hash, cleaning, digest)) {
        Some(Hashed::Plain(v)) => (Some(v), None),
        Some(Hashed::Digest(v)) => (None, Some(v)),
        None => (None, None),
    }
}

/// [`maybe_hash`] for either string type: a borrowed value that cleaning leaves unchanged
/// stays borrowed.
pub(crate) fn maybe_hash_text<S: Text>(
    value: S,
    hash: bool,
    cleaning: Cleaning,
    digest: &mut impl FnMut(&str) -> S,
) -> Hashed<S> {
    if is_sha256_hex(&value) {
        return Hashed::Digest(value);
    }
    if hash && cleaning == Cleaning::Email {
        // An ASCII email is lowercased on the stack for its digest: cleaning it as a string
        // would allocate for nearly every email (they are rarely written in lowercase).
        let trimmed = crate::js::trim(&value);
        if trimmed.len() <= ASCII_EMAIL_ON_STACK && trimmed.is_ascii() {
            let mut buf = [0u8; ASCII_EMAIL_ON_STACK];
            let lower = &mut buf[..trimmed.len()];
            lower.copy_from_slice(trimmed.as_bytes());
            lower.make_ascii_lowercase();
            if let Ok(text) = std::str::from_utf8(lower) {
                return Hashed::Digest(digest(text));
            }
        }
    }
    let cleaned = cleaning.clean(value);
    if hash {
        Hashed::Digest(digest(&cleaned))
    } else {
        Hashed::Plain(cleaned)
    }
}

/// Spells digests into slots the caller owns, so a batch that borrows its strings borrows its
/// digests too instead of allocating one string per hashed field.
pub(crate) struct DigestSlots<'d> {
    free: std::slice::IterMut<'d, [u8; 64]>,
}

impl<'d> DigestSlots<'d> {
    /// Hands out `slots` one digest each.
    pub(crate) fn new(slots: &'d mut [[u8; 64]]) -> Self {
        Self {
            free: slots.iter_mut(),
        }
    }

    /// The hex digest of `value`, in the next free slot (or allocated, once they are used up).
    pub(crate) fn digest(&mut self, value: &str) -> std::borrow::Cow<'d, str> {
        let Some(slot) = self.free.next() else {
            return std::borrow::Cow::Owned(sha256_hex(value));
        };
        spell_digest(value, slot);
        let slot: &'d [u8; 64] = slot;
        // Hex digits are ASCII, so this never takes the allocated fallback.
        match std::str::from_utf8(slot) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => std::borrow::Cow::Owned(sha256_hex(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn hashed_emails_are_the_digests_of_the_cleaned_emails() {
        let long = format!("{}@Example.COM", "X".repeat(ASCII_EMAIL_ON_STACK));
        for email in [
            " Jane.Doe@Example.COM\t",
            "already@lower.case",
            "Zoë.Müller@Example.COM",
            "ΣΑΣ@EXAMPLE.COM",
            "\u{a0}UPPER@X.IO\u{2028}",
            &long[long.len() - ASCII_EMAIL_ON_STACK..],
            &long[long.len() - ASCII_EMAIL_ON_STACK - 1..],
            &long,
        ] {
            let expected = Hashed::Digest(sha256_hex(&clean_email(email)));
            assert_eq!(
                maybe_hash(email.into(), true, Cleaning::Email),
                expected,
                "{email}"
            );
        }
    }

    #[test]
    fn one_block_digests_match_the_streaming_hasher_at_every_length() {
        let text: String = (0..200u32)
            .map(|i| char::from_u32(0x20 + (i * 37) % 0x5f).unwrap_or('x'))
            .collect();
        for n in 0..text.len() {
            let expected = hex::encode(Sha256::digest(&text.as_bytes()[..n]));
            assert_eq!(sha256_hex(&text[..n]), expected, "length {n}");
        }
    }

    proptest::proptest! {
        /// Mostly ASCII with some Latin, Greek (sigmas included) and other letters, as emails
        /// and names are.
        #[test]
        fn lowercasing_agrees_with_std(s in "([A-Za-z0-9@. _-]|[ÀÉÖÜİẞΣσςΑΩЖ]|\\PC){0,40}") {
            proptest::prop_assert_eq!(lowercase(&s), s.to_lowercase());
        }
    }

    #[test]
    fn lowercasing_keeps_the_sigma_rules_and_expanding_letters() {
        for s in [
            "ΟΔΟΣ",
            "ΣΑ Σ",
            "Zoë.Müller@Example.COM",
            "İstanbul@X.com",
            "ẞ",
            "Ω.Σ.",
        ] {
            assert_eq!(lowercase(s), s.to_lowercase(), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn words_are_spelled_as_lowercase_hex(word: u32) {
            let expected = format!("{word:08x}");
            proptest::prop_assert_eq!(&hex_word(word)[..], expected.as_bytes());
        }
    }

    proptest::proptest! {
        /// Cleaning trims before it lowercases (less to lowercase, and a borrowed value stays
        /// borrowed); the result is the reference's lowercase-then-trim, for both string types.
        #[test]
        fn cleaning_matches_lowercase_then_trim(
            s in "[ \t\n\u{a0}\u{2028}\u{feff}aZé\u{130}\u{3a3}ß@.1]{0,12}"
        ) {
            let js_trim = crate::js::trim;
            let email = js_trim(&s.to_lowercase()).to_owned();
            let trimmed = js_trim(&s).to_owned();
            proptest::prop_assert_eq!(&Cleaning::Email.clean(s.clone()), &email);
            proptest::prop_assert_eq!(&Cleaning::Email.clean(Cow::Borrowed(s.as_str())), &email);
            proptest::prop_assert_eq!(&Cleaning::Trim.clean(s.clone()), &trimmed);
            let borrowed = Cleaning::Trim.clean(Cow::Borrowed(s.as_str()));
            proptest::prop_assert!(matches!(borrowed, Cow::Borrowed(_)));
            proptest::prop_assert_eq!(&borrowed, &trimmed);
        }
    }

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // From the conformance corpus: " Jane " trimmed, and the cleaned email.
        assert_eq!(
            sha256_hex("Jane"),
            "4f23798d92708359b734a18172c9c864f1d48044a754115a0d4b843bca3a5332"
        );
        assert_eq!(
            sha256_hex(&clean_email("  Jane.Doe@Example.COM ")),
            "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"
        );
    }

    #[test]
    fn unicode_lowercase_and_js_trim() {
        assert_eq!(clean_email(" ÉLODIE@Exämple.FR "), "élodie@exämple.fr");
        assert_eq!(clean_email("\u{FEFF}a@b.co\u{3000}"), "a@b.co");
        assert_eq!(Cleaning::Trim.apply("\u{85}x"), "\u{85}x");
    }

    #[test]
    fn already_hashed_passes_through_either_way() {
        let d = "F660AB912EC121D1B1E928A0BB4BC61B15F5AD44D5EFDC4E1C92A25E99B8E44A";
        assert_eq!(
            maybe_hash(d.into(), false, Cleaning::Email),
            Hashed::Digest(d.into())
        );
        assert_eq!(
            maybe_hash(d.into(), true, Cleaning::Email),
            Hashed::Digest(d.into())
        );
        assert!(!is_sha256_hex(&d[1..]));
        assert!(!is_sha256_hex(&format!("{}g", &d[1..])));
    }

    #[test]
    fn plain_when_off() {
        assert_eq!(
            maybe_hash(" A@B.co ".into(), false, Cleaning::Email),
            Hashed::Plain("a@b.co".into())
        );
        assert_eq!(
            maybe_hash(" Jane ".into(), false, Cleaning::Trim),
            Hashed::Plain("Jane".into())
        );
    }

    #[test]
    fn debug_hides_plain_values() {
        assert!(
            !format!(
                "{:?}",
                maybe_hash("jane@x.co".into(), false, Cleaning::Email)
            )
            .contains("jane")
        );
    }
}
