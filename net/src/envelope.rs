//! The envelope: one CBOR value per frame, saying which call a frame belongs to and what it is.
//!
//! Wire shape (see `docs/PROTOCOL.md`): a CBOR array of exactly four items,
//! `[id: uint, kind: uint, method: text, body: bytes]`. The body is a byte string that holds
//! the CBOR encoding of the message body, so an already-encoded reply can be sent as it is.
//! Encoding is hand-written (shortest-form heads, deterministic). Decoding reads the plain
//! shape (definite lengths) directly, without copying the body out of the frame; any other
//! shape goes through the general CBOR decoder with an explicit recursion limit. Both reject
//! unknown kinds and trailing bytes.
//!
//! Bodies are encoded and decoded with `cbor4ii` (serde), reading from a slice with our own
//! recursion limit; its encodings are byte for byte ciborium's (shortest heads, definite
//! lengths, externally tagged enums), which a test holds it to.

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
        Envelope::decode_bytes(Bytes::copy_from_slice(frame))
    }

    /// Decodes one frame payload held in `frame`; the body is a slice of `frame`, not a copy.
    /// The common shape (definite lengths, a known kind) is read directly; anything else goes
    /// through the general decoder, which accepts every other valid encoding and names what is
    /// wrong.
    pub fn decode_bytes(frame: Bytes) -> Result<Envelope, NetError> {
        match decode_plain(&frame) {
            Some((id, kind, method, body)) => Ok(Envelope {
                id,
                kind,
                method: method.to_owned(),
                body: frame.slice(body),
            }),
            None => Envelope::decode_general(&frame),
        }
    }

    fn decode_general(frame: &[u8]) -> Result<Envelope, NetError> {
        decode_cbor(frame).map_err(|e| NetError::Malformed(format!("envelope: {e}")))
    }
}

/// The envelope of a frame in its plain shape: a definite array of 4, two unsigned ints (the
/// second a known kind), a definite UTF-8 text and a definite byte string, and nothing after.
/// `None` for anything else (which may still be valid CBOR: the general decoder decides).
/// Returns the method and the body's range within `frame`.
fn decode_plain(frame: &[u8]) -> Option<(u64, Kind, &str, std::ops::Range<usize>)> {
    let mut at = 0;
    if *frame.first()? != 0x84 {
        return None;
    }
    at += 1;
    let id = read_head(frame, &mut at, 0)?;
    let kind = Kind::from_wire(read_head(frame, &mut at, 0)?)?;
    let method_len = usize::try_from(read_head(frame, &mut at, 3)?).ok()?;
    let method = frame.get(at..at.checked_add(method_len)?)?;
    let method = std::str::from_utf8(method).ok()?;
    at += method_len;
    let body_len = usize::try_from(read_head(frame, &mut at, 2)?).ok()?;
    let body = at..at.checked_add(body_len)?;
    (body.end == frame.len()).then_some((id, kind, method, body))
}

/// Reads a CBOR head of `major` type with a definite argument (any width) at `*at`.
fn read_head(frame: &[u8], at: &mut usize, major: u8) -> Option<u64> {
    let initial = *frame.get(*at)?;
    if initial >> 5 != major {
        return None;
    }
    let width = match initial & 0x1f {
        info @ 0..=23 => {
            *at += 1;
            return Some(u64::from(info));
        }
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None,
    };
    let bytes = frame.get(*at + 1..*at + 1 + width)?;
    *at += 1 + width;
    Some(bytes.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)))
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
    // Writing to a Vec cannot fail on I/O, and our message types serialize infallibly;
    // this is local data, never peer input.
    let out = cbor4ii::serde::to_vec(Vec::with_capacity(128), value)
        .expect("CBOR encoding of a local message");
    Bytes::from(out)
}

/// Decodes a message body, with the recursion limit; any failure is a `BadRequest`.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, RpcError> {
    decode_cbor(body).map_err(|e| RpcError::bad_request(format!("body does not decode: {e}")))
}

/// Decodes exactly one CBOR item from `bytes` as a `T`: nesting deeper than
/// `RECURSION_LIMIT` and bytes after the item are errors.
fn decode_cbor<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, String> {
    let mut decoder = cbor4ii::serde::Deserializer::new(Limited {
        rest: bytes,
        depth_left: RECURSION_LIMIT,
    });
    let value = T::deserialize(&mut decoder).map_err(|e| describe(&e))?;
    match decoder.into_inner().rest.len() {
        0 => Ok(value),
        trailing => Err(format!("{trailing} trailing bytes")),
    }
}

