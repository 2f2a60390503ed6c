//! The send action's mapping: one compiled node per top-level field, from a preset's defaults
//! with the user's overrides on top.

use super::memo::{EventMemo, Interner, Prefixes};
use super::{MappingError, Node, Preset};
use crate::Json;

/// Declares the top-level fields once: the public names ([`FIELDS`]), the [`Field`] enum and
/// `Field::ALL` all come from the one list, so a field's position is the same in each.
macro_rules! fields {
    ($($field:ident => $name:literal,)*) => {
        /// The top-level fields of the send action (docs/behaviour.md §3), in the reference's order.
        pub const FIELDS: [&str; [$($name),*].len()] = [$($name),*];

        /// A top-level field, by position in [`FIELDS`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Field {
            $($field,)*
        }

        impl Field {
            /// Every field, in [`FIELDS`] order (so `ALL[f as usize] == f`).
            pub(crate) const ALL: [Field; FIELDS.len()] = [$(Field::$field),*];
        }
    };
}

fields! {
    EventDetails => "eventDetails",
    EventProperties => "eventProperties",
    HashingConfiguration => "hashingConfiguration",
    DeviceInfo => "device_info",
    UserIdentities => "user_identities",
    UserAttributes => "user_attributes",
    Ip => "ip",
    AudienceDetails => "audienceDetails",
    EngageAudienceName => "engageAudienceName",
    TraitsOrProps => "traitsOrProps",
    ComputationAction => "computationAction",
    Rtid => "rtid",
}

/// Settings the reference accepts at the top level that only steer Segment's own batching.
const IGNORED_FIELDS: [&str; 2] = ["batch_size", "enable_batching"];

/// The send action's compiled mapping: a preset's defaults, each top-level field optionally
/// replaced by an override written in Segment's mapping JSON. Compile once, apply to many.
///
/// ```
/// use rokt_capi::mapping::{Preset, SendMapping};
/// let mapping = SendMapping::new(Preset::Send, &serde_json::json!({
///     "hashingConfiguration": {"hashEmail": true}
/// })).unwrap();
/// assert_eq!(mapping.preset(), Preset::Send);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SendMapping {
    preset: Preset,
    overrides: Json<'static>,
    nodes: Vec<Option<Node>>,
    /// The key prefixes of the paths the fast entry reads from the event.
    prefixes: Prefixes,
    /// Where each member the send action reads sits in its field, when the field is a literal
    /// object: among the object's member nodes, or, for an object without directives (which
    /// compiles to a constant), among the constant's members.
    members: [Option<usize>; Member::ALL.len()],
    /// For each field written as a literal object, where its open members are: those the
    /// send action does not read by name, which become attributes. Found once here rather
    /// than by comparing every member's key with the known ones on every event.
    open: Vec<Box<[usize]>>,
}

impl SendMapping {
    /// A preset's mapping with no overrides.
    pub fn preset_defaults(preset: Preset) -> SendMapping {
        // The presets are fixed data; compiling them cannot fail (a unit test holds this).
        Self::new(preset, Json::Object(Vec::new()))
            .unwrap_or_else(|e| unreachable!("preset {preset:?} does not compile: {e}"))
    }

