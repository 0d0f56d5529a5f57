//! The actors' metrics, through the `metrics` facade (no-ops without a recorder, as in the
//! simulator). Names and help texts are listed in `osmesh_telemetry::metrics::name`; labels
//! are fixed words, never a cluster id.

use osmesh_core::mesh::{ClusterAnswer, NoAnswerReason};
use osmesh_core::ClusterId;
use std::time::Duration;

/// Records one live fan-out: its duration and, per reason, the clusters that did not answer.
pub fn fanout_done(elapsed: Duration, answers: &[(ClusterId, ClusterAnswer)]) {
    metrics::histogram!("osmesh_fanout_duration_seconds").record(elapsed.as_secs_f64());
    for (_, answer) in answers {
        if let ClusterAnswer::NoAnswer(reason) = answer {
            let reason = match reason {
                NoAnswerReason::NotConnected => "not_connected",
                NoAnswerReason::Timeout => "timeout",
                NoAnswerReason::Error(_) => "error",
            };
            metrics::counter!("osmesh_fanout_no_answer_total", "reason" => reason).increment(1);
        }
    }
}

/// Records one merge of the cached view.
pub fn view_rebuilt() {
    metrics::counter!("osmesh_cached_view_rebuilds_total").increment(1);
}
