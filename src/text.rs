//! The string type the payload and batch types hold.
//!
//! Owned `String`s are the default and what callers build and keep. The encoder instead fills
//! the same types with `Cow<'_, str>` that borrow from the parsed event, so turning an event
//! into wire bytes copies none of its strings: only the values made along the way (digests,
//! lowercased emails, dates) are allocated.

use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Debug;
use std::ops::Deref;

mod sealed {
    pub trait Sealed {}
    impl Sealed for String {}
    impl Sealed for std::borrow::Cow<'_, str> {}
}

/// A string held by the payload and batch types: [`String`] (the default) or [`Cow<str>`].
///
/// Sealed: the crate relies on exactly these two behaviours.
pub trait Text:
    sealed::Sealed
    + Clone
    + Default
    + PartialEq
    + Debug
    + Deref<Target = str>
    + From<String>
    + Into<String>
    + Serialize
{
    /// A fixed string (a key's value such as `conversion`), without allocating where the type
    /// can borrow it.
    fn from_static(s: &'static str) -> Self;

    /// The part `trim` keeps of this string, without copying where the type can borrow it.
    fn trimmed(self, trim: impl FnOnce(&str) -> &str) -> Self;
}

impl Text for String {
    fn from_static(s: &'static str) -> Self {
        s.to_owned()
    }

    fn trimmed(self, trim: impl FnOnce(&str) -> &str) -> Self {
        let kept = trim(&self);
        if kept.len() == self.len() {
            self
        } else {
            kept.to_owned()
        }
    }
}

impl Text for Cow<'_, str> {
    fn from_static(s: &'static str) -> Self {
        Cow::Borrowed(s)
    }

    // Always inlined: the direct plan trims a dozen fields per event, and when the form it
    // reads became generic the compiler stopped inlining this (1% more instructions, 3–5%
    // slower in interleaved runs of the preview).
    #[inline(always)]
    fn trimmed(self, trim: impl FnOnce(&str) -> &str) -> Self {
        match self {
            Cow::Borrowed(s) => Cow::Borrowed(trim(s)),
            Cow::Owned(s) => Cow::Owned(s.trimmed(trim)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_borrows_what_it_can() {
        let text = String::from("  a b ");
        let borrowed = Cow::Borrowed(text.as_str()).trimmed(str::trim);
        assert!(matches!(borrowed, Cow::Borrowed("a b")));
        let owned: Cow<'_, str> = Cow::Owned(text.clone());
        assert_eq!(owned.trimmed(str::trim), "a b");
        assert_eq!(text.clone().trimmed(str::trim), "a b");
        let untouched = String::from("ab");
        let ptr = untouched.as_ptr();
        let kept = untouched.trimmed(str::trim);
        assert_eq!(
            kept.as_ptr(),
            ptr,
            "an untrimmed string keeps its allocation"
        );
        assert!(matches!(
            <Cow<'_, str>>::from_static("conversion"),
            Cow::Borrowed("conversion")
        ));
        assert_eq!(String::from_static("conversion"), "conversion");
    }
}
