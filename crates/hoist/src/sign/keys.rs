//! Cosign-format keys: an ECDSA P-256 key pair whose private half is PKCS#8 DER sealed with NaCl
//! secretbox under a key derived from a password by scrypt (go-tuf's `encrypted` format, which cosign
//! and skopeo read), wrapped in PEM; the public half is SPKI PEM. All crypto is RustCrypto's.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::der::pem::{self, LineEnding};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A private signing key: ECDSA P-256, as cosign's. Made by [`generate`], kept on disk encrypted
/// ([`encrypt_private_key`], [`decrypt_private_key`]). Its `Debug` output shows no secret.
#[derive(Clone)]
pub struct PrivateKey(SigningKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(ECDSA P-256, secret not shown)")
    }
}

impl PrivateKey {
    /// The public half, which verifies what this key signs.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }

    pub(crate) fn ecdsa(&self) -> &SigningKey {
        &self.0
    }
}

/// A public key that signatures are verified with: ECDSA P-256 (`cosign.pub`, SPKI PEM:
/// [`read_public_key`], [`public_key_pem`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub(crate) fn ecdsa(&self) -> &VerifyingKey {
        &self.0
    }
}

/// The PEM type hoist writes: cosign 1.x's, the only one skopeo 1.9 reads (cosign 2+ reads it too).
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// The PEM type cosign 2 and later write; hoist reads it as well.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";

/// scrypt cost of new keys: N = 2^15, r = 8, p = 1, as cosign writes them.
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
/// The most expensive scrypt hoist agrees to run for a key it reads (N = 2^20, 1 GiB of memory at r=8).
const MAX_SCRYPT_LOG_N: u8 = 20;

#[derive(Serialize, Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn key_error(what: &str, reason: impl Into<String>) -> Error {
    Error::Key {
        what: what.to_string(),
        reason: reason.into(),
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)
        .map_err(|e| Error::Other(format!("the system's random source failed: {e}")))?;
    Ok(buf)
}

fn derive_key(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<Key> {
    let params = scrypt::Params::new(log_n, r, p)
        .map_err(|e| key_error("encryption", format!("invalid scrypt parameters: {e}")))?;
    let mut key = Key::default();
    scrypt::scrypt(password, salt, &params, &mut key)
        .map_err(|e| key_error("encryption", format!("scrypt failed: {e}")))?;
    Ok(key)
}

/// A new random P-256 signing key.
pub fn generate() -> Result<PrivateKey> {
    // A random 32-byte scalar is a valid key unless it is zero or not below the curve order
    // (probability about 2^-32): draw again then.
    for _ in 0..16 {
        let bytes: [u8; 32] = random_bytes()?;
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return Ok(PrivateKey(key));
        }
    }
    Err(Error::Other(
        "the system's random source gave no valid P-256 key in 16 draws".into(),
    ))
}

/// The private key encrypted with `password`, as PEM `ENCRYPTED COSIGN PRIVATE KEY`.
pub fn encrypt_private_key(key: &PrivateKey, password: &[u8]) -> Result<String> {
    let der = key
        .0
        .to_pkcs8_der()
        .map_err(|e| key_error("private key", format!("PKCS#8 encoding failed: {e}")))?;
    let salt: [u8; 32] = random_bytes()?;
    let nonce: [u8; 24] = random_bytes()?;
    let sym = derive_key(password, &salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)?;
    let ciphertext = XSalsa20Poly1305::new(&sym)
        .encrypt(Nonce::from_slice(&nonce), der.as_bytes())
        .map_err(|_| key_error("private key", "encryption failed"))?;
    let doc = Encrypted {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n: 1 << SCRYPT_LOG_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(ciphertext),
    };
    let json = serde_json::to_vec(&doc)
        .map_err(|e| Error::Other(format!("encoding the encrypted key: {e}")))?;
    pem::encode_string(COSIGN_PRIVATE_KEY_LABEL, LineEnding::LF, &json)
        .map_err(|e| key_error("private key", format!("PEM encoding failed: {e}")))
}

