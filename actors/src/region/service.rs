//! The region's service functions: the one entry point for every operation an operator can
//! ask for. The HTTP handlers (parse, call, render) and the simulator's operations both call
//! these, so what the simulator exercises is what the API does.

use actix::prelude::*;
use osmesh_core::mesh::{MeshRelease, MeshView};
use serde::Serialize;
use std::time::Duration;

use crate::store::{RegionStore, StoreError, StoreHandle};
use osmesh_core::ClusterId;
use osmesh_net::peer::Peer;
use std::collections::BTreeMap;

use super::{
    CachedOsystems, ClusterStatus, ConnectedPeers, ListClusters, LiveOsystems, Now, OsystemsAnswer,
    RegionActor,
};

/// The live fan-out's deadline when the caller gives none.
pub const DEFAULT_LIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest deadline a caller may ask for.
pub const MAX_LIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// What kind of refusal an operation ended in; the API maps each to one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    BadRequest,
    NotFound,
    Conflict,
    Unavailable,
    Internal,
    /// Well-formed but over a limit (a template's fuel, output or render deadline): 422.
    OverLimit,
}

/// A refused operation: a kind, a stable machine-readable code and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: FailureKind,
    pub code: &'static str,
    pub message: String,
}

impl ServiceError {
    pub fn new(kind: FailureKind, code: &'static str, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(FailureKind::BadRequest, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(FailureKind::NotFound, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(FailureKind::Conflict, code, message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(FailureKind::Unavailable, code, message)
    }

    /// A store failure the caller did not expect (a lost database is `Unavailable`, the
    /// rest `Internal`). Expected outcomes (`NotFound`, `Conflict`, `Stale`) are mapped at
    /// the call site, where the operation knows what they mean.
    pub fn from_store(err: StoreError) -> Self {
        match err {
            StoreError::Connection(_) | StoreError::Stopped => {
                Self::unavailable("database_unavailable", err.to_string())
            }
            other => Self::new(FailureKind::Internal, "store_failed", other.to_string()),
        }
    }

    pub(crate) fn region_gone(err: MailboxError) -> Self {
        Self::new(
            FailureKind::Unavailable,
            "region_unavailable",
            format!("the region actor is not running: {err}"),
        )
    }
}

/// The one check that an OS and a release are known to some cluster: the release as the view
/// has it, or `NotFound` (`no_such_osystem`, `no_such_release`, naming what is known). Every
/// operation that names an OS and release (a release's page, a license key, an allocation)
/// refuses an unknown one through here, so all answer the same way: 404, because the request
/// is well-formed and names something that does not exist in the mesh now (not 400, which
/// would blame its form, nor 409, which would blame the state of the thing it names).
pub fn known_release<'v>(
    view: &'v MeshView,
    osystem: &str,
    release: &str,
) -> Result<&'v MeshRelease, ServiceError> {
    let Some(os) = view.osystem(osystem) else {
        let known: Vec<_> = view.osystems.iter().map(|o| o.name.as_str()).collect();
        return Err(ServiceError::not_found(
            "no_such_osystem",
            format!(
                "no cluster supports an operating system named {osystem:?}; known: {}",
                super::license::list_or_none(&known)
            ),
        ));
    };
    view.release(osystem, release).ok_or_else(|| {
        let known: Vec<_> = os.releases.iter().map(|r| r.name.as_str()).collect();
        ServiceError::not_found(
            "no_such_release",
            format!(
                "no cluster supports release {release:?} of {osystem}; known: {}",
                super::license::list_or_none(&known)
            ),
        )
    })
}

/// One release as the API shows it: where it is supported and available.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseAnswer {
    pub osystem: String,
    pub release: String,
    #[serde(flatten)]
    pub detail: MeshRelease,
    pub answer: OsystemsAnswerSummary,
}

/// The non-view part of an `OsystemsAnswer`, for answers that show one slice of the view.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OsystemsAnswerSummary {
    pub source: super::ReadPath,
    pub clusters: Vec<super::ClusterPart>,
}

