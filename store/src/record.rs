//! The log record: one write at one revision, and its byte encoding.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Error, EventKind, KeyValue, Result, Revision};

/// Encoding version written as the first byte of every record.
const FORMAT: u8 = 1;
/// format, kind, create_revision, version, prev_revision, expires_at_ms, key length.
const HEADER_LEN: usize = 1 + 1 + 8 + 8 + 8 + 8 + 4;

/// One write, as stored in the log under its revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub revision: Revision,
    pub kind: EventKind,
    pub key: Bytes,
    /// Empty for deletes (tombstones).
    pub value: Bytes,
    pub create_revision: Revision,
    pub version: u64,
    /// The revision of the live version this write replaced, 0 if none.
    pub prev_revision: Revision,
    /// Wall-clock expiry in milliseconds since the Unix epoch, 0 if none.
    pub expires_at_ms: u64,
}

impl Record {
    pub fn to_kv(&self) -> KeyValue {
        match self.kind {
            EventKind::Put => KeyValue {
                key: self.key.clone(),
                value: self.value.clone(),
                create_revision: self.create_revision,
                mod_revision: self.revision,
                version: self.version,
            },
            EventKind::Delete => KeyValue {
                key: self.key.clone(),
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: self.revision,
                version: 0,
            },
        }
    }

    pub fn is_tombstone(&self) -> bool {
        self.kind == EventKind::Delete
    }

    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.key.len() + self.value.len()
    }

    pub fn encode(&self) -> BytesMut {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        buf.put_u8(FORMAT);
        buf.put_u8(match self.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        });
        buf.put_u64_le(self.create_revision);
        buf.put_u64_le(self.version);
        buf.put_u64_le(self.prev_revision);
        buf.put_u64_le(self.expires_at_ms);
        buf.put_u32_le(self.key.len() as u32);
        buf.put_slice(&self.key);
        buf.put_slice(&self.value);
        buf
    }

    pub fn decode(revision: Revision, data: Bytes) -> Result<Record> {
        let corrupt = |reason: &str| Error::Corrupt {
            revision,
            reason: reason.to_string(),
        };
        if data.len() < HEADER_LEN {
            return Err(corrupt("record shorter than its header"));
        }
        if data[0] != FORMAT {
            return Err(corrupt(&format!("unknown record format {}", data[0])));
        }
        let kind = match data[1] {
            0 => EventKind::Put,
            1 => EventKind::Delete,
            other => return Err(corrupt(&format!("unknown record kind {other}"))),
        };
        let u64_at = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
        let key_len = u32::from_le_bytes(data[34..38].try_into().expect("4 bytes")) as usize;
        if data.len() < HEADER_LEN + key_len {
            return Err(corrupt("key runs past the end of the record"));
        }
        Ok(Record {
            revision,
            kind,
            create_revision: u64_at(2),
            version: u64_at(10),
            prev_revision: u64_at(18),
            expires_at_ms: u64_at(26),
            key: data.slice(HEADER_LEN..HEADER_LEN + key_len),
            value: data.slice(HEADER_LEN + key_len..),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let rec = Record {
            revision: 7,
            kind: EventKind::Put,
            key: Bytes::from_static(b"/registry/pods/default/a"),
            value: Bytes::from_static(b"{}"),
            create_revision: 3,
            version: 2,
            prev_revision: 3,
            expires_at_ms: 42,
        };
        let back = Record::decode(7, rec.encode().freeze()).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn truncated_records_are_corrupt_not_panics() {
        let rec = Record {
            revision: 1,
            kind: EventKind::Delete,
            key: Bytes::from_static(b"k"),
            value: Bytes::new(),
            create_revision: 0,
            version: 0,
            prev_revision: 0,
            expires_at_ms: 0,
        };
        let bytes = rec.encode().freeze();
        for len in 0..bytes.len() {
            assert!(
                Record::decode(1, bytes.slice(..len)).is_err(),
                "length {len}"
            );
        }
    }
}
