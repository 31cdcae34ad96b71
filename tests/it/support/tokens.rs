//! Hand-made JWTs for the refusal cases that herald's own `mint` cannot produce.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit in i64")
}

/// Claims of a valid token for `sub`, expiring in ten minutes.
pub(crate) fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": now() + 600, "iat": now() })
}

/// Signs `claims` with an HMAC algorithm and `secret`.
pub(crate) fn hmac(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
        .expect("sign HMAC token")
}

/// Signs `claims` with HS256 and the test servers' default secret.
pub(crate) fn hs256(claims: &Value) -> String {
    hmac(Algorithm::HS256, super::JWT_SECRET.as_bytes(), claims)
}

/// Signs `claims` with RS256 and the PKCS#8 PEM private key `pem`.
pub(crate) fn rs256(pem: &[u8], claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(pem).expect("RSA private key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).expect("sign RS256")
}

/// Signs `claims` with ES256 and the PKCS#8 PEM private key `pem`.
pub(crate) fn es256(pem: &[u8], claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(pem).expect("EC private key");
    jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &key).expect("sign ES256")
}

/// An unsigned `alg: none` token carrying `claims`.
pub(crate) fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}
