//! Length and character rules for every field the region stores from outside (the API and
//! cluster reports), each in one place. A value that breaks its rule is refused with a message
//! naming the field and the rule, never stored as given (before: a 1 MiB `system_id`, NUL and
//! U+202E in node fields were stored).
//!
//! Each rule's length is in bytes of UTF-8; each says why that value.

use std::fmt;

/// Which characters a field may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// ASCII letters, digits, `-`, `_` and `.`: names that appear in paths, template names
    /// and log lines.
    Word,
    /// Lowercase ASCII letters, digits, `-`, `_` and `.`: identities that are compared byte
    /// for byte, logged and used as certificate names, where case would make two of one.
    Identifier,
    /// Printable text on one line: no control characters (NUL, newline, escape) and no
    /// bidirectional-override or invisible formatting characters (U+202E and its kin), which
    /// would make a stored value read differently from what it is.
    Line,
    /// Printable text over many lines: `Line` plus newline, carriage return and tab
    /// (template bodies).
    Text,
}

/// One field's rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldRule {
    /// The field's name as the API and errors call it.
    pub name: &'static str,
    /// Longest value, in bytes.
    pub max_len: usize,
    /// Whether the empty string is a value.
    pub may_be_empty: bool,
    pub charset: Charset,
}

/// A value refused by its rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// A node's `system_id`: MAAS ids are 6 characters; 64 leaves room for other inventories'
/// ids (UUIDs are 36) without letting the field carry a payload.
pub const SYSTEM_ID: FieldRule = FieldRule {
    name: "system_id",
    max_len: 64,
    may_be_empty: false,
    charset: Charset::Word,
};

/// A power driver's name (`ipmi`, `redfish`, `manual`…).
pub const POWER_TYPE: FieldRule = FieldRule {
    name: "power_type",
    max_len: 64,
    may_be_empty: false,
    charset: Charset::Word,
};

/// A key of a node's power parameters (`power_address`, `power_user`…).
pub const POWER_PARAMETER_KEY: FieldRule = FieldRule {
    name: "power_parameters key",
    max_len: 64,
    may_be_empty: false,
    charset: Charset::Word,
};

/// A string value of a node's power parameters: addresses, user names, passwords. 1 KiB
/// holds any URL or certificate fingerprint an operator types.
pub const POWER_PARAMETER_VALUE: FieldRule = FieldRule {
    name: "power_parameters value",
    max_len: 1024,
    may_be_empty: true,
    charset: Charset::Line,
};

/// Keys in one node's power parameters: every driver MAAS knows uses fewer than 20.
pub const MAX_POWER_PARAMETERS: usize = 32;

/// A cluster's display name, as it registers.
pub const CLUSTER_NAME: FieldRule = FieldRule {
    name: "cluster name",
    max_len: 255,
    may_be_empty: false,
    charset: Charset::Line,
};

/// A cluster's identity: what it authenticates as, the name its certificate carries, and the
/// key of everything the region holds for it. Checked before it is logged, stored or echoed
/// (before: a 1 MB identity was logged twice at WARN per attempt). 64 bytes hold any host or
/// rack name; lowercase only, so `Cluster-A` and `cluster-a` cannot be two clusters.
pub const CLUSTER_ID: FieldRule = FieldRule {
    name: "cluster id",
    max_len: 64,
    may_be_empty: false,
    charset: Charset::Identifier,
};

/// A name a cluster reports for an operating system, release, architecture, sub-architecture
/// or image label. They become paths, template-name parts and log fields; the longest real one
/// (`ubuntu-core-22-desktop`-like names) is far under 64 bytes.
pub const REPORTED_NAME: FieldRule = FieldRule {
    name: "reported name",
    max_len: 64,
    may_be_empty: false,
    charset: Charset::Word,
};

/// A title a cluster reports for an operating system or release (`Ubuntu 22.04 LTS "Jammy
/// Jellyfish"`): shown on pages and in answers, so one printable line of at most 255 bytes.
pub const REPORTED_TITLE: FieldRule = FieldRule {
    name: "reported title",
    max_len: 255,
    may_be_empty: true,
    charset: Charset::Line,
};

/// A preseed template's name: `{type}_{os}_{arch}_{subarch}_{release}_{hostname}` at most,
/// whose hostname alone may be 253 bytes; 512 covers the lot.
pub const PRESEED_NAME: FieldRule = FieldRule {
    name: "preseed name",
    max_len: 512,
    may_be_empty: false,
    charset: Charset::Word,
};

