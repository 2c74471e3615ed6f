//! The server's join token for agents, in k3s's format: `K10<hex sha256 of the CA bundle as served at /cacerts>::server:<password>`, created once under the data dir.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use sha2::Digest as _;

/// The file under the data dir holding the token.
pub const TOKEN_FILE: &str = "token";

/// `K10<hex sha256 of ca_bundle>::server:<password>`.
pub fn format_token(ca_bundle: &str, password: &str) -> String {
    let digest = sha2::Sha256::digest(ca_bundle.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("K10{hex}::server:{password}")
}

/// The server token under `data_dir`: the stored one, or a new one (0600) with a random
/// password. A stored token whose CA hash no longer matches keeps its password.
pub fn ensure_token(data_dir: &Path, ca_bundle: &str) -> std::io::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    let password = match std::fs::read_to_string(&path) {
        Ok(existing) => {
            let existing = existing.trim().to_string();
            if existing == format_token(ca_bundle, password_of(&existing)) {
                return Ok(existing);
            }
            password_of(&existing).to_string()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes: [u8; 16] = rand::random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
        Err(e) => return Err(e),
    };
    let token = format_token(ca_bundle, &password);
    let tmp = data_dir.join(format!("{TOKEN_FILE}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(token)
}

fn password_of(token: &str) -> &str {
    token.rsplit_once("::server:").map_or(token, |(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_names_the_ca_hash_and_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let token = ensure_token(dir.path(), "CA").unwrap();
        let hash = "4b650e5c4785025dee7bd65e3c5c527356717d7a1c0bfef5b4ada8ca1e9cbe17";
        assert!(token.starts_with(&format!("K10{hash}::server:")), "{token}");
        assert_eq!(password_of(&token).len(), 32);
        assert_eq!(ensure_token(dir.path(), "CA").unwrap(), token);
        let rotated = ensure_token(dir.path(), "CA2").unwrap();
        assert_eq!(password_of(&rotated), password_of(&token));
        assert_ne!(rotated, token);
    }
}
