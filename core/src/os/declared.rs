//! Declared operating systems: OS definitions a cluster ships in TOML for its own
//! hardware, parsed and validated here into drivers the registry can hold.
//!
//! Declared releases are offered as declared, whether or not an image is present (like
//! CentOS's fixed list; availability is the images' business). Every error names the file,
//! the 1-based line and the field, so an operator can go straight to the mistake.
//!
//! ```toml
//! [[os]]
//! name = "acme-linux"
//! title = "ACME Linux"
//! default_release = "a2"                          # optional, must be a declared release
//! requires_license_key = true                     # default false
//! license_key_pattern = "[A-Z]{4}-[0-9]{4}"       # optional; must match the whole key
//! commissioning = false                           # default false
//! [[os.release]]
//! name = "a1"
//! title = "ACME 1"
//! requires_license_key = false                    # optional per-release override
//! commissioning = true                            # optional per-release override
//! ```

use super::{netboot_purposes, LicenseKeyError, OperatingSystem, BUILT_IN_NAMES};
use crate::image::{BootImage, Purpose};
use regex::Regex;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;
use toml::Spanned;

/// The preseed key under which a declared OS receives its license key.
const LICENSE_KEY_PRESEED: &str = "license_key";

/// One validated OS definition. Releases keep the file's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredOs {
    pub name: String,
    pub title: String,
    pub default_release: Option<String>,
    pub license_key_pattern: Option<LicenseKeyPattern>,
    pub releases: Vec<DeclaredRelease>,
}

/// One declared release, with the OS-wide defaults already applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredRelease {
    pub name: String,
    pub title: String,
    pub requires_license_key: bool,
    pub can_commission: bool,
}

/// A license-key rule: a regular expression that must match the *whole* key.
#[derive(Clone, Debug)]
pub struct LicenseKeyPattern {
    source: String,
    whole: Regex,
}

impl LicenseKeyPattern {
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let whole = Regex::new(&format!("^(?:{source})$"))?;
        Ok(LicenseKeyPattern {
            source: source.to_owned(),
            whole,
        })
    }

    /// The pattern as written in the file.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, key: &str) -> bool {
        self.whole.is_match(key)
    }
}

impl PartialEq for LicenseKeyPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for LicenseKeyPattern {}

/// A declared-OS file that could not be used: where, which field, and what is wrong.
#[derive(Error, Clone, Debug, PartialEq, Eq)]
#[error("{file}:{line}: {field}: {problem}")]
pub struct DeclaredError {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// The TOML key path, e.g. `os.release.name`.
    pub field: String,
    pub problem: DeclaredProblem,
}

/// What is wrong with a declared-OS definition.
#[derive(Error, Clone, Debug, PartialEq, Eq)]
pub enum DeclaredProblem {
    #[error("{0}")]
    Toml(String),
    #[error("must not be empty")]
    Empty,
    #[error("`{0}` may hold only ASCII letters, digits, `.`, `_` and `-`")]
    BadName(String),
    #[error("`{0}` is a built-in operating system and cannot be declared")]
    BuiltInName(String),
    #[error("operating system `{name}` is already declared on line {first_line}")]
    DuplicateOs { name: String, first_line: usize },
    #[error("release `{name}` is already declared on line {first_line}")]
    DuplicateRelease { name: String, first_line: usize },
    #[error("no release is declared")]
    NoReleases,
    #[error("`{0}` is not one of the declared releases")]
    UnknownDefaultRelease(String),
    #[error("invalid regular expression: {0}")]
    BadPattern(String),
}

/// Parses and validates one declared-OS file. `file_name` only labels errors.
pub fn parse_declared(file_name: &str, text: &str) -> Result<Vec<DeclaredOs>, DeclaredError> {
    let raw: RawFile = toml::from_str(text)
        .map_err(|error| Located::from_toml(text, &error))
        .map_err(|located| located.in_file(file_name))?;
    let mut seen = BTreeMap::new();
    raw.os
        .into_iter()
        .map(|os| validate_os(text, os, &mut seen))
        .collect::<Result<Vec<_>, Located>>()
        .map_err(|located| located.in_file(file_name))
}

impl OperatingSystem for DeclaredOs {
    fn name(&self) -> &str {
        &self.name
    }

    fn title(&self) -> String {
        self.title.clone()
    }

    fn releases(&self, _images: &[BootImage]) -> BTreeSet<String> {
        self.releases
            .iter()
            .map(|release| release.name.clone())
            .collect()
    }

    fn release_title(&self, release: &str) -> String {
        self.release(release)
            .map_or_else(|| release.to_owned(), |found| found.title.clone())
    }

    fn default_release(&self, _releases: &BTreeSet<String>) -> Option<String> {
        self.default_release.clone()
    }

