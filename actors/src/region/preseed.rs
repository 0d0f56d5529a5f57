//! Versioned preseeds as the operator sees them: the current version of each, the full
//! history, edits based on a version (a stale base is a conflict naming the current one),
//! conflict resolution, each cluster's templates and an admin's approval of them, and
//! rendering the most specific template that may serve a node (the operator's, or its own
//! cluster's approved ones) with the data its cluster returns.

use osmesh_core::ClusterId;
use osmesh_net::messages::{ErrorKind, GetPreseedData, NodeContext};
use std::collections::BTreeSet;
use std::time::Duration;

use super::license::list_or_none;
use super::render::RenderFailure;
use super::service::FailureKind;
pub use osmesh_api::preseeds::{
    ClusterTemplateView, ConflictView, PreseedEdit, PreseedVersionView, PreseedView,
    RenderedPreseed, ResolveRequest,
};

use super::service::{RegionService, ServiceError};
use super::template::{most_specific, PreseedContext};
use crate::store::{
    templates_for_cluster, ClusterTemplateRecord, PreseedConflict, PreseedOrigin, PreseedRecord,
    PreseedVersion, SettingKey, StoreError, TemplateState, UsableTemplate,
};

/// How long the node's cluster has to answer `GetPreseedData`.
pub const PRESEED_DATA_TIMEOUT: Duration = Duration::from_secs(5);

/// One version of a template as the API shows it.
pub fn version_view(v: PreseedVersion) -> PreseedVersionView {
    let (origin, origin_cluster) = match v.origin {
        PreseedOrigin::Cluster(cluster) => ("cluster", Some(cluster)),
        PreseedOrigin::Operator => ("operator", None),
    };
    PreseedVersionView {
        name: v.name,
        version: v.version,
        osystem: v.osystem,
        origin: origin.to_owned(),
        origin_cluster,
        parent_version: v.parent_version,
        content: v.content,
        content_hash: v.content_hash,
        created_at_ms: v.created_at_ms,
    }
}

/// A conflict as the API shows it.
pub fn conflict_view(c: PreseedConflict) -> ConflictView {
    ConflictView {
        operator_version: c.operator_version,
        cluster_version: c.cluster_version,
    }
}

/// A preseed as the API shows it.
pub fn preseed_view(r: PreseedRecord) -> PreseedView {
    PreseedView {
        name: r.current.name.clone(),
        current: version_view(r.current),
        in_conflict: r.conflict.is_some(),
        conflict: r.conflict.map(conflict_view),
        updated_at_ms: r.updated_at_ms,
    }
}

/// A cluster's template as the API shows it.
pub fn cluster_template_view(r: ClusterTemplateRecord) -> ClusterTemplateView {
    ClusterTemplateView {
        cluster: r.cluster,
        name: r.name,
        state: r.state.as_str().to_owned(),
        version: r.version,
        error: r.error,
        first_seen_ms: r.first_seen_ms,
        updated_at_ms: r.updated_at_ms,
    }
}

impl RegionService {
    /// Every preseed's current version and conflict flag, sorted by name.
    pub async fn preseeds(&self) -> Result<Vec<PreseedView>, ServiceError> {
        let list = self
            .store()
            .list_preseeds()
            .map_err(ServiceError::from_store)?;
        Ok(list.into_iter().map(preseed_view).collect())
    }

    pub async fn preseed(&self, name: &str) -> Result<PreseedView, ServiceError> {
        self.store()
            .get_preseed(name)
            .map_err(ServiceError::from_store)?
            .map(preseed_view)
            .ok_or_else(|| preseed_not_found(name))
    }

    /// At most `limit` versions of `name` after `after_version`, oldest first.
    pub async fn preseed_history_page(
        &self,
        name: &str,
        after_version: Option<i32>,
        limit: usize,
    ) -> Result<Vec<PreseedVersionView>, ServiceError> {
        let versions = self
            .store()
            .history_page(name, after_version, limit)
            .map_err(|e| preseed_error(name, e))?;
        Ok(versions.into_iter().map(version_view).collect())
    }

    /// Every version of `name`, oldest first.
    pub async fn preseed_history(
        &self,
        name: &str,
    ) -> Result<Vec<PreseedVersionView>, ServiceError> {
        let versions = self
            .store()
            .history(name)
            .map_err(|e| preseed_error(name, e))?;
        Ok(versions.into_iter().map(version_view).collect())
    }

