//! Why herald may have refused a token. herald says only "unauthorized" on the wire (it is no
//! oracle), so doctor looks at the token itself: its claims (decoded, not trusted) and, when
//! this machine has the server's JWT configuration, a full verification that names the reason.
//! The token itself is never printed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;

use super::report::snippet;
use crate::auth::{AuthError, cells::CellsIdentity, jwt::JwtVerifier};

/// The token doctor presents, and what it can learn about it here.
pub struct TokenCheck<'a> {
    token: &'a str,
    verifier: Option<&'a JwtVerifier>,
    leeway: Duration,
}

impl std::fmt::Debug for TokenCheck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCheck")
            .field("verifier", &self.verifier.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> TokenCheck<'a> {
    /// `verifier`: the server's JWT configuration, when this machine has it.
    pub fn new(token: &'a str, verifier: Option<&'a JwtVerifier>, leeway: Duration) -> Self {
        Self {
            token,
            verifier,
            leeway,
        }
    }

    pub(crate) fn token(&self) -> &str {
        self.token
    }

    /// The token's claims, decoded without checking the signature; `None` when it is no JWT.
    fn claims(&self) -> Option<serde_json::Map<String, Value>> {
        let mut parts = self.token.split('.');
        let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        match serde_json::from_slice(&bytes).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    /// The reason and the fix for a CONNECT refused as "unauthorized".
    pub(crate) fn explain_unauthorized(&self) -> (String, String) {
        let Some(claims) = self.claims() else {
            return (
                "the token is not a JWT".to_owned(),
                "in JWT mode (auth.mode = \"jwt\") the token must be a JWT (three base64url parts \
                 separated by dots); check what the application hands to the browser"
                    .to_owned(),
            );
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let leeway = self.leeway.as_secs();
        let exp = claims.get("exp").and_then(Value::as_u64);
        let renew = "the application must hand out a fresh token (and refresh it before `exp`)";
        match exp {
            None => {
                return (
                    "the token has no numeric `exp` claim (required)".to_owned(),
                    format!("mint tokens with `exp` and `sub`; {renew}"),
                );
            }
            Some(exp) if exp.saturating_add(leeway) < now => {
                return (
                    format!("the token expired {} ago", ago(now - exp)),
                    renew.to_owned(),
                );
            }
            Some(_) => {}
        }
        if claims.get("sub").and_then(Value::as_str).is_none() {
            return (
                "the token has no `sub` claim (the user id, required)".to_owned(),
                "mint tokens with `sub` set to the user id".to_owned(),
            );
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_u64)
            && nbf > now.saturating_add(leeway)
        {
            return (
                format!(
                    "the token is not valid yet (nbf is {} ahead)",
                    ago(nbf - now)
                ),
                "check the clocks of the machine that mints tokens and of herald".to_owned(),
            );
        }
        // Every JWT's claims carry the Cells identity, and herald refuses the whole token when
        // that part is malformed, on every door.
        if let Err(e) = serde_json::from_value::<CellsIdentity>(Value::Object(claims)) {
            return (
                format!(
                    "the token's Cells claims are malformed: {}",
                    snippet(&e.to_string(), 120)
                ),
                "mint `workspace_roots` as docs/protocol.md describes (each workspace an `id`, a \
                 `slug` without `/` and at least one root with `uuid` and `path`), and `login`, \
                 `profile` and `roles` as strings"
                    .to_owned(),
            );
        }
        match self.verifier.map(|v| v.verify(self.token)) {
            Some(Err(AuthError::InvalidToken(reason))) => (
                format!("with the JWT configuration here, the token fails: {reason}"),
                "mint the token with the same algorithm, secret (or key), issuer and audience as \
                 herald's [auth.jwt]"
                    .to_owned(),
            ),
            Some(Err(other)) => (format!("the token fails here too: {other}"), String::new()),
            Some(Ok(_)) => (
                "the token verifies with the JWT configuration here, but not on the server"
                    .to_owned(),
                "the server runs with another [auth.jwt] (secret, key, issuer, audience) or in \
                 auth.mode = \"backend\"; herald's log names the reason"
                    .to_owned(),
            ),
            None => (
                "its claims look valid (sub present, exp not passed), so its signature, \
                 algorithm, issuer or audience does not match the server"
                    .to_owned(),
                "the usual cause is a token signed with another secret than herald's \
                 auth.jwt.secret (or key); run doctor with the server's configuration \
                 (--config, or HERALD_AUTH__JWT__SECRET) to check it here, or read herald's log, \
                 which names the reason. In auth.mode = \"backend\" the application refused it"
                    .to_owned(),
            ),
        }
    }

    /// The fix for a `register` refused as "forbidden".
    pub(crate) fn explain_forbidden(&self, workspace: &str) -> String {
        let listed = self.claims().map(|c| c.get("workspaces").cloned());
        match listed {
            Some(None) => format!(
                "the token has no `workspaces` claim, which in JWT mode means no workspace: the \
                 application must list {workspace:?} in the token (or herald runs in backend \
                 mode and the application's /workspaces/<id> answered 401/403/404)"
            ),
            Some(Some(Value::Array(ids))) => format!(
                "the token's `workspaces` claim ({} listed) does not list {workspace:?}: the \
                 user may not read it, or the application must add it to the token",
                ids.len()
            ),
            _ => format!(
                "the user may not read {workspace:?}: in JWT mode the token's `workspaces` claim \
                 must list it; in backend mode the application's /workspaces/<id> must answer 200"
            ),
        }
    }
}

/// "3 min 20 s".
fn ago(secs: u64) -> String {
    humantime_serde::re::humantime::format_duration(Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: &Value) -> String {
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        format!(
            "{}.{}.sig",
            b64(&serde_json::json!({"alg": "HS256"})),
            b64(claims)
        )
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn names_what_is_wrong_with_the_claims() {
        let leeway = Duration::from_secs(5);
        let check = |t: &str| TokenCheck::new(t, None, leeway).explain_unauthorized().0;
        assert!(check("garbage").contains("not a JWT"));
        let expired = token(&serde_json::json!({"sub": "u", "exp": now() - 3600}));
        assert!(
            check(&expired).contains("expired 1h"),
            "{}",
            check(&expired)
        );
        let no_sub = token(&serde_json::json!({"exp": now() + 3600}));
        assert!(check(&no_sub).contains("`sub`"));
        let fine = token(&serde_json::json!({"sub": "u", "exp": now() + 3600}));
        assert!(check(&fine).contains("signature"));
        let root = serde_json::json!({"uuid": "n", "path": "p"});
        let roots = |slug: &str| serde_json::json!([{"id": "w", "slug": slug, "roots": [root]}]);
        let bad_roots = token(&serde_json::json!({
            "sub": "u", "exp": now() + 3600, "workspace_roots": roots("a/b")
        }));
        assert!(
            check(&bad_roots).contains("Cells claims are malformed: a slug"),
            "{}",
            check(&bad_roots)
        );
        let good_roots = token(&serde_json::json!({
            "sub": "u", "exp": now() + 3600, "workspace_roots": roots("a")
        }));
        assert!(check(&good_roots).contains("signature"));
        assert!(!check(&fine).contains(&fine));
    }

    #[test]
    fn forbidden_reads_the_workspaces_claim() {
        let listed = token(&serde_json::json!({"sub": "u", "workspaces": ["a", "b"]}));
        let hint = TokenCheck::new(&listed, None, Duration::ZERO).explain_forbidden("c");
        assert!(hint.contains("(2 listed) does not list \"c\""), "{hint}");
        let none = token(&serde_json::json!({"sub": "u"}));
        let hint = TokenCheck::new(&none, None, Duration::ZERO).explain_forbidden("c");
        assert!(hint.contains("no `workspaces` claim"), "{hint}");
    }
}