    fn can_commission(&self, release: &str) -> bool {
        self.release(release)
            .is_some_and(|found| found.can_commission)
    }

    fn requires_license_key(&self, release: &str) -> bool {
        self.release(release)
            .is_some_and(|found| found.requires_license_key)
    }

    /// With a pattern, a key must match it; without one, any non-empty key is accepted
    /// for a release that requires a key, and refused for one that takes none.
    fn validate_license_key(&self, release: &str, key: &str) -> Result<(), LicenseKeyError> {
        if key.is_empty() {
            return Err(LicenseKeyError::Empty);
        }
        match &self.license_key_pattern {
            Some(pattern) if pattern.matches(key) => Ok(()),
            Some(pattern) => Err(LicenseKeyError::PatternMismatch {
                pattern: pattern.as_str().to_owned(),
            }),
            None if self.requires_license_key(release) => Ok(()),
            None => Err(LicenseKeyError::NotUsed),
        }
    }

    fn purposes(&self, image: &BootImage) -> BTreeSet<Purpose> {
        netboot_purposes(self, image)
    }

    fn preseed_data(&self, _release: &str, license_key: Option<&str>) -> BTreeMap<String, String> {
        license_key
            .map(|key| (LICENSE_KEY_PRESEED.to_owned(), key.to_owned()))
            .into_iter()
            .collect()
    }
}

