//! The direct encoder: an event's Rokt batch written straight from the parsed event.
//!
//! The general path evaluates the mapping into a validated payload, builds a typed batch from
//! it and serializes that. Each step is general (any directive, any coercion, every rule
//! reported), and for the common case that generality is most of an event's cost. So when a
//! mapping is *plain* (each value the send action reads is a path, a chain of trait fallbacks,
//! a constant or a built-in default, as in both presets), it is also compiled into a
//! [`DirectPlan`], which finds those values with a few member lookups and writes the batch's
//! bytes itself.
//!
//! The plan answers only when it is sure to write what the general path would: for anything
//! it does not replicate exactly (a path through an array, a number where a string goes, a
//! value the validator would reject, open attributes, …) it returns `None` and the general
//! path encodes the event, as the JSON fast parser defers to serde_json. The conformance
//! corpus runs through both, and the tests hold the two to the same bytes.

use crate::Json;
use crate::hashing::{Cleaning, DigestSlots, plain_or_digest};
use crate::json::DocValue;
use crate::mapping::presets::{Builtin, DeviceIdSource};
use crate::mapping::{Field, Member, Node, PrefixId, Prefixes, SendMapping};
use crate::payload::{
    AudienceUpdate, Finish, Timestamp, audience_update, gender, identified, is_computation_action,
    parse_date, read_timestamp,
};
use crate::rokt::{
    Amount, AttributeValue, Gender, audience_message_id, conversion_amount, membership_attribute,
    membership_status, wire,
};
use bytes::Bytes;
use std::borrow::Cow;

