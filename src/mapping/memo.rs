//! One event's path lookups, each distinct key prefix resolved once.
//!
//! A send mapping reads the same few objects many times per event: every trait fallback walks
//! `context` then `traits`, the four device defaults each find `context.device`, six fields
//! read `properties`. So when a [`SendMapping`](super::SendMapping) is compiled, every path
//! its fast entry ([`Node::eval`]) evaluates against the event is interned into a
//! [`Prefixes`] table, one entry per distinct key prefix, and the path keeps the id of its full
//! key list. Per event, an [`EventMemo`] holds what each prefix resolved to, computed on first
//! use from its parent's.
//!
//! The memo follows [`lookup_keys`](super::path::lookup_keys) exactly (`obj && obj[key]`): a
//! falsy value on the way ends the walk and is the result; an object is indexed like
//! [`Json::get`] (the last of repeated keys wins); any other truthy scalar gives undefined. A
//! truthy array or string on the way is indexed JavaScript's way (`length`, UTF-16 units),
//! which only `lookup_keys` knows, so a path through one is looked up from the root the
//! uncached way.

use super::presets::{Builtin, DeviceIdSource};
use super::value::Val;
use super::{Node, Path};
use crate::Json;
use crate::js;
use crate::rtid::INTEGRATION_NAME;
use std::cell::Cell;
use std::collections::HashMap;

/// The id of a key prefix in a [`Prefixes`] table.
pub(crate) type PrefixId = u32;

/// Paths with more keys are looked up uncached: it bounds the recursion of
/// [`EventMemo::resolve`], and no real mapping reads that deep.
const MAX_DEPTH: usize = 32;

/// The distinct key prefixes of a send mapping's paths.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Prefixes {
    entries: Vec<Prefix>,
    device: Option<DevicePrefixes>,
    rtid: Option<RtidPrefixes>,
}

#[derive(Clone, Debug, PartialEq)]
struct Prefix {
    /// `None`: the event itself.
    parent: Option<PrefixId>,
    key: Box<str>,
}

/// What the built-in device id defaults read: `context.device.advertisingId`, `.id`, `.type`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct DevicePrefixes {
    pub(crate) advertising_id: PrefixId,
    pub(crate) id: PrefixId,
    pub(crate) kind: PrefixId,
}

/// What the built-in rtid default reads: the Rokt plugin's `rtid` and `context.page`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RtidPrefixes {
    pub(crate) plugin: PrefixId,
    pub(crate) page: PrefixId,
}

impl Prefixes {
    /// How many prefixes there are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Each prefix's parent (`None`: the event itself) and last key, by id; parents come
    /// before their children.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (Option<PrefixId>, &str)> {
        self.entries.iter().map(|p| (p.parent, &*p.key))
    }

    /// The device prefixes, when the mapping has a built-in device default.
    pub(crate) fn device(&self) -> Option<DevicePrefixes> {
        self.device
    }

    /// The rtid prefixes, when the mapping has the built-in rtid default.
    pub(crate) fn rtid(&self) -> Option<RtidPrefixes> {
        self.rtid
    }
}

/// Builds a [`Prefixes`] table while a send mapping is compiled.
#[derive(Default)]
pub(crate) struct Interner {
    table: Prefixes,
    ids: HashMap<(Option<PrefixId>, String), PrefixId>,
}

impl Interner {
    /// The id of `keys`, interning it and its prefixes; `None` for the empty path (the event
    /// itself needs no memo) and for paths deeper than [`MAX_DEPTH`].
    pub(crate) fn intern<S: AsRef<str>>(&mut self, keys: &[S]) -> Option<PrefixId> {
        if keys.is_empty() || keys.len() > MAX_DEPTH {
            return None;
        }
        let mut parent = None;
        for key in keys {
            let key = key.as_ref();
            let id = match self.ids.get(&(parent, key.to_owned())) {
                Some(&id) => id,
                None => {
                    let id = PrefixId::try_from(self.table.entries.len()).ok()?;
                    self.table.entries.push(Prefix {
                        parent,
                        key: key.into(),
                    });
                    self.ids.insert((parent, key.to_owned()), id);
                    id
                }
            };
            parent = Some(id);
        }
        parent
    }

    /// Gives memo slots to the paths `node` reads when evaluated through [`Node::eval`], which
    /// is the only entry that consults the memo: a path, a chain of fallbacks, a built-in.
    /// Paths under any other node are evaluated against payloads by `eval_val` and keep none.
    pub(crate) fn fast_entry(&mut self, node: &mut Node) {
        match node {
            Node::Path(path) => self.path(path),
            Node::Coalesce(path, otherwise) => {
                self.path(path);
                if let Some(node) = otherwise {
                    self.fast_entry(node);
                }
            }
            Node::Builtin(builtin) => self.builtin(builtin),
            _ => {}
        }
    }

    fn path(&mut self, path: &mut Path) {
        let slot = self.intern(path.keys());
        path.set_slot(slot);
    }

    fn builtin(&mut self, builtin: &Builtin) {
        match builtin {
            Builtin::DeviceId { .. } if self.table.device.is_none() => {
                let device = |v: &mut Self, key| v.intern(&["context", "device", key]);
                if let (Some(advertising_id), Some(id), Some(kind)) = (
                    device(self, "advertisingId"),
                    device(self, "id"),
                    device(self, "type"),
                ) {
                    self.table.device = Some(DevicePrefixes {
                        advertising_id,
                        id,
                        kind,
                    });
                }
            }
            Builtin::Rtid if self.table.rtid.is_none() => {
                if let (Some(plugin), Some(page)) = (
                    self.intern(&["integrations", INTEGRATION_NAME, "rtid"]),
                    self.intern(&["context", "page"]),
                ) {
                    self.table.rtid = Some(RtidPrefixes { plugin, page });
                }
            }
            _ => {}
        }
    }

