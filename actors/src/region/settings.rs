//! OS settings: the default OS and release, and the commissioning release, each checked
//! against the cached mesh view before it is stored. A refusal lists the valid choices.

use osmesh_core::mesh::MeshView;
use std::collections::BTreeSet;

use super::license::list_or_none;
pub use osmesh_api::settings::OsSettings;

use super::service::{RegionService, ServiceError};
use crate::store::SettingKey;

/// Each setting of `settings` with its stored key.
fn fields(settings: &OsSettings) -> [(SettingKey, Option<&String>); 3] {
    [
        (
            SettingKey::DefaultOsystem,
            settings.default_osystem.as_ref(),
        ),
        (
            SettingKey::DefaultDistroSeries,
            settings.default_distro_series.as_ref(),
        ),
        (
            SettingKey::CommissioningDistroSeries,
            settings.commissioning_distro_series.as_ref(),
        ),
    ]
}

/// `settings` with every field `update` sets replaced.
fn merged(settings: &OsSettings, update: &OsSettings) -> OsSettings {
    let pick = |new: &Option<String>, old: &Option<String>| new.clone().or(old.clone());
    OsSettings {
        default_osystem: pick(&update.default_osystem, &settings.default_osystem),
        default_distro_series: pick(
            &update.default_distro_series,
            &settings.default_distro_series,
        ),
        commissioning_distro_series: pick(
            &update.commissioning_distro_series,
            &settings.commissioning_distro_series,
        ),
    }
}

impl RegionService {
    /// The OS settings as stored.
    pub async fn settings(&self) -> Result<OsSettings, ServiceError> {
        let stored = self
            .store()
            .get_settings()
            .map_err(ServiceError::from_store)?;
        let get = |key| stored.get(&key).cloned();
        Ok(OsSettings {
            default_osystem: get(SettingKey::DefaultOsystem),
            default_distro_series: get(SettingKey::DefaultDistroSeries),
            commissioning_distro_series: get(SettingKey::CommissioningDistroSeries),
        })
    }

    /// Checks every field `update` sets against the cached view, then stores them all; a
    /// refusal stores nothing.
    pub async fn update_settings(&self, update: &OsSettings) -> Result<OsSettings, ServiceError> {
        let current = self.settings().await?;
        let view = self.osystems_cached().await?.view;
        check_settings(&view, &merged(&current, update), update)?;
        for (key, value) in fields(update) {
            if let Some(value) = value {
                self.store()
                    .set_setting(key, value)
                    .map_err(ServiceError::from_store)?;
            }
        }
        self.settings().await
    }
}

