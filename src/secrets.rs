//! Provider credentials sealed at rest: XChaCha20-Poly1305 (the `chacha20poly1305`
//! crate, RustCrypto's audited AEAD) under a 32-byte key from
//! `UNICONTACTS_SECRET_KEY`, or, on the embedded default, from a key file beside
//! the SQLite database that the first start generates (mode 0600).
//!
//! A sealed value reads `enc:v1:<key id>:<base64 of nonce and ciphertext>`. The
//! key id (the first 8 hex digits of the key's SHA-256) tells a wrong key from a
//! damaged row at start-up; the row's own id is the associated data, so a sealed
//! value copied into another row does not open.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;
pub const KEY_LEN: usize = 32;

/// Why a key or a sealed value could not be used. The words are meant for the
/// one line start-up prints; they never carry a key or a plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key must be {KEY_LEN} bytes in base64 (generate one with `unicontacts secrets generate-key`)")]
    BadKey,
    #[error("the key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("the stored credentials are sealed with key {found}, but the secret key given is key {given}: start with the key they were sealed with (or rotate with `unicontacts secrets rotate`)")]
    WrongKey { found: String, given: String },
    #[error("UNICONTACTS_SECRET_KEY is required with PostgreSQL: a base64 key of 32 bytes (generate one with `unicontacts secrets generate-key`)")]
    Missing,
    #[error("stored credentials are damaged or belong to another row")]
    Damaged,
}

/// Seals and opens credentials with one key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    key_id: String,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealer(key {})", self.key_id)
    }
}

fn key_id(key: &[u8]) -> String {
    hex::encode(&Sha256::digest(key)[..4])
}

impl Sealer {
    pub fn from_bytes(key: &[u8]) -> Result<Self, SecretError> {
        if key.len() != KEY_LEN {
            return Err(SecretError::BadKey);
        }
        let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| SecretError::BadKey)?;
        Ok(Self {
            cipher,
            key_id: key_id(key),
        })
    }

    /// A key as written in settings: base64 of 32 bytes (surrounding blanks ignored).
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = B64.decode(text.trim()).map_err(|_| SecretError::BadKey)?;
        Self::from_bytes(&bytes)
    }

    /// A fresh random key, in base64.
    pub fn generate_key() -> String {
        B64.encode(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// The key's id: the first 8 hex digits of its SHA-256.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether `stored` is a sealed value (else it is a plain one from before sealing).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// The key id a sealed value names.
    pub fn sealed_with(stored: &str) -> Option<&str> {
        stored.strip_prefix(PREFIX)?.split(':').next()
    }

    /// `plain` sealed for the row `row_id`.
    pub fn seal(&self, row_id: &str, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: row_id.as_bytes(),
                },
            )
            // Encryption fails only for messages past 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.key_id, B64.encode(out))
    }

    /// The plain text of a value sealed for the row `row_id`.
    pub fn open(&self, row_id: &str, stored: &str) -> Result<String, SecretError> {
        let rest = stored.strip_prefix(PREFIX).ok_or(SecretError::Damaged)?;
        let (kid, data) = rest.split_once(':').ok_or(SecretError::Damaged)?;
        if kid != self.key_id {
            return Err(SecretError::WrongKey {
                found: kid.to_string(),
                given: self.key_id.clone(),
            });
        }
        let bytes = B64.decode(data).map_err(|_| SecretError::Damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Damaged);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: row_id.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Damaged)?;
        String::from_utf8(plain).map_err(|_| SecretError::Damaged)
    }
}

/// The key file of a SQLite database: `<database>.key` beside it.
pub fn key_file_of(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// The key a rotation is writing (`<key file>.new`): it takes the key file's
/// place once the rows are sealed with it.
pub fn pending_file_of(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

fn file_error(path: &Path, message: impl fmt::Display) -> SecretError {
    SecretError::KeyFile {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// The key in `path`, if the file exists.
pub fn read_key_file(path: &Path) -> Result<Option<Sealer>, SecretError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Sealer::from_base64(&text)
            .map(Some)
            .map_err(|_| file_error(path, "does not hold a base64 key of 32 bytes")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_error(path, e)),
    }
}

/// Writes `key` (base64) to `path`, readable by the owner only, created new.
pub fn write_key_file(path: &Path, key: &str) -> Result<(), SecretError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| file_error(path, e))?;
    file.write_all(format!("{key}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_row() {
        let key = Sealer::generate_key();
        let sealer = Sealer::from_base64(&key).expect("key");
        let sealed = sealer.seal("con_1", r#"{"api_key":"pk_live_secret"}"#);
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.contains("pk_live_secret"));
        assert_eq!(Sealer::sealed_with(&sealed), Some(sealer.key_id()));
        assert_eq!(
            sealer.open("con_1", &sealed).as_deref(),
            Ok(r#"{"api_key":"pk_live_secret"}"#)
        );
        assert_eq!(sealer.open("con_2", &sealed), Err(SecretError::Damaged));
        let other = Sealer::from_base64(&Sealer::generate_key()).expect("key");
        assert!(matches!(
            other.open("con_1", &sealed),
            Err(SecretError::WrongKey { .. })
        ));
        // Two seals of one value differ (a fresh nonce each).
        assert_ne!(
            sealed,
            sealer.seal("con_1", r#"{"api_key":"pk_live_secret"}"#)
        );
        let mut damaged = sealed.clone();
        damaged.pop();
        damaged.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(sealer.open("con_1", &damaged), Err(SecretError::Damaged));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(
            Sealer::from_base64("c2hvcnQ=").map(|_| ()),
            Err(SecretError::BadKey)
        );
        assert_eq!(
            Sealer::from_base64("not base64!").map(|_| ()),
            Err(SecretError::BadKey)
        );
        assert!(Sealer::from_base64(&format!(" {} \n", Sealer::generate_key())).is_ok());
    }

    #[test]
    fn the_key_file_is_the_owners_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let path = key_file_of(&dir.path().join("x.db"));
        assert!(read_key_file(&path).expect("read").is_none());
        let key = Sealer::generate_key();
        write_key_file(&path, &key).expect("write");
        assert!(write_key_file(&path, &key).is_err(), "never overwritten");
        let read = read_key_file(&path).expect("read").expect("key");
        assert_eq!(
            read.key_id(),
            Sealer::from_base64(&key).expect("key").key_id()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
