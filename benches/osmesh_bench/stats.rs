//! Timing loops and the figures they produce: calls/s and latency percentiles.

use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use std::future::Future;
use std::time::{Duration, Instant};

/// What one run of one measurement produced.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Figures {
    pub calls: usize,
    pub calls_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Figures {
    /// Figures from per-call latencies and the wall time the whole run took.
    pub fn from_latencies(mut latencies: Vec<Duration>, total: Duration) -> Figures {
        latencies.sort();
        let Some(max) = latencies.last().copied() else {
            return Figures::default();
        };
        Figures {
            calls: latencies.len(),
            calls_per_sec: latencies.len() as f64 / total.as_secs_f64(),
            p50_us: micros(percentile(&latencies, 50)),
            p99_us: micros(percentile(&latencies, 99)),
            max_us: micros(max),
        }
    }

    /// The median of each figure over repeated runs (each figure on its own).
    pub fn median(runs: &[Figures]) -> Figures {
        let pick = |f: fn(&Figures) -> f64| median_of(runs.iter().map(f).collect());
        Figures {
            calls: runs.first().map_or(0, |r| r.calls),
            calls_per_sec: pick(|r| r.calls_per_sec),
            p50_us: pick(|r| r.p50_us),
            p99_us: pick(|r| r.p99_us),
            max_us: runs.iter().map(|r| r.max_us).fold(0.0, f64::max),
        }
    }
}

/// The sorted slice's `p`th percentile (nearest rank, rounding down).
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

pub fn median_of(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `calls` calls one after the other.
pub async fn sequential<F, Fut>(calls: usize, mut call: F) -> Figures
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let one = Instant::now();
        call().await;
        latencies.push(one.elapsed());
    }
    Figures::from_latencies(latencies, started.elapsed())
}

/// `calls` calls with `depth` of them in flight at once on the same connection.
pub async fn pipelined<F, Fut>(calls: usize, depth: usize, mut call: F) -> Figures
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(calls);
    let mut in_flight = FuturesUnordered::new();
    let mut issued = 0;
    while latencies.len() < calls {
        while in_flight.len() < depth && issued < calls {
            let fut = call();
            in_flight.push(async move {
                let one = Instant::now();
                fut.await;
                one.elapsed()
            });
            issued += 1;
        }
        if let Some(latency) = in_flight.next().await {
            latencies.push(latency);
        }
    }
    Figures::from_latencies(latencies, started.elapsed())
}
