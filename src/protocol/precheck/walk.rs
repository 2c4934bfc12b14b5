//! The walker: one pass over a request frame, guided by its schema, that checks every
//! length and count against the bytes that are left and adds up what decoding will reserve.
//!
//! It never copies or allocates; recursion follows the schema's nesting (a few levels,
//! bounded by [`MAX_DEPTH`]), never the input. Record sets are skipped as bytes.

use super::schema::{self, Elem, MessageSchema, Prim, StructSchema, Ty};
use super::{Checked, Limits, PrecheckError, TAGGED_ENTRY_BYTES};
use kafka_protocol::messages::ApiKey;

/// Deepest nesting of structs any schema may have (the deepest today is 3).
pub const MAX_DEPTH: usize = 8;

const UVARINT_MAX_BYTES: usize = 5;
const UVARLONG_MAX_BYTES: usize = 10;

pub(crate) fn check(frame: &[u8], limits: &Limits) -> Result<Checked, PrecheckError> {
    Walker::new(frame, limits).request()
}

/// Where a count was read: the array or tagged-field section it announces.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CountAt {
    /// Offset of the count in the frame.
    pub at: usize,
    /// Bytes the count takes.
    pub len: usize,
    /// An unsigned varint (length + 1) rather than an int32.
    pub compact: bool,
    /// The count of a tagged-field section rather than of an array.
    pub tagged: bool,
}

/// Every count the walker reads in `frame`, up to where it stops.
#[cfg(test)]
pub(crate) fn counts(frame: &[u8]) -> Vec<CountAt> {
    let limits = Limits::default();
    let mut w = Walker::new(frame, &limits);
    w.record = Some(Vec::new());
    let _ = w.request();
    w.record.take().unwrap_or_default()
}

static NO_TAGS: StructSchema = StructSchema {
    name: "RequestHeader",
    fields: &[],
    tagged: &[],
};

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
    estimate: usize,
    limits: &'a Limits,
    #[cfg(test)]
    record: Option<Vec<CountAt>>,
}

impl<'a> Walker<'a> {
    fn new(buf: &'a [u8], limits: &'a Limits) -> Self {
        Walker {
            buf,
            pos: 0,
            version: 0,
            flexible: false,
            estimate: 0,
            limits,
            #[cfg(test)]
            record: None,
        }
    }

    fn request(&mut self) -> Result<Checked, PrecheckError> {
        let key = self.i16("request_api_key")?;
        let version = self.i16("request_api_version")?;
        let correlation_id = self.i32("correlation_id")?;
        let api = ApiKey::try_from(key).map_err(|_| PrecheckError::UnknownApi(key))?;
        let schema: &MessageSchema = super::schema_for(api).ok_or(PrecheckError::NoSchema(api))?;
        if !schema.versions.contains(version) {
            return Err(PrecheckError::UnsupportedVersion { api, version });
        }
        self.version = version;
        let header = api.request_header_version(version);
        if header >= 1 {
            // The client id stays a classic (int16-length) string even in flexible headers.
            self.string(false, true, "client_id")?;
        }
        if header >= 2 {
            self.tagged_section(&NO_TAGS, 0)?;
        }
        let header_len = self.pos;
        self.flexible = schema.is_flexible(version);
        self.structure(schema.body, 0)?;
        Ok(Checked {
            api,
            version,
            correlation_id,
            header_len,
            consumed: self.pos,
            decoded_bytes_estimate: self.estimate,
        })
    }

    #[cfg(test)]
    fn note_count(&mut self, at: usize, tagged: bool) {
        let (len, compact) = (self.pos.saturating_sub(at), self.flexible || tagged);
        if let Some(r) = self.record.as_mut() {
            r.push(CountAt {
                at,
                len,
                compact,
                tagged,
            });
        }
    }