/// Reads a cosign private key (PEM `ENCRYPTED COSIGN PRIVATE KEY` or `ENCRYPTED SIGSTORE PRIVATE
/// KEY`) and decrypts it with `password`. `what` names the key in errors (its path).
pub fn decrypt_private_key(pem_text: &[u8], password: &[u8], what: &str) -> Result<PrivateKey> {
    let (label, json) =
        pem::decode_vec(pem_text).map_err(|e| key_error(what, format!("not a PEM file: {e}")))?;
    if label != COSIGN_PRIVATE_KEY_LABEL && label != SIGSTORE_PRIVATE_KEY_LABEL {
        return Err(key_error(
            what,
            format!(
                "PEM type {label:?} is not a cosign private key (expected {COSIGN_PRIVATE_KEY_LABEL:?} \
                 or {SIGSTORE_PRIVATE_KEY_LABEL:?})"
            ),
        ));
    }
    let doc: Encrypted = serde_json::from_slice(&json)
        .map_err(|e| key_error(what, format!("not an encrypted cosign key: {e}")))?;
    if doc.kdf.name != "scrypt" {
        return Err(key_error(
            what,
            format!(
                "key derivation {:?} is not supported (scrypt is)",
                doc.kdf.name
            ),
        ));
    }
    if doc.cipher.name != "nacl/secretbox" {
        return Err(key_error(
            what,
            format!(
                "cipher {:?} is not supported (nacl/secretbox is)",
                doc.cipher.name
            ),
        ));
    }
    let n = doc.kdf.params.n;
    if !n.is_power_of_two() || n < 2 || n.trailing_zeros() > u32::from(MAX_SCRYPT_LOG_N) {
        return Err(key_error(
            what,
            format!("scrypt N={n} is not a power of two between 2 and 2^{MAX_SCRYPT_LOG_N}"),
        ));
    }
    let decode = |field: &str, text: &str| {
        B64.decode(text)
            .map_err(|e| key_error(what, format!("{field} is not base64: {e}")))
    };
    let salt = decode("salt", &doc.kdf.salt)?;
    let nonce = decode("nonce", &doc.cipher.nonce)?;
    let ciphertext = decode("ciphertext", &doc.ciphertext)?;
    if nonce.len() != 24 {
        return Err(key_error(what, "the nonce is not 24 bytes"));
    }
    let log_n = n.trailing_zeros() as u8;
    let sym = derive_key(password, &salt, log_n, doc.kdf.params.r, doc.kdf.params.p)?;
    let der = XSalsa20Poly1305::new(&sym)
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .map_err(|_| key_error(what, "wrong password (or the key file was altered)"))?;
    SigningKey::from_pkcs8_der(&der)
        .map(PrivateKey)
        .map_err(|e| key_error(what, format!("not an ECDSA P-256 private key: {e}")))
}

/// The public key as PEM `PUBLIC KEY` (SPKI), as cosign writes `cosign.pub`.
pub fn public_key_pem(key: &PublicKey) -> Result<String> {
    key.0
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| key_error("public key", format!("PEM encoding failed: {e}")))
}

/// Reads a PEM `PUBLIC KEY` (SPKI) holding an ECDSA P-256 key. `what` names it in errors.
pub fn read_public_key(pem_text: &str, what: &str) -> Result<PublicKey> {
    VerifyingKey::from_public_key_pem(pem_text.trim())
        .map(PublicKey)
        .map_err(|e| {
            key_error(
                what,
                format!("not a PEM ECDSA P-256 public key (cosign.pub): {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_key_round_trips_and_refuses_a_wrong_password() {
        let key = generate().unwrap();
        let pem_text = encrypt_private_key(&key, b"secret").unwrap();
        assert!(pem_text.starts_with("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----"));
        let back = decrypt_private_key(pem_text.as_bytes(), b"secret", "k").unwrap();
        assert_eq!(back.0.to_bytes(), key.0.to_bytes());
        let err = decrypt_private_key(pem_text.as_bytes(), b"other", "k").unwrap_err();
        assert!(err.to_string().contains("wrong password"), "{err}");
        // cosign 2's label is read too.
        let relabelled = pem_text.replace("COSIGN", "SIGSTORE");
        decrypt_private_key(relabelled.as_bytes(), b"secret", "k").unwrap();
        let public = public_key_pem(&key.public_key()).unwrap();
        assert_eq!(read_public_key(&public, "p").unwrap(), key.public_key());
    }
}
