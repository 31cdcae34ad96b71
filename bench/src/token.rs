//! Development JWTs (HS256) for the bench's browsers: one user per connection, allowed exactly
//! the workspace it registers to, valid for an hour (longer than any run, so neither server
//! sends `token_expiring` during a measurement).

use serde::Serialize;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
    workspaces: [&'a str; 1],
}

/// Signs a token for `user` allowed on `workspace`.
///
/// # Errors
/// Only if signing fails (it does not with HS256 and a string secret).
pub(crate) fn mint(secret: &str, user: &str, workspace: &str) -> anyhow::Result<String> {
    let exp = crate::clock::now_us() / 1_000_000 + 3600;
    let claims = Claims {
        sub: user,
        exp,
        workspaces: [workspace],
    };
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &key,
    )?)
}