    /// Stores an operator's edit as a new current version. The content must fit
    /// `fields::PRESEED_CONTENT`, parse as a template, and trial-render with sample data
    /// within the render limits (else 422 naming the limit); the edit must be based on the
    /// current version (else `stale_preseed`, a conflict naming the current version). An edit
    /// during a conflict resolves it.
    pub async fn edit_preseed(
        &self,
        name: &str,
        edit: &PreseedEdit,
    ) -> Result<PreseedView, ServiceError> {
        osmesh_core::fields::PRESEED_CONTENT
            .check(&edit.content)
            .map_err(|e| {
                ServiceError::new(FailureKind::OverLimit, "bad_preseed_content", e.to_string())
            })?;
        self.templates()
            .check(name, &edit.content)
            .await
            .map_err(|e| render_failure(e, "bad_template"))?;
        let now = self.now_ms().await?;
        let record = self
            .store()
            .operator_edit(name, &edit.content, edit.based_on_version, now)
            .map_err(|e| preseed_error(name, e))?;
        Ok(preseed_view(record))
    }

    /// Ends a conflict by making `version` (either side) current.
    pub async fn resolve_preseed(
        &self,
        name: &str,
        version: i32,
    ) -> Result<PreseedView, ServiceError> {
        let now = self.now_ms().await?;
        let record = self
            .store()
            .resolve_conflict(name, version, now)
            .map_err(|e| preseed_error(name, e))?;
        Ok(preseed_view(record))
    }

    /// Renders the most specific template of `preseed_type` for node `id`: with the node's
    /// OS if it is allocated, else the default OS settings; filled with the node's data and
    /// what its cluster returns from `GetPreseedData` (given the stored license key).
    pub async fn render_preseed(
        &self,
        id: i64,
        preseed_type: &str,
    ) -> Result<RenderedPreseed, ServiceError> {
        if preseed_type.is_empty()
            || !preseed_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ServiceError::bad_request(
                "bad_preseed_type",
                format!("preseed type {preseed_type:?} must be letters, digits, '_' or '-'"),
            ));
        }
        let node = self.node_record(id).await?;
        let (osystem, release) = self.node_os(&node)?;
        let mut ctx = PreseedContext {
            preseed_type: preseed_type.to_owned(),
            hostname: node.hostname.clone(),
            arch: node.arch.clone(),
            subarch: node.subarch.clone(),
            osystem,
            release,
            cluster: node.cluster_id.to_string(),
            data: Default::default(),
        };
        let (chosen, template) = self.choose_template(&ctx, &node.cluster_id)?;
        ctx.data = self.preseed_data(&node.cluster_id, &ctx).await?;
        let content = self
            .templates()
            .render(&chosen, &template.content, &ctx)
            .await
            .map_err(|e| match e {
                RenderFailure::Template(e) if e.limit.is_none() => ServiceError::new(
                    FailureKind::Internal,
                    "preseed_render_failed",
                    format!("version {} of {e}", template.version),
                ),
                other => render_failure(other, "preseed_render_failed"),
            })?;
        Ok(RenderedPreseed {
            node_id: node.id,
            hostname: node.hostname,
            preseed_type: preseed_type.to_owned(),
            osystem: ctx.osystem,
            distro_series: ctx.release,
            cluster: node.cluster_id,
            template: chosen,
            template_version: template.version,
            content,
        })
    }

    /// The most specific template that may serve a node of `cluster` (`templates_for_cluster`:
    /// the operator's, or the cluster's own approved ones), and its version.
    fn choose_template(
        &self,
        ctx: &PreseedContext,
        cluster: &ClusterId,
    ) -> Result<(String, PreseedVersion), ServiceError> {
        let store = self.store();
        let heads = store.list_preseeds().map_err(ServiceError::from_store)?;
        let lanes = store
            .list_cluster_templates()
            .map_err(ServiceError::from_store)?;
        let usable = templates_for_cluster(&heads, &lanes, cluster);
        let names: BTreeSet<String> = usable.keys().cloned().collect();
        let Some(chosen) = most_specific(ctx, &names) else {
            return Err(ServiceError::not_found(
                "no_preseed_template",
                format!(
                    "no template serves node {} ({}); looked for: {}",
                    ctx.hostname,
                    ctx.preseed_type,
                    list_or_none(&super::template::template_candidates(ctx))
                ),
            ));
        };
        let version = match usable.get(&chosen) {
            Some(UsableTemplate::Operator(version)) => (*version).clone(),
            Some(UsableTemplate::Cluster(number)) => store
                .history_page(&chosen, Some(number - 1), 1)
                .map_err(|e| preseed_error(&chosen, e))?
                .into_iter()
                .find(|v| v.version == *number)
                .ok_or_else(|| preseed_not_found(&chosen))?,
            None => return Err(preseed_not_found(&chosen)),
        };
        Ok((chosen, version))
    }

    /// Every template name a cluster shipped, with its state, sorted by cluster then name.
    pub async fn cluster_templates(&self) -> Result<Vec<ClusterTemplateView>, ServiceError> {
        let list = self
            .store()
            .list_cluster_templates()
            .map_err(ServiceError::from_store)?;
        Ok(list.into_iter().map(cluster_template_view).collect())
    }

    /// An admin approves (`approve`) or refuses what `cluster` ships as `name`: approved, it
    /// serves that cluster's nodes; refused, none.
    pub async fn decide_cluster_template(
        &self,
        cluster: &ClusterId,
        name: &str,
        approve: bool,
    ) -> Result<ClusterTemplateView, ServiceError> {
        let state = if approve {
            TemplateState::Approved
        } else {
            TemplateState::Refused
        };
        let now = self.now_ms().await?;
        let record = self
            .store()
            .decide_cluster_template(cluster, name, state, now)
            .map_err(|e| match e {
                StoreError::NotFound { .. } => ServiceError::not_found(
                    "no_such_cluster_template",
                    format!("cluster {cluster} never shipped a template named {name:?}"),
                ),
                other => ServiceError::from_store(other),
            })?;
        Ok(cluster_template_view(record))
    }

    /// The node's OS and release: its allocation's, else the default settings.
    fn node_os(&self, node: &crate::store::NodeRecord) -> Result<(String, String), ServiceError> {
        if let (Some(os), Some(release)) = (&node.osystem, &node.distro_series) {
            return Ok((os.clone(), release.clone()));
        }
        let get = |key| {
            self.store()
                .get_setting(key)
                .map_err(ServiceError::from_store)
        };
        match (
            get(SettingKey::DefaultOsystem)?,
            get(SettingKey::DefaultDistroSeries)?,
        ) {
            (Some(os), Some(release)) => Ok((os, release)),
            _ => Err(ServiceError::conflict(
                "node_has_no_os",
                format!(
                    "node {} is not allocated and no default OS and release are set",
                    node.hostname
                ),
            )),
        }
    }

    /// Asks the node's cluster for the OS-specific preseed data.
    async fn preseed_data(
        &self,
        cluster: &ClusterId,
        ctx: &PreseedContext,
    ) -> Result<std::collections::BTreeMap<String, String>, ServiceError> {
        let peers = self.connected_peers().await?;
        let Some(peer) = peers.get(cluster) else {
            return Err(ServiceError::unavailable(
                "cluster_unavailable",
                format!(
                    "the node's cluster {cluster} is not connected; it supplies the preseed data"
                ),
            ));
        };
        let license_key = self
            .store()
            .get_license_key(&ctx.osystem, &ctx.release)
            .map_err(ServiceError::from_store)?
            .map(|k| k.license_key);
        let call = GetPreseedData {
            preseed_type: ctx.preseed_type.clone(),
            osystem: ctx.osystem.clone(),
            release: ctx.release.clone(),
            node: NodeContext {
                hostname: ctx.hostname.clone(),
                arch: ctx.arch.clone(),
                subarch: ctx.subarch.clone(),
            },
            license_key,
        };
        match peer.call_typed(&call, PRESEED_DATA_TIMEOUT).await {
            Ok(reply) => Ok(reply.data),
            Err(err) => Err(match err.kind {
                ErrorKind::NoSuchOperatingSystem | ErrorKind::NoSuchRelease => {
                    ServiceError::conflict(
                        "cluster_lacks_os",
                        format!(
                            "cluster {cluster} does not know {}/{}: {}",
                            ctx.osystem, ctx.release, err.message
                        ),
                    )
                }
                ErrorKind::BadRequest => ServiceError::conflict(
                    "preseed_not_served",
                    format!("cluster {cluster} refused: {}", err.message),
                ),
                _ => ServiceError::unavailable(
                    "cluster_unavailable",
                    format!("cluster {cluster} did not return preseed data: {err}"),
                ),
            }),
        }
    }
}