    /// A preset's mapping with `overrides`: an object whose keys are top-level fields, each
    /// replacing that whole field (an object field's defaults are not merged into it).
    ///
    /// The members of an object field are sent in the order the overrides list them. A
    /// [`Json`] document (from [`Json::parse`], or [`parse`](Self::parse)) keeps the order of
    /// its text; a `serde_json::Value` has its map's order, which is sorted unless serde_json's
    /// `preserve_order` feature is on in your build.
    pub fn new<'a>(
        preset: Preset,
        overrides: impl Into<Json<'a>>,
    ) -> Result<SendMapping, MappingError> {
        let overrides = overrides.into().into_owned();
        let map = overrides
            .as_object()
            .ok_or_else(|| MappingError::new("/", "the mapping must be an object of fields"))?;
        for key in map.iter().map(|(k, _)| k) {
            if !FIELDS.contains(&key.as_ref()) && !IGNORED_FIELDS.contains(&key.as_ref()) {
                return Err(MappingError::new(
                    &format!("/{key}"),
                    format!(
                        "unknown field; the send action's fields are {}",
                        FIELDS.join(", ")
                    ),
                ));
            }
        }
        let mut nodes = Vec::with_capacity(FIELDS.len());
        for field in FIELDS {
            nodes.push(match overrides.get(field) {
                Some(v) => Some(Node::compile(v, &format!("/{field}"))?),
                None => preset.default_node(field)?,
            });
        }
        // What payload.rs evaluates through the fast entry: each field, or each member of a
        // field written as a literal object.
        let mut interner = Interner::default();
        for node in nodes.iter_mut().flatten() {
            match node {
                Node::Object(members) => {
                    for (_, member) in members {
                        interner.fast_entry(member);
                    }
                }
                other => interner.fast_entry(other),
            }
        }
        let members = Member::ALL.map(|m| match &nodes[m.field() as usize] {
            Some(Node::Object(members)) => {
                member_index(members.iter().map(|(k, _)| k.as_str()), m.key())
            }
            Some(Node::Const(Json::Object(pairs))) => {
                member_index(pairs.iter().map(|(k, _)| k.as_ref()), m.key())
            }
            _ => None,
        });
        let open = Field::ALL
            .iter()
            .zip(&nodes)
            .map(|(&field, node)| match node {
                Some(Node::Object(members)) => members
                    .iter()
                    .enumerate()
                    .filter(|(_, (k, _))| !Member::is_known(field, k))
                    .map(|(j, _)| j)
                    .collect(),
                _ => Box::default(),
            })
            .collect();
        Ok(SendMapping {
            preset,
            overrides,
            nodes,
            prefixes: interner.finish(),
            members,
            open,
        })
    }

    /// The preset this mapping starts from.
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// The overrides, as given, in their order.
    pub fn overrides(&self) -> &Json<'static> {
        &self.overrides
    }

    /// [`new`](Self::new) with overrides written as mapping JSON text, in its order.
    pub fn parse(preset: Preset, overrides: &str) -> Result<SendMapping, MappingError> {
        let doc = Json::parse(overrides)
            .map_err(|e| MappingError::new("/", format!("the mapping is not JSON: {e}")))?;
        Self::new(preset, doc)
    }

    /// The compiled node of a top-level field, if the field is mapped.
    pub(crate) fn field(&self, field: Field) -> Option<&Node> {
        self.nodes[field as usize].as_ref()
    }

    /// The compiled node of every field the mapping has, in field order.
    #[cfg(test)]
    pub(crate) fn field_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().flatten()
    }

    /// The node of a known member, when its field is a literal object that has it.
    pub(crate) fn member(&self, member: Member) -> Option<&Node> {
        let index = self.members[member as usize]?;
        match self.field(member.field()) {
            Some(Node::Object(members)) => members.get(index).map(|(_, node)| node),
            _ => None,
        }
    }

    /// The members of a field written as a literal object that are not known members (see
    /// [`Member::is_known`]), in order.
    pub(crate) fn open_members(&self, field: Field) -> impl Iterator<Item = &(String, Node)> {
        let members = match self.field(field) {
            Some(Node::Object(members)) => &members[..],
            _ => &[],
        };
        self.open[field as usize]
            .iter()
            .filter_map(move |&i| members.get(i))
    }

    /// The value of a known member, when its field is a constant object that has it.
    pub(crate) fn constant_member(&self, member: Member) -> Option<&Json<'static>> {
        let index = self.members[member as usize]?;
        match self.field(member.field()) {
            Some(Node::Const(Json::Object(pairs))) => pairs.get(index).map(|(_, value)| value),
            _ => None,
        }
    }

    /// The key prefixes of the paths the fast entry reads (each path knows its own id).
    pub(crate) fn prefixes(&self) -> &Prefixes {
        &self.prefixes
    }

    /// Runs `f` with a fresh memo of this mapping's path lookups on `event`, for
    /// [`Node::eval`].
    pub(crate) fn with_memo<'r, 'a, T>(
        &'r self,
        event: &'r Json<'a>,
        f: impl FnOnce(&EventMemo<'_, 'r, 'a>) -> T,
    ) -> T {
        EventMemo::with(&self.prefixes, event, f)
    }
}

/// Where the member `key` sits among an object's `keys`: the last one, if the key repeats, as
/// JavaScript keeps the last of repeated keys (and [`Json::get`] finds it).
fn member_index<'k>(
    mut keys: impl DoubleEndedIterator<Item = &'k str> + ExactSizeIterator,
    key: &str,
) -> Option<usize> {
    keys.rposition(|k| crate::json::key_eq(k, key))
}

