//! The cached answers' gzip encodings, built from pieces: a kept JSON rendering is compressed
//! once, on its first gzip read, and spliced between the parts of an answer that change on
//! every read (the cluster parts with their ages), which alone are compressed per read.
//!
//! Why splicing is valid: a gzip member (RFC 1952) is a header, one deflate stream (RFC
//! 1951), then the CRC-32 and the length (mod 2^32) of the uncompressed data. A deflate
//! stream is a sequence of blocks, the last one marked final. A compressor's output ended
//! with a sync flush ends on a byte boundary with no final block, so pieces compressed
//! independently, each but the last ended that way, concatenate into one valid stream: each
//! compressor starts with an empty window, so no back-reference crosses into another piece.
//! The pieces' CRC-32s combine into the whole's.
//!
//! Which coding a request gets ([`negotiate`]): gzip whenever the client accepts it and names
//! no coding it prefers strictly; anything else (br, zstd, deflate) is left to actix-web's
//! `Compress`, which never re-encodes a response that already has a `Content-Encoding`.

use actix_web::http::header::{self, AcceptEncoding, ContentEncoding, Encoding, Header};
use actix_web::http::header::{Preference, Quality};
use actix_web::{web, HttpRequest};
use flate2::{Compress, CompressError, Compression, Crc, FlushCompress, Status};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The coding the handler itself serves a cached answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// The JSON as it is (`Compress` may still encode it in a coding the client prefers).
    Identity,
    /// Gzip, from a kept compressed rendering.
    Gzip,
}

