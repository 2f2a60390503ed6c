//! The render state: variables looked up as liquidjs looks them up (a missing one is
//! undefined, not an error), and the reference's render limits.

use super::view::{Js, UNDEFINED, js_of};
use crate::Json;
use liquid_core::Runtime;
use liquid_core::error::{Error, Result};
use liquid_core::model::{KString, KStringCow, KStringRef, ScalarCow, Value, ValueCow, ValueView};
use liquid_core::runtime::{PartialStore, Registers};
use std::time::{Duration, Instant};

/// liquidjs's `renderLimit` in the reference: 500 ms of rendering.
const RENDER_LIMIT: Duration = Duration::from_millis(500);
/// liquidjs's `memoryLimit` in the reference, in the units its filters charge (string lengths,
/// array sizes).
const MEMORY_LIMIT: u64 = 100_000_000;
/// What variable lookups may print or copy in one render. liquidjs does not count these, but
/// JavaScript cannot hold a string longer than V8's maximum, so a template that doubles a
/// string with `capture` fails there; this budget stops it at about the same point instead of
/// exhausting memory.
const LOOKUP_LIMIT: u64 = 536_870_888;

/// What one render has used so far, kept in the runtime's registers so filters see it too.
#[derive(Default)]
pub(super) struct Budget {
    used: u64,
    looked_up: u64,
    started: Option<Instant>,
}

/// Charges `units` of memory, failing as liquidjs's limiter does once the limit is passed.
pub(super) fn charge(runtime: &dyn Runtime, units: usize) -> Result<()> {
    let mut budget = runtime.registers().get_mut::<Budget>();
    budget.used = budget.used.saturating_add(units as u64);
    if budget.used > MEMORY_LIMIT {
        return Err(Error::with_msg("memory alloc limit exceeded"));
    }
    check_time(&budget)
}

/// Charges a variable lookup of `bytes`.
fn charge_lookup(runtime: &dyn Runtime, bytes: usize) -> Result<()> {
    let mut budget = runtime.registers().get_mut::<Budget>();
    budget.looked_up = budget.looked_up.saturating_add(bytes as u64);
    if budget.looked_up > LOOKUP_LIMIT {
        return Err(Error::with_msg("Invalid string length"));
    }
    check_time(&budget)
}

fn check_time(budget: &Budget) -> Result<()> {
    if budget
        .started
        .is_some_and(|start| start.elapsed() > RENDER_LIMIT)
    {
        return Err(Error::with_msg("template render limit exceeded"));
    }
    Ok(())
}

/// The runtime one render runs in: lookups go to the variables the template assigned, then
/// to the payload.
pub(super) struct JsRuntime<'g, 'a, R> {
    inner: R,
    root: &'g Json<'a>,
}

impl<'g, 'a, R: Runtime> JsRuntime<'g, 'a, R> {
    pub(super) fn new(inner: R, root: &'g Json<'a>) -> Self {
        inner.registers().get_mut::<Budget>().started = Some(Instant::now());
        JsRuntime { inner, root }
    }

    fn lookup(&self, path: &[ScalarCow<'_>]) -> Result<ValueCow<'_>> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(ValueCow::Borrowed(&UNDEFINED));
        };
        // Assigned variables shadow the payload, as liquidjs's scopes do its environment.
        let mut current = match self.inner.try_get(std::slice::from_ref(first)) {
            Some(v) => v,
            None => match read(self.root, first) {
                Step::Borrowed(v) => ValueCow::Borrowed(v),
                Step::Owned(v) => ValueCow::Owned(v),
                Step::Undefined => return Ok(ValueCow::Borrowed(&UNDEFINED)),
            },
        };
        for key in rest {
            // `readProperty` hands a nil back unchanged.
            if js_of(current.as_view()).is_nil() {
                break;
            }
            current = match current {
                ValueCow::Borrowed(v) => match read(v, key) {
                    Step::Borrowed(v) => ValueCow::Borrowed(v),
                    Step::Owned(v) => ValueCow::Owned(v),
                    Step::Undefined => return Ok(ValueCow::Borrowed(&UNDEFINED)),
                },
                ValueCow::Owned(v) => match read(&v, key) {
                    Step::Borrowed(found) => ValueCow::Owned(found.to_value()),
                    Step::Owned(found) => ValueCow::Owned(found),
                    Step::Undefined => return Ok(ValueCow::Borrowed(&UNDEFINED)),
                },
            };
        }
        let size = match js_of(current.as_view()) {
            Js::Str(s) => s.len(),
            Js::Array(a) => a.size().max(0) as usize,
            _ => 1,
        };
        charge_lookup(self, size)?;
        Ok(current)
    }
}

