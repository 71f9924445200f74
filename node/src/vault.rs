//! Per-record data keys, so that purging a record is deleting one key: crypto-shredding.
//!
//! Every referral this node receives gets a fresh 256-bit key. Its body, any forward made from
//! it, and the outbox copy of that forward are sealed under that key with AES-256-GCM before
//! they reach the database. Purging deletes the key; whatever ciphertext is left anywhere (a
//! free page, a backup of the file) can no longer be read.
//!
//! Invariant: a sealed value is bound to its context (the table and row it belongs to) through
//! the associated data, so a ciphertext moved to another row fails to open instead of being
//! read as that row's content.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The length of a data key, in bytes.
pub const KEY_LEN: usize = 32;

/// A sealing failure. Deliberately without detail: AEAD failures carry none worth logging.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The system's random source failed.
    #[error("no randomness available for a data key or nonce")]
    Random,
    /// The key has the wrong length.
    #[error("a data key must be {KEY_LEN} bytes")]
    KeyLength,
    /// The ciphertext was changed, moved to another row, or sealed under another key.
    #[error("a sealed value failed authentication")]
    Unauthentic,
}

/// A fresh random data key.
pub fn new_key() -> Result<Vec<u8>, VaultError> {
    let mut key = vec![0u8; KEY_LEN];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| VaultError::Random)?;
    Ok(key)
}

fn aead_key(key: &[u8]) -> Result<LessSafeKey, VaultError> {
    let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| VaultError::KeyLength)?;
    Ok(LessSafeKey::new(unbound))
}

/// Seals `plaintext` for `context`: a random nonce, then the ciphertext and its tag.
///
/// Random nonces are safe here because a key seals a handful of values (one record and its
/// forwards), far below the 2^32 messages where 96-bit random nonces start to risk a repeat.
pub fn seal(key: &[u8], context: &str, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
    let key = aead_key(key)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| VaultError::Random)?;
    let mut sealed = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(context.as_bytes()),
        &mut sealed,
    )
    .map_err(|_| VaultError::Unauthentic)?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal`] produced for the same key and context.
pub fn open(key: &[u8], context: &str, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
    let key = aead_key(key)?;
    let (nonce, ciphertext) = sealed
        .split_at_checked(NONCE_LEN)
        .ok_or(VaultError::Unauthentic)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| VaultError::Unauthentic)?;
    let mut buffer = ciphertext.to_vec();
    let plaintext = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut buffer,
        )
        .map_err(|_| VaultError::Unauthentic)?;
    Ok(plaintext.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = new_key().unwrap();
        let sealed = seal(&key, "referrals:1", b"CANARY narrative").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"CANARY"));
        assert_eq!(
            open(&key, "referrals:1", &sealed).unwrap(),
            b"CANARY narrative"
        );
        let other = new_key().unwrap();
        assert!(matches!(
            open(&other, "referrals:1", &sealed),
            Err(VaultError::Unauthentic)
        ));
        assert!(matches!(
            open(&key, "referrals:2", &sealed),
            Err(VaultError::Unauthentic)
        ));
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(open(&key, "referrals:1", &tampered).is_err());
        assert!(open(&key, "referrals:1", &sealed[..5]).is_err());
    }

    #[test]
    fn keys_are_fresh() {
        assert_ne!(new_key().unwrap(), new_key().unwrap());
        assert!(matches!(
            seal(&[0; 16], "x", b"y"),
            Err(VaultError::KeyLength)
        ));
    }
}
