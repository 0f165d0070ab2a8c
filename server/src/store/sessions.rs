//! Sign-in sessions. The cookie holds a random token; the table holds its
//! SHA-256, the user, the CSRF token and when it was last used.

use sha2::{Digest, Sha256};

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub csrf: String,
}

pub(super) fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