    pub(crate) fn finish(self) -> Prefixes {
        self.table
    }
}

/// How far a prefix's lookup got.
#[derive(Clone, Copy, Debug)]
enum State<'r, 'a> {
    Unresolved,
    /// Some key was missing, or a truthy number or `true` was indexed.
    Undefined,
    /// Every key was found, each in an object: the value at the end, which may be falsy.
    Reached(&'r Json<'a>),
    /// A falsy value was met before the last key: `obj && …` yields it.
    Stopped(&'r Json<'a>),
    /// A truthy array or string was met before the last key.
    Fallback,
}

/// One event as the send mapping's fast entry sees it: the event, and a memo of the lookups of
/// the mapping's key prefixes made on it so far. It must only serve the nodes of the mapping
/// whose table it was made from.
pub(crate) struct EventMemo<'m, 'r, 'a> {
    root: &'r Json<'a>,
    prefixes: &'r Prefixes,
    states: &'m [Cell<State<'r, 'a>>],
}

/// Tables up to this size (the presets have about fifty prefixes) keep an event's memo on the
/// stack, so it costs no allocation.
const INLINE: usize = 64;

impl<'r, 'a> EventMemo<'_, 'r, 'a> {
    /// [`Builtin::eval`] on the event, reading it through this memo of its lookups.
    pub(crate) fn builtin(&self, builtin: &'r Builtin) -> Val<'r, 'a> {
        let event = self;
        match (builtin, event.device(), event.rtid()) {
            (
                Builtin::DeviceId {
                    source,
                    device_type,
                },
                Some(ids),
                _,
            ) => {
                let id = event.get(match source {
                    DeviceIdSource::AdvertisingId => ids.advertising_id,
                    DeviceIdSource::Id => ids.id,
                });
                super::presets::device_id(id, event.get(ids.kind), device_type)
            }
            (Builtin::Rtid, _, Some(ids)) => {
                super::presets::rtid_value(crate::rtid::from_parts(event.get(ids.plugin), || {
                    event.get(ids.page)
                }))
            }
            // A memo made without this built-in's prefixes: read the event directly.
            _ => builtin.eval(event.root()),
        }
    }

    /// Runs `f` with an empty memo over `root` for the paths of `prefixes`. A closure rather
    /// than a constructor, so that the memo can borrow slots on this call's stack.
    pub(crate) fn with<T>(
        prefixes: &'r Prefixes,
        root: &'r Json<'a>,
        f: impl FnOnce(&EventMemo<'_, 'r, 'a>) -> T,
    ) -> T {
        let n = prefixes.len();
        let inline;
        let heap;
        let states = if n <= INLINE {
            inline = [const { Cell::new(State::Unresolved) }; INLINE];
            &inline[..n]
        } else {
            heap = vec![Cell::new(State::Unresolved); n];
            &heap[..]
        };
        f(&EventMemo {
            root,
            prefixes,
            states,
        })
    }

    /// The event.
    pub(crate) fn root(&self) -> &'r Json<'a> {
        self.root
    }

    /// `path` looked up in the event, as [`Path::lookup`] does.
    pub(crate) fn lookup(&self, path: &Path) -> Val<'r, 'a> {
        let Some(id) = path.slot().filter(|&id| (id as usize) < self.states.len()) else {
            return path.lookup(self.root);
        };
        match self.state(id) {
            State::Reached(v) | State::Stopped(v) => Val::Ref(v),
            State::Undefined => Val::Undefined,
            State::Fallback | State::Unresolved => path.lookup(self.root),
        }
    }

    /// The value at a prefix when every step on the way was a member of an object, as a chain
    /// of [`Json::get`] (Liquid's lookups) finds it.
    pub(crate) fn get(&self, id: PrefixId) -> Option<&'r Json<'a>> {
        match self.state(id) {
            State::Reached(v) => Some(v),
            _ => None,
        }
    }

    /// The device prefixes, when the mapping has a built-in device default.
    pub(crate) fn device(&self) -> Option<DevicePrefixes> {
        self.prefixes.device()
    }

    /// The rtid prefixes, when the mapping has the built-in rtid default.
    pub(crate) fn rtid(&self) -> Option<RtidPrefixes> {
        self.prefixes.rtid()
    }

    /// The state of a prefix, resolving it (and its unresolved ancestors) first.
    #[inline]
    fn state(&self, id: PrefixId) -> State<'r, 'a> {
        match self.states[id as usize].get() {
            State::Unresolved => self.resolve(id),
            known => known,
        }
    }

    /// Resolves a prefix from its parent's state. Kept out of line: it runs once per prefix
    /// and event, `state` many times.
    #[inline(never)]
    fn resolve(&self, id: PrefixId) -> State<'r, 'a> {
        let prefix = &self.prefixes.entries[id as usize];
        let parent = match prefix.parent {
            Some(parent) => self.state(parent),
            None => State::Reached(self.root),
        };
        let state = step(parent, &prefix.key);
        self.states[id as usize].set(state);
        state
    }
}

/// One step of `obj && obj[key]` from a parent prefix's state.
fn step<'r, 'a>(parent: State<'r, 'a>, key: &str) -> State<'r, 'a> {
    let State::Reached(value) = parent else {
        // Undefined, a falsy stop and a fallback are the answer for every longer prefix too.
        return parent;
    };
    if !js::truthy(value) {
        return State::Stopped(value);
    }
    match value {
        Json::Object(_) => value.get(key).map_or(State::Undefined, State::Reached),
        Json::Array(_) | Json::Str(_) => State::Fallback,
        _ => State::Undefined,
    }
}

#[cfg(test)]
mod tests;
