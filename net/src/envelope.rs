//! The envelope: one CBOR value per frame, saying which call a frame belongs to and what it is.
//!
//! Wire shape (see `docs/PROTOCOL.md`): a CBOR array of exactly four items,
//! `[id: uint, kind: uint, method: text, body: bytes]`. The body is a byte string that holds
//! the CBOR encoding of the message body, so an already-encoded reply can be sent as it is.
//! Encoding is hand-written (shortest-form heads, deterministic); decoding goes through
//! ciborium with an explicit recursion limit and rejects unknown kinds and trailing bytes.

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{self, DeserializeOwned, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

use crate::{NetError, RpcError};

/// Nesting depth that decoding accepts; our messages nest a handful of levels deep.
pub const RECURSION_LIMIT: usize = 64;

/// What a frame is. The numbers are the wire values and are stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A request that expects exactly one `Reply` or `Error` with the same id.
    Call = 0,
    /// A successful answer; the body is the encoded reply.
    Reply = 1,
    /// A failed answer; the body is an encoded `RpcError`.
    Error = 2,
    /// A one-way message; no answer, id 0.
    Notify = 3,
    /// Liveness probe; answered by a `Pong` with the same id.
    Ping = 4,
    Pong = 5,
    /// A handshake step (`hello`, `proof`, `done`, `refuse`); only before authentication.
    Handshake = 6,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Call,
        Kind::Reply,
        Kind::Error,
        Kind::Notify,
        Kind::Ping,
        Kind::Pong,
        Kind::Handshake,
    ];

    pub fn from_wire(value: u64) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u64 == value)
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The call id (chosen by the caller, echoed in the reply); 0 for notify and handshake.
    pub id: u64,
    pub kind: Kind,
    /// The method for `Call`/`Notify`, the step for `Handshake`; empty otherwise.
    pub method: String,
    /// The CBOR-encoded message body (may be empty for ping/pong).
    pub body: Bytes,
}

impl Envelope {
    /// Encodes the envelope as one CBOR value (the frame payload, without length prefix).
    pub fn encode(&self) -> Bytes {
        encode_frame(self.id, self.kind, &self.method, &self.body)
    }

    /// Decodes one frame payload. Never panics; any malformed input is an error.
    pub fn decode(frame: &[u8]) -> Result<Envelope, NetError> {
        let mut rest = frame;
        let envelope: Envelope =
            ciborium::de::from_reader_with_recursion_limit(&mut rest, RECURSION_LIMIT)
                .map_err(|e| NetError::Malformed(format!("envelope: {e}")))?;
        if !rest.is_empty() {
            return Err(NetError::Malformed(format!(
                "envelope: {} trailing bytes",
                rest.len()
            )));
        }
        Ok(envelope)
    }
}

/// Encodes an envelope from its parts without building an `Envelope` first.
pub fn encode_frame(id: u64, kind: Kind, method: &str, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + 9 + 2 + 9 + method.len() + 9 + body.len());
    out.put_u8(0x84); // array of 4
    put_head(&mut out, 0, id);
    put_head(&mut out, 0, kind as u64);
    put_head(&mut out, 3, method.len() as u64);
    out.put_slice(method.as_bytes());
    put_head(&mut out, 2, body.len() as u64);
    out.put_slice(body);
    out.freeze()
}

/// Writes a CBOR item head (major type and argument) in its shortest form.
fn put_head(out: &mut BytesMut, major: u8, value: u64) {
    let m = major << 5;
    if value < 24 {
        out.put_u8(m | value as u8);
    } else if value <= u8::MAX as u64 {
        out.put_u8(m | 24);
        out.put_u8(value as u8);
    } else if value <= u16::MAX as u64 {
        out.put_u8(m | 25);
        out.put_u16(value as u16);
    } else if value <= u32::MAX as u64 {
        out.put_u8(m | 26);
        out.put_u32(value as u32);
    } else {
        out.put_u8(m | 27);
        out.put_u64(value);
    }
}

/// Encodes a message body as CBOR.
pub fn encode_body<T: Serialize>(value: &T) -> Bytes {
    let mut out = Vec::with_capacity(128);
    // Writing to a Vec cannot fail on I/O, and our message types serialize infallibly;
    // this is local data, never peer input.
    ciborium::ser::into_writer(value, &mut out).expect("CBOR encoding of a local message");
    Bytes::from(out)
}

/// Decodes a message body, with the recursion limit; any failure is a `BadRequest`.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, RpcError> {
    let mut rest = body;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut rest, RECURSION_LIMIT)
        .map_err(|e| RpcError::bad_request(format!("body does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(RpcError::bad_request(format!(
            "body has {} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

/// A CBOR byte string (major type 2) in serde; used for the body and handshake nonces/MACs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteString(pub Vec<u8>);

impl Serialize for ByteString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_byte_buf(ByteStringVisitor)
    }
}

struct ByteStringVisitor;

impl<'de> Visitor<'de> for ByteStringVisitor {
    type Value = ByteString;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteString, E> {
        Ok(ByteString(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteString, E> {
        Ok(ByteString(v))
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_tuple(4, EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an envelope array [id, kind, method, body]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Envelope, A::Error> {
        let missing = |i| de::Error::invalid_length(i, &"4 items");
        let id: u64 = seq.next_element()?.ok_or_else(|| missing(0))?;
        let kind: u64 = seq.next_element()?.ok_or_else(|| missing(1))?;
        let kind = Kind::from_wire(kind)
            .ok_or_else(|| de::Error::custom(format!("unknown envelope kind {kind}")))?;
        let method: String = seq.next_element()?.ok_or_else(|| missing(2))?;
        let body: ByteString = seq.next_element()?.ok_or_else(|| missing(3))?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("envelope has more than 4 items"));
        }
        Ok(Envelope {
            id,
            kind,
            method,
            body: Bytes::from(body.0),
        })
    }
}
