//! osmesh-telemetry: what the daemons and the CLI share to be watched — one logging setup
//! (`logging`) and one Prometheus recorder (`metrics`).

pub mod logging;
pub mod metrics;