/// A decode error as a short sentence (cbor4ii's `Display` is its `Debug`).
fn describe<E: fmt::Debug>(error: &cbor4ii::serde::DecodeError<E>) -> String {
    use cbor4ii::core::error::DecodeError as Core;
    match error {
        cbor4ii::serde::DecodeError::Custom(message) => message.to_string(),
        cbor4ii::serde::DecodeError::Core(Core::DepthOverflow { .. }) => {
            format!("nested deeper than {RECURSION_LIMIT} levels")
        }
        cbor4ii::serde::DecodeError::Core(Core::Eof { name, .. }) => format!("truncated {name}"),
        cbor4ii::serde::DecodeError::Core(Core::Mismatch { name, found }) => {
            format!("expected {name}, found initial byte {found:#04x}")
        }
        cbor4ii::serde::DecodeError::Core(Core::RequireUtf8 { name }) => {
            format!("{name} is not UTF-8")
        }
        cbor4ii::serde::DecodeError::Core(other) => format!("{other:?}"),
    }
}

/// A slice for cbor4ii to read, with our nesting limit (its own slice reader allows 256).
struct Limited<'a> {
    rest: &'a [u8],
    depth_left: usize,
}

impl<'de> cbor4ii::core::dec::Read<'de> for Limited<'de> {
    type Error = std::convert::Infallible;

    fn fill<'short>(
        &'short mut self,
        want: usize,
    ) -> Result<cbor4ii::core::dec::Reference<'de, 'short>, Self::Error> {
        let len = want.min(self.rest.len());
        Ok(cbor4ii::core::dec::Reference::Long(&self.rest[..len]))
    }

    fn advance(&mut self, n: usize) {
        self.rest = &self.rest[n.min(self.rest.len())..];
    }

    fn step_in(&mut self) -> bool {
        match self.depth_left.checked_sub(1) {
            Some(left) => {
                self.depth_left = left;
                true
            }
            None => false,
        }
    }

    fn step_out(&mut self) {
        self.depth_left += 1;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Where the plain reader accepts a frame, the general decoder reads the same envelope from it.
    fn agrees(frame: &[u8]) {
        if let Some((id, kind, method, body)) = decode_plain(frame) {
            let general =
                Envelope::decode_general(frame).expect("the general decoder accepts it too");
            assert_eq!((general.id, general.kind), (id, kind));
            assert_eq!(general.method, method);
            assert_eq!(&general.body[..], &frame[body]);
        }
    }

    #[test]
    fn longer_heads_read_the_same_as_shortest() {
        // id 5 in 8 bytes, kind 1 in 1 byte, method "ab" with a 2-byte length, body 1 byte.
        let frame = [
            0x84, 0x1b, 0, 0, 0, 0, 0, 0, 0, 5, 0x18, 1, 0x79, 0, 2, b'a', b'b', 0x41, 7,
        ];
        agrees(&frame);
        let envelope = Envelope::decode(&frame).unwrap();
        assert_eq!((envelope.id, envelope.kind), (5, Kind::Reply));
        assert_eq!(
            (envelope.method.as_str(), &envelope.body[..]),
            ("ab", &[7u8][..])
        );
    }

    #[test]
    fn the_plain_reader_refuses_what_it_does_not_know() {
        let good = encode_frame(3, Kind::Call, "m", b"\xa0");
        assert!(decode_plain(&good).is_some());
        let mut trailing = good.to_vec();
        trailing.push(0);
        assert!(decode_plain(&trailing).is_none());
        assert!(Envelope::decode(&trailing).is_err());
        let mut kind = good.to_vec();
        kind[2] = 0x07; // unknown kind
        assert!(decode_plain(&kind).is_none());
        assert!(Envelope::decode(&kind).is_err());
        let bad_utf8 = encode_frame(3, Kind::Call, "m", b"");
        let mut bad_utf8 = bad_utf8.to_vec();
        bad_utf8[4] = 0xff;
        assert!(decode_plain(&bad_utf8).is_none());
        assert!(Envelope::decode(&bad_utf8).is_err());
    }

    proptest! {
        #[test]
        fn the_plain_reader_agrees_with_the_general_decoder(
            head in proptest::collection::vec(any::<u8>(), 0..24),
            tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut frame = vec![0x84];
            frame.extend(head);
            agrees(&frame);
            frame.extend(tail);
            agrees(&frame);
        }

        #[test]
        fn encoded_frames_take_the_plain_path(id in any::<u64>(), k in 0usize..7, method in ".{0,20}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let frame = encode_frame(id, Kind::ALL[k], &method, &body);
            agrees(&frame);
            prop_assert!(decode_plain(&frame).is_some());
        }
    }
}
