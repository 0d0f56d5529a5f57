//! Why a license key was refused. Reasons never contain the key itself, so they can be
//! logged and sent to the region without leaking it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a driver refused a license key.
#[derive(Error, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LicenseKeyError {
    #[error("the key is empty")]
    Empty,
    #[error("this release takes no license key")]
    NotUsed,
    #[error("expected {expected} dash-separated groups, found {found}")]
    WrongGroupCount { expected: usize, found: usize },
    #[error("group {group} has {length} characters, expected {expected}")]
    WrongGroupLength {
        group: usize,
        length: usize,
        expected: usize,
    },
    #[error("group {group} holds a character that is not an ASCII letter or digit")]
    NotAlphanumeric { group: usize },
    #[error("the key does not match the pattern `{pattern}`")]
    PatternMismatch { pattern: String },
}