/// Where one value the send action reads comes from, for a plain mapping. Paths are named by
/// their ids in the mapping's own prefix table (see `mapping::memo`), interned when the mapping
/// was compiled.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    /// Nothing: the field or member is not mapped.
    Absent,
    /// A constant of the mapping.
    Const(Json<'static>),
    /// Paths tried in order, as trait fallbacks are: the first holding a value other than null
    /// gives it, else the constant, if any.
    Paths(Vec<PrefixId>, Option<Json<'static>>),
    /// The built-in device id default: the id and `type` members of `context.device`.
    Device {
        id: PrefixId,
        kind: PrefixId,
        device_type: &'static str,
    },
    /// The built-in rtid default: the Rokt plugin's `rtid`, else `context.page`'s query.
    Rtid { plugin: PrefixId, page: PrefixId },
}

impl Source {
    /// The source of a field or member node of `mapping`, when it is plain.
    fn of(mapping: &SendMapping, node: Option<&Node>) -> Option<Source> {
        let prefixes = mapping.prefixes();
        Some(match node {
            None | Some(Node::Undefined) => Source::Absent,
            Some(Node::Const(v)) => Source::Const(v.clone()),
            Some(Node::Builtin(Builtin::DeviceId {
                source,
                device_type,
            })) => {
                let ids = prefixes.device()?;
                Source::Device {
                    id: match source {
                        DeviceIdSource::AdvertisingId => ids.advertising_id,
                        DeviceIdSource::Id => ids.id,
                    },
                    kind: ids.kind,
                    device_type,
                }
            }
            Some(Node::Builtin(Builtin::Rtid)) => {
                let ids = prefixes.rtid()?;
                Source::Rtid {
                    plugin: ids.plugin,
                    page: ids.page,
                }
            }
            Some(Node::Path(_) | Node::Coalesce(..)) => {
                let mut paths = Vec::new();
                let mut next = node;
                // A path without an id (the event itself, or one too deep for the table) is
                // the general path's.
                let otherwise = loop {
                    match next {
                        Some(Node::Path(p)) => {
                            paths.push(p.slot()?);
                            break None;
                        }
                        Some(Node::Coalesce(p, otherwise)) => {
                            paths.push(p.slot()?);
                            next = otherwise.as_deref();
                        }
                        None | Some(Node::Undefined) => break None,
                        Some(Node::Const(v)) => break Some(v.clone()),
                        Some(_) => return None,
                    }
                };
                Source::Paths(paths, otherwise)
            }
            Some(_) => return None,
        })
    }
}

/// The prefixes one level below a prefix (or the event), with a table from a member key to
/// the child it is, so an object's members are sorted in one pass.
#[derive(Clone, Debug, PartialEq)]
struct Fanout {
    parent: Option<PrefixId>,
    children: Vec<(String, PrefixId)>,
    /// Per bucket of [`bucket`], the index in `children` of the one key there (`u8::MAX`
    /// for none); `None` when no seed separates the keys, and they are searched instead.
    table: Option<(u32, [u8; BUCKETS])>,
}

const BUCKETS: usize = 64;

/// A key's bucket: its length and end bytes, mixed by `seed`.
fn bucket(key: &[u8], seed: u32) -> usize {
    let (first, last) = (key.first().copied(), key.last().copied());
    let mix = (key.len() as u32).wrapping_mul(0x9e37_79b1)
        ^ u32::from(first.unwrap_or(0)).wrapping_mul(seed)
        ^ u32::from(last.unwrap_or(0)).wrapping_mul(seed.rotate_left(11) | 1);
    (mix.rotate_left(7) as usize) % BUCKETS
}

impl Fanout {
    /// The fanouts of a prefix table, parents before children.
    fn of(prefixes: &Prefixes) -> Vec<Fanout> {
        let mut fanouts: Vec<Fanout> = Vec::new();
        let ids = 0..PrefixId::try_from(prefixes.len()).unwrap_or(PrefixId::MAX);
        for parent in std::iter::once(None).chain(ids.map(Some)) {
            let children: Vec<(String, PrefixId)> = prefixes
                .entries()
                .zip(0..)
                .filter(|((p, _), _)| *p == parent)
                .map(|((_, key), id)| (key.to_owned(), id))
                .collect();
            if !children.is_empty() {
                let table = Fanout::table(&children);
                fanouts.push(Fanout {
                    parent,
                    children,
                    table,
                });
            }
        }
        fanouts
    }

    /// A seed that puts every key in its own bucket, and the table it gives.
    fn table(children: &[(String, PrefixId)]) -> Option<(u32, [u8; BUCKETS])> {
        if children.len() >= usize::from(u8::MAX) {
            return None;
        }
        (1..4096).find_map(|seed| {
            let mut table = [u8::MAX; BUCKETS];
            for (i, (key, _)) in children.iter().enumerate() {
                let b = &mut table[bucket(key.as_bytes(), seed)];
                if *b != u8::MAX {
                    return None;
                }
                *b = u8::try_from(i).ok()?;
            }
            Some((seed, table))
        })
    }

    /// The child prefix `key` is, if any.
    #[inline(always)]
    fn child(&self, key: &str) -> Option<PrefixId> {
        match &self.table {
            Some((seed, table)) => {
                let (k, id) = self
                    .children
                    .get(usize::from(table[bucket(key.as_bytes(), *seed)]))?;
                (k.as_bytes() == key.as_bytes()).then_some(*id)
            }
            None => self
                .children
                .iter()
                .find(|(k, _)| k == key)
                .map(|&(_, id)| id),
        }
    }
}

/// What a prefix holds in one event.
#[derive(Clone, Copy)]
enum Slot<N> {
    Missing,
    Value(N),
    /// The walk met something other than an object on the way (`obj && obj[key]` through a
    /// falsy value, a string or an array): only the general path evaluates that exactly.
    Unsure,
}

/// One event's prefix lookups.
struct Lookups<N> {
    slots: [Slot<N>; MAX_PREFIXES],
}

/// Plans with more prefixes than this are left to the general path; the presets have about
/// fifty, and an event's slots live on the stack.
const MAX_PREFIXES: usize = 96;

impl<'d, N: DocValue<'d>> Lookups<N> {
    /// Every prefix looked up, parents first. Each object on the way is walked once, its
    /// members sorted into the prefixes they are (the last of repeated keys wins, as in
    /// [`Json::get`]).
    fn new(fanouts: &[Fanout], root: N) -> Self {
        let mut slots = [Slot::Missing; MAX_PREFIXES];
        for fanout in fanouts {
            let parent = match fanout.parent {
                Some(p) => slots[p as usize],
                None => Slot::Value(root),
            };
            match parent {
                Slot::Value(object) if object.is_object() => {
                    object.for_each_member(|key, value| {
                        if let Some(id) = fanout.child(key) {
                            slots[id as usize] = Slot::Value(value);
                        }
                    });
                }
                Slot::Value(_) | Slot::Unsure => {
                    for &(_, id) in &fanout.children {
                        slots[id as usize] = Slot::Unsure;
                    }
                }
                Slot::Missing => {}
            }
        }
        Lookups { slots }
    }

    fn slot(&self, id: PrefixId) -> Slot<N> {
        self.slots[id as usize]
    }

    /// The prefix as a chain of [`Json::get`] finds it (what the built-ins read).
    fn get(&self, id: PrefixId) -> Option<N> {
        match self.slot(id) {
            Slot::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// What the client routes an encoded batch by, as [`Batch`](crate::rokt::Batch) gives it:
/// its events' newest timestamp and the Segment `messageId` they carry (none without events).
pub(crate) struct Routing {
    pub(crate) newest_ms: Option<i64>,
    pub(crate) message_id: Option<String>,
}

impl Routing {
    /// A typed batch's routing.
    pub(crate) fn of<S: crate::text::Text>(batch: &crate::rokt::Batch<S>) -> Routing {
        Routing {
            newest_ms: batch
                .events
                .iter()
                .map(|e| e.data.timestamp_unixtime_ms)
                .max(),
            message_id: batch.source_message_id().map(str::to_owned),
        }
    }
}

/// A value found for an event.
enum Found<'r, N> {
    /// Undefined, or null.
    None,
    Ref(N),
    /// A constant of the mapping.
    Const(&'r Json<'static>),
    /// A string a built-in made.
    Made(Cow<'r, str>),
}

/// Why the plan does not answer: the general path will.
struct Defer;

type Sure<T> = Result<T, Defer>;

/// A plain send mapping compiled for direct encoding (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DirectPlan {
    /// The prefixes the plan's paths read, as the objects to walk for them.
    fanouts: Vec<Fanout>,
    /// Indexed by [`Member`].
    members: Vec<Source>,
    ip: Source,
    rtid: Source,
    engage_audience_name: Source,
    computation_action: Source,
    traits_or_props: TraitsOrProps,
    hashing: [bool; 5],
}

/// Where an Engage audience's membership is read.
#[derive(Clone, Debug, PartialEq)]
enum TraitsOrProps {
    /// From the event: the validator requires an object (or nothing).
    Event(Source),
    /// A literal or constant object of the mapping: an Engage update reads its members,
    /// which is left to the general path.
    Mapping,
}

const HASH_MEMBERS: [Member; 5] = [
    Member::HashEmail,
    Member::HashFirstName,
    Member::HashLastName,
    Member::HashMobile,
    Member::HashBillingZipcode,
];

const DEVICE_MEMBERS: [Member; 5] = [
    Member::HttpHeaderUserAgent,
    Member::IosAdvertisingId,
    Member::AndroidAdvertisingId,
    Member::IosIdfv,
    Member::AndroidUuid,
];

impl DirectPlan {
    /// The plan of `mapping`, when it is plain.
    pub(crate) fn compile(mapping: &SendMapping) -> Option<DirectPlan> {
        // The object fields: literal members or a constant object, with no open attributes
        // (those go to the general path); `eventDetails` is required.
        for field in [
            Field::EventDetails,
            Field::EventProperties,
            Field::HashingConfiguration,
            Field::DeviceInfo,
            Field::UserIdentities,
            Field::UserAttributes,
            Field::AudienceDetails,
        ] {
            match mapping.field(field) {
                None if field != Field::EventDetails => {}
                Some(Node::Object(members))
                    if members.iter().all(|(k, _)| Member::is_known(field, k)) => {}
                Some(Node::Const(Json::Object(pairs)))
                    if pairs.iter().all(|(k, _)| Member::is_known(field, k)) => {}
                _ => return None,
            }
        }
        let members = Member::ALL
            .iter()
            .map(|&m| match mapping.field(m.field()) {
                Some(Node::Const(_)) => Some(
                    mapping
                        .constant_member(m)
                        .map_or(Source::Absent, |v| Source::Const(v.clone())),
                ),
                _ => Source::of(mapping, mapping.member(m)),
            })
            .collect::<Option<Vec<Source>>>()?;
        let mut hashing = [false; 5];
        for (flag, member) in hashing.iter_mut().zip(HASH_MEMBERS) {
            *flag = match &members[member as usize] {
                Source::Absent | Source::Const(Json::Null) => false,
                Source::Const(Json::Bool(b)) => *b,
                _ => return None,
            };
        }
        let traits_or_props = match mapping.field(Field::TraitsOrProps) {
            Some(Node::Object(_) | Node::Const(Json::Object(_))) => TraitsOrProps::Mapping,
            node @ (None | Some(Node::Path(_) | Node::Coalesce(..))) => {
                TraitsOrProps::Event(Source::of(mapping, node)?)
            }
            Some(_) => return None,
        };
        let ip = Source::of(mapping, mapping.field(Field::Ip))?;
        let rtid = Source::of(mapping, mapping.field(Field::Rtid))?;
        let engage_audience_name = Source::of(mapping, mapping.field(Field::EngageAudienceName))?;
        let computation_action = Source::of(mapping, mapping.field(Field::ComputationAction))?;
        let prefixes = mapping.prefixes();
        (prefixes.len() <= MAX_PREFIXES).then(|| DirectPlan {
            fanouts: Fanout::of(prefixes),
            members,
            ip,
            rtid,
            engage_audience_name,
            computation_action,
            traits_or_props,
            hashing,
        })
    }

    /// The event's encoded batch with what the client routes it by, or `None` when the
    /// general path must encode it.
    pub(crate) fn encode_routed<'d>(&self, doc: impl DocValue<'d>) -> Option<(Bytes, Routing)> {
        self.with_batch(doc, |batch| {
            let bytes = crate::rokt::arena_bytes(|out| batch.write(out).ok_or(())).ok()?;
            let has_events = batch.audience.is_some() || batch.conversion.is_some();
            let routing = Routing {
                newest_ms: has_events.then_some(batch.timestamp),
                message_id: has_events.then(|| batch.source_message_id.to_string()),
            };
            Some((bytes, routing))
        })
    }

    /// Appends the event's batch to `out`; `None` (with whatever it appended) when the general
    /// path must write it.
    pub(crate) fn write<'d>(&self, doc: impl DocValue<'d>, out: &mut Vec<u8>) -> Option<()> {
        self.with_batch(doc, |batch| batch.write(out))
    }

    /// `f` of the event's batch, when the plan is sure of the event.
    fn with_batch<'d, T>(
        &self,
        doc: impl DocValue<'d>,
        f: impl FnOnce(&DirectBatch<'_>) -> Option<T>,
    ) -> Option<T> {
        // What is not an object is no event: the general path says so.
        if !doc.is_object() {
            return None;
        }
        let mut slots = [[0u8; 64]; 5];
        f(&self.batch(doc, &mut slots).ok()?)
    }

    fn source(&self, member: Member) -> &Source {
        &self.members[member as usize]
    }

    /// What the batch holds, validated as the general path validates it.
    fn batch<'r, 'd: 'r, N: DocValue<'d>>(
        &'r self,
        doc: N,
        slots: &'r mut [[u8; 64]; 5],
    ) -> Sure<DirectBatch<'r>> {
        let ev = Lookups::new(&self.fanouts, doc);
        let text = |m: Member| -> Sure<_> {
            Ok(string(ev.find(self.source(m))?)?.and_then(|t| Finish::of(m).apply(t)))
        };
        let root = |field: Field, source: &'r Source| -> Sure<_> {
            Ok(string(ev.find(source)?)?.and_then(|t| Finish::of_root(field).apply(t)))
        };

        let engage_name = root(Field::EngageAudienceName, &self.engage_audience_name)?;
        let action = root(Field::ComputationAction, &self.computation_action)?;
        if action.as_deref().is_some_and(|a| !is_computation_action(a)) {
            return Err(Defer);
        }
        let traits = match &self.traits_or_props {
            TraitsOrProps::Event(source) => match ev.find(source)? {
                Found::None => None,
                Found::Ref(object) if object.is_object() => Some(object),
                _ => return Err(Defer),
            },
            TraitsOrProps::Mapping if engage_name.is_some() && action.is_some() => {
                return Err(Defer);
            }
            TraitsOrProps::Mapping => None,
        };
        let custom_name = text(Member::CustomAudienceName)?;
        let custom_member = boolean(ev.find(self.source(Member::CustomAudienceMembership))?)?;
        let audience = audience_update(
            engage_name.filter(|_| action.is_some()),
            |name| traits?.get(name)?.as_bool(),
            custom_name.zip(custom_member),
        );

        let conversiontype = text(Member::Conversiontype)?;
        let confirmationref = text(Member::Confirmationref)?;
        let amount = number(ev.find(self.source(Member::Amount))?)?;
        let currency = text(Member::Currency)?;
        let source_message_id = text(Member::SourceMessageId)?.ok_or(Defer)?;
        let timestamp = timestamp(ev.find(self.source(Member::TimestampUnixtimeMs))?)?;

        // Arrays built from their elements, not filled in a loop: each value is then made in
        // its place, where a loop stored it and copied it into the array with wider loads
        // than it was stored with, which stalled.
        let device_info: [Option<Cow<'r, str>>; 5] = [
            text(DEVICE_MEMBERS[0])?,
            text(DEVICE_MEMBERS[1])?,
            text(DEVICE_MEMBERS[2])?,
            text(DEVICE_MEMBERS[3])?,
            text(DEVICE_MEMBERS[4])?,
        ];

        let email = text(Member::Email)?;
        let customerid = text(Member::Customerid)?;
        let names = [
            text(Member::Firstname)?,
            text(Member::Lastname)?,
            text(Member::Mobile)?,
            text(Member::Billingzipcode)?,
        ];
        let dob = match text(Member::Dob)? {
            Some(d) => Some(parse_date(&d).ok_or(Defer)?),
            None => None,
        };
        let gender = match text(Member::Gender)? {
            Some(g) => Some(gender(&g).ok_or(Defer)?),
            None => None,
        };
        let ip = root(Field::Ip, &self.ip)?;
        let rtid = root(Field::Rtid, &self.rtid)?;
        // The general path says who is missing.
        let [_, ios_ad, android_ad, idfv, uuid] = &device_info;
        if !identified(
            [&email, &customerid, &rtid],
            [ios_ad, android_ad, idfv, uuid],
        ) {
            return Err(Defer);
        }

        // Hashing, as the batch builder does it.
        let [hash_email, hash_first, hash_last, hash_mobile, hash_zip] = self.hashing;
        let mut digests = DigestSlots::new(slots);
        let mut digest = |v: &str| digests.digest(v);
        let (plain_email, hashed_email) =
            plain_or_digest(email, hash_email, Cleaning::Email, &mut digest);
        let [first, last, mobile, zip] = names;
        let user: [PlainOrDigest<'r>; 4] = [
            plain_or_digest(first, hash_first, Cleaning::Trim, &mut digest),
            plain_or_digest(last, hash_last, Cleaning::Trim, &mut digest),
            plain_or_digest(mobile, hash_mobile, Cleaning::Trim, &mut digest),
            plain_or_digest(zip, hash_zip, Cleaning::Trim, &mut digest),
        ];
        Ok(DirectBatch {
            device_info,
            user,
            dob: dob.map(crate::payload::compact_date),
            gender,
            audience,
            email: plain_email,
            other: hashed_email,
            customerid,
            rtid,
            conversion: conversiontype.map(|conversiontype| Conversion {
                conversiontype,
                confirmationref,
                amount: conversion_amount(amount),
                currency,
            }),
            source_message_id,
            timestamp,
            ip,
        })
    }
}

