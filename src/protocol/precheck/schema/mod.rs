//! The schema language: a compact, static description of a request's wire layout.
//!
//! A message is a [`StructSchema`] (its body) plus the versions the broker serves and the
//! first flexible version. A struct is a list of [`Field`]s, each present in a range of
//! versions, and the [`TaggedField`]s its decoder knows. Nested structs inherit the
//! message's version and flexibility: from the first flexible version on, strings, bytes
//! and arrays carry unsigned-varint lengths (length + 1, 0 meaning null) and every struct
//! ends with a tagged-field section.
//!
//! Nullability is a property of the *Rust* field (an `Option` in `kafka-protocol`), not of
//! the version: the crate accepts a null wherever its field is an `Option`, so the walker
//! does too, and refuses it wherever the crate would.

pub mod acls;
pub mod admin;
pub mod describe;
pub mod groups;
pub mod log_admin;
pub mod produce_fetch;
pub mod sasl;
pub mod txn;

use kafka_protocol::messages::ApiKey;

/// An inclusive range of versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub min: i16,
    pub max: i16,
}

impl Versions {
    /// Every version.
    pub const ALL: Versions = Versions {
        min: 0,
        max: i16::MAX,
    };
    /// No version (a message that is never flexible).
    pub const NONE: Versions = Versions { min: 1, max: 0 };

    pub const fn contains(self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// Versions `min` and later.
pub const fn from(min: i16) -> Versions {
    Versions { min, max: i16::MAX }
}

/// Versions `min` to `max`, both included.
pub const fn range(min: i16, max: i16) -> Versions {
    Versions { min, max }
}

/// Versions up to `max`, included.
pub const fn until(max: i16) -> Versions {
    Versions { min: 0, max }
}

/// A fixed-size or variable-length scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prim {
    Int8,
    Int16,
    UInt16,
    Int32,
    Int64,
    Float64,
    Bool,
    Uuid,
    /// Zigzag varint, at most 5 bytes.
    VarInt,
    /// Zigzag varlong, at most 10 bytes.
    VarLong,
    /// Unsigned varint, at most 5 bytes.
    UVarInt,
}

impl Prim {
    /// Bytes on the wire when fixed; `None` for varints.
    pub const fn fixed_size(self) -> Option<usize> {
        match self {
            Prim::Int8 | Prim::Bool => Some(1),
            Prim::Int16 | Prim::UInt16 => Some(2),
            Prim::Int32 => Some(4),
            Prim::Int64 | Prim::Float64 => Some(8),
            Prim::Uuid => Some(16),
            Prim::VarInt | Prim::VarLong | Prim::UVarInt => None,
        }
    }

