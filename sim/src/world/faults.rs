//! Faults: how each kind of scenario fault is applied to the world and how the trace names
//! it, in one place. Network faults go to the simulated network; crashes and restarts stop
//! and start the real actors; image and template changes are what a cluster holds next.

use osmesh_actors::cluster::Rescan;
use osmesh_actors::Shutdown;

use super::State;
use crate::invariants;
use crate::scenario::{parse_images, Fault, REGION};
use crate::trace::Source;

impl State {
    pub(super) fn apply_fault(&mut self, fault: &Fault) -> anyhow::Result<()> {
        self.log(Source::Fault, describe_fault(fault));
        let net = self.net.clone();
        match fault {
            Fault::Partition {
                cluster,
                direction,
                region,
                ..
            } => net.partition(cluster, region.as_deref(), *direction),
            Fault::Heal {
                cluster, region, ..
            } => net.heal(cluster.as_deref(), region.as_deref()),
            Fault::Delay {
                cluster,
                min_ms,
                max_ms,
                ..
            } => net.set_latency(cluster.as_deref(), *min_ms, *max_ms),
            Fault::DropRate { cluster, rate, .. } => net.set_drop_rate(cluster.as_deref(), *rate),
            Fault::DuplicateRate { cluster, rate, .. } => {
                net.set_duplicate_rate(cluster.as_deref(), *rate)
            }
            Fault::ReorderRate { cluster, rate, .. } => {
                net.set_reorder_rate(cluster.as_deref(), *rate)
            }
            Fault::Slow {
                cluster, extra_ms, ..
            } => net.set_slow(cluster, *extra_ms),
            Fault::HealAll { .. } => net.heal_all(),
            Fault::Crash { node, region, .. } => self.crash(node, region.as_deref()),
            Fault::Restart { node, region, .. } => self.restart(node, region.as_deref())?,
            Fault::ImagesChange {
                cluster, images, ..
            } => {
                let images = parse_images(images).map_err(anyhow::Error::msg)?;
                let now = self.now_ms();
                if let Some(c) = self.clusters.get_mut(cluster) {
                    self.oracle.hold(cluster, now, &c.config, &images);
                    let report = invariants::true_report(&c.config, &images);
                    c.knew.extend(invariants::known_releases(&report));
                    c.images.set(images);
                    self.knowledge += 1;
                    if let Some(actor) = &c.actor {
                        actor.do_send(Rescan);
                    }
                }
            }
            Fault::TemplatesChange {
                cluster, templates, ..
            } => {
                if let Some(c) = self.clusters.get_mut(cluster) {
                    c.templates = super::shipped_templates(templates);
                }
            }
            Fault::Impersonate(attack) => self.impersonate(attack)?,
        }
        Ok(())
    }

    fn crash(&mut self, node: &str, region: Option<&str>) {
        if node == REGION {
            self.crash_region(region);
            return;
        }
        let now = self.now_ms();
        if let Some(cluster) = self.clusters.get_mut(node) {
            if cluster.actor.is_some() {
                cluster.crashed_at_ms = Some(now);
            }
        }
        if let Some(actor) = self.clusters.get_mut(node).and_then(|c| c.actor.take()) {
            self.net.cut(Some(node));
            actor.do_send(Shutdown);
            self.crashed.push((now, node.to_owned(), actor.recipient()));
        }
    }

    fn restart(&mut self, node: &str, region: Option<&str>) -> anyhow::Result<()> {
        if node == REGION {
            return self.restart_region(region);
        }
        if self.clusters.get(node).is_some_and(|c| c.actor.is_none()) {
            self.start_cluster(node);
        }
        Ok(())
    }
}

fn describe_fault(fault: &Fault) -> String {
    let on = |c: &Option<String>| c.clone().unwrap_or_else(|| "all links".into());
    let from = |r: &Option<String>| r.as_ref().map(|r| format!(" from {r}")).unwrap_or_default();
    match fault {
        Fault::Partition {
            cluster,
            direction,
            region,
            ..
        } => format!("partition {cluster}{} ({direction:?})", from(region)),
        Fault::Heal {
            cluster, region, ..
        } => format!("heal {}{}", on(cluster), from(region)),
        Fault::Delay {
            cluster,
            min_ms,
            max_ms,
            ..
        } => format!("delay {} {min_ms}..{max_ms}ms", on(cluster)),
        Fault::DropRate { cluster, rate, .. } => format!("drop_rate {} {rate}", on(cluster)),
        Fault::DuplicateRate { cluster, rate, .. } => {
            format!("duplicate_rate {} {rate}", on(cluster))
        }
        Fault::ReorderRate { cluster, rate, .. } => format!("reorder_rate {} {rate}", on(cluster)),
        Fault::Slow {
            cluster, extra_ms, ..
        } => format!("slow {cluster} +{extra_ms}ms"),
        Fault::Crash { node, region, .. } => format!("crash {}", named(node, region)),
        Fault::Restart { node, region, .. } => format!("restart {}", named(node, region)),
        Fault::ImagesChange {
            cluster, images, ..
        } => format!("images_change {cluster} [{}]", images.join(", ")),
        Fault::TemplatesChange {
            cluster, templates, ..
        } => format!(
            "templates_change {cluster} [{}] (shipped at its next start)",
            templates
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Fault::HealAll { .. } => "heal_all".into(),
        Fault::Impersonate(attack) => attack.describe(),
    }
}

/// A crashed or restarted node as the trace names it: `c1`, `region`, `region r2`.
fn named(node: &str, region: &Option<String>) -> String {
    match region {
        Some(r) => format!("{node} {r}"),
        None => node.to_owned(),
    }
}
