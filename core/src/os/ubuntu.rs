//! The Ubuntu driver: releases are the Ubuntu images present; titles, versions and LTS
//! status come from a release table (distro-info-data's `ubuntu.csv`).
//!
//! Rules (MAAS: `UbuntuOS`, which reads the same data through python's `distro_info`): an LTS
//! release that is still supported can commission, others cannot; the default release is the
//! newest supported LTS present, else the newest present; the default commissioning release is
//! the newest supported LTS present. A release is past its end of life once `eol-server` (or,
//! for releases without one, `eol`) is before the date the cluster hands in. A codename the table does not know is titled `Ubuntu <codename>`, is not
//! LTS, and counts as older than every known release.

use super::{netboot_purposes, OperatingSystem};
use crate::image::{BootImage, Purpose};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use thiserror::Error;

const NAME: &str = "ubuntu";
const BUILT_IN_CSV: &str = include_str!("../../data/ubuntu.csv");

/// One row of the release table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UbuntuRelease {
    /// The series, as image directories name it: `jammy`.
    pub series: String,
    /// The version as distro-info writes it: `22.04 LTS`.
    pub version: String,
    /// The codename as distro-info writes it: `Jammy Jellyfish`.
    pub codename: String,
    /// Major and minor version, for ordering: `(22, 4)`.
    pub number: (u32, u32),
    pub lts: bool,
    /// End of standard support: `eol-server` where given, else `eol`; `None` if unknown.
    pub end_of_support: Option<UbuntuDate>,
}

/// A calendar date, ordered, as distro-info writes it (`2027-06-01`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UbuntuDate {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl UbuntuDate {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<UbuntuDate> {
        let mut parts = text.trim().splitn(3, '-');
        let year = parts.next()?.parse().ok()?;
        let month = parts
            .next()?
            .parse()
            .ok()
            .filter(|m| (1..=12).contains(m))?;
        let day = parts
            .next()?
            .parse()
            .ok()
            .filter(|d| (1..=31).contains(d))?;
        Some(UbuntuDate { year, month, day })
    }

    /// The UTC date of a unix time in milliseconds (civil-from-days, proleptic Gregorian).
    pub fn from_unix_ms(ms: i64) -> UbuntuDate {
        let days = ms.div_euclid(86_400_000);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        UbuntuDate { year, month, day }
    }
}

impl UbuntuRelease {
    /// The title shown to people: `Ubuntu 22.04 LTS "Jammy Jellyfish"`.
    pub fn title(&self) -> String {
        format!("Ubuntu {} \"{}\"", self.version, self.codename)
    }
}

/// Known Ubuntu releases, keyed by series. Shared, so a copy costs nothing: every registry
/// a cluster builds (at each rescan) holds one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UbuntuReleaseTable {
    releases: Arc<BTreeMap<String, UbuntuRelease>>,
}

/// A release table that could not be parsed; `line` is 1-based.
#[derive(Error, Clone, Debug, PartialEq, Eq)]
#[error("ubuntu release table, line {line}: {problem}")]
pub struct ReleaseTableError {
    pub line: usize,
    pub problem: String,
}

impl UbuntuReleaseTable {
    /// The table compiled into the crate (a copy of distro-info-data's `ubuntu.csv`).
    /// Parsed once per process: the text is compiled in, so every parse gives the same table.
    pub fn built_in() -> Self {
        static BUILT_IN: OnceLock<UbuntuReleaseTable> = OnceLock::new();
        BUILT_IN
            // The built-in text is tested to parse; an empty table is the safe fallback.
            .get_or_init(|| Self::parse_csv(BUILT_IN_CSV).unwrap_or_default())
            .clone()
    }

    /// Parses distro-info-data's CSV: a header naming at least `version`, `codename` and
    /// `series`, then one row per release. `LTS` in the version marks an LTS release.
    pub fn parse_csv(text: &str) -> Result<Self, ReleaseTableError> {
        let mut lines = text.lines().enumerate();
        let (_, header) = lines.next().ok_or_else(|| table_error(1, "empty table"))?;
        let columns = Columns::from_header(header)?;
        let mut releases = BTreeMap::new();
        for (index, line) in lines.filter(|(_, line)| !line.trim().is_empty()) {
            let release = columns.parse_row(index + 1, line)?;
            releases.insert(release.series.clone(), release);
        }
        Ok(UbuntuReleaseTable {
            releases: Arc::new(releases),
        })
    }

    pub fn get(&self, series: &str) -> Option<&UbuntuRelease> {
        self.releases.get(series)
    }

    pub fn len(&self) -> usize {
        self.releases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.releases.is_empty()
    }
}

/// Where the needed fields sit in a row.
struct Columns {
    version: usize,
    codename: usize,
    series: usize,
    eol: Option<usize>,
    eol_server: Option<usize>,
}

