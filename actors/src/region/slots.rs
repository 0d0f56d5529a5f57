//! Handshake slots: how many handshakes may be under way at once, in all and from one source
//! address (`limits::source_of`). Pure bookkeeping; the region actor takes a slot before it
//! starts a handshake and releases it when the handshake ends, however it ends.

use osmesh_net::limits::{MAX_HANDSHAKES_PER_SOURCE, MAX_PENDING_HANDSHAKES};
use std::collections::BTreeMap;

/// Why a handshake was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRefusal {
    /// All `MAX_PENDING_HANDSHAKES` slots are taken.
    AllTaken,
    /// `MAX_HANDSHAKES_PER_SOURCE` handshakes from this source are under way.
    SourceFull,
}

#[derive(Debug, Default)]
pub struct HandshakeSlots {
    /// Handshakes under way, in all.
    pending: usize,
    /// Handshakes under way by source; a source is removed when its count reaches zero, so
    /// the map holds only sources in handshake.
    by_source: BTreeMap<String, usize>,
}

impl HandshakeSlots {
    /// Takes a slot for `source`, if one is free globally and for that source.
    pub fn take(&mut self, source: &str) -> Result<(), SlotRefusal> {
        if self.pending >= MAX_PENDING_HANDSHAKES {
            return Err(SlotRefusal::AllTaken);
        }
        let from_source = self.by_source.entry(source.to_owned()).or_default();
        if *from_source >= MAX_HANDSHAKES_PER_SOURCE {
            return Err(SlotRefusal::SourceFull);
        }
        *from_source += 1;
        self.pending += 1;
        Ok(())
    }

    /// Frees the slot `source` held.
    pub fn release(&mut self, source: &str) {
        self.pending -= 1;
        if let Some(count) = self.by_source.get_mut(source) {
            *count -= 1;
            if *count == 0 {
                self.by_source.remove(source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_at_most_its_share_and_a_released_slot_is_free_again() {
        let mut slots = HandshakeSlots::default();
        for _ in 0..MAX_HANDSHAKES_PER_SOURCE {
            assert_eq!(slots.take("10.0.0.1"), Ok(()));
        }
        assert_eq!(slots.take("10.0.0.1"), Err(SlotRefusal::SourceFull));
        assert_eq!(
            slots.take("10.0.0.2"),
            Ok(()),
            "another source is not held back"
        );
        slots.release("10.0.0.1");
        assert_eq!(slots.take("10.0.0.1"), Ok(()));
    }

    #[test]
    fn all_slots_taken_refuses_every_source() {
        let mut slots = HandshakeSlots::default();
        for i in 0..MAX_PENDING_HANDSHAKES {
            assert_eq!(slots.take(&format!("source-{i}")), Ok(()));
        }
        assert_eq!(slots.take("fresh"), Err(SlotRefusal::AllTaken));
        slots.release("source-0");
        assert!(
            !slots.by_source.contains_key("source-0"),
            "an idle source is forgotten"
        );
        assert_eq!(slots.take("fresh"), Ok(()));
    }
}