impl DeclaredOs {
    fn release(&self, name: &str) -> Option<&DeclaredRelease> {
        self.releases.iter().find(|release| release.name == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    os: Vec<RawOs>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOs {
    name: Spanned<String>,
    title: Spanned<String>,
    default_release: Option<Spanned<String>>,
    #[serde(default)]
    requires_license_key: bool,
    license_key_pattern: Option<Spanned<String>>,
    #[serde(default)]
    commissioning: bool,
    #[serde(default)]
    release: Vec<RawRelease>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    name: Spanned<String>,
    title: Spanned<String>,
    requires_license_key: Option<bool>,
    commissioning: Option<bool>,
}

/// An error located in the text, before the file name is attached.
struct Located {
    line: usize,
    field: String,
    problem: DeclaredProblem,
}

impl Located {
    fn at<T>(text: &str, spanned: &Spanned<T>, field: &str, problem: DeclaredProblem) -> Self {
        Located {
            line: line_of(text, spanned.span().start),
            field: field.to_owned(),
            problem,
        }
    }

    fn from_toml(text: &str, error: &toml::de::Error) -> Self {
        let offset = error.span().map_or(0, |span| span.start);
        let message: Vec<&str> = error.message().lines().map(str::trim).collect();
        let message = message.join("; ");
        Located {
            line: line_of(text, offset),
            field: toml_field(text, offset, &message),
            problem: DeclaredProblem::Toml(message),
        }
    }

    fn in_file(self, file: &str) -> DeclaredError {
        DeclaredError {
            file: file.to_owned(),
            line: self.line,
            field: self.field,
            problem: self.problem,
        }
    }
}

fn validate_os(
    text: &str,
    raw: RawOs,
    seen: &mut BTreeMap<String, usize>,
) -> Result<DeclaredOs, Located> {
    let name = checked_name(text, &raw.name, "os.name")?;
    if BUILT_IN_NAMES.contains(&name.as_str()) {
        let problem = DeclaredProblem::BuiltInName(name);
        return Err(Located::at(text, &raw.name, "os.name", problem));
    }
    let line = line_of(text, raw.name.span().start);
    if let Some(&first_line) = seen.get(&name) {
        let problem = DeclaredProblem::DuplicateOs { name, first_line };
        return Err(Located::at(text, &raw.name, "os.name", problem));
    }
    seen.insert(name.clone(), line);
    let title = non_empty(text, &raw.title, "os.title")?;
    let releases = validate_releases(text, &raw)?;
    Ok(DeclaredOs {
        name,
        title,
        default_release: default_release(text, &raw, &releases)?,
        license_key_pattern: pattern(text, &raw)?,
        releases,
    })
}

fn validate_releases(text: &str, os: &RawOs) -> Result<Vec<DeclaredRelease>, Located> {
    if os.release.is_empty() {
        return Err(Located::at(
            text,
            &os.name,
            "os.release",
            DeclaredProblem::NoReleases,
        ));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut releases = Vec::new();
    for raw in &os.release {
        let name = checked_name(text, &raw.name, "os.release.name")?;
        if let Some(&first_line) = seen.get(&name) {
            let problem = DeclaredProblem::DuplicateRelease { name, first_line };
            return Err(Located::at(text, &raw.name, "os.release.name", problem));
        }
        seen.insert(name.clone(), line_of(text, raw.name.span().start));
        releases.push(DeclaredRelease {
            name,
            title: non_empty(text, &raw.title, "os.release.title")?,
            requires_license_key: raw.requires_license_key.unwrap_or(os.requires_license_key),
            can_commission: raw.commissioning.unwrap_or(os.commissioning),
        });
    }
    Ok(releases)
}

fn default_release(
    text: &str,
    os: &RawOs,
    releases: &[DeclaredRelease],
) -> Result<Option<String>, Located> {
    let Some(default) = &os.default_release else {
        return Ok(None);
    };
    let name = default.get_ref();
    if releases.iter().any(|release| &release.name == name) {
        return Ok(Some(name.clone()));
    }
    let problem = DeclaredProblem::UnknownDefaultRelease(name.clone());
    Err(Located::at(text, default, "os.default_release", problem))
}

fn pattern(text: &str, os: &RawOs) -> Result<Option<LicenseKeyPattern>, Located> {
    let Some(source) = &os.license_key_pattern else {
        return Ok(None);
    };
    LicenseKeyPattern::new(source.get_ref())
        .map(Some)
        .map_err(|error| {
            let problem = DeclaredProblem::BadPattern(last_line(&error.to_string()));
            Located::at(text, source, "os.license_key_pattern", problem)
        })
}

fn checked_name(text: &str, name: &Spanned<String>, field: &str) -> Result<String, Located> {
    let value = non_empty(text, name, field)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if value.chars().all(allowed) {
        return Ok(value);
    }
    Err(Located::at(
        text,
        name,
        field,
        DeclaredProblem::BadName(value),
    ))
}

fn non_empty(text: &str, value: &Spanned<String>, field: &str) -> Result<String, Located> {
    if value.get_ref().trim().is_empty() {
        return Err(Located::at(text, value, field, DeclaredProblem::Empty));
    }
    Ok(value.get_ref().clone())
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key path a TOML error is about: the table header in force at `offset`, plus the
/// key named in the message (`missing field `x``) or written on the error's line.
fn toml_field(text: &str, offset: usize, message: &str) -> String {
    let before = text.get(..offset).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..).unwrap_or_default();
    let key = quoted_field(message).or_else(|| key_on_line(line));
    let section = section_before(text, offset);
    match (section, key) {
        (Some(section), Some(key)) => format!("{section}.{key}"),
        (Some(section), None) => section,
        (None, Some(key)) => key,
        (None, None) => "(document)".to_owned(),
    }
}

fn quoted_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_owned)
}

fn key_on_line(line: &str) -> Option<String> {
    let line = line.lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_owned())
}

fn section_before(text: &str, offset: usize) -> Option<String> {
    let after = text.get(offset..).unwrap_or_default();
    let end = after.find('\n').map_or(text.len(), |i| offset + i);
    text.get(..end)?
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .map(|header| {
            header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned()
        })
}

fn last_line(text: &str) -> String {
    text.lines().last().unwrap_or_default().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACME: &str = r#"
[[os]]
name = "acme-linux"
title = "ACME Linux"
default_release = "a2"
requires_license_key = true
license_key_pattern = "[A-Z]{4}-[0-9]{4}"
[[os.release]]
name = "a1"
title = "ACME 1"
commissioning = true
[[os.release]]
name = "a2"
title = "ACME 2"
requires_license_key = false
"#;

    fn error(text: &str) -> String {
        match parse_declared("acme.toml", text) {
            Ok(parsed) => panic!("expected an error, parsed {parsed:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_valid_file_parses_with_defaults_applied() {
        let parsed = parse_declared("acme.toml", ACME);
        let expected = vec![DeclaredOs {
            name: "acme-linux".into(),
            title: "ACME Linux".into(),
            default_release: Some("a2".into()),
            license_key_pattern: LicenseKeyPattern::new("[A-Z]{4}-[0-9]{4}").ok(),
            releases: vec![
                DeclaredRelease {
                    name: "a1".into(),
                    title: "ACME 1".into(),
                    requires_license_key: true,
                    can_commission: true,
                },
                DeclaredRelease {
                    name: "a2".into(),
                    title: "ACME 2".into(),
                    requires_license_key: false,
                    can_commission: false,
                },
            ],
        }];
        assert_eq!(parsed, Ok(expected));
    }

    #[test]
    fn error_locating_never_panics_on_odd_offsets() {
        let text = "[[os]]\nnäme = 1\n";
        for offset in 0..text.len() + 3 {
            let field = toml_field(text, offset, "invalid");
            assert!(!field.is_empty());
        }
        assert_eq!(toml_field(text, 8, "invalid"), "os.näme");
    }

    #[test]
    fn an_empty_file_declares_nothing() {
        assert_eq!(parse_declared("empty.toml", ""), Ok(vec![]));
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let table: &[(&str, &str, &str)] = &[
            (ACME, "a2\"\ntitle = \"ACME 2\"", "acme.toml:13: os.release.name: release `a1` is already declared on line 9"),
            (ACME, "name = \"acme-linux\"", "acme.toml:3: os.name: must not be empty"),
            (ACME, "title = \"ACME Linux\"", "acme.toml:4: os.title: must not be empty"),
            (ACME, "title = \"ACME 1\"", "acme.toml:10: os.release.title: must not be empty"),
            (ACME, "default_release = \"a2\"", "acme.toml:5: os.default_release: `a9` is not one of the declared releases"),
            (ACME, "[A-Z]{4}-[0-9]{4}", "acme.toml:7: os.license_key_pattern: invalid regular expression: error: unclosed group"),
            (ACME, "name = \"acme-linux\"", "acme.toml:3: os.name: `centos` is a built-in operating system and cannot be declared"),
            (ACME, "name = \"acme-linux\"", "acme.toml:3: os.name: `acme linux` may hold only ASCII letters, digits, `.`, `_` and `-`"),
            (ACME, "commissioning = true", "acme.toml:11: os.release.commissioning: invalid type: string \"yes\", expected a boolean"),
            (ACME, "commissioning = true", "acme.toml:11: os.release.comissioning: unknown field `comissioning`, expected one of `name`, `title`, `requires_license_key`, `commissioning`"),
            (ACME, "title = \"ACME Linux\"\n", "acme.toml:2: os.title: missing field `title`"),
            (ACME, "requires_license_key = true", "acme.toml:6: os.requires_license_key: invalid string; expected `\"`, `'`"),
        ];
        let replacements = [
            "a1\"\ntitle = \"ACME 2\"",
            "name = \"\"",
            "title = \" \"",
            "title = \"\"",
            "default_release = \"a9\"",
            "([A-Z]{4}",
            "name = \"centos\"",
            "name = \"acme linux\"",
            "commissioning = \"yes\"",
            "comissioning = true",
            "",
            "requires_license_key = = true",
        ];
        for ((text, find, expected), replace) in table.iter().zip(replacements) {
            let broken = text.replacen(find, replace, 1);
            assert_eq!(error(&broken), *expected, "{broken}");
        }
    }

    #[test]
    fn duplicate_oses_and_missing_releases_are_refused() {
        let twice = format!("{ACME}{ACME}");
        assert_eq!(
            error(&twice),
            "acme.toml:18: os.name: operating system `acme-linux` is already declared on line 3"
        );
        let bare = "[[os]]\nname = \"bare\"\ntitle = \"Bare\"\n";
        assert_eq!(
            error(bare),
            "acme.toml:2: os.release: no release is declared"
        );
    }

    #[test]
    fn license_keys_follow_the_declared_pattern() {
        let os = parse_declared("acme.toml", ACME)
            .ok()
            .and_then(|mut v| v.pop());
        let Some(os) = os else { panic!("ACME parses") };
        assert_eq!(os.validate_license_key("a1", "ABCD-1234"), Ok(()));
        let mismatch = LicenseKeyError::PatternMismatch {
            pattern: "[A-Z]{4}-[0-9]{4}".into(),
        };
        assert_eq!(
            os.validate_license_key("a1", "ABCD-1234x"),
            Err(mismatch.clone())
        );
        assert_eq!(os.validate_license_key("a1", "xABCD-1234"), Err(mismatch));
        assert_eq!(
            os.validate_license_key("a1", ""),
            Err(LicenseKeyError::Empty)
        );
        assert!(os.requires_license_key("a1"));
        assert!(!os.requires_license_key("a2"));
    }

    #[test]
    fn without_a_pattern_only_key_releases_accept_keys() {
        let text = ACME.replace("license_key_pattern = \"[A-Z]{4}-[0-9]{4}\"\n", "");
        let os = parse_declared("acme.toml", &text)
            .ok()
            .and_then(|mut v| v.pop());
        let Some(os) = os else {
            panic!("ACME without pattern parses")
        };
        assert_eq!(os.validate_license_key("a1", "anything"), Ok(()));
        assert_eq!(
            os.validate_license_key("a2", "anything"),
            Err(LicenseKeyError::NotUsed)
        );
    }

    #[test]
    fn commissioning_follows_the_release_and_strips_image_purposes() {
        let os = parse_declared("acme.toml", ACME)
            .ok()
            .and_then(|mut v| v.pop());
        let Some(os) = os else { panic!("ACME parses") };
        let image = crate::os::tests::image_with("acme-linux/amd64/a2", &Purpose::ALL);
        assert!(!os.purposes(&image).contains(&Purpose::Commissioning));
        let releases = os.releases(&[]);
        assert_eq!(
            os.default_commissioning_release(&releases).as_deref(),
            Some("a1")
        );
    }
}
