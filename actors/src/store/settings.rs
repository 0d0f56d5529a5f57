//! Region-wide settings: default OS and releases. Values are validated against the clusters
//! by the region service before they reach the store; the store keeps text.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::connection::{lock_key, write_transaction, LockSpace};
use super::schema::settings;
use super::{Store, StoreError};

/// The settings the region knows. Rows with other keys (written by a newer region) are
/// left alone and not returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SettingKey {
    DefaultOsystem,
    DefaultDistroSeries,
    CommissioningDistroSeries,
}

impl SettingKey {
    pub const ALL: [SettingKey; 3] = [
        SettingKey::DefaultOsystem,
        SettingKey::DefaultDistroSeries,
        SettingKey::CommissioningDistroSeries,
    ];

    /// The key as stored and as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingKey::DefaultOsystem => "default_osystem",
            SettingKey::DefaultDistroSeries => "default_distro_series",
            SettingKey::CommissioningDistroSeries => "commissioning_distro_series",
        }
    }

    /// Parses a stored or requested key; `None` for keys this region does not know.
    pub fn parse(key: &str) -> Option<SettingKey> {
        SettingKey::ALL.into_iter().find(|k| k.as_str() == key)
    }
}

impl Store {
    /// Every known setting that has a value.
    pub fn get_settings(&self) -> Result<BTreeMap<SettingKey, String>, StoreError> {
        let conn = &mut *self.conn()?;
        let rows: Vec<(String, String)> = settings::table
            .select((settings::key, settings::value))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| SettingKey::parse(&k).map(|k| (k, v)))
            .collect())
    }

    /// One setting, or `None` if unset.
    pub fn get_setting(&self, key: SettingKey) -> Result<Option<String>, StoreError> {
        let conn = &mut *self.conn()?;
        Ok(settings::table
            .find(key.as_str())
            .select(settings::value)
            .first(conn)
            .optional()?)
    }

    /// Sets (creates or replaces) one setting.
    pub fn set_setting(&self, key: SettingKey, value: &str) -> Result<(), StoreError> {
        let conn = &mut *self.conn()?;
        write_transaction(conn, |conn| {
            lock_key(conn, LockSpace::Setting, key.as_str())?;
            let updated = diesel::update(settings::table.find(key.as_str()))
                .set(settings::value.eq(value))
                .execute(conn)?;
            if updated == 0 {
                diesel::insert_into(settings::table)
                    .values((settings::key.eq(key.as_str()), settings::value.eq(value)))
                    .execute(conn)?;
            }
            Ok(())
        })
    }
}