/// One preseed version's content (256 KiB). Real preseeds and curtin user-data are a few
/// KiB; every version is kept forever (versions are immutable), so this bounds how fast
/// edits can grow the database (before: 50 edits of 1 MB added 50 MB in 0.7 s).
pub const PRESEED_CONTENT: FieldRule = FieldRule {
    name: "preseed content",
    max_len: 256 * 1024,
    may_be_empty: true,
    charset: Charset::Text,
};

impl FieldRule {
    /// `Ok` if `value` fits the rule, else an error naming the field and what is wrong.
    pub fn check(&self, value: &str) -> Result<(), FieldError> {
        let refuse = |message: String| {
            Err(FieldError {
                field: self.name,
                message,
            })
        };
        if value.is_empty() && !self.may_be_empty {
            return refuse("must not be empty".into());
        }
        if value.len() > self.max_len {
            return refuse(format!(
                "{} bytes, at most {} allowed",
                value.len(),
                self.max_len
            ));
        }
        match value.chars().find(|c| !self.allows(*c)) {
            Some(c) => refuse(format!(
                "character U+{:04X} is not allowed ({})",
                u32::from(c),
                self.charset.describe()
            )),
            None => Ok(()),
        }
    }

    fn allows(&self, c: char) -> bool {
        match self.charset {
            Charset::Word => c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
            Charset::Identifier => {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            }
            Charset::Line => printable(c),
            Charset::Text => printable(c) || matches!(c, '\n' | '\r' | '\t'),
        }
    }
}

impl Charset {
    fn describe(self) -> &'static str {
        match self {
            Charset::Word => "letters, digits, '-', '_' and '.' only",
            Charset::Identifier => "lowercase letters, digits, '-', '_' and '.' only",
            Charset::Line => "printable text on one line only",
            Charset::Text => "printable text, newlines and tabs only",
        }
    }
}

/// Not a control character, and not a bidirectional or invisible formatting character.
fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(c,
            '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{FEFF}' // zero-width no-break space
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rule: FieldRule, value: &str, ok: bool) {
        assert_eq!(rule.check(value).is_ok(), ok, "{} {value:?}", rule.name);
    }

    #[test]
    fn rules_refuse_long_values_and_hostile_characters() {
        check(SYSTEM_ID, "abc123", true);
        check(SYSTEM_ID, "", false);
        check(SYSTEM_ID, &"a".repeat(65), false);
        check(SYSTEM_ID, &"a".repeat(1 << 20), false);
        check(SYSTEM_ID, "a\0b", false);
        check(SYSTEM_ID, "a b", false);
        check(POWER_PARAMETER_VALUE, "https://10.0.0.1:443/redfish", true);
        check(POWER_PARAMETER_VALUE, "", true);
        check(POWER_PARAMETER_VALUE, "admin\u{202E}nimda", false);
        check(POWER_PARAMETER_VALUE, "two\nlines", false);
        check(PRESEED_CONTENT, "#cloud-config\n\tpackages: []\n", true);
        check(PRESEED_CONTENT, "nul\0", false);
        check(CLUSTER_NAME, "Rack 7 — east", true);
        check(CLUSTER_ID, "cluster-a", true);
        check(CLUSTER_ID, "rack7.east_2", true);
        check(CLUSTER_ID, "", false);
        check(CLUSTER_ID, "Cluster-A", false);
        check(CLUSTER_ID, "evil\u{1b}[2J\nforged", false);
        check(CLUSTER_ID, &"a".repeat(65), false);
        check(CLUSTER_ID, &"a".repeat(1 << 20), false);
        check(REPORTED_NAME, "ml-workstation", true);
        check(REPORTED_NAME, "jammy\n", false);
        check(REPORTED_NAME, &"x".repeat(65), false);
    }

    #[test]
    fn errors_name_the_field_and_the_rule() {
        let err = SYSTEM_ID.check(&"x".repeat(100)).unwrap_err();
        assert_eq!(err.to_string(), "system_id: 100 bytes, at most 64 allowed");
        let err = POWER_PARAMETER_VALUE.check("a\u{202E}").unwrap_err();
        assert!(err.to_string().contains("U+202E"), "{err}");
    }
}