impl Columns {
    fn from_header(header: &str) -> Result<Self, ReleaseTableError> {
        let names: Vec<&str> = header.split(',').map(str::trim).collect();
        let find = |wanted: &str| {
            names
                .iter()
                .position(|name| *name == wanted)
                .ok_or_else(|| table_error(1, &format!("header has no `{wanted}` column")))
        };
        let optional = |wanted: &str| names.iter().position(|name| *name == wanted);
        Ok(Columns {
            version: find("version")?,
            codename: find("codename")?,
            series: find("series")?,
            eol: optional("eol"),
            eol_server: optional("eol-server"),
        })
    }

    fn parse_row(&self, line: usize, text: &str) -> Result<UbuntuRelease, ReleaseTableError> {
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        let field = |index: usize, name: &str| match fields.get(index) {
            Some(value) if !value.is_empty() => Ok(value.to_string()),
            _ => Err(table_error(line, &format!("missing `{name}`"))),
        };
        let version = field(self.version, "version")?;
        let number = parse_version_number(&version)
            .ok_or_else(|| table_error(line, &format!("bad version `{version}`")))?;
        let date = |index: Option<usize>| {
            index
                .and_then(|i| fields.get(i))
                .and_then(|text| UbuntuDate::parse(text))
        };
        Ok(UbuntuRelease {
            series: field(self.series, "series")?,
            codename: field(self.codename, "codename")?,
            lts: version.ends_with(" LTS"),
            end_of_support: date(self.eol_server).or_else(|| date(self.eol)),
            number,
            version,
        })
    }
}

fn parse_version_number(version: &str) -> Option<(u32, u32)> {
    let number = version.split_whitespace().next()?;
    let (major, minor) = number.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn table_error(line: usize, problem: &str) -> ReleaseTableError {
    ReleaseTableError {
        line,
        problem: problem.to_owned(),
    }
}

/// The Ubuntu driver.
#[derive(Clone, Debug)]
pub struct Ubuntu {
    table: UbuntuReleaseTable,
    today: Option<UbuntuDate>,
}

impl Ubuntu {
    pub fn new(table: UbuntuReleaseTable) -> Self {
        Ubuntu { table, today: None }
    }

    /// The driver as of `today` (support status); `None` treats every release as supported.
    pub fn on(self, today: Option<UbuntuDate>) -> Self {
        Ubuntu { today, ..self }
    }

    /// A supported LTS: the only kind MAAS commissions with.
    fn is_lts(&self, series: &str) -> bool {
        self.table.get(series).is_some_and(|release| release.lts) && !self.end_of_life(series)
    }

    /// Orders releases oldest first: unknown codenames before known ones, then by name.
    fn age_key<'a>(&self, series: &'a str) -> (Option<(u32, u32)>, &'a str) {
        (self.table.get(series).map(|release| release.number), series)
    }

    fn newest<'a>(&self, releases: impl Iterator<Item = &'a String>) -> Option<String> {
        releases.max_by_key(|series| self.age_key(series)).cloned()
    }
}

impl OperatingSystem for Ubuntu {
    fn name(&self) -> &str {
        NAME
    }

    fn title(&self) -> String {
        "Ubuntu".to_owned()
    }

    fn releases(&self, images: &[BootImage]) -> BTreeSet<String> {
        images
            .iter()
            .filter(|image| image.osystem == NAME)
            .map(|image| image.release.clone())
            .collect()
    }

    fn release_title(&self, release: &str) -> String {
        match self.table.get(release) {
            Some(known) => known.title(),
            None => format!("Ubuntu {release}"),
        }
    }

    fn default_release(&self, releases: &BTreeSet<String>) -> Option<String> {
        self.default_commissioning_release(releases)
            .or_else(|| self.newest(releases.iter().filter(|r| !self.end_of_life(r))))
            .or_else(|| self.newest(releases.iter()))
    }

    fn default_commissioning_release(&self, releases: &BTreeSet<String>) -> Option<String> {
        self.newest(releases.iter().filter(|series| self.is_lts(series)))
    }

    fn can_commission(&self, release: &str) -> bool {
        self.is_lts(release)
    }

    fn end_of_life(&self, release: &str) -> bool {
        let end = self.table.get(release).and_then(|r| r.end_of_support);
        matches!((self.today, end), (Some(today), Some(end)) if end < today)
    }

