//! `Debug` for the types that hold secrets (power parameters, preseed data carrying a license
//! key): the secret parts are masked, so a `{:?}` in a log line or a panic message shows none.

use std::fmt;

use crate::region::template::PreseedContext;
use crate::store::{NewNode, NodeRecord};

use osmesh_api::MaskedParams;

impl fmt::Debug for NewNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewNode")
            .field("system_id", &self.system_id)
            .field("hostname", &self.hostname)
            .field("arch", &self.arch)
            .field("subarch", &self.subarch)
            .field("cluster_id", &self.cluster_id)
            .field("power_type", &self.power_type)
            .field("power_parameters", &MaskedParams(&self.power_parameters))
            .finish()
    }
}

impl fmt::Debug for NodeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRecord")
            .field("id", &self.id)
            .field("system_id", &self.system_id)
            .field("hostname", &self.hostname)
            .field("arch", &self.arch)
            .field("subarch", &self.subarch)
            .field("cluster_id", &self.cluster_id)
            .field("power_type", &self.power_type)
            .field("power_parameters", &MaskedParams(&self.power_parameters))
            .field("status", &self.status)
            .field("osystem", &self.osystem)
            .field("distro_series", &self.distro_series)
            .field("created_at_ms", &self.created_at_ms)
            .field("allocated_at_ms", &self.allocated_at_ms)
            .finish()
    }
}

impl fmt::Debug for PreseedContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreseedContext")
            .field("preseed_type", &self.preseed_type)
            .field("hostname", &self.hostname)
            .field("arch", &self.arch)
            .field("subarch", &self.subarch)
            .field("osystem", &self.osystem)
            .field("release", &self.release)
            .field("cluster", &self.cluster)
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_core::ClusterId;

    #[test]
    fn debug_never_shows_power_parameters_or_preseed_data() {
        let params =
            Some(serde_json::json!({"power_address": "10.0.0.9", "power_pass": "hunter2-x"}));
        let node = NewNode {
            system_id: None,
            hostname: "n1".into(),
            arch: "amd64".into(),
            subarch: "generic".into(),
            cluster_id: ClusterId::new("c1"),
            power_type: Some("ipmi".into()),
            power_parameters: params,
        };
        let shown = format!("{node:?}");
        assert!(
            shown.contains("power_pass") && !shown.contains("hunter2-x"),
            "{shown}"
        );
        let mut ctx = PreseedContext {
            preseed_type: "curtin".into(),
            hostname: "n1".into(),
            arch: "amd64".into(),
            subarch: "generic".into(),
            osystem: "windows".into(),
            release: "win2019".into(),
            cluster: "c1".into(),
            data: Default::default(),
        };
        ctx.data.insert("license_key".into(), "ABCDE-FGHIJ".into());
        let shown = format!("{ctx:?}");
        assert!(
            shown.contains("license_key") && !shown.contains("ABCDE-FGHIJ"),
            "{shown}"
        );
    }
}