impl<'d, N: DocValue<'d>> Lookups<N> {
    /// The value `source` gives for the event; `Err` for what only the general path evaluates
    /// exactly.
    #[inline(always)]
    fn find<'r>(&self, source: &'r Source) -> Sure<Found<'r, N>>
    where
        'd: 'r,
    {
        match source {
            Source::Absent => Ok(Found::None),
            Source::Const(v) => Ok(Found::Const(v)),
            Source::Paths(paths, otherwise) => {
                for &path in paths {
                    match self.slot(path) {
                        Slot::Value(v) if !v.is_null() => return Ok(Found::Ref(v)),
                        Slot::Unsure => return Err(Defer),
                        _ => {}
                    }
                }
                Ok(otherwise.as_ref().map_or(Found::None, Found::Const))
            }
            Source::Device {
                id,
                kind,
                device_type,
            } => {
                // The built-ins read documents: a value held in another form is copied for them.
                let (mut id_held, mut kind_held) = (None, None);
                let id = self.get(*id).map(|v| v.json(&mut id_held));
                let kind = self.get(*kind).map(|v| v.json(&mut kind_held));
                match crate::mapping::presets::device_id(id, kind, device_type) {
                    crate::mapping::Val::Owned(Json::Str(s)) => Ok(Found::Made(s)),
                    _ => Err(Defer),
                }
            }
            Source::Rtid { plugin, page } => {
                let (mut plugin_held, mut page_held) = (None, None);
                let plugin = self.get(*plugin).map(|v| v.json(&mut plugin_held));
                let page_held = &mut page_held;
                let rtid = crate::rtid::from_parts(plugin, move || {
                    let page = self.get(*page)?;
                    Some(page.json(page_held))
                });
                Ok(rtid.map_or(Found::None, Found::Made))
            }
        }
    }
}

