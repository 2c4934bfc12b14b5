//! The one reader of big-endian fields from untrusted bytes (a request, a record, a file):
//! every read checks what is left and fails with `None` instead of panicking.

pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }

    pub fn i16(&mut self) -> Option<i16> {
        self.array().map(i16::from_be_bytes)
    }

    pub fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    pub fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_be_bytes)
    }

    /// A string or bytes field with an i16 (`long == false`) or i32 length; a negative
    /// length is null (`Some(None)`).
    pub fn sized(&mut self, long: bool) -> Option<Option<&'a [u8]>> {
        let len = if long {
            self.i32()?
        } else {
            i32::from(self.i16()?)
        };
        match usize::try_from(len) {
            Ok(n) => self.take(n).map(Some),
            Err(_) => Some(None),
        }
    }

    /// A non-null UTF-8 string with an i16 length.
    pub fn string(&mut self) -> Option<String> {
        let bytes = self.sized(false)??;
        String::from_utf8(bytes.to_vec()).ok()
    }

    /// A nullable UTF-8 string with an i16 length.
    pub fn nullable_string(&mut self) -> Option<Option<String>> {
        match self.sized(false)? {
            None => Some(None),
            Some(b) => String::from_utf8(b.to_vec()).ok().map(Some),
        }
    }

    /// An i32 array count, refused when the bytes left cannot hold `count` elements of at
    /// least `min_element_bytes` each: nothing is reserved for a count that lies.
    pub fn count(&mut self, min_element_bytes: usize) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n.checked_mul(min_element_bytes.max(1))? <= self.buf.len()).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_and_lying_counts_fail() {
        let mut r = Reader::new(&[0, 2, b'h', b'i', 0xff, 0xff, 0, 0, 0, 9]);
        assert_eq!(r.string().as_deref(), Some("hi"));
        assert_eq!(r.nullable_string(), Some(None));
        assert_eq!(r.count(1), None, "9 elements in 0 bytes");
        let mut r = Reader::new(&[0, 0, 0]);
        assert_eq!(r.i32(), None);
        assert_eq!(r.remaining(), 3, "a failed read takes nothing");
    }
}
