//! Reply memos: skip decoding a reply whose bytes are the same as the last one's.
//!
//! A cluster's replies to `ListOperatingSystems` and `ListBootImages` rarely change, and
//! decoding one costs far more than comparing it. A `ReplyMemo` keeps, for one method on one
//! connection, the last reply body (a copy, so no frame buffer stays pinned) and its decoded
//! value; `decode` returns that value again when the new body is byte for byte the same, and
//! decodes (and remembers) otherwise. A changed body is always decoded: the comparison is
//! exact, not a hash (SHA-256 cost as much as the decode on a CPU without SHA instructions, and
//! under valgrind). The cost is one body per memoized method per link, at most `max_frame`.
//! `Peer::call_memo` keeps one memo per method on each connection; a new one starts empty.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::envelope::decode_body;
use crate::RpcError;

/// The last reply of one method and its decoded value.
pub struct ReplyMemo<T> {
    last: Option<(Bytes, Arc<T>)>,
    hits: u64,
}

impl<T> Default for ReplyMemo<T> {
    fn default() -> Self {
        ReplyMemo {
            last: None,
            hits: 0,
        }
    }
}

impl<T> ReplyMemo<T> {
    /// How many decodes were skipped.
    pub fn hits(&self) -> u64 {
        self.hits
    }
}

impl<T: DeserializeOwned> ReplyMemo<T> {
    /// The decoded `body`: the remembered value if `body` is the last body again, else decoded
    /// now (and remembered if it decodes; a body that does not decode forgets nothing).
    pub fn decode(&mut self, body: &[u8]) -> Result<Arc<T>, RpcError> {
        if let Some((last, value)) = &self.last {
            if last[..] == *body {
                self.hits += 1;
                return Ok(value.clone());
            }
        }
        let value = Arc::new(decode_body::<T>(body)?);
        self.last = Some((Bytes::copy_from_slice(body), value.clone()));
        Ok(value)
    }
}

/// One connection's memos, by method; each method's reply type is fixed by its `Request`.
#[derive(Default)]
pub(crate) struct Memos {
    by_method: Mutex<HashMap<&'static str, Box<dyn Any + Send>>>,
}

impl Memos {
    /// Decodes `body` as `method`'s reply through that method's memo.
    pub(crate) fn decode<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        method: &'static str,
        body: &Bytes,
    ) -> Result<Arc<T>, RpcError> {
        let mut memos = self.by_method.lock().unwrap_or_else(|p| p.into_inner());
        let memo = memos
            .entry(method)
            .or_insert_with(|| Box::new(ReplyMemo::<T>::default()));
        match memo.downcast_mut::<ReplyMemo<T>>() {
            Some(memo) => memo.decode(body),
            // Two request types naming one method with different replies: no memo.
            None => decode_body(body).map(Arc::new),
        }
    }

    /// Decodes of `method`'s replies (of type `T`) skipped on this connection.
    pub(crate) fn hits<T: 'static>(&self, method: &'static str) -> u64 {
        let memos = self.by_method.lock().unwrap_or_else(|p| p.into_inner());
        memos
            .get(method)
            .and_then(|m| m.downcast_ref::<ReplyMemo<T>>())
            .map_or(0, |m| m.hits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_body;
    use crate::messages::OperatingSystemList;
    use osmesh_core::OsystemInfo;

    fn list(names: &[&str]) -> OperatingSystemList {
        OperatingSystemList {
            osystems: names
                .iter()
                .map(|n| OsystemInfo {
                    name: n.to_string(),
                    title: n.to_string(),
                    releases: vec![],
                    default_release: None,
                    default_commissioning_release: None,
                })
                .collect::<Vec<_>>()
                .into(),
        }
    }

    #[test]
    fn an_unchanged_reply_is_not_decoded_again() {
        let mut memo = ReplyMemo::<OperatingSystemList>::default();
        let body = encode_body(&list(&["ubuntu"]));
        let first = memo.decode(&body).unwrap();
        let second = memo.decode(&body.clone()).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(memo.hits(), 1);
    }

    #[test]
    fn a_changed_reply_is_always_decoded() {
        let mut memo = ReplyMemo::<OperatingSystemList>::default();
        // Same length, one byte apart; then back to the first.
        let a = encode_body(&list(&["ubuntu"]));
        let b = encode_body(&list(&["ubuntv"]));
        assert_eq!(a.len(), b.len());
        for (body, want) in [
            (&a, "ubuntu"),
            (&b, "ubuntv"),
            (&b, "ubuntv"),
            (&a, "ubuntu"),
        ] {
            let got = memo.decode(body).unwrap();
            assert_eq!(got.osystems[0].name, want);
        }
        assert_eq!(memo.hits(), 1, "only the repeated b was skipped");
    }

    #[test]
    fn a_body_that_does_not_decode_fails_and_keeps_the_last_value() {
        let mut memo = ReplyMemo::<OperatingSystemList>::default();
        let a = encode_body(&list(&["ubuntu"]));
        memo.decode(&a).unwrap();
        assert!(memo.decode(&[0xff, 0x00]).is_err());
        assert_eq!(memo.decode(&a).unwrap().osystems[0].name, "ubuntu");
        assert_eq!(memo.hits(), 1);
    }
}