/// A string field's value, not yet finished (see [`Finish`]). Only strings are taken; the
/// general path coerces or rejects the rest.
#[inline(always)]
fn string<'r, 'd: 'r, N: DocValue<'d>>(found: Found<'r, N>) -> Sure<Option<Cow<'r, str>>> {
    #[inline(always)]
    fn of<'r>(v: impl DocValue<'r>) -> Sure<Option<Cow<'r, str>>> {
        match v.as_str() {
            Some(s) => Ok(Some(Cow::Borrowed(s))),
            None if v.is_null() => Ok(None),
            None => Err(Defer),
        }
    }
    match found {
        Found::None => Ok(None),
        Found::Ref(v) => of(v),
        Found::Const(v) => of(v),
        Found::Made(s) => Ok(Some(s)),
    }
}

fn number<'r, 'd: 'r, N: DocValue<'d>>(found: Found<'r, N>) -> Sure<Option<Amount>> {
    fn of<'r>(v: impl DocValue<'r>) -> Sure<Option<Amount>> {
        match v.as_number() {
            Some(n) => Ok(Some(Amount::Number(n.clone()))),
            None if v.is_null() => Ok(None),
            None => Err(Defer),
        }
    }
    match found {
        Found::None => Ok(None),
        Found::Ref(v) => of(v),
        Found::Const(v) => of(v),
        Found::Made(_) => Err(Defer),
    }
}