enum Step<'v> {
    Borrowed(&'v dyn ValueView),
    Owned(Value),
    Undefined,
}

/// liquidjs's `readProperty`: own properties, negative array indexes, and `size`, `first`
/// and `last`.
fn read<'v>(obj: &'v dyn ValueView, key: &ScalarCow<'_>) -> Step<'v> {
    let name = key.to_kstr();
    let name = name.as_str();
    match js_of(obj) {
        Js::Array(a) => {
            let len = a.size();
            if let Some(i) = index(key) {
                let i = if i < 0 { len + i } else { i };
                return if (0..len).contains(&i) {
                    a.get(i).map_or(Step::Undefined, Step::Borrowed)
                } else {
                    Step::Undefined
                };
            }
            match name {
                "size" | "length" => Step::Owned(Value::scalar(len)),
                "first" => a.first().map_or(Step::Undefined, Step::Borrowed),
                "last" => a.last().map_or(Step::Undefined, Step::Borrowed),
                _ => Step::Undefined,
            }
        }
        Js::Object(o) => match o.get(name) {
            Some(v) => Step::Borrowed(v),
            None if name == "size" => Step::Owned(Value::scalar(o.size())),
            None => Step::Undefined,
        },
        Js::Str(s) => {
            if let Some(i) = index(key).filter(|&i| i >= 0) {
                return usize::try_from(i)
                    .ok()
                    .and_then(|i| crate::js::utf16_unit_at(&s, i))
                    .map_or(Step::Undefined, |c| Step::Owned(Value::scalar(c)));
            }
            match name {
                "size" | "length" => Step::Owned(Value::scalar(crate::js::utf16_len(&s) as i64)),
                _ => Step::Undefined,
            }
        }
        _ => Step::Undefined,
    }
}

/// A key that indexes an array: an integer, or the canonical text of one (negative counts
/// from the end).
fn index(key: &ScalarCow<'_>) -> Option<i64> {
    if key.type_name() == "whole number" {
        return key.to_integer();
    }
    let text = key.to_kstr();
    let text = text.as_str();
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

impl<R: Runtime> Runtime for JsRuntime<'_, '_, R> {
    fn partials(&self) -> &dyn PartialStore {
        self.inner.partials()
    }
    fn name(&self) -> Option<KStringRef<'_>> {
        self.inner.name()
    }
    fn roots(&self) -> std::collections::BTreeSet<KStringCow<'_>> {
        self.inner.roots()
    }
    fn try_get(&self, path: &[ScalarCow<'_>]) -> Option<ValueCow<'_>> {
        self.lookup(path).ok()
    }
    fn get(&self, path: &[ScalarCow<'_>]) -> Result<ValueCow<'_>> {
        self.lookup(path)
    }
    fn set_global(&self, name: KString, val: Value) -> Option<Value> {
        self.inner.set_global(name, val)
    }
    fn set_index(&self, name: KString, val: Value) -> Option<Value> {
        self.inner.set_index(name, val)
    }
    fn get_index<'a>(&'a self, name: &str) -> Option<ValueCow<'a>> {
        self.inner.get_index(name)
    }
    fn registers(&self) -> &Registers {
        self.inner.registers()
    }
}