/// Whether the settings `update` sets are valid in `view`, given the settings they result
/// in (`merged`): the default OS must be supported by some connected cluster; the default
/// release must be a release of it that some connected cluster holds an image of and that is
/// not past its end of life; the commissioning release must be a supported Ubuntu LTS (MAAS
/// commissions with Ubuntu only: `UbuntuOS.get_supported_commissioning_releases`) that some
/// connected cluster lists.
pub fn check_settings(
    view: &MeshView,
    merged: &OsSettings,
    update: &OsSettings,
) -> Result<(), ServiceError> {
    if update == &OsSettings::default() {
        return Err(ServiceError::bad_request(
            "bad_body",
            "give at least one of default_osystem, default_distro_series, commissioning_distro_series",
        ));
    }
    if let Some(os) = &update.default_osystem {
        let choices: Vec<_> = view
            .osystems
            .iter()
            .filter(|o| !o.supported_by.is_empty())
            .map(|o| o.name.clone())
            .collect();
        refuse_unless(os, &choices, "default_osystem")?;
    }
    if update.default_osystem.is_some() || update.default_distro_series.is_some() {
        if let Some(release) = &merged.default_distro_series {
            let os = merged.default_osystem.as_deref().ok_or_else(|| {
                ServiceError::bad_request(
                    "invalid_setting",
                    "default_distro_series needs a default_osystem: set it first or in the same request",
                )
            })?;
            let choices: Vec<_> = view
                .osystem(os)
                .map(|o| {
                    o.releases
                        .iter()
                        .filter(|r| !r.available.is_empty() && !r.end_of_life)
                        .map(|r| r.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            refuse_unless(release, &choices, "default_distro_series").map_err(|e| {
                ServiceError {
                    message: format!("{} (releases of {os})", e.message),
                    ..e
                }
            })?;
        }
    }
    if let Some(release) = &update.commissioning_distro_series {
        let choices: BTreeSet<String> = view
            .osystem(COMMISSIONING_OS)
            .iter()
            .flat_map(|o| &o.releases)
            .filter(|r| r.can_commission && !r.end_of_life && !r.supported_by.is_empty())
            .map(|r| r.name.clone())
            .collect();
        let choices: Vec<_> = choices.into_iter().collect();
        refuse_unless(release, &choices, "commissioning_distro_series")?;
    }
    Ok(())
}

/// The only OS nodes commission with, as in MAAS.
pub const COMMISSIONING_OS: &str = "ubuntu";

/// `Ok` if `value` is one of the sorted `choices`, else a refusal listing them.
fn refuse_unless(value: &str, choices: &[String], field: &str) -> Result<(), ServiceError> {
    if choices.iter().any(|c| c == value) {
        return Ok(());
    }
    Err(ServiceError::bad_request(
        "invalid_setting",
        format!(
            "{field} {value:?} is not a valid choice (a default needs a connected cluster holding an image and support not ended; commissioning a supported Ubuntu LTS); valid choices: {}",
            list_or_none(choices)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_core::mesh::{ClusterAnswer, ClusterReport};
    use osmesh_core::{BootImage, ClusterId, OsystemInfo, Purpose, ReleaseInfo};
    use std::collections::BTreeMap;

    fn release(name: &str, can_commission: bool) -> ReleaseInfo {
        ReleaseInfo {
            name: name.into(),
            title: name.into(),
            requires_license_key: false,
            can_commission,
            end_of_life: false,
        }
    }

    fn view() -> MeshView {
        let osystems = vec![
            OsystemInfo {
                name: "ubuntu".into(),
                title: "Ubuntu".into(),
                releases: vec![
                    release("noble", true),
                    release("jammy", true),
                    release("oracular", false),
                    ReleaseInfo {
                        end_of_life: true,
                        ..release("precise", false)
                    },
                    release("resolute", true),
                ],
                default_release: None,
                default_commissioning_release: None,
            },
            OsystemInfo {
                name: "centos".into(),
                title: "CentOS".into(),
                releases: vec![release("centos7", false), release("centos8", false)],
                default_release: None,
                default_commissioning_release: None,
            },
            OsystemInfo {
                name: "acme".into(),
                title: "ACME".into(),
                releases: vec![release("a1", true)],
                default_release: None,
                default_commissioning_release: None,
            },
        ];
        // Every release has an image except ubuntu/resolute and centos/centos8.
        let image = |os: &str, release: &str| BootImage {
            osystem: os.into(),
            arch: "amd64".into(),
            subarch: "generic".into(),
            release: release.into(),
            label: "stable".into(),
            purposes: [Purpose::Xinstall].into(),
        };
        let images = ["noble", "jammy", "oracular", "precise"]
            .iter()
            .map(|r| image("ubuntu", r))
            .chain([image("centos", "centos7"), image("acme", "a1")])
            .collect::<Vec<_>>()
            .into();
        let answer = ClusterAnswer::Answered(ClusterReport {
            osystems: osystems.into(),
            images,
        });
        MeshView::from_answers(&BTreeMap::from([(ClusterId::new("a"), answer)]))
    }

    fn settings(
        os: Option<&str>,
        release: Option<&str>,
        commissioning: Option<&str>,
    ) -> OsSettings {
        OsSettings {
            default_osystem: os.map(Into::into),
            default_distro_series: release.map(Into::into),
            commissioning_distro_series: commissioning.map(Into::into),
        }
    }

    fn check(current: OsSettings, update: OsSettings, expected: Result<(), &str>) {
        let merged = merged(&current, &update);
        let got = check_settings(&view(), &merged, &update).map_err(|e| e.message);
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(message), Err(wanted)) => {
                assert!(message.contains(wanted), "{update:?}: {message}")
            }
            (got, expected) => panic!("{update:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn settings_are_checked_against_the_view() {
        let none = OsSettings::default();
        check(
            none.clone(),
            settings(Some("ubuntu"), Some("jammy"), Some("noble")),
            Ok(()),
        );
        check(
            none.clone(),
            settings(Some("plan9"), None, None),
            Err("valid choices: acme, centos, ubuntu"),
        );
        check(
            none.clone(),
            settings(None, Some("jammy"), None),
            Err("needs a default_osystem"),
        );
        // Defaults: only releases some cluster holds an image of, never end-of-life ones.
        check(
            settings(Some("ubuntu"), None, None),
            settings(None, Some("centos7"), None),
            Err("valid choices: jammy, noble, oracular"),
        );
        for held_nowhere_or_eol in ["resolute", "precise"] {
            check(
                settings(Some("ubuntu"), None, None),
                settings(None, Some(held_nowhere_or_eol), None),
                Err("valid choices: jammy, noble, oracular"),
            );
        }
        check(
            settings(Some("centos"), None, None),
            settings(None, Some("centos8"), None),
            Err("valid choices: centos7"),
        );
        // Commissioning: a supported Ubuntu LTS only (not oracular, not EOL precise, not
        // another OS that claims it can commission); an LTS with no image yet is fine.
        for not_lts in ["oracular", "precise", "a1"] {
            check(
                none.clone(),
                settings(None, None, Some(not_lts)),
                Err("valid choices: jammy, noble, resolute"),
            );
        }
        check(none.clone(), settings(None, None, Some("resolute")), Ok(()));
        // Changing the OS re-checks the stored release against the new OS.
        check(
            settings(Some("ubuntu"), Some("jammy"), None),
            settings(Some("centos"), None, None),
            Err("valid choices: centos7"),
        );
        check(none.clone(), none, Err("at least one"));
    }
}

#[cfg(test)]
#[path = "settings_rules_tests.rs"]
mod rules_tests;
