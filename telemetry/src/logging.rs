//! The one logging setup of `regiond`, `clusterd` and the `osmesh` CLI: `RUST_LOG` filtering,
//! text or JSON lines on stderr, ANSI colours only when stderr is a terminal, and a per-source
//! rate limit so that a flood of one warning (a connection storm against the RPC port, say)
//! costs a few lines and a periodic summary instead of a hundred megabytes.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::callsite::Identifier;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The rate limit's window: at most `BURST` events of one source pass per window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Events of one source (one log statement) that pass per window before the rest are
/// counted instead of written.
pub const BURST: u32 = 10;
/// Sources tracked at once; past it, the least recently seen is forgotten (bounded memory).
const MAX_SOURCES: usize = 1024;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The logging options every binary takes (`#[command(flatten)]`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct LogArgs {
    /// Log line format: text, or json (one object per line) for log shippers.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "OSMESH_LOG_FORMAT", global = true)]
    pub log_format: LogFormat,
}

/// Installs the process's subscriber: `RUST_LOG` (or `default_filter`) decides what is logged,
/// to stderr, in `format`, rate-limited per source. Call once, first thing in `main`.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let limit = RateLimit::new(WINDOW, BURST);
    limit.start_summaries();
    let ansi = std::io::stderr().is_terminal();
    let registry = tracing_subscriber::registry().with(filter).with(limit);
    let result = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_ansi(false),
            )
            .try_init(),
    };
    // A second init (tests, the demo starting daemons in-process) keeps the first.
    drop(result);
}

/// Per-source rate limit: the first `burst` events of a call site per `window` pass; the rest
/// are dropped and counted, and once the window is over one summary line says how many.
/// DEBUG and TRACE are never limited (whoever turns them on wants them all).
#[derive(Clone)]
pub struct RateLimit {
    window: Duration,
    burst: u32,
    sources: Arc<Mutex<HashMap<Identifier, Source>>>,
}

struct Source {
    /// `file:line` of the log statement, for the summary.
    location: String,
    level: Level,
    window_start: Instant,
    passed: u32,
    suppressed: u64,
}

/// A finished window that dropped events: what the summary line says.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub location: String,
    pub level: Level,
    pub suppressed: u64,
}

impl RateLimit {
    pub fn new(window: Duration, burst: u32) -> Self {
        RateLimit {
            window,
            burst,
            sources: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Decides one event of `source` at `now`; returns whether it is written, and the
    /// summary of the source's previous window if that one dropped events.
    pub fn admit(
        &self,
        source: Identifier,
        location: impl FnOnce() -> String,
        level: Level,
        now: Instant,
    ) -> (bool, Option<Summary>) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&source) {
            let oldest = sources
                .iter()
                .min_by_key(|(_, s)| s.window_start)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                sources.remove(&oldest);
            }
        }
        let entry = sources.entry(source).or_insert_with(|| Source {
            location: location(),
            level,
            window_start: now,
            passed: 0,
            suppressed: 0,
        });
        let mut summary = None;
        if now.duration_since(entry.window_start) >= self.window {
            summary = entry.take_summary();
            entry.window_start = now;
            entry.passed = 0;
        }
        if entry.passed < self.burst {
            entry.passed += 1;
            (true, summary)
        } else {
            entry.suppressed += 1;
            (false, summary)
        }
    }

    /// Summaries of every source whose window ended by `now` with events dropped.
    pub fn due_summaries(&self, now: Instant) -> Vec<Summary> {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let mut due: Vec<Summary> = sources
            .values_mut()
            .filter(|s| now.duration_since(s.window_start) >= self.window)
            .filter_map(Source::take_summary)
            .collect();
        due.sort_by(|a, b| a.location.cmp(&b.location));
        due
    }

    /// A thread that writes the summaries of sources that went quiet (a flood that stopped
    /// would otherwise never be summarised).
    fn start_summaries(&self) {
        let limit = self.clone();
        let _ = std::thread::Builder::new()
            .name("log-summaries".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                for summary in limit.due_summaries(Instant::now()) {
                    emit(&summary, limit.window);
                }
            });
    }
}