    fn purposes(&self, image: &BootImage) -> BTreeSet<Purpose> {
        netboot_purposes(self, image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::tests::images;

    fn ubuntu() -> Ubuntu {
        Ubuntu::new(UbuntuReleaseTable::built_in())
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn built_in_table_parses_and_knows_recent_lts_releases() {
        assert_eq!(
            UbuntuReleaseTable::parse_csv(BUILT_IN_CSV).map(|t| t.len() > 30),
            Ok(true)
        );
        let jammy = UbuntuReleaseTable::built_in().get("jammy").cloned();
        assert_eq!(jammy.map(|r| (r.number, r.lts)), Some(((22, 4), true)));
    }

    #[test]
    fn titles_follow_distro_info_and_fall_back_to_the_codename() {
        let table = [
            ("jammy", "Ubuntu 22.04 LTS \"Jammy Jellyfish\""),
            ("noble", "Ubuntu 24.04 LTS \"Noble Numbat\""),
            ("oracular", "Ubuntu 24.10 \"Oracular Oriole\""),
            ("zesty-zebra", "Ubuntu zesty-zebra"),
        ];
        for (series, title) in table {
            assert_eq!(ubuntu().release_title(series), title);
        }
    }

    #[test]
    fn releases_are_the_ubuntu_images_present() {
        let present = images(&[
            "ubuntu/amd64/jammy",
            "ubuntu/arm64/jammy",
            "ubuntu/amd64/focal",
            "centos/amd64/centos7",
        ]);
        assert_eq!(ubuntu().releases(&present), set(&["focal", "jammy"]));
    }

    #[test]
    fn defaults_pick_the_newest_lts_present() {
        let table: &[(&[&str], Option<&str>, Option<&str>)] = &[
            (
                &["focal", "jammy", "oracular"],
                Some("jammy"),
                Some("jammy"),
            ),
            (&["oracular", "plucky"], Some("plucky"), None),
            (&["oracular", "mystery"], Some("oracular"), None),
            (&["bravo", "alpha"], Some("bravo"), None),
            (&[], None, None),
        ];
        for (present, default, commissioning) in table {
            let present = set(present);
            let ubuntu = ubuntu();
            assert_eq!(ubuntu.default_release(&present).as_deref(), *default);
            let actual = ubuntu.default_commissioning_release(&present);
            assert_eq!(actual.as_deref(), *commissioning, "{present:?}");
        }
    }

    /// Mirrors MAAS `UbuntuOS.get_supported_commissioning_releases`: supported LTS only; an
    /// LTS past its end of life (lucid, precise, …) is shown as such and cannot commission.
    #[test]
    fn end_of_life_series_cannot_commission_or_be_defaults() {
        let today = UbuntuDate::parse("2026-11-26");
        let ubuntu = ubuntu().on(today);
        let table = [
            ("dapper", true, false),
            ("lucid", true, false),
            ("precise", true, false),
            ("xenial", true, false),
            ("jammy", false, true),
            ("noble", false, true),
            ("oracular", true, false),
            ("questing", true, false),
            ("resolute", false, true),
        ];
        for (series, eol, commission) in table {
            assert_eq!(ubuntu.end_of_life(series), eol, "{series}");
            assert_eq!(ubuntu.can_commission(series), commission, "{series}");
        }
        let present = set(&["precise", "xenial", "oracular"]);
        assert_eq!(ubuntu.default_commissioning_release(&present), None);
        assert_eq!(
            ubuntu.default_release(&present).as_deref(),
            Some("oracular")
        );
        assert!(!ubuntu.clone().on(None).end_of_life("dapper"));
    }

    #[test]
    fn dates_come_from_unix_time() {
        let table = [
            (0, "1970-01-01"),
            (1_700_000_000_000, "2023-11-14"),
            (951_782_400_000, "2000-02-29"),
            (-86_400_000, "1969-12-31"),
        ];
        for (ms, date) in table {
            assert_eq!(
                Some(UbuntuDate::from_unix_ms(ms)),
                UbuntuDate::parse(date),
                "{ms}"
            );
        }
    }

    #[test]
    fn only_lts_releases_commission() {
        let ubuntu = ubuntu();
        assert!(ubuntu.can_commission("noble"));
        assert!(!ubuntu.can_commission("oracular"));
        assert!(!ubuntu.can_commission("unknown"));
    }

    #[test]
    fn csv_errors_name_the_line() {
        let table: &[(&str, usize, &str)] = &[
            ("", 1, "empty table"),
            ("codename,series\n", 1, "header has no `version` column"),
            (
                "version,codename,series\n1.0,A,a\nx.y,B,b\n",
                3,
                "bad version `x.y`",
            ),
            ("version,codename,series\n1.0,A\n", 2, "missing `series`"),
        ];
        for (text, line, problem) in table {
            let expected = ReleaseTableError {
                line: *line,
                problem: problem.to_string(),
            };
            assert_eq!(UbuntuReleaseTable::parse_csv(text), Err(expected));
        }
    }

    #[test]
    fn a_table_from_disk_replaces_the_built_in_one() {
        let table =
            UbuntuReleaseTable::parse_csv("version,codename,series\n30.04 LTS,Zany Zebu,zany\n");
        let ubuntu = Ubuntu::new(table.unwrap_or_default());
        assert_eq!(
            ubuntu.release_title("zany"),
            "Ubuntu 30.04 LTS \"Zany Zebu\""
        );
        assert_eq!(ubuntu.release_title("jammy"), "Ubuntu jammy");
    }
}