/// The region's operations, over its actor.
#[derive(Clone)]
pub struct RegionService {
    region: Addr<RegionActor>,
    store: StoreHandle,
    /// Where templates render: inline unless a pool is handed in (`with_template_runner`).
    templates: super::render::TemplateRunner,
}

impl RegionService {
    pub fn new(region: Addr<RegionActor>, store: StoreHandle) -> Self {
        RegionService {
            region,
            store,
            templates: super::render::TemplateRunner::Inline,
        }
    }

    /// Renders templates with `runner` (regiond: a bounded pool off the HTTP workers).
    pub fn with_template_runner(mut self, runner: super::render::TemplateRunner) -> Self {
        self.templates = runner;
        self
    }

    pub fn templates(&self) -> &super::render::TemplateRunner {
        &self.templates
    }

    /// The store, called on this task's thread (the HTTP worker's, or the simulator's).
    pub fn store(&self) -> &dyn RegionStore {
        self.store.direct()
    }

    /// The store and where its calls run.
    pub fn store_handle(&self) -> &StoreHandle {
        &self.store
    }

    pub fn region(&self) -> &Addr<RegionActor> {
        &self.region
    }

    /// The region clock's now (unix ms; virtual under the simulator), for stored timestamps.
    pub async fn now_ms(&self) -> Result<i64, ServiceError> {
        self.region
            .send(Now)
            .await
            .map_err(ServiceError::region_gone)
    }

    /// The clusters connected now, by id.
    pub async fn connected_peers(&self) -> Result<BTreeMap<ClusterId, Peer>, ServiceError> {
        let peers = self
            .region
            .send(ConnectedPeers)
            .await
            .map_err(ServiceError::region_gone)?;
        Ok(peers.into_iter().collect())
    }

    pub async fn clusters(&self) -> Result<Vec<ClusterStatus>, ServiceError> {
        self.region
            .send(ListClusters)
            .await
            .map_err(ServiceError::region_gone)
    }

    /// The cached view: answered at once from every cluster's last snapshot.
    pub async fn osystems_cached(&self) -> Result<OsystemsAnswer, ServiceError> {
        self.region
            .send(CachedOsystems)
            .await
            .map_err(ServiceError::region_gone)
    }

    /// The live view: every connected cluster asked now, answered by `timeout`.
    /// The cached view's validator, merge and cluster count, without the clusters' parts.
    pub async fn osystems_cached_head(&self) -> Result<super::CachedHead, ServiceError> {
        self.region
            .send(super::CachedOsystemsHead)
            .await
            .map_err(ServiceError::region_gone)
    }

    /// The cached view and its validator, taken together.
    pub async fn osystems_cached_validated(
        &self,
    ) -> Result<(super::CachedValidator, OsystemsAnswer), ServiceError> {
        self.region
            .send(super::CachedOsystemsValidated)
            .await
            .map_err(ServiceError::region_gone)
    }

    pub async fn osystems_live(&self, timeout: Duration) -> Result<OsystemsAnswer, ServiceError> {
        if timeout.is_zero() || timeout > MAX_LIVE_TIMEOUT {
            return Err(ServiceError::new(
                FailureKind::BadRequest,
                "bad_timeout",
                format!(
                    "timeout must be between 1 and {} ms",
                    MAX_LIVE_TIMEOUT.as_millis()
                ),
            ));
        }
        self.region
            .send(LiveOsystems { timeout })
            .await
            .map_err(ServiceError::region_gone)
    }

    /// Tells the region how long rendering a live answer took, so the next live reads
    /// reserve that time inside their deadlines.
    pub fn live_rendered(&self, took: Duration) {
        self.region.do_send(super::LiveRendered(took));
    }

    /// One release of one OS, from the cached view.
    pub async fn release(
        &self,
        osystem: &str,
        release: &str,
    ) -> Result<ReleaseAnswer, ServiceError> {
        let answer = self.osystems_cached().await?;
        let detail = known_release(&answer.view, osystem, release)?;
        Ok(ReleaseAnswer {
            osystem: osystem.to_string(),
            release: release.to_string(),
            detail: detail.clone(),
            answer: OsystemsAnswerSummary {
                source: answer.source,
                clusters: answer.clusters.clone(),
            },
        })
    }
}