/// A render that hit a limit is 422 `template_limit` naming it; a busy pool 503; any other
/// template failure is 400 with `code`.
fn render_failure(failure: RenderFailure, code: &'static str) -> ServiceError {
    match failure {
        RenderFailure::Busy => ServiceError::unavailable(
            "render_busy",
            "every template render thread is busy; try again shortly",
        ),
        RenderFailure::Template(e) if e.limit.is_some() => {
            ServiceError::new(FailureKind::OverLimit, "template_limit", e.to_string())
        }
        RenderFailure::Template(e) => ServiceError::bad_request(code, e.to_string()),
    }
}

fn preseed_not_found(name: &str) -> ServiceError {
    ServiceError::not_found("no_such_preseed", format!("no preseed named {name:?}"))
}

fn preseed_error(name: &str, err: StoreError) -> ServiceError {
    match err {
        StoreError::NotFound { .. } => preseed_not_found(name),
        StoreError::Stale {
            based_on, current, ..
        } => ServiceError::conflict(
            "stale_preseed",
            format!(
                "preseed {name:?} changed meanwhile: the edit was based on version {based_on}, the current version is {current}"
            ),
        ),
        StoreError::Invalid(message) => ServiceError::conflict("cannot_resolve", message),
        other => ServiceError::from_store(other),
    }
}

#[cfg(test)]
#[path = "preseed_rules_tests.rs"]
mod rules_tests;