fn boolean<'r, 'd: 'r, N: DocValue<'d>>(found: Found<'r, N>) -> Sure<Option<bool>> {
    fn of<'r>(v: impl DocValue<'r>) -> Sure<Option<bool>> {
        match v.as_bool() {
            Some(b) => Ok(Some(b)),
            None if v.is_null() => Ok(None),
            None => Err(Defer),
        }
    }
    match found {
        Found::None => Ok(None),
        Found::Ref(v) => of(v),
        Found::Const(v) => of(v),
        Found::Made(_) => Err(Defer),
    }
}

/// The required event timestamp, when it is readable.
fn timestamp<'r, 'd: 'r, N: DocValue<'d>>(found: Found<'r, N>) -> Sure<i64> {
    fn of<'r>(v: impl DocValue<'r>) -> Sure<i64> {
        match read_timestamp(v.json(&mut None)) {
            Timestamp::Ms(ms) => Ok(ms),
            _ => Err(Defer),
        }
    }
    match found {
        Found::Ref(v) => of(v),
        Found::Const(v) => of(v),
        _ => Err(Defer),
    }
}

/// A field sent as it is, or as its digest (at most one of the two).
type PlainOrDigest<'r> = (Option<Cow<'r, str>>, Option<Cow<'r, str>>);