/// Declares [`Member`] with its keys, once: the enum, `Member::ALL` and `Member::key` all
/// come from the one list.
macro_rules! members {
    ($($member:ident => $key:literal, $path:literal, $label:literal,)*) => {
        /// A member the send action reads by name from one of its object fields (docs/behaviour.md §3).
        /// Other members of `user_attributes` (and all of `eventProperties`) are open
        /// attributes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Member {
            $($member,)*
        }

        impl Member {
            /// Every member, in declaration order (so `ALL[m as usize] == m`).
            pub(crate) const ALL: [Member; [$($key),*].len()] = [$(Member::$member),*];

            /// The member's key.
            pub(crate) fn key(self) -> &'static str {
                match self {
                    $(Member::$member => $key,)*
                }
            }

            /// The member's path from the action's root (`eventDetails.conversiontype`), as
            /// a violation names it.
            pub(crate) fn path(self) -> &'static str {
                match self {
                    $(Member::$member => $path,)*
                }
            }

            /// The member's label, as the reference's messages name it.
            pub(crate) fn label(self) -> &'static str {
                match self {
                    $(Member::$member => $label,)*
                }
            }
        }
    };
}

members! {
    Conversiontype => "conversiontype", "eventDetails.conversiontype", "Conversion Type",
    Confirmationref => "confirmationref", "eventDetails.confirmationref", "Confirmation Reference",
    Amount => "amount", "eventDetails.amount", "Amount",
    Currency => "currency", "eventDetails.currency", "Currency",
    SourceMessageId => "source_message_id", "eventDetails.source_message_id", "Source Message ID",
    TimestampUnixtimeMs => "timestamp_unixtime_ms", "eventDetails.timestamp_unixtime_ms", "Event Timestamp",
    HashEmail => "hashEmail", "hashingConfiguration.hashEmail", "Hash Email",
    HashFirstName => "hashFirstName", "hashingConfiguration.hashFirstName", "Hash First Name",
    HashLastName => "hashLastName", "hashingConfiguration.hashLastName", "Hash Last Name",
    HashMobile => "hashMobile", "hashingConfiguration.hashMobile", "Hash Mobile Number",
    HashBillingZipcode => "hashBillingZipcode", "hashingConfiguration.hashBillingZipcode", "Hash Billing Zip Code",
    HttpHeaderUserAgent => "http_header_user_agent", "device_info.http_header_user_agent", "User Agent",
    IosAdvertisingId => "ios_advertising_id", "device_info.ios_advertising_id", "iOS Advertising ID",
    AndroidAdvertisingId => "android_advertising_id", "device_info.android_advertising_id", "Android Advertising ID",
    IosIdfv => "ios_idfv", "device_info.ios_idfv", "iOS ID for Vendor",
    AndroidUuid => "android_uuid", "device_info.android_uuid", "Android UUID",
    Email => "email", "user_identities.email", "Email",
    Customerid => "customerid", "user_identities.customerid", "Customer ID",
    Firstname => "firstname", "user_attributes.firstname", "First Name",
    Lastname => "lastname", "user_attributes.lastname", "Last Name",
    Mobile => "mobile", "user_attributes.mobile", "Mobile Number",
    Billingzipcode => "billingzipcode", "user_attributes.billingzipcode", "Billing Zip Code",
    Dob => "dob", "user_attributes.dob", "Date of Birth",
    Gender => "gender", "user_attributes.gender", "Gender",
    CustomAudienceName => "customAudienceName", "audienceDetails.customAudienceName", "Audience Name",
    CustomAudienceMembership => "customAudienceMembership", "audienceDetails.customAudienceMembership", "Audience Membership",
}

impl Member {
    /// Whether `key` names a member the send action reads from `field`.
    pub(crate) fn is_known(field: Field, key: &str) -> bool {
        Member::ALL
            .iter()
            .any(|m| m.field() == field && m.key() == key)
    }

