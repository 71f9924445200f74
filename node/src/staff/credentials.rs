//! Staff credentials for the console: generated passwords hashed with argon2id, and TOTP second factors
//! (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, what authenticator apps expect).
//!
//! The admin API issues credentials (`tatmx user add|reset`) and shows them once; the store
//! keeps only the hash and the secret. Sign-in checks both here, and here are the rules for a
//! password its holder chooses in the console.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per TOTP step.
pub const TOTP_STEP: u64 = 30;
/// Digits per TOTP code.
pub const TOTP_DIGITS: usize = 6;
/// Bytes of TOTP secret: 160 bits, as RFC 4226 recommends.
const TOTP_SECRET_BYTES: usize = 20;
/// The characters of a generated password: no 0/O, 1/l/I, so it can be read aloud and typed.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Characters of a generated password: 20 of 32 symbols is 100 bits.
const PASSWORD_CHARS: usize = 20;
/// The fewest characters of a password its holder chooses (NIST SP 800-63B: length counts,
/// composition rules do not, so there are none).
pub const MIN_CHOSEN_PASSWORD_CHARS: usize = 12;
/// The most: long passphrases are welcome, but argon2id is not asked to hash a novel.
pub const MAX_CHOSEN_PASSWORD_CHARS: usize = 256;

/// Credentials could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// argon2 refused its input (it does not for the passwords made here).
    #[error("password hashing: {0}")]
    Hash(String),
    /// The TOTP parameters were refused (a username with ':' is refused earlier).
    #[error("TOTP: {0}")]
    Totp(String),
}

/// Why a password its holder chose was refused. Each message is the sentence the console shows,
/// saying what to do; none repeats what was typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChosenPasswordProblem {
    /// Shorter than [`MIN_CHOSEN_PASSWORD_CHARS`].
    #[error(
        "The new password is too short. Use at least 12 characters; a few unrelated words make a long password that is easy to remember."
    )]
    TooShort,
    /// Longer than [`MAX_CHOSEN_PASSWORD_CHARS`].
    #[error("The new password is too long. Use at most 256 characters.")]
    TooLong,
    /// The two entries of the new password differ.
    #[error(
        "The two entries of the new password are not the same. Type the new password twice, the same both times."
    )]
    Mismatch,
    /// The new password is the username.
    #[error("The new password cannot be your username. Choose another.")]
    SameAsUsername,
    /// The new password is the current one.
    #[error("The new password is the same as the current one. Choose a different one.")]
    SameAsCurrent,
}

/// Checks a password its holder chose, as typed twice, against the rules: 12 to 256
/// characters (counted as characters, not bytes), the two entries equal, and neither the
/// username (in any case) nor the current password. Nothing else: no required digits or
/// symbols.
pub fn check_chosen_password(
    username: &str,
    current: &str,
    new: &str,
    again: &str,
) -> Result<(), ChosenPasswordProblem> {
    let chars = new.chars().count();
    if chars < MIN_CHOSEN_PASSWORD_CHARS {
        Err(ChosenPasswordProblem::TooShort)
    } else if chars > MAX_CHOSEN_PASSWORD_CHARS {
        Err(ChosenPasswordProblem::TooLong)
    } else if new != again {
        Err(ChosenPasswordProblem::Mismatch)
    } else if new.eq_ignore_ascii_case(username) {
        Err(ChosenPasswordProblem::SameAsUsername)
    } else if new == current {
        Err(ChosenPasswordProblem::SameAsCurrent)
    } else {
        Ok(())
    }
}

/// Freshly issued credentials: the password and secret in the clear, shown once to the admin
/// who issued them, and the hash to store.
pub struct Issued {
    /// The initial password.
    pub password: String,
    /// The argon2id hash of it.
    pub password_hash: String,
    /// The raw TOTP secret.
    pub totp_secret: Vec<u8>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issued { .. }")
    }
}

/// Makes a new password (with its hash) and TOTP secret.
pub fn issue() -> Result<Issued, CredentialError> {
    let mut rng = rand::rng();
    let chars: String = (0..PASSWORD_CHARS)
        .map(|_| char::from(PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())]))
        .collect();
    // Groups of five, so it is easier to read and type.
    let password = chars
        .as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-");
    Ok(Issued {
        password_hash: hash_password(&password)?,
        password,
        totp_secret: issue_totp_secret(),
    })
}

/// A new TOTP secret alone, for an account whose authenticator is replaced.
pub fn issue_totp_secret() -> Vec<u8> {
    let mut totp_secret = vec![0u8; TOTP_SECRET_BYTES];
    rand::rng().fill(totp_secret.as_mut_slice());
    totp_secret
}

/// The argon2id hash (PHC string, with the crate's default parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, CredentialError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| CredentialError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CredentialError::Hash(e.to_string()))
}