/// Everything the batch holds, in the general path's terms.
struct DirectBatch<'r> {
    /// User agent, iOS advertising id, Android advertising id, iOS IDFV, Android UUID.
    device_info: [Option<Cow<'r, str>>; 5],
    /// First name, last name, mobile, billing zip: each plain or as a digest.
    user: [PlainOrDigest<'r>; 4],
    dob: Option<String>,
    gender: Option<Gender>,
    audience: Option<AudienceUpdate<Cow<'r, str>>>,
    email: Option<Cow<'r, str>>,
    other: Option<Cow<'r, str>>,
    customerid: Option<Cow<'r, str>>,
    rtid: Option<Cow<'r, str>>,
    conversion: Option<Conversion<'r>>,
    source_message_id: Cow<'r, str>,
    timestamp: i64,
    ip: Option<Cow<'r, str>>,
}

struct Conversion<'r> {
    conversiontype: Cow<'r, str>,
    confirmationref: Option<Cow<'r, str>>,
    amount: Option<Amount>,
    currency: Option<Cow<'r, str>>,
}

/// Member keys as written: quoted, with the colon.
const DEVICE_KEYS: [&[u8]; 5] = [
    br#""http_header_user_agent":"#,
    br#""ios_advertising_id":"#,
    br#""android_advertising_id":"#,
    br#""ios_idfv":"#,
    br#""android_uuid":"#,
];

