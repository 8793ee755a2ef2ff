//! What the Redis store shows of the books: nothing readable. Values are
//! sealed with XChaCha20-Poly1305 under a key derived with HKDF-SHA256 from
//! the cluster secret, the object's Redis key as associated data (so a value
//! moved to another key does not open); keys are keyed hashes of the ids.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cluster secret: 32 bytes, given as 64 hex characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl Secret {
    /// Parses 64 hex characters; the error never repeats the input.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let mut bytes = [0u8; 32];
        if text.len() != 64 || hex::decode_to_slice(text, &mut bytes).is_err() {
            return Err(format!(
                "must be 64 hex characters (32 bytes), got {} characters; `theia secret generate` prints a new one",
                text.chars().count()
            ));
        }
        Ok(Self(bytes))
    }

    /// A new random secret.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// As 64 hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the value does not open with this cluster secret (wrong secret, or the value was altered or moved)"
)]
pub struct Unsealable;

const NONCE_LEN: usize = 24;

/// Seals and opens values and hashes ids, all under one cluster secret.
pub struct Sealer {
    aead: XChaCha20Poly1305,
    key_hash: Hmac<Sha256>,
}

impl Sealer {
    /// Derives the value key and the key-hashing key from `secret`.
    pub fn new(secret: &Secret) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"theia cluster v1"), &secret.0);
        let mut value_key = [0u8; 32];
        let mut hash_key = [0u8; 32];
        hk.expand(b"theia value key", &mut value_key)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        hk.expand(b"theia key hash", &mut hash_key)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        Self {
            aead: XChaCha20Poly1305::new((&value_key).into()),
            key_hash: <Hmac<Sha256> as Mac>::new_from_slice(&hash_key).expect("HMAC takes any key"),
        }
    }

    /// `nonce ‖ ciphertext` of `plaintext`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any length that fits in memory");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of a value sealed under `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Unsealable> {
        if sealed.len() < NONCE_LEN {
            return Err(Unsealable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.aead
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| Unsealable)
    }

    /// A keyed hash of `id`: 32 hex characters that say nothing about it.
    pub fn hash(&self, id: &str) -> String {
        let mut mac = self.key_hash.clone();
        mac.update(id.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(byte: u8) -> Sealer {
        Sealer::new(&Secret::from_hex(&format!("{byte:02x}").repeat(32)).unwrap())
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_secret_and_its_key() {
        let s = sealer(1);
        let sealed = s.seal(b"theia:o:abc", b"tenant acme, 64 vCPU");
        assert!(
            !sealed.windows(4).any(|w| w == b"acme"),
            "nothing in the clear"
        );
        assert_eq!(
            s.open(b"theia:o:abc", &sealed).unwrap(),
            b"tenant acme, 64 vCPU"
        );
        assert_eq!(
            s.open(b"theia:o:abd", &sealed),
            Err(Unsealable),
            "moved to another key"
        );
        assert_eq!(
            sealer(2).open(b"theia:o:abc", &sealed),
            Err(Unsealable),
            "another secret"
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(s.open(b"theia:o:abc", &altered), Err(Unsealable), "altered");
        assert_eq!(s.open(b"theia:o:abc", b"short"), Err(Unsealable));
        assert_ne!(
            s.seal(b"k", b"same"),
            s.seal(b"k", b"same"),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn ids_hash_to_keys_that_depend_on_the_secret() {
        let (a, b) = (sealer(1), sealer(2));
        let h = a.hash("tenant/acme");
        assert_eq!(h.len(), 32);
        assert!(!h.contains("acme"));
        assert_eq!(h, a.hash("tenant/acme"), "stable");
        assert_ne!(h, a.hash("tenant/acme2"));
        assert_ne!(h, b.hash("tenant/acme"), "another cluster, other keys");
    }

    #[test]
    fn a_secret_is_64_hex_characters_and_never_printed() {
        let s = Secret::generate();
        assert_eq!(Secret::from_hex(&s.to_hex()).unwrap(), s);
        assert_eq!(format!("{s:?}"), "Secret(redacted)");
        let err = Secret::from_hex("deadbeef").unwrap_err();
        assert!(
            err.contains("64 hex characters") && !err.contains("deadbeef"),
            "{err}"
        );
        assert!(Secret::from_hex(&"zz".repeat(32)).is_err());
        assert_ne!(Secret::generate(), Secret::generate());
    }
}
