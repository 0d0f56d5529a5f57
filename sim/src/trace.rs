//! The trace: every frame, fault, operation, answer and check with its virtual time, in the
//! order it happened, and a per-link frame count for the short form snapshots keep.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

/// What kind of event a line is; frames are the bulk, the rest is the story.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Net,
    Fault,
    Op,
    Answer,
    Check,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Net => "net",
            Source::Fault => "fault",
            Source::Op => "op",
            Source::Answer => "answer",
            Source::Check => "check",
        }
    }
}

/// One line of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Virtual milliseconds since the start of the run.
    pub at_ms: u64,
    pub source: Source,
    pub text: String,
}

/// The whole trace. Events arrive in virtual-time order (one thread, one clock).
#[derive(Debug, Default)]
pub struct Trace {
    pub events: Vec<Event>,
    /// Link label → frame label → `(delivered, dropped, duplicated)`.
    pub frame_counts: BTreeMap<String, BTreeMap<String, [u64; 3]>>,
    /// When false, frame lines are counted but not kept (benchmarks, swarm).
    pub keep_frames: bool,
}

/// The trace shared by the network and the world.
#[derive(Clone, Debug, Default)]
pub struct SharedTrace(Arc<Mutex<Trace>>);

impl SharedTrace {
    pub fn new(keep_frames: bool) -> Self {
        SharedTrace(Arc::new(Mutex::new(Trace {
            keep_frames,
            ..Trace::default()
        })))
    }

    pub fn lock(&self) -> MutexGuard<'_, Trace> {
        // One thread only: a poisoned lock means a panic already ends the run.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, at_ms: u64, source: Source, text: impl Into<String>) {
        self.lock().events.push(Event {
            at_ms,
            source,
            text: text.into(),
        });
    }
}

/// The fate of a frame, for counting.
#[derive(Clone, Copy, Debug)]
pub enum Fate {
    Delivered = 0,
    Dropped = 1,
    Duplicated = 2,
}

impl Trace {
    /// Counts one frame; allocates only for the first frame of a kind on a link.
    pub fn count_frame(&mut self, link: &str, frame: &str, fate: Fate) {
        self.add_frames(link, frame, fate, 1);
    }

    /// Counts `n` frames of one kind and fate on a link.
    pub fn add_frames(&mut self, link: &str, frame: &str, fate: Fate, n: u64) {
        if !self.frame_counts.contains_key(link) {
            self.frame_counts.insert(link.to_owned(), BTreeMap::new());
        }
        let Some(frames) = self.frame_counts.get_mut(link) else {
            return;
        };
        if !frames.contains_key(frame) {
            frames.insert(frame.to_owned(), [0; 3]);
        }
        if let Some(counts) = frames.get_mut(frame) {
            counts[fate as usize] += n;
        }
    }

    /// Every event, one aligned line each.
    pub fn render_full(&self) -> String {
        render(self.events.iter())
    }

    /// Faults, operations, answers and check lines, without individual frames.
    pub fn render_story(&self) -> String {
        render(self.events.iter().filter(|e| e.source != Source::Net))
    }

    /// Frames per direction and kind, summed over links: delivered / dropped / duplicated.
    pub fn render_frame_counts(&self) -> String {
        let mut sums: BTreeMap<(String, &str), [u64; 3]> = BTreeMap::new();
        let each = self
            .frame_counts
            .iter()
            .flat_map(|(link, frames)| frames.iter().map(move |(frame, c)| (link, frame, c)));
        for (link, frame, counts) in each {
            // "L3 c1>region" → "c1>region": summed over the links of one direction.
            let direction = link.split_once(' ').map_or(link.as_str(), |(_, d)| d);
            let sum = sums
                .entry((direction.to_owned(), frame.as_str()))
                .or_default();
            for (s, c) in sum.iter_mut().zip(counts) {
                *s += c;
            }
        }
        let mut out = format!(
            "{:<14} {:<28} {:>9} {:>7} {:>10}\n",
            "direction", "frame", "delivered", "dropped", "duplicated"
        );
        for ((direction, frame), [delivered, dropped, dup]) in sums {
            let _ = writeln!(
                out,
                "{direction:<14} {frame:<28} {delivered:>9} {dropped:>7} {dup:>10}"
            );
        }
        out
    }
}

fn render<'a>(events: impl Iterator<Item = &'a Event>) -> String {
    let mut out = String::new();
    for event in events {
        let _ = writeln!(
            out,
            "{:>9}ms  {:<6}  {}",
            event.at_ms,
            event.source.label(),
            event.text
        );
    }
    out
}
