//! Browser sessions: a login with an API token gives a random session id in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` under HTTPS) and a CSRF token the page sends back in
//! [`CSRF_HEADER`] on every write.
//!
//! The session keeps the token's hash, never the token: every request through a session looks
//! the token up again (`auth::authenticate`), so a revoked or expired token ends its sessions
//! on the next request, and the session carries exactly the token's role. Sessions live in
//! memory (a restart logs everyone out), keyed by the SHA-256 of their id, bounded in number,
//! and end after [`IDLE_TIMEOUT_MS`] without a request or [`MAX_AGE_MS`] after login.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// The session cookie's name.
pub const COOKIE: &str = "osmesh_session";

/// The header carrying the session's CSRF token on every write.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A session ends this long after its last request (30 minutes).
pub const IDLE_TIMEOUT_MS: i64 = 30 * 60 * 1000;

/// A session ends this long after its login, however busy (8 hours: a working day).
pub const MAX_AGE_MS: i64 = 8 * 60 * 60 * 1000;

/// At most this many sessions at once; a login beyond it (after dropping ended ones) is
/// refused. Each holds ~200 bytes.
pub const MAX_SESSIONS: usize = 10_000;

/// Random bytes in a session id and in a CSRF token: 256 bits each.
const RANDOM_BYTES: usize = 32;

/// One logged-in browser.
#[derive(Clone)]
struct Session {
    token_hash: String,
    csrf: String,
    created_ms: i64,
    last_seen_ms: i64,
}

/// What a request's session cookie stands for.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionAuth {
    /// The hash of the token the session logged in with.
    pub token_hash: String,
    /// The CSRF token a write must carry.
    pub csrf: String,
    /// When the session ends if idle from now on (unix ms).
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for SessionAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAuth")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// A new session's id (for the cookie) and CSRF token. `Debug` masks both.
pub struct NewSession {
    pub id: Zeroizing<String>,
    pub csrf: String,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSession(***)")
    }
}

/// Why a login got no session.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("too many sessions are open; try again later")]
    Full,
}

/// Every open session, shared by the HTTP workers.
pub struct Sessions {
    by_id_hash: Mutex<HashMap<[u8; 32], Session>>,
    idle_ms: i64,
    max_age_ms: i64,
    capacity: usize,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(IDLE_TIMEOUT_MS, MAX_AGE_MS, MAX_SESSIONS)
    }
}

fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = Zeroizing::new([0u8; RANDOM_BYTES]);
    rand::rngs::OsRng.fill_bytes(&mut *bytes);
    hex::encode(*bytes)
}

fn id_hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Equal strings, compared in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(idle_ms: i64, max_age_ms: i64, capacity: usize) -> Sessions {
        Sessions {
            by_id_hash: Mutex::new(HashMap::new()),
            idle_ms,
            max_age_ms,
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // Nothing panics while holding it; a poisoned map is still a valid map.
        self.by_id_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self, session: &Session, now_ms: i64) -> bool {
        now_ms - session.last_seen_ms < self.idle_ms
            && now_ms - session.created_ms < self.max_age_ms
    }

    /// Opens a session for the token whose hash is `token_hash`.
    pub fn create(&self, token_hash: &str, now_ms: i64) -> Result<NewSession, SessionError> {
        let mut map = self.lock();
        if map.len() >= self.capacity {
            map.retain(|_, s| self.live(s, now_ms));
            if map.len() >= self.capacity {
                return Err(SessionError::Full);
            }
        }
        let id = Zeroizing::new(random_hex());
        let csrf = random_hex();
        map.insert(
            id_hash(&id),
            Session {
                token_hash: token_hash.to_owned(),
                csrf: csrf.clone(),
                created_ms: now_ms,
                last_seen_ms: now_ms,
            },
        );
        Ok(NewSession { id, csrf })
    }

    /// The live session `id` names, its idle clock restarted; `None` (and the session
    /// dropped) when it is unknown or has ended.
    pub fn touch(&self, id: &str, now_ms: i64) -> Option<SessionAuth> {
        let key = id_hash(id);
        let mut map = self.lock();
        let session = map.get_mut(&key)?;
        if !self.live(session, now_ms) {
            map.remove(&key);
            return None;
        }
        session.last_seen_ms = now_ms;
        Some(SessionAuth {
            token_hash: session.token_hash.clone(),
            csrf: session.csrf.clone(),
            expires_at_ms: (now_ms + self.idle_ms).min(session.created_ms + self.max_age_ms),
        })
    }

    /// Whether `id` names a live session, without restarting its idle clock.
    pub fn is_live(&self, id: &str, now_ms: i64) -> bool {
        self.lock()
            .get(&id_hash(id))
            .is_some_and(|s| self.live(s, now_ms))
    }

    /// Ends the session `id` names (logout).
    pub fn remove(&self, id: &str) {
        self.lock().remove(&id_hash(id));
    }

    /// Open sessions, ended ones included until they are next pruned.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_when_idle_and_at_its_maximum_age() {
        let sessions = Sessions::new(1_000, 5_000, 10);
        let s = sessions.create("h", 0).unwrap();
        assert_eq!(sessions.touch(&s.id, 999).unwrap().token_hash, "h");
        // Touched at 999: idle until 1,999.
        assert!(sessions.touch(&s.id, 1_998).is_some());
        assert!(sessions.touch(&s.id, 2_998).is_none(), "idle for 1,000 ms");
        assert!(sessions.touch(&s.id, 2_000).is_none(), "dropped once ended");
        let busy = sessions.create("h", 0).unwrap();
        for now in (500..5_000).step_by(500) {
            assert!(sessions.touch(&busy.id, now).is_some(), "{now}");
        }
        assert!(sessions.touch(&busy.id, 5_000).is_none(), "maximum age");
    }

    #[test]
    fn ids_and_csrf_tokens_are_random_and_only_hashes_are_kept() {
        let sessions = Sessions::default();
        let a = sessions.create("h", 0).unwrap();
        let b = sessions.create("h", 0).unwrap();
        assert_ne!(*a.id, *b.id);
        assert_ne!(a.csrf, b.csrf);
        assert_eq!(a.id.len(), 64);
        assert!(sessions.touch("not-a-session", 0).is_none());
        assert!(sessions.lock().keys().all(|k| *k != id_hash("h")));
        assert!(!sessions
            .lock()
            .keys()
            .any(|k| k.as_slice() == a.id.as_bytes()));
        sessions.remove(&a.id);
        assert!(sessions.touch(&a.id, 1).is_none());
        assert!(sessions.touch(&b.id, 1).is_some());
        assert_eq!(format!("{a:?}"), "NewSession(***)");
    }

    #[test]
    fn a_full_table_drops_ended_sessions_then_refuses() {
        let sessions = Sessions::new(1_000, 10_000, 2);
        sessions.create("h", 0).unwrap();
        sessions.create("h", 0).unwrap();
        assert_eq!(sessions.create("h", 10).unwrap_err(), SessionError::Full);
        // Both idle past 1,000 ms: dropped to make room.
        assert!(sessions.create("h", 1_000).is_ok());
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn csrf_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
        assert!(!constant_time_eq("", "a"));
    }
}