    /// The field the member belongs to.
    pub(crate) fn field(self) -> Field {
        use Member::*;
        match self {
            Conversiontype | Confirmationref | Amount | Currency | SourceMessageId
            | TimestampUnixtimeMs => Field::EventDetails,
            HashEmail | HashFirstName | HashLastName | HashMobile | HashBillingZipcode => {
                Field::HashingConfiguration
            }
            HttpHeaderUserAgent | IosAdvertisingId | AndroidAdvertisingId | IosIdfv
            | AndroidUuid => Field::DeviceInfo,
            Email | Customerid => Field::UserIdentities,
            Firstname | Lastname | Mobile | Billingzipcode | Dob | Gender => Field::UserAttributes,
            CustomAudienceName | CustomAudienceMembership => Field::AudienceDetails,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_compile() {
        for p in [Preset::Send, Preset::SyncEngageAudience] {
            let m = SendMapping::new(p, serde_json::json!({})).unwrap();
            assert!(m.field(Field::EventDetails).is_some());
            assert!(m.field(Field::EventProperties).is_none());
        }
    }

    #[test]
    fn fields_are_listed_in_field_order() {
        for (i, field) in Field::ALL.iter().enumerate() {
            assert_eq!(*field as usize, i);
        }
        assert_eq!(FIELDS[Field::UserAttributes as usize], "user_attributes");
        assert_eq!(FIELDS[Field::Rtid as usize], "rtid");
    }

    #[test]
    fn open_members_are_the_literal_members_not_read_by_name() {
        let m = SendMapping::parse(
            Preset::Send,
            r#"{
                "user_attributes": {"firstname": {"@path": "$.a"}, "tier": {"@path": "$.b"},
                    "gender": "f", "email": {"@path": "$.d"}},
                "eventProperties": {"conversiontype": {"@path": "$.e"}}
            }"#,
        )
        .unwrap();
        let keys = |f| {
            m.open_members(f)
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
        };
        // `email` is read by name from user_identities, not from user_attributes.
        assert_eq!(keys(Field::UserAttributes), ["tier", "email"]);
        // Known members of another field are open attributes here.
        assert_eq!(keys(Field::EventProperties), ["conversiontype"]);
        assert!(keys(Field::EventDetails).is_empty());
    }

    #[test]
    fn members_index_the_last_of_repeated_keys() {
        let c = |n: i64| Node::Const(Json::Number(n.into()));
        let members = [
            ("amount".to_owned(), c(0)),
            ("currency".to_owned(), c(1)),
            ("amount".to_owned(), c(2)),
            ("Amount".to_owned(), c(3)),
        ];
        let index = |key| member_index(members.iter().map(|(k, _)| k.as_str()), key);
        assert_eq!(index("amount"), Some(2));
        assert_eq!(index("currency"), Some(1));
        assert_eq!(index("amoun"), None);
        // The index is what the scan it replaces finds.
        for key in ["amount", "currency", "Amount", "x"] {
            let scanned = members.iter().rev().find(|(k, _)| k == key).map(|(_, n)| n);
            assert_eq!(index(key).map(|i| &members[i].1), scanned);
        }
        // And, in a constant object, what `Json::get` finds.
        let constant = Json::parse(r#"{"amount":0,"currency":1,"amount":2,"Amount":3}"#).unwrap();
        let pairs = constant.as_object().unwrap();
        for key in ["amount", "currency", "Amount", "x"] {
            let index = member_index(pairs.iter().map(|(k, _)| k.as_ref()), key);
            assert!(match (index.map(|i| &pairs[i].1), constant.get(key)) {
                (Some(a), Some(b)) => std::ptr::eq(a, b),
                (None, None) => true,
                _ => false,
            });
        }
    }

    #[test]
    fn members_resolve_to_their_fields_nodes() {
        for (i, m) in Member::ALL.into_iter().enumerate() {
            assert_eq!(m as usize, i, "{m:?}");
        }
        let mapping = SendMapping::new(
            Preset::Send,
            serde_json::json!({
                "eventDetails": {"currency": "EUR", "source_message_id": {"@path": "$.id"}},
                "user_identities": {"@path": "$.ids"}
            }),
        )
        .unwrap();
        let member = |m| mapping.member(m);
        assert_eq!(
            member(Member::Currency),
            Some(&Node::Const(Json::Str("EUR".into())))
        );
        assert!(
            matches!(member(Member::SourceMessageId), Some(Node::Path(p)) if p.as_str() == "$.id")
        );
        assert_eq!(member(Member::Amount), None, "not in the override");
        assert_eq!(member(Member::Email), None, "the field is not a literal");
        assert!(
            matches!(member(Member::Dob), Some(Node::Coalesce(p, _)) if p.as_str() == "$.context.traits.birthday")
        );
        // The preset maps every member, each under its own field and key.
        let preset = SendMapping::preset_defaults(Preset::Send);
        for m in Member::ALL {
            match preset.field(m.field()) {
                Some(Node::Object(_)) => assert!(preset.member(m).is_some(), "{m:?}"),
                // An object without directives compiles to a constant.
                Some(Node::Const(constant)) => assert!(
                    preset
                        .constant_member(m)
                        .is_some_and(|v| constant.get(m.key()).is_some_and(|c| std::ptr::eq(v, c))),
                    "{m:?}"
                ),
                other => panic!("{m:?}: {other:?}"),
            }
        }
        // Every member the mapping has is found under its own key.
        for m in Member::ALL {
            let literal = match mapping.field(m.field()) {
                Some(Node::Object(members)) => members,
                _ => continue,
            };
            let scanned = literal
                .iter()
                .rev()
                .find(|(k, _)| k == m.key())
                .map(|(_, n)| n);
            assert_eq!(member(m), scanned, "{m:?}");
        }
    }

    #[test]
    fn unknown_field_is_named() {
        let err =
            SendMapping::new(Preset::Send, serde_json::json!({"user_atributes": {}})).unwrap_err();
        assert_eq!(err.location, "/user_atributes");
    }
}
