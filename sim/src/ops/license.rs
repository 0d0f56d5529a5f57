//! License key operations: adding a key (a cluster must validate it) and listing the keys.

use osmesh_actors::region::license::{LicenseKeyRequest, LicenseKeyView};
use osmesh_actors::region::service::{RegionService, ServiceError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{log, refusal_problems, refused, safety, Got, Operation, Shared};

/// A key as the trace may show it: the product's own masking, so the trace shows what the
/// API and the logs would.
pub use osmesh_store::mask_key;

/// `add_license_key`: a key for `osystem/distro_series`, stored once a cluster said yes.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddLicenseKey {
    pub at_ms: u64,
    /// The region it is sent to (`r1`, `r2`, …); the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub osystem: String,
    pub distro_series: String,
    pub license_key: String,
    #[serde(default)]
    pub expect: Option<KeyExpect>,
}

/// What an `add_license_key` answer must say: stored and validated by a cluster, or refused.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyExpect {
    /// Stored, and this cluster said yes.
    pub validated_by: Option<String>,
    /// Refused with this code (e.g. `no_cluster_can_validate`).
    pub error: Option<String>,
}

impl Operation for AddLicenseKey {
    /// The cluster that validated the key.
    type Answer = String;
    type Expect = KeyExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn describe(&self) -> String {
        format!(
            "add_license_key {}/{} {}",
            self.osystem,
            self.distro_series,
            mask_key(&self.license_key)
        )
    }

    fn expect(&self) -> Option<&KeyExpect> {
        self.expect.as_ref()
    }

    async fn apply(&self, world: &Shared, number: usize, service: &RegionService) -> Got<String> {
        let request = LicenseKeyRequest {
            osystem: self.osystem.clone(),
            distro_series: self.distro_series.clone(),
            license_key: self.license_key.clone(),
        };
        let issued_ms = world.borrow().now_ms();
        match service.add_license_key(&request).await {
            Ok(view) => Ok(stored(world, number, &request, issued_ms, &view)),
            Err(err) => refused_add(world, number, service, &request, &err).await,
        }
    }

    fn problems(expect: &KeyExpect, got: &Got<String>) -> Vec<String> {
        let mut problems = Vec::new();
        refusal_problems(&expect.error, got, &mut problems);
        if let (Ok(by), Some(want)) = (got, &expect.validated_by) {
            if by != want {
                problems.push(format!("validated by {by}, expected {want}"));
            }
        }
        problems
    }
}

/// The `(osystem, release)` a request is for, as the region reads it.
fn release_of(request: &LicenseKeyRequest) -> (String, String) {
    (
        request.osystem.trim().to_owned(),
        request.distro_series.trim().to_owned(),
    )
}

/// Logs a stored key and holds it to the invariant: it names a cluster that was up at some
/// point since the add was issued and knows the release. Gives the validator.
fn stored(
    world: &Shared,
    number: usize,
    request: &LicenseKeyRequest,
    issued_ms: u64,
    view: &LicenseKeyView,
) -> String {
    let by = view.validated_by.to_string();
    log(
        world,
        format!(
            "op#{number} stored {}/{} key {} validated by {by}",
            view.osystem, view.distro_series, view.license_key
        ),
    );
    let release = release_of(request);
    if !world.borrow().could_validate(&by, &release, issued_ms) {
        safety(
            world,
            format!(
                "op#{number}: the key of {}/{} was stored on the word of {by}, which was down throughout or does not know the release",
                release.0, release.1
            ),
        );
        return by;
    }
    let key = request.license_key.trim().to_owned();
    let mut s = world.borrow_mut();
    s.acked.license_keys.insert(release, (key, by.clone()));
    by
}

/// Logs a refused add and holds it to the invariant: a refused key is not stored.
async fn refused_add(
    world: &Shared,
    number: usize,
    service: &RegionService,
    request: &LicenseKeyRequest,
    err: &ServiceError,
) -> Got<String> {
    let got = refused(world, number, err);
    let release = release_of(request);
    let acked = world.borrow().acked.license_keys.contains_key(&release);
    let stored = service.license_key(&release.0, &release.1).await.is_ok();
    if stored && !acked {
        safety(
            world,
            format!(
                "op#{number}: the add of {}/{} was refused ({}) yet a key is stored",
                release.0, release.1, err.code
            ),
        );
    }
    got
}

/// `license_keys`: the stored keys.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LicenseKeys {
    pub at_ms: u64,
    /// The region it is sent to (`r1`, `r2`, …); the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub expect: Option<KeysExpect>,
}

/// What a `license_keys` listing must hold.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeysExpect {
    /// `"os/release"` → the cluster that validated it: exactly these keys are stored.
    pub keys: Option<BTreeMap<String, String>>,
}

impl Operation for LicenseKeys {
    type Answer = Vec<LicenseKeyView>;
    type Expect = KeysExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn describe(&self) -> String {
        "license_keys".into()
    }

    fn expect(&self) -> Option<&KeysExpect> {
        self.expect.as_ref()
    }

    async fn apply(
        &self,
        world: &Shared,
        number: usize,
        service: &RegionService,
    ) -> Got<Vec<LicenseKeyView>> {
        match service.license_keys().await {
            Ok(keys) => {
                log(
                    world,
                    format!("op#{number} license keys: {}", keys_line(&keys)),
                );
                Ok(keys)
            }
            Err(err) => refused(world, number, &err),
        }
    }

    /// A refusal is not checked: the listing has no expected error.
    fn problems(expect: &KeysExpect, got: &Got<Vec<LicenseKeyView>>) -> Vec<String> {
        let (Ok(keys), Some(want)) = (got, &expect.keys) else {
            return vec![];
        };
        let is: BTreeMap<String, String> = keys
            .iter()
            .map(|k| {
                let release = format!("{}/{}", k.osystem, k.distro_series);
                (release, k.validated_by.to_string())
            })
            .collect();
        if &is == want {
            return vec![];
        }
        vec![format!("keys {is:?}, expected {want:?}")]
    }
}

/// The stored keys, masked, for the final state; none when there are none.
pub(super) async fn final_lines(service: &RegionService) -> Vec<String> {
    match service.license_keys().await {
        Ok(keys) if !keys.is_empty() => vec![format!("license keys: {}", keys_line(&keys))],
        _ => vec![],
    }
}

fn keys_line(keys: &[LicenseKeyView]) -> String {
    if keys.is_empty() {
        return "none".into();
    }
    keys.iter()
        .map(|k| {
            format!(
                "{}/{} {} by {}",
                k.osystem, k.distro_series, k.license_key, k.validated_by
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trace masks keys with the product's function: a key never shows more there than
    /// the API shows.
    #[test]
    fn the_trace_masks_keys_as_the_product_does() {
        let op = AddLicenseKey {
            at_ms: 0,
            region: None,
            osystem: "windows".into(),
            distro_series: "win2019".into(),
            license_key: "ABCDE-12345-FGHIJ-67890-KLMNO".into(),
            expect: None,
        };
        let line = op.describe();
        assert_eq!(
            line,
            "add_license_key windows/win2019 *****-*****-*****-*****-KLMNO"
        );
        assert!(!line.contains("ABCDE"));
        assert_eq!(mask_key("AB-CD"), "**-**");
    }
}