/// The coding for `req`'s `Accept-Encoding` (RFC 9110 §12.5.3): gzip when it is acceptable,
/// named (`gzip`, or its alias `x-gzip`) or through `*`, with a non-zero qvalue (`gzip;q=0`
/// refuses it, and so does `*;q=0` when gzip is not named), unless the client names
/// `identity`, `br`, `zstd` or `deflate` with a strictly higher qvalue. On equal qvalues gzip
/// wins: its kept encoding costs no compression. No header, or an unparsable one: identity.
pub fn negotiate(req: &HttpRequest) -> Coding {
    let Ok(accept) = AcceptEncoding::parse(req) else {
        return Coding::Identity;
    };
    let gzip = quality_of_gzip(&accept);
    let preferred_other = accept
        .0
        .iter()
        .filter(|item| match &item.item {
            Preference::Specific(Encoding::Known(coding)) => coding != &ContentEncoding::Gzip,
            _ => false,
        })
        .any(|item| item.quality > gzip);
    if gzip > Quality::ZERO && !preferred_other {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// Gzip's qvalue: its own item's, else `*`'s, else zero (not listed: not acceptable).
fn quality_of_gzip(accept: &AcceptEncoding) -> Quality {
    let named = accept.0.iter().find(|item| match &item.item {
        Preference::Specific(Encoding::Known(ContentEncoding::Gzip)) => true,
        Preference::Specific(Encoding::Unknown(name)) => name.eq_ignore_ascii_case("x-gzip"),
        _ => false,
    });
    let any = || {
        accept
            .0
            .iter()
            .find(|item| matches!(item.item, Preference::Any))
    };
    named
        .or_else(any)
        .map_or(Quality::ZERO, |item| item.quality)
}

/// `Vary` for every cached answer, 304s included: which coding it comes in depends on
/// `Accept-Encoding`.
pub fn vary() -> (header::HeaderName, &'static str) {
    (header::VARY, "Accept-Encoding")
}

/// A kept JSON rendering and, from its first gzip read on, its compressed piece.
pub struct KeptJson {
    json: web::Bytes,
    /// `None` until a gzip read asked; then the piece, made once (see [`KeptJson::piece`]).
    piece: Mutex<Option<Arc<Piece>>>,
}

impl KeptJson {
    pub fn new(json: web::Bytes) -> KeptJson {
        KeptJson {
            json,
            piece: Mutex::new(None),
        }
    }

    pub fn json(&self) -> &web::Bytes {
        &self.json
    }

    /// The rendering compressed, made by the first caller (counted in `compressions`). The
    /// lock is held while compressing, so concurrent first callers wait for that one
    /// compression and get it: at most one per kept rendering. It blocks: call it on a
    /// blocking thread (`web::block`), never on an async worker.
    pub fn piece(&self, compressions: &AtomicU64) -> Result<Arc<Piece>, CompressError> {
        // A poisoned lock only means a compression panicked; the slot is still `None` then.
        let mut piece = self.piece.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(piece) = &*piece {
            return Ok(piece.clone());
        }
        let made = Arc::new(Piece::compress(&self.json, FlushCompress::Sync)?);
        compressions.fetch_add(1, Ordering::Relaxed);
        *piece = Some(made.clone());
        Ok(made)
    }
}

/// Every piece, kept or per read, at the fast level (as actix-web's `Compress`). Measured on
/// a 1,000-cluster cached answer (1.51 MB; the view 1.34 MB, the cluster parts 174 KB), with
/// flate2's default backend (miniz_oxide), the view compresses to 226 KB at level 1, 234 KB at
/// 6 and 233 KB at 9: the higher levels buy nothing on these lists of cluster ids.
const LEVEL: Compression = Compression::fast();

/// Part of a deflate stream: compressed data ending on a byte boundary, and the CRC-32 and
/// length of what it holds.
pub struct Piece {
    deflated: Vec<u8>,
    crc: Crc,
}

impl Piece {
    /// `data` compressed from an empty window; `Sync` ends it for more pieces to follow,
    /// `Finish` ends the stream.
    fn compress(data: &[u8], end: FlushCompress) -> Result<Piece, CompressError> {
        let mut deflater = Compress::new(LEVEL, false);
        let mut deflated = Vec::with_capacity(data.len() / 4 + 64);
        loop {
            let read = usize::try_from(deflater.total_in()).unwrap_or(data.len());
            let status = deflater.compress_vec(&data[read..], &mut deflated, end)?;
            let all_read = usize::try_from(deflater.total_in()) == Ok(data.len());
            // Done when everything is in and the flush had room to complete.
            let ended = match end {
                FlushCompress::Finish => status == Status::StreamEnd,
                _ => deflated.len() < deflated.capacity(),
            };
            if all_read && ended {
                break;
            }
            deflated.reserve(deflated.capacity().max(64));
        }
        let mut crc = Crc::new();
        crc.update(data);
        Ok(Piece { deflated, crc })
    }
}

/// The gzip member's header: deflate, no flags, no time, unknown OS (RFC 1952 §2.3).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// One gzip member of `head`, the `kept` piece and `tail`: only `head` and `tail` are
/// compressed here.
pub fn around(head: &[u8], kept: &Piece, tail: &[u8]) -> Result<Vec<u8>, CompressError> {
    let head = Piece::compress(head, FlushCompress::Sync)?;
    let tail = Piece::compress(tail, FlushCompress::Finish)?;
    let mut crc = head.crc;
    crc.combine(&kept.crc);
    crc.combine(&tail.crc);
    let pieces = [&head.deflated, &kept.deflated, &tail.deflated];
    let mut member =
        Vec::with_capacity(GZIP_HEADER.len() + pieces.iter().map(|p| p.len()).sum::<usize>() + 8);
    member.extend_from_slice(&GZIP_HEADER);
    for piece in pieces {
        member.extend_from_slice(piece);
    }
    member.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the length mod 2^32, which is what `amount` counts.
    member.extend_from_slice(&crc.amount().to_le_bytes());
    Ok(member)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use std::io::Read;

    fn gunzip(member: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // `GzDecoder` reads one member and checks its CRC-32 and length.
        flate2::read::GzDecoder::new(member)
            .read_to_end(&mut out)
            .expect("one valid gzip member");
        out
    }

    #[test]
    fn spliced_pieces_gunzip_to_the_concatenation() {
        let view: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{{\"n\":{},\"os\":\"ubuntu\"}},", i % 977).into_bytes())
            .collect();
        let compressions = AtomicU64::new(0);
        let kept = KeptJson::new(web::Bytes::from(view.clone()));
        let piece = kept.piece(&compressions).unwrap();
        for (head, tail) in [
            (&b"{\"view\":["[..], &b"]}"[..]),
            (b"", b""),
            (b"x", &view[..70_000]),
        ] {
            let member = around(head, &piece, tail).unwrap();
            assert_eq!(gunzip(&member), [head, &view, tail].concat());
        }
        assert!(piece.deflated.len() < view.len() / 5, "compressed");
        assert!(Arc::ptr_eq(&piece, &kept.piece(&compressions).unwrap()));
        assert_eq!(compressions.load(Ordering::Relaxed), 1, "made once");
    }

    #[test]
    fn concurrent_first_gzip_reads_compress_once() {
        let json: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("\"c{i}\",").into_bytes())
            .collect();
        let kept = KeptJson::new(web::Bytes::from(json));
        let compressions = AtomicU64::new(0);
        let pieces: Vec<Arc<Piece>> = std::thread::scope(|scope| {
            let readers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| kept.piece(&compressions).unwrap()))
                .collect();
            readers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(compressions.load(Ordering::Relaxed), 1);
        assert!(pieces.iter().all(|p| Arc::ptr_eq(p, &pieces[0])));
    }

    #[test]
    fn negotiation_follows_qvalues_and_the_wildcard() {
        let check = |accept: Option<&str>, expected: Coding| {
            let mut req = TestRequest::default();
            if let Some(accept) = accept {
                req = req.insert_header((header::ACCEPT_ENCODING, accept));
            }
            assert_eq!(negotiate(&req.to_http_request()), expected, "{accept:?}");
        };
        check(None, Coding::Identity);
        check(Some(""), Coding::Identity);
        check(Some("gzip"), Coding::Gzip);
        check(Some("GZIP"), Coding::Gzip);
        check(Some("x-gzip"), Coding::Gzip);
        check(Some("gzip, deflate, br, zstd"), Coding::Gzip);
        check(Some("gzip;q=0"), Coding::Identity);
        check(Some("gzip;q=0, *"), Coding::Identity);
        check(Some("*"), Coding::Gzip);
        check(Some("*;q=0"), Coding::Identity);
        check(Some("br"), Coding::Identity);
        check(Some("br;q=1, gzip;q=0.5"), Coding::Identity);
        check(Some("identity;q=1, gzip;q=0.5"), Coding::Identity);
        check(Some("*;q=1, gzip;q=0.5"), Coding::Gzip);
        check(Some("compress;q=1, gzip;q=0.5"), Coding::Gzip);
        check(Some("gzip;q=0.8, br;q=0.8"), Coding::Gzip);
        check(Some("gzip;q=nonsense"), Coding::Identity);
    }
}