/// Whether `password` matches the stored hash. A malformed hash matches nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Spends the time a real verification would, for a username that has no account, so the
/// answer's timing does not tell which usernames exist.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default());
    let _ = verify_password(hash, password);
}

fn totp(secret: &[u8], issuer: &str, username: &str) -> Result<TOTP, CredentialError> {
    TOTP::new(
        Algorithm::SHA1,
        TOTP_DIGITS,
        1,
        TOTP_STEP,
        secret.to_vec(),
        Some(issuer.replace(':', " ")),
        username.to_owned(),
    )
    .map_err(|e| CredentialError::Totp(e.to_string()))
}

/// The `otpauth://totp/...` URI an authenticator app reads (usually from a QR code).
pub fn otpauth_uri(secret: &[u8], issuer: &str, username: &str) -> Result<String, CredentialError> {
    Ok(totp(secret, issuer, username)?.get_url())
}

/// The secret in base32, for typing into an authenticator app by hand.
pub fn secret_base32(secret: &[u8]) -> String {
    Secret::Raw(secret.to_vec()).to_encoded().to_string()
}

/// The code for `secret` at Unix time `at` (seconds).
pub fn code_at(secret: &[u8], at: u64) -> Result<String, CredentialError> {
    Ok(totp(secret, "tatmx", "code")?.generate(at))
}

/// The time step of `at`.
pub fn step_of(at: u64) -> u64 {
    at / TOTP_STEP
}

/// Checks a code against the steps just before, at and after `now` (clock drift of one step
/// either way), and returns the step it matched. The caller refuses a step at or before the
/// last one used, so a code works once.
pub fn check_code(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = step_of(now);
    let mut matched = None;
    // Every candidate is computed and compared in full, whichever matches.
    for candidate in [step.saturating_sub(1), step, step + 1] {
        let expected = code_at(secret, candidate * TOTP_STEP).ok()?;
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) {
            matched = Some(candidate);
        }
    }
    matched
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a username: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter. Usernames appear
/// in the audit log as staff identifiers, so they are kept plain.
pub fn check_username(name: &str) -> Result<(), &'static str> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(
            "a username is 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_password_verifies_and_another_does_not() {
        let issued = issue().unwrap();
        assert!(issued.password_hash.starts_with("$argon2id$"));
        assert!(verify_password(&issued.password_hash, &issued.password));
        assert!(!verify_password(&issued.password_hash, "wrong"));
        assert!(!verify_password("not a hash", &issued.password));
        assert_eq!(issued.password.len(), 23);
    }

    #[test]
    fn codes_match_rfc_6238_and_only_nearby_steps() {
        // RFC 6238 appendix B, SHA-1, truncated to six digits.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59).unwrap(), "287082");
        assert_eq!(code_at(secret, 1_111_111_109).unwrap(), "081804");
        let now = 1_111_111_109;
        assert_eq!(check_code(secret, "081804", now), Some(step_of(now)));
        assert_eq!(check_code(secret, "081804", now + 30), Some(step_of(now)));
        assert_eq!(check_code(secret, "081804", now + 90), None);
        assert_eq!(check_code(secret, "81804", now), None);
    }

    #[test]
    fn a_chosen_password_is_long_enough_typed_twice_and_new() {
        use ChosenPasswordProblem::*;
        let check =
            |new: &str, again: &str| check_chosen_password("j.doe.example", "old one", new, again);
        assert_eq!(
            check("correct horse battery", "correct horse battery"),
            Ok(())
        );
        // Length alone: lowercase letters only are fine; characters, not bytes, count.
        assert_eq!(check("abcdefghijkl", "abcdefghijkl"), Ok(()));
        assert_eq!(check("abcdefghijk", "abcdefghijk"), Err(TooShort));
        assert_eq!(check("ééééééééééé", "ééééééééééé"), Err(TooShort));
        let long = "x".repeat(MAX_CHOSEN_PASSWORD_CHARS);
        assert_eq!(check(&long, &long), Ok(()));
        let longer = "x".repeat(MAX_CHOSEN_PASSWORD_CHARS + 1);
        assert_eq!(check(&longer, &longer), Err(TooLong));
        assert_eq!(
            check("correct horse battery", "correct horse battery!"),
            Err(Mismatch)
        );
        assert_eq!(check("J.Doe.Example", "J.Doe.Example"), Err(SameAsUsername));
        assert_eq!(
            check_chosen_password(
                "j.doe",
                "my old password",
                "my old password",
                "my old password"
            ),
            Err(SameAsCurrent)
        );
    }

    #[test]
    fn usernames_are_plain() {
        assert!(check_username("j.doe").is_ok());
        assert!(check_username("J").is_err());
        assert!(check_username("a:b").is_err());
        assert!(check_username("").is_err());
    }
}