const USER_KEYS: [(&[u8], &[u8]); 4] = [
    (br#""firstname":"#, br#""firstnamesha256":"#),
    (br#""lastname":"#, br#""lastnamesha256":"#),
    (br#""mobile":"#, br#""mobilesha256":"#),
    (br#""billingzipcode":"#, br#""billingzipsha256":"#),
];

/// Writes the members of one JSON object, in order, skipping absent ones.
struct Members<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Members<'o> {
    fn open(out: &'o mut Vec<u8>, prefix: &[u8]) -> Self {
        out.extend_from_slice(prefix);
        out.push(b'{');
        Members { out, first: true }
    }

    /// The output, after a comma unless this is the first member.
    fn next(&mut self) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out
    }

    /// `key` (quoted, with its colon), after a comma unless first.
    fn key(&mut self, key: &[u8]) -> &mut Vec<u8> {
        self.next();
        self.out.extend_from_slice(key);
        self.out
    }

    fn string(&mut self, key: &[u8], value: Option<&str>) {
        if let Some(v) = value {
            wire::write_str(self.key(key), v);
        }
    }

    /// A hex digest: nothing in it needs escaping.
    fn digest(&mut self, key: &[u8], value: Option<&str>) {
        if let Some(v) = value {
            let out = self.key(key);
            out.push(b'"');
            out.extend_from_slice(v.as_bytes());
            out.push(b'"');
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

impl DirectBatch<'_> {
    fn write_timestamp(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#","timestamp_unixtime_ms":"#);
        out.extend_from_slice(itoa::Buffer::new().format(self.timestamp).as_bytes());
    }

    /// The bytes [`Batch`](crate::rokt::Batch) serializes to for the same values.
    fn write(&self, out: &mut Vec<u8>) -> Option<()> {
        out.extend_from_slice(br#"{"environment":"production""#);

        let mut device = Members::open(out, br#","device_info":"#);
        for (key, value) in DEVICE_KEYS.iter().zip(&self.device_info) {
            device.string(key, value.as_deref());
        }
        device.close();

        let mut user = Members::open(out, br#","user_attributes":"#);
        for ((plain_key, digest_key), (plain, digest)) in USER_KEYS.iter().zip(&self.user) {
            user.string(plain_key, plain.as_deref());
            user.digest(digest_key, digest.as_deref());
        }
        user.string(br#""dob":"#, self.dob.as_deref());
        user.string(br#""gender":"#, self.gender.map(Gender::as_str));
        if let Some(AudienceUpdate { name, member }) = &self.audience {
            // The membership attribute; its key is the audience's, so it is escaped.
            let out = user.next();
            wire::write_str(out, &membership_attribute(name));
            out.extend_from_slice(if *member { b":true" } else { b":false" });
        }
        user.close();

        let mut ids = Members::open(out, br#","user_identities":"#);
        ids.string(br#""email":"#, self.email.as_deref());
        ids.digest(br#""other":"#, self.other.as_deref());
        ids.string(br#""customerid":"#, self.customerid.as_deref());
        ids.string(br#""other2":"#, self.rtid.as_deref());
        ids.close();

        if let Some(rtid) = &self.rtid {
            out.extend_from_slice(
                br#","integration_attributes":{"1277":{"passbackconversiontrackingid":"#,
            );
            wire::write_str(out, rtid);
            out.extend_from_slice(b"}}");
        }

        if self.audience.is_some() || self.conversion.is_some() {
            out.extend_from_slice(br#","events":["#);
            if let Some(AudienceUpdate { name, member }) = &self.audience {
                out.extend_from_slice(
                    br#"{"event_type":"custom_event","data":{"custom_event_type":"other","source_message_id":"#,
                );
                wire::write_str(out, &audience_message_id(&self.source_message_id));
                self.write_timestamp(out);
                out.extend_from_slice(br#","event_name":"audiencemembershipupdate","#);
                let mut attrs = Members::open(out, br#""custom_attributes":"#);
                attrs.string(br#""audience_name":"#, Some(name));
                attrs.string(br#""status":"#, Some(membership_status(*member)));
                attrs.close();
                out.extend_from_slice(b"}}");
            }
            if let Some(c) = &self.conversion {
                if self.audience.is_some() {
                    out.push(b',');
                }
                out.extend_from_slice(
                    br#"{"event_type":"custom_event","data":{"custom_event_type":"transaction","source_message_id":"#,
                );
                wire::write_str(out, &self.source_message_id);
                self.write_timestamp(out);
                out.extend_from_slice(br#","event_name":"conversion","#);
                let mut attrs = Members::open(out, br#""custom_attributes":"#);
                attrs.string(br#""conversiontype":"#, Some(&c.conversiontype));
                attrs.string(br#""confirmationref":"#, c.confirmationref.as_deref());
                if let Some(a) = c.amount.clone() {
                    let value: AttributeValue<Cow<'_, str>> = a.into();
                    wire::to_writer(attrs.key(br#""amount":"#), &value).ok()?;
                }
                attrs.string(br#""currency":"#, c.currency.as_deref());
                attrs.close();
                out.extend_from_slice(b"}}");
            }
            out.push(b']');
        }

        if let Some(ip) = &self.ip {
            out.extend_from_slice(br#","ip":"#);
            wire::write_str(out, ip);
        }
        out.push(b'}');
        Some(())
    }
}

#[cfg(test)]
mod tests;
