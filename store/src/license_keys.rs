//! License keys per (osystem, distro_series), each with the cluster that validated it.
//! Keys are secrets: nothing here logs one, and `Debug` shows them masked.

use diesel::prelude::*;
use osmesh_core::ClusterId;

use super::schema::license_keys;
use super::{DbError, Store};
use osmesh_actors::store::{LicenseKeyRecord, NewLicenseKey};

#[derive(Queryable, Selectable)]
#[diesel(table_name = license_keys)]
struct LicenseKeyRow {
    osystem: String,
    distro_series: String,
    license_key: String,
    validated_by: String,
    validated_at_ms: i64,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<LicenseKeyRow> for LicenseKeyRecord {
    fn from(row: LicenseKeyRow) -> Self {
        LicenseKeyRecord {
            osystem: row.osystem,
            distro_series: row.distro_series,
            license_key: row.license_key,
            validated_by: ClusterId(row.validated_by),
            validated_at_ms: row.validated_at_ms,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        }
    }
}

fn pair_key(osystem: &str, distro_series: &str) -> String {
    format!("{osystem}/{distro_series}")
}

impl Store {
    /// Stores a new key. `Conflict` if the (osystem, distro_series) pair has one already,
    /// `NotFound` if the validating cluster is unknown.
    pub fn insert_license_key(
        &self,
        key: &NewLicenseKey<'_>,
        now_ms: i64,
    ) -> Result<LicenseKeyRecord, DbError> {
        let conn = &mut *self.conn()?;
        diesel::insert_into(license_keys::table)
            .values((
                license_keys::osystem.eq(key.osystem),
                license_keys::distro_series.eq(key.distro_series),
                license_keys::license_key.eq(key.license_key),
                license_keys::validated_by.eq(&key.validated_by.0),
                license_keys::validated_at_ms.eq(key.validated_at_ms),
                license_keys::created_at_ms.eq(now_ms),
                license_keys::updated_at_ms.eq(now_ms),
            ))
            .execute(conn)
            .map_err(DbError::on_write(
                "license key",
                pair_key(key.osystem, key.distro_series),
                ("cluster", key.validated_by.0.clone()),
            ))?;
        get_key(conn, key.osystem, key.distro_series)
    }

    /// Replaces the key of an existing pair (and who validated it). `NotFound` if none.
    pub fn update_license_key(
        &self,
        key: &NewLicenseKey<'_>,
        now_ms: i64,
    ) -> Result<LicenseKeyRecord, DbError> {
        let conn = &mut *self.conn()?;
        let pair = pair_key(key.osystem, key.distro_series);
        let updated = diesel::update(license_keys::table.find((key.osystem, key.distro_series)))
            .set((
                license_keys::license_key.eq(key.license_key),
                license_keys::validated_by.eq(&key.validated_by.0),
                license_keys::validated_at_ms.eq(key.validated_at_ms),
                license_keys::updated_at_ms.eq(now_ms),
            ))
            .execute(conn)
            .map_err(DbError::on_write(
                "license key",
                pair.clone(),
                ("cluster", key.validated_by.0.clone()),
            ))?;
        if updated == 0 {
            return Err(DbError::NotFound {
                what: "license key",
                key: pair,
            });
        }
        get_key(conn, key.osystem, key.distro_series)
    }

    /// The key for a pair, or `None`.
    pub fn get_license_key(
        &self,
        osystem: &str,
        distro_series: &str,
    ) -> Result<Option<LicenseKeyRecord>, DbError> {
        let conn = &mut *self.conn()?;
        match get_key(conn, osystem, distro_series) {
            Ok(record) => Ok(Some(record)),
            Err(DbError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the key for a pair. `NotFound` if there was none.
    pub fn delete_license_key(&self, osystem: &str, distro_series: &str) -> Result<(), DbError> {
        let conn = &mut *self.conn()?;
        let deleted =
            diesel::delete(license_keys::table.find((osystem, distro_series))).execute(conn)?;
        if deleted == 0 {
            return Err(DbError::NotFound {
                what: "license key",
                key: pair_key(osystem, distro_series),
            });
        }
        Ok(())
    }

    /// All keys, sorted by osystem then distro_series.
    pub fn list_license_keys(&self) -> Result<Vec<LicenseKeyRecord>, DbError> {
        let conn = &mut *self.conn()?;
        let rows = license_keys::table
            .order((license_keys::osystem, license_keys::distro_series))
            .select(LicenseKeyRow::as_select())
            .load(conn)?;
        Ok(rows.into_iter().map(LicenseKeyRecord::from).collect())
    }
}

fn get_key(
    conn: &mut super::AnyConnection,
    osystem: &str,
    distro_series: &str,
) -> Result<LicenseKeyRecord, DbError> {
    license_keys::table
        .find((osystem, distro_series))
        .select(LicenseKeyRow::as_select())
        .first(conn)
        .map(LicenseKeyRecord::from)
        .map_err(DbError::not_found(
            "license key",
            pair_key(osystem, distro_series),
        ))
}