    #[cfg(not(test))]
    fn note_count(&mut self, _at: usize, _tagged: bool) {}

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PrecheckError> {
        let bytes = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end));
        match bytes {
            Some(b) => {
                self.pos = self.pos.saturating_add(n);
                Ok(b)
            }
            None => Err(PrecheckError::Truncated {
                what,
                at: self.pos,
                need: n,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PrecheckError> {
        let at = self.pos;
        let bytes = self.take(N, what)?;
        bytes
            .try_into()
            .map_err(|_| PrecheckError::Truncated { what, at, need: N })
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, PrecheckError> {
        Ok(u8::from_be_bytes(self.array::<1>(what)?))
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, PrecheckError> {
        Ok(i16::from_be_bytes(self.array::<2>(what)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, PrecheckError> {
        Ok(i32::from_be_bytes(self.array::<4>(what)?))
    }

    /// An unsigned varint of at most `max_bytes` bytes, as the crate reads it (bits past the
    /// 64th dropped). A last byte that still has its continuation bit is refused, as Kafka
    /// does; the crate would stop there and carry on.
    fn varint(&mut self, max_bytes: usize, what: &'static str) -> Result<u64, PrecheckError> {
        let at = self.pos;
        let mut value: u64 = 0;
        let mut shift: u32 = 0;
        for _ in 0..max_bytes {
            let b = self.u8(what)?;
            value |= u64::from(b & 0x7f).wrapping_shl(shift);
            if b & 0x80 == 0 {
                return Ok(value);
            }
            shift = shift.saturating_add(7);
        }
        Err(PrecheckError::VarintTooLong {
            what,
            at,
            max: max_bytes,
        })
    }

    /// An unsigned varint read into a `u32` the way the crate does (bits past the 32nd of the
    /// fifth byte dropped).
    fn uvarint(&mut self, what: &'static str) -> Result<u32, PrecheckError> {
        let v = self.varint(UVARINT_MAX_BYTES, what)?;
        Ok(u32::try_from(v & u64::from(u32::MAX)).unwrap_or(u32::MAX))
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), PrecheckError> {
        self.take(n, what).map(|_| ())
    }

    /// Skips `len` bytes announced at `at`, refusing a length beyond the frame.
    fn skip_len(&mut self, len: usize, at: usize, what: &'static str) -> Result<(), PrecheckError> {
        let remaining = self.remaining();
        if len > remaining {
            return Err(PrecheckError::LengthBeyondFrame {
                what,
                at,
                len,
                remaining,
            });
        }
        self.skip(len, what)
    }

    /// Reads a length prefix: `Ok(None)` for null. Classic prefixes are int16 (strings) or
    /// int32 (bytes, arrays) with -1 for null; compact ones are unsigned varints of
    /// length + 1 with 0 for null.
    fn length(
        &mut self,
        wide: bool,
        nullable: bool,
        what: &'static str,
    ) -> Result<Option<usize>, PrecheckError> {
        let at = self.pos;
        let len: i64 = if self.flexible {
            i64::from(self.uvarint(what)?).saturating_sub(1)
        } else if wide {
            i64::from(self.i32(what)?)
        } else {
            i64::from(self.i16(what)?)
        };
        match len {
            -1 if nullable => Ok(None),
            -1 => Err(PrecheckError::NullNotAllowed { what, at }),
            n => usize::try_from(n)
                .map(Some)
                .map_err(|_| PrecheckError::NegativeLength { what, at, len: n }),
        }
    }

    /// A string; the header's client id is classic even when the body is flexible.
    fn string(
        &mut self,
        compact: bool,
        nullable: bool,
        what: &'static str,
    ) -> Result<(), PrecheckError> {
        let flexible = self.flexible;
        self.flexible = compact;
        let at = self.pos;
        let len = self.length(false, nullable, what);
        self.flexible = flexible;
        match len? {
            Some(n) => self.skip_len(n, at, what),
            None => Ok(()),
        }
    }

    fn prim(&mut self, p: Prim, what: &'static str) -> Result<(), PrecheckError> {
        match p.fixed_size() {
            Some(n) => self.skip(n, what),
            None if p == Prim::VarLong => self.varint(UVARLONG_MAX_BYTES, what).map(|_| ()),
            None => self.varint(UVARINT_MAX_BYTES, what).map(|_| ()),
        }
    }

    fn value(&mut self, ty: Ty, what: &'static str, depth: usize) -> Result<(), PrecheckError> {
        match ty {
            Ty::Prim(p) => self.prim(p, what),
            Ty::String { nullable } => self.string(self.flexible, nullable, what),
            Ty::Bytes { nullable } => {
                let at = self.pos;
                match self.length(true, nullable, what)? {
                    Some(n) => self.skip_len(n, at, what),
                    None => Ok(()),
                }
            }
            Ty::Records => self.value(Ty::Bytes { nullable: true }, what, depth),
            Ty::Struct(s) => self.structure(s, depth),
            Ty::Array {
                elem,
                nullable,
                rust_elem_size,
            } => self.elements(elem, nullable, rust_elem_size, what, depth),
        }
    }

    fn elements(
        &mut self,
        elem: Elem,
        nullable: bool,
        rust_elem_size: usize,
        what: &'static str,
        depth: usize,
    ) -> Result<(), PrecheckError> {
        let at = self.pos;
        let count = self.length(true, nullable, what)?;
        self.note_count(at, false);
        let Some(count) = count else {
            return Ok(());
        };
        let min_elem = schema::elem_min_size(elem, self.version, self.flexible).max(1);
        let remaining = self.remaining();
        if count > remaining.checked_div(min_elem).unwrap_or(0) {
            return Err(PrecheckError::ArrayTooLong {
                what,
                at,
                count,
                min_elem,
                remaining,
            });
        }
        self.reserve(count.checked_mul(rust_elem_size))?;
        match elem {
            Elem::Prim(p) => match p.fixed_size() {
                // Cannot overflow: count * size <= remaining, checked above.
                Some(n) => self.skip(count.saturating_mul(n), what),
                None => (0..count).try_for_each(|_| self.prim(p, what)),
            },
            Elem::String { nullable } => {
                (0..count).try_for_each(|_| self.string(self.flexible, nullable, what))
            }
            Elem::Struct(s) => (0..count).try_for_each(|_| self.structure(s, depth)),
        }
    }

    /// Adds what decoding will reserve; `None` is an overflow.
    fn reserve(&mut self, bytes: Option<usize>) -> Result<(), PrecheckError> {
        let limit = self.limits.max_decoded_bytes;
        let estimate = bytes.and_then(|b| self.estimate.checked_add(b));
        match estimate {
            Some(e) if e <= limit => {
                self.estimate = e;
                Ok(())
            }
            _ => Err(PrecheckError::DecodedTooLarge {
                estimate: estimate.unwrap_or(usize::MAX),
                limit,
            }),
        }
    }

    fn structure(&mut self, s: &StructSchema, depth: usize) -> Result<(), PrecheckError> {
        let depth = depth.saturating_add(1);
        if depth > MAX_DEPTH {
            return Err(PrecheckError::TooDeep(MAX_DEPTH));
        }
        for f in s.fields {
            if f.versions.contains(self.version) {
                self.value(f.ty, f.name, depth)?;
            }
        }
        if self.flexible {
            self.tagged_section(s, depth)?;
        }
        Ok(())
    }

    /// A tagged-field section: a count, then (tag, size, value) entries. Known tags are read
    /// by their type, as the crate does (it ignores their size); unknown ones are skipped by
    /// size and cost a map entry each once decoded.
    fn tagged_section(&mut self, s: &StructSchema, depth: usize) -> Result<(), PrecheckError> {
        let at = self.pos;
        let count = self.uvarint("tagged field count")?;
        self.note_count(at, true);
        let remaining = self.remaining();
        // Each entry takes at least two bytes: its tag and its size.
        let count_usize = usize::try_from(count).unwrap_or(usize::MAX);
        if count_usize > remaining / 2 {
            return Err(PrecheckError::ArrayTooLong {
                what: "tagged fields",
                at,
                count: count_usize,
                min_elem: 2,
                remaining,
            });
        }
        if count > self.limits.max_tagged_fields {
            return Err(PrecheckError::TooManyTaggedFields {
                at,
                count,
                limit: self.limits.max_tagged_fields,
            });
        }
        for _ in 0..count {
            let tag_at = self.pos;
            let tag = self.uvarint("tag")?;
            let size_at = self.pos;
            let size = self.uvarint("tag size")?;
            match s.tagged.iter().find(|t| t.tag == tag) {
                Some(t) if t.versions.contains(self.version) => self.value(t.ty, t.name, depth)?,
                Some(t) => {
                    return Err(PrecheckError::TagNotValidForVersion {
                        what: t.name,
                        tag,
                        at: tag_at,
                        version: self.version,
                    });
                }
                None => {
                    let len = usize::try_from(size).unwrap_or(usize::MAX);
                    self.skip_len(len, size_at, "unknown tagged field")?;
                    self.reserve(Some(TAGGED_ENTRY_BYTES))?;
                }
            }
        }
        Ok(())
    }
}
