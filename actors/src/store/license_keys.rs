//! License keys per (osystem, distro_series), each with the cluster that validated it.
//! Keys are secrets: nothing here logs one, and `Debug` shows them masked.

use diesel::prelude::*;
use osmesh_core::ClusterId;

use super::schema::license_keys;
use super::{Store, StoreError};

/// How many trailing key characters [`LicenseKeyRecord::masked`] reveals.
const VISIBLE_KEY_CHARS: usize = 5;

/// A key to store, with the cluster that said yes to it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewLicenseKey<'a> {
    pub osystem: &'a str,
    pub distro_series: &'a str,
    pub license_key: &'a str,
    pub validated_by: &'a ClusterId,
    pub validated_at_ms: i64,
}

/// A stored license key.
#[derive(Clone, PartialEq, Eq)]
pub struct LicenseKeyRecord {
    pub osystem: String,
    pub distro_series: String,
    /// The key in full: show [`LicenseKeyRecord::masked`] instead, never log this.
    pub license_key: String,
    pub validated_by: ClusterId,
    pub validated_at_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

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

impl LicenseKeyRecord {
    /// The key with every letter and digit but the last five replaced by `*`, separators
    /// kept: `ABCDE-FGHIJ-KLMNO-PQRST-VWXYZ` shows as `*****-*****-*****-*****-VWXYZ`. A key
    /// of five alphanumerics or fewer is masked entirely (showing it would show all of it).
    pub fn masked(&self) -> String {
        mask_key(&self.license_key)
    }
}

impl std::fmt::Debug for LicenseKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseKeyRecord")
            .field("osystem", &self.osystem)
            .field("distro_series", &self.distro_series)
            .field("license_key", &self.masked())
            .field("validated_by", &self.validated_by)
            .field("validated_at_ms", &self.validated_at_ms)
            .field("created_at_ms", &self.created_at_ms)
            .field("updated_at_ms", &self.updated_at_ms)
            .finish()
    }
}

impl std::fmt::Debug for NewLicenseKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewLicenseKey")
            .field("osystem", &self.osystem)
            .field("distro_series", &self.distro_series)
            .field("license_key", &mask_key(self.license_key))
            .field("validated_by", &self.validated_by)
            .finish_non_exhaustive()
    }
}

/// A key as it may be shown or logged (see [`LicenseKeyRecord::masked`]).
pub fn mask_key(key: &str) -> String {
    let total = key.chars().filter(char::is_ascii_alphanumeric).count();
    let hidden = if total <= VISIBLE_KEY_CHARS {
        total
    } else {
        total - VISIBLE_KEY_CHARS
    };
    let mut seen = 0;
    key.chars()
        .map(|c| {
            if !c.is_ascii_alphanumeric() {
                return if c.is_ascii_punctuation() || c == ' ' {
                    c
                } else {
                    '*'
                };
            }
            seen += 1;
            if seen <= hidden {
                '*'
            } else {
                c
            }
        })
        .collect()
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
    ) -> Result<LicenseKeyRecord, StoreError> {
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
            .map_err(StoreError::on_write(
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
    ) -> Result<LicenseKeyRecord, StoreError> {
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
            .map_err(StoreError::on_write(
                "license key",
                pair.clone(),
                ("cluster", key.validated_by.0.clone()),
            ))?;
        if updated == 0 {
            return Err(StoreError::NotFound {
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
    ) -> Result<Option<LicenseKeyRecord>, StoreError> {
        let conn = &mut *self.conn()?;
        match get_key(conn, osystem, distro_series) {
            Ok(record) => Ok(Some(record)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the key for a pair. `NotFound` if there was none.
    pub fn delete_license_key(&self, osystem: &str, distro_series: &str) -> Result<(), StoreError> {
        let conn = &mut *self.conn()?;
        let deleted =
            diesel::delete(license_keys::table.find((osystem, distro_series))).execute(conn)?;
        if deleted == 0 {
            return Err(StoreError::NotFound {
                what: "license key",
                key: pair_key(osystem, distro_series),
            });
        }
        Ok(())
    }

    /// All keys, sorted by osystem then distro_series.
    pub fn list_license_keys(&self) -> Result<Vec<LicenseKeyRecord>, StoreError> {
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
) -> Result<LicenseKeyRecord, StoreError> {
    license_keys::table
        .find((osystem, distro_series))
        .select(LicenseKeyRow::as_select())
        .first(conn)
        .map(LicenseKeyRecord::from)
        .map_err(StoreError::not_found(
            "license key",
            pair_key(osystem, distro_series),
        ))
}

#[cfg(test)]
mod tests {
    use super::mask_key;

    #[test]
    fn masking_reveals_only_the_last_five_alphanumerics() {
        assert_eq!(
            mask_key("ABCDE-FGHIJ-KLMNO-PQRST-VWXYZ"),
            "*****-*****-*****-*****-VWXYZ"
        );
        assert_eq!(mask_key("abcdefgh12"), "*****fgh12");
        assert_eq!(mask_key("ABCDE"), "*****");
        assert_eq!(mask_key("AB-C"), "**-*");
        assert_eq!(mask_key(""), "");
    }
}
