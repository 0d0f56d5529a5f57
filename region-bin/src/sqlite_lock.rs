//! SQLite is single-region. Two `regiond`s on one SQLite file would each keep their own links
//! and caches while sharing rows, and SQLite has no way to arbitrate them across hosts; so a
//! region on SQLite holds an exclusive OS lock (`flock`) on a file beside the database for
//! its whole life, and a second one refuses to start, naming the holder. Several regions need
//! PostgreSQL. The lock dies with the process (kill -9 included), so it never goes stale.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name beside the database: `<database>.regiond-lock`.
pub const LOCK_SUFFIX: &str = "regiond-lock";

/// A held lock on a SQLite database; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct SqliteLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the single-region lock of the SQLite database `database_url` names, or refuses with
/// a message naming the lock file, the holder's pid and the way out. `None` for PostgreSQL
/// and in-memory SQLite, which need no lock.
pub fn lock_sqlite(database_url: &str) -> Result<Option<SqliteLock>> {
    let Some(db) = osmesh_store::sqlite_file(database_url)? else {
        return Ok(None);
    };
    let path = lock_path(&db);
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the SQLite lock file {}", path.display()))?;
    // Called through the trait: std's own `File::try_lock` is newer than our MSRV.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            anyhow::bail!(
                "another regiond{holder} is already using the SQLite database {}: SQLite is \
                 single-region, so a second region on the same file is refused (lock {} held). \
                 To run several regions, give them one PostgreSQL database \
                 (--database-url postgres://…)",
                db.display(),
                path.display()
            );
        }
        Err(fs4::TryLockError::Error(err)) => {
            return Err(err)
                .with_context(|| format!("cannot lock the SQLite lock file {}", path.display()))
        }
    }
    // Whoever is refused next reads who holds it.
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("cannot write the SQLite lock file {}", path.display()))?;
    Ok(Some(SqliteLock { _file: file, path }))
}

/// `<database>.regiond-lock`, beside the database file in its (resolved) directory, so two
/// spellings of one path (relative, through a symlinked directory) lock one file.
fn lock_path(db: &Path) -> PathBuf {
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".into());
    dir.join(format!("{name}.{LOCK_SUFFIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_file_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("region.db").display());
        let first = lock_sqlite(&url).unwrap().expect("a lock for a file");
        let refused = lock_sqlite(&url).unwrap_err().to_string();
        assert!(refused.contains("single-region"), "{refused}");
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        assert!(lock_sqlite(&url).unwrap().is_some());
    }

    #[test]
    fn postgres_and_memory_databases_need_no_lock() {
        assert!(lock_sqlite("postgres://u@h/db").unwrap().is_none());
        assert!(lock_sqlite(":memory:").unwrap().is_none());
    }
}