    /// The fewest bytes this scalar can take.
    pub const fn min_size(self) -> usize {
        match self.fixed_size() {
            Some(n) => n,
            None => 1,
        }
    }
}

/// What an array holds.
#[derive(Debug, Clone, Copy)]
pub enum Elem {
    Prim(Prim),
    String { nullable: bool },
    Struct(&'static StructSchema),
}

/// The type of a field.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Prim(Prim),
    /// int16 length (or compact) then UTF-8; decoded zero-copy.
    String {
        nullable: bool,
    },
    /// int32 length (or compact) then bytes; decoded zero-copy.
    Bytes {
        nullable: bool,
    },
    /// A record set: nullable bytes, never parsed here.
    Records,
    /// A struct inlined in its parent (used by tagged fields).
    Struct(&'static StructSchema),
    /// int32 count (or compact) then the elements. `rust_elem_size` is
    /// `size_of` the crate's element type: what one count reserves when decoded.
    Array {
        elem: Elem,
        nullable: bool,
        rust_elem_size: usize,
    },
}

/// A field present in `versions`.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub versions: Versions,
    pub ty: Ty,
}

/// A tagged field the crate's decoder knows. The crate decodes a known tag by its type and
/// ignores the size that precedes it; a known tag outside `versions` fails its decode.
#[derive(Debug, Clone, Copy)]
pub struct TaggedField {
    pub tag: u32,
    pub name: &'static str,
    pub versions: Versions,
    pub ty: Ty,
}

/// A struct: the body of a message or an array element.
#[derive(Debug)]
pub struct StructSchema {
    pub name: &'static str,
    pub fields: &'static [Field],
    pub tagged: &'static [TaggedField],
}

/// One request API.
#[derive(Debug)]
pub struct MessageSchema {
    pub api: ApiKey,
    /// The versions the broker serves with this schema.
    pub versions: Versions,
    /// The flexible versions (compact encodings and tagged fields).
    pub flexible: Versions,
    pub body: &'static StructSchema,
}

impl MessageSchema {
    pub fn is_flexible(&self, version: i16) -> bool {
        self.flexible.contains(version)
    }
}

// Building blocks for the tables.

pub const INT8: Ty = Ty::Prim(Prim::Int8);
pub const INT16: Ty = Ty::Prim(Prim::Int16);
pub const INT32: Ty = Ty::Prim(Prim::Int32);
pub const INT64: Ty = Ty::Prim(Prim::Int64);
pub const BOOL: Ty = Ty::Prim(Prim::Bool);
pub const UUID: Ty = Ty::Prim(Prim::Uuid);
pub const STRING: Ty = Ty::String { nullable: false };
pub const NULLABLE_STRING: Ty = Ty::String { nullable: true };
pub const BYTES: Ty = Ty::Bytes { nullable: false };
pub const NULLABLE_BYTES: Ty = Ty::Bytes { nullable: true };
pub const RECORDS: Ty = Ty::Records;

pub const fn field(name: &'static str, versions: Versions, ty: Ty) -> Field {
    Field { name, versions, ty }
}

pub const fn tagged(tag: u32, name: &'static str, versions: Versions, ty: Ty) -> TaggedField {
    TaggedField {
        tag,
        name,
        versions,
        ty,
    }
}

/// A non-nullable array of structs; `rust_elem_size` is `size_of` the crate's element.
pub const fn structs(elem: &'static StructSchema, rust_elem_size: usize) -> Ty {
    Ty::Array {
        elem: Elem::Struct(elem),
        nullable: false,
        rust_elem_size,
    }
}

/// A nullable array of structs.
pub const fn nullable_structs(elem: &'static StructSchema, rust_elem_size: usize) -> Ty {
    Ty::Array {
        elem: Elem::Struct(elem),
        nullable: true,
        rust_elem_size,
    }
}

/// A non-nullable array of non-nullable strings.
pub const fn strings(rust_elem_size: usize) -> Ty {
    Ty::Array {
        elem: Elem::String { nullable: false },
        nullable: false,
        rust_elem_size,
    }
}

/// A non-nullable array of scalars.
pub const fn prims(prim: Prim, rust_elem_size: usize) -> Ty {
    Ty::Array {
        elem: Elem::Prim(prim),
        nullable: false,
        rust_elem_size,
    }
}

/// The fewest bytes a value of `ty` takes in `version`.
pub fn min_size(ty: Ty, version: i16, flexible: bool) -> usize {
    let len_prefix = |classic: usize| if flexible { 1 } else { classic };
    match ty {
        Ty::Prim(p) => p.min_size(),
        Ty::String { .. } => len_prefix(2),
        Ty::Bytes { .. } | Ty::Records | Ty::Array { .. } => len_prefix(4),
        Ty::Struct(s) => struct_min_size(s, version, flexible),
    }
}

/// The fewest bytes one array element takes in `version`.
pub fn elem_min_size(elem: Elem, version: i16, flexible: bool) -> usize {
    match elem {
        Elem::Prim(p) => p.min_size(),
        Elem::String { nullable } => min_size(Ty::String { nullable }, version, flexible),
        Elem::Struct(s) => struct_min_size(s, version, flexible),
    }
}

/// The fewest bytes a struct takes in `version`: its fields present in that version, and
/// the tagged-field count when flexible. Nested arrays count only their length prefix.
pub fn struct_min_size(s: &StructSchema, version: i16, flexible: bool) -> usize {
    let fields = s
        .fields
        .iter()
        .filter(|f| f.versions.contains(version))
        .fold(0usize, |acc, f| {
            acc.saturating_add(min_size(f.ty, version, flexible))
        });
    fields.saturating_add(usize::from(flexible))
}

/// Every request schema the broker serves.
pub static ALL: &[&MessageSchema] = &[
    &produce_fetch::PRODUCE,
    &produce_fetch::FETCH,
    &produce_fetch::LIST_OFFSETS,
    &produce_fetch::OFFSET_FOR_LEADER_EPOCH,
    &admin::METADATA,
    &admin::API_VERSIONS,
    &admin::CREATE_TOPICS,
    &admin::DELETE_TOPICS,
    &admin::INIT_PRODUCER_ID,
    &admin::DESCRIBE_CONFIGS,
    &admin::ALTER_CONFIGS,
    &admin::INCREMENTAL_ALTER_CONFIGS,
    &describe::DESCRIBE_CLUSTER,
    &describe::DESCRIBE_PRODUCERS,
    &log_admin::CREATE_PARTITIONS,
    &log_admin::DELETE_RECORDS,
    &log_admin::DESCRIBE_LOG_DIRS,
    &groups::FIND_COORDINATOR,
    &groups::JOIN_GROUP,
    &groups::SYNC_GROUP,
    &groups::HEARTBEAT,
    &groups::LEAVE_GROUP,
    &groups::OFFSET_COMMIT,
    &groups::OFFSET_FETCH,
    &groups::LIST_GROUPS,
    &groups::DESCRIBE_GROUPS,
    &groups::DELETE_GROUPS,
    &groups::OFFSET_DELETE,
    &sasl::SASL_HANDSHAKE,
    &sasl::SASL_AUTHENTICATE,
    &acls::DESCRIBE_ACLS,
    &acls::CREATE_ACLS,
    &acls::DELETE_ACLS,
    &sasl::DESCRIBE_USER_SCRAM_CREDENTIALS,
    &sasl::ALTER_USER_SCRAM_CREDENTIALS,
    &txn::ADD_PARTITIONS_TO_TXN,
    &txn::ADD_OFFSETS_TO_TXN,
    &txn::END_TXN,
    &txn::TXN_OFFSET_COMMIT,
    &txn::WRITE_TXN_MARKERS,
    &txn::DESCRIBE_TRANSACTIONS,
    &txn::LIST_TRANSACTIONS,
];
