//! Region-wide settings: default OS and releases. Values are validated against the clusters
//! by the region service before they reach the store; the store keeps text.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::connection::{lock_key, write_transaction, LockSpace};
use super::schema::settings;
use super::{DbError, Store};
use osmesh_actors::store::SettingKey;

impl Store {
    /// Every known setting that has a value.
    pub fn get_settings(&self) -> Result<BTreeMap<SettingKey, String>, DbError> {
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
    pub fn get_setting(&self, key: SettingKey) -> Result<Option<String>, DbError> {
        let conn = &mut *self.conn()?;
        Ok(settings::table
            .find(key.as_str())
            .select(settings::value)
            .first(conn)
            .optional()?)
    }

    /// Sets (creates or replaces) one setting.
    pub fn set_setting(&self, key: SettingKey, value: &str) -> Result<(), DbError> {
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
