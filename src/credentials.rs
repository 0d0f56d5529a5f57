//! Where the CLI finds its API token: `OSMESH_TOKEN`, else the credentials file that
//! `osmesh login` (and `osmesh demo`) write, one token per API URL.
//!
//! The file is `$OSMESH_CREDENTIALS`, else `$XDG_CONFIG_HOME/osmesh/credentials.json`, else
//! `~/.config/osmesh/credentials.json`. It is created mode 0600 in a 0700 directory, replaced
//! atomically, and refused when group or others may read it.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The token for `api`: `OSMESH_TOKEN` if set, else the saved one, else none.
pub fn token_for(api: &str) -> Result<Option<Zeroizing<String>>> {
    if let Ok(token) = std::env::var("OSMESH_TOKEN") {
        if !token.trim().is_empty() {
            return Ok(Some(Zeroizing::new(token.trim().to_owned())));
        }
    }
    let Some(path) = path() else {
        return Ok(None);
    };
    let saved = read(&path)?;
    Ok(saved.get(&key(api)).cloned())
}

/// Saves `token` for `api`, replacing any token saved for it; the file's path.
pub fn save(api: &str, token: &str) -> Result<PathBuf> {
    let path =
        path().context("no credentials file: set HOME, XDG_CONFIG_HOME or OSMESH_CREDENTIALS")?;
    let mut saved = read(&path)?;
    saved.insert(key(api), Zeroizing::new(token.to_owned()));
    write(&path, &saved)?;
    Ok(path)
}

/// The credentials file's path.
pub fn path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("OSMESH_CREDENTIALS") {
        return Some(PathBuf::from(path));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("osmesh").join("credentials.json"))
}

fn key(api: &str) -> String {
    api.trim_end_matches('/').to_owned()
}

/// API URL to token; each token is zeroed when dropped.
type Saved = BTreeMap<String, Zeroizing<String>>;

fn read(path: &Path) -> Result<Saved> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if metadata.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} may be read by group or others (mode {:o}); run chmod 600 on it",
            path.display(),
            metadata.permissions().mode() & 0o777
        );
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let map: BTreeMap<String, String> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a JSON object of API URL to token",
            path.display()
        )
    })?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, Zeroizing::new(v)))
        .collect())
}

/// Writes a new file beside the old one (created 0600, never through an existing file) and
/// renames it over.
fn write(path: &Path, saved: &Saved) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let temp = dir.join(format!(".credentials.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let plain: BTreeMap<&str, &str> = saved
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let text = Zeroizing::new(serde_json::to_string_pretty(&plain)?);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_tokens_are_private_and_per_api() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("credentials.json");
        let mut saved = BTreeMap::new();
        saved.insert(key("http://a:1/"), Zeroizing::new("t1".to_owned()));
        write(&path, &saved).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(
            read(&path).unwrap().get("http://a:1").unwrap().as_str(),
            "t1"
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