impl Source {
    fn take_summary(&mut self) -> Option<Summary> {
        let suppressed = std::mem::take(&mut self.suppressed);
        (suppressed > 0).then(|| Summary {
            location: self.location.clone(),
            level: self.level,
            suppressed,
        })
    }
}

/// Writes one summary line, at the level of the events it stands for.
fn emit(summary: &Summary, window: Duration) {
    metrics::counter!(crate::metrics::name::LOG_SUPPRESSED).increment(summary.suppressed);
    let (n, secs, at) = (summary.suppressed, window.as_secs(), &summary.location);
    match summary.level {
        Level::ERROR => {
            tracing::error!(target: "osmesh::log", suppressed = n, source = %at, "{n} more like this in the last {secs} s (from {at})")
        }
        Level::WARN => {
            tracing::warn!(target: "osmesh::log", suppressed = n, source = %at, "{n} more like this in the last {secs} s (from {at})")
        }
        _ => {
            tracing::info!(target: "osmesh::log", suppressed = n, source = %at, "{n} more like this in the last {secs} s (from {at})")
        }
    }
}

impl<S: Subscriber> Layer<S> for RateLimit {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() > Level::INFO || meta.target() == "osmesh::log" {
            return true;
        }
        let location = || {
            format!(
                "{}:{}",
                meta.file().unwrap_or(meta.target()),
                meta.line().unwrap_or(0)
            )
        };
        let (pass, summary) = self.admit(meta.callsite(), location, *meta.level(), Instant::now());
        // The lock is released: writing the summary re-enters the subscriber.
        if let Some(summary) = summary {
            emit(&summary, self.window);
        }
        pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not zero-sized: two zero-sized statics may share one address, and so one identity.
    struct Site(#[allow(dead_code)] u8);
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unimplemented!("only the identity is used")
        }
    }
    static SITE_A: Site = Site(1);
    static SITE_B: Site = Site(2);

    fn id(site: &'static Site) -> Identifier {
        Identifier(site)
    }

    #[test]
    fn a_flood_from_one_source_passes_a_burst_then_is_counted_and_summarised() {
        let limit = RateLimit::new(Duration::from_secs(10), 3);
        let t0 = Instant::now();
        let passed = (0..1000)
            .filter(|_| {
                limit
                    .admit(id(&SITE_A), || "a.rs:1".into(), Level::WARN, t0)
                    .0
            })
            .count();
        assert_eq!(passed, 3);
        // Another source is not affected by the first one's flood.
        assert!(
            limit
                .admit(id(&SITE_B), || "b.rs:2".into(), Level::WARN, t0)
                .0
        );
        // Within the window nothing is due; after it, one summary with the dropped count.
        assert!(limit.due_summaries(t0 + Duration::from_secs(5)).is_empty());
        let due = limit.due_summaries(t0 + Duration::from_secs(10));
        assert_eq!(
            due,
            vec![Summary {
                location: "a.rs:1".into(),
                level: Level::WARN,
                suppressed: 997
            }]
        );
        // Summarised once only; the next window passes a burst again.
        assert!(limit.due_summaries(t0 + Duration::from_secs(11)).is_empty());
        let (pass, summary) = limit.admit(
            id(&SITE_A),
            || "a.rs:1".into(),
            Level::WARN,
            t0 + Duration::from_secs(12),
        );
        assert!(pass);
        assert_eq!(summary, None);
    }

    #[test]
    fn the_next_event_after_a_window_carries_the_summary_when_no_tick_came_first() {
        let limit = RateLimit::new(Duration::from_secs(10), 1);
        let t0 = Instant::now();
        assert!(
            limit
                .admit(id(&SITE_A), || "a.rs:1".into(), Level::ERROR, t0)
                .0
        );
        assert!(
            !limit
                .admit(id(&SITE_A), || "a.rs:1".into(), Level::ERROR, t0)
                .0
        );
        let (pass, summary) = limit.admit(
            id(&SITE_A),
            || "a.rs:1".into(),
            Level::ERROR,
            t0 + Duration::from_secs(10),
        );
        assert!(pass);
        assert_eq!(summary.map(|s| s.suppressed), Some(1));
    }
}
