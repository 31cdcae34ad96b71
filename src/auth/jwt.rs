//! Local JWT verification (`auth.mode = "jwt"`) and minting of development tokens.
//!
//! Exactly one algorithm is accepted, the configured one, with a key of the matching kind, so
//! neither `alg: none` nor algorithm confusion (an HS256 token signed with an RSA public key)
//! can pass. `exp` and `sub` are required; `nbf` is checked when present; `iss`/`aud` when
//! configured.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{AuthError, AuthSetupError, Principal};
use crate::{
    config::{JwtAlgorithm, JwtConfig},
    ids::{GroupPath, UserId, WorkspaceId},
};

/// Verifies browser tokens against the configured key.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// The claims herald reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: UserId,
    exp: u64,
    #[serde(default)]
    groups: Option<Vec<GroupPath>>,
    #[serde(default)]
    workspaces: Option<Vec<WorkspaceId>>,
    #[serde(flatten)]
    cells: super::cells::CellsIdentity,
}

fn algorithm(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
    }
}

impl JwtVerifier {
    /// Builds the verifier: reads the public key file for RS256/ES256.
    ///
    /// # Errors
    /// A missing secret, an unreadable or malformed key file.
    pub fn from_config(cfg: &JwtConfig) -> Result<Self, AuthSetupError> {
        let alg = algorithm(cfg.algorithm);
        let key = if cfg.algorithm.is_hmac() {
            let secret = cfg
                .secret
                .as_ref()
                .ok_or_else(|| AuthSetupError::Jwt("secret is missing".into()))?;
            DecodingKey::from_secret(secret.expose().as_bytes())
        } else {
            let path = cfg
                .public_key_file
                .as_ref()
                .ok_or_else(|| AuthSetupError::Jwt("public_key_file is missing".into()))?;
            let pem = std::fs::read(path)
                .map_err(|e| AuthSetupError::Jwt(format!("cannot read {}: {e}", path.display())))?;
            let parsed = match cfg.algorithm {
                JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                _ => DecodingKey::from_ec_pem(&pem),
            };
            parsed.map_err(|e| AuthSetupError::Jwt(format!("{}: {e}", path.display())))?
        };
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = cfg.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(iss) = &cfg.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        match &cfg.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation })
    }

    /// Verifies a token and reads its principal.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] with the reason, for the log only.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::InvalidToken(e.kind_name()))?;
        let claims = data.claims;
        Ok(Principal::new(
            claims.sub,
            claims.groups.unwrap_or_default(),
            claims.workspaces,
            Some(claims.exp),
            claims.cells,
        ))
    }
}

/// Names a jsonwebtoken error without its details (which may quote the token).
trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for jsonwebtoken::errors::Error {
    fn kind_name(&self) -> String {
        use jsonwebtoken::errors::ErrorKind as K;
        match self.kind() {
            K::ExpiredSignature => "expired".into(),
            K::ImmatureSignature => "not yet valid (nbf)".into(),
            K::InvalidSignature => "bad signature".into(),
            K::InvalidAlgorithm => "algorithm not accepted".into(),
            K::InvalidAudience => "wrong audience".into(),
            K::InvalidIssuer => "wrong issuer".into(),
            K::MissingRequiredClaim(c) => format!("missing claim {c}"),
            K::Json(_) => "malformed claims".into(),
            other => format!("{other:?}").chars().take(60).collect(),
        }
    }
}

/// Claims of a minted development token.
#[derive(Debug, Serialize)]
pub struct MintClaims<'a> {
    /// User id.
    pub sub: &'a str,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// Group paths.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub groups: &'a [String],
    /// Readable workspaces.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub workspaces: &'a [String],
    /// Issuer, when the config requires one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<&'a str>,
    /// Audience, when the config requires one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<&'a str>,
}

/// Mints a token that herald's verifier accepts: HS* with the configured secret, or RS256/ES256
/// with a PEM private key given by the caller.
///
/// # Errors
/// No usable signing key.
pub fn mint(
    cfg: &JwtConfig,
    signing_key_pem: Option<&[u8]>,
    user: &str,
    groups: &[String],
    workspaces: &[String],
    ttl: Duration,
) -> Result<String, AuthSetupError> {
    let alg = algorithm(cfg.algorithm);
    let key = match (cfg.algorithm, signing_key_pem) {
        (a, _) if a.is_hmac() => {
            let secret = cfg
                .secret
                .as_ref()
                .ok_or_else(|| AuthSetupError::Jwt("secret is missing".into()))?;
            EncodingKey::from_secret(secret.expose().as_bytes())
        }
        (JwtAlgorithm::RS256, Some(pem)) => {
            EncodingKey::from_rsa_pem(pem).map_err(|e| AuthSetupError::Jwt(e.to_string()))?
        }
        (_, Some(pem)) => {
            EncodingKey::from_ec_pem(pem).map_err(|e| AuthSetupError::Jwt(e.to_string()))?
        }
        (_, None) => {
            return Err(AuthSetupError::Jwt(
                "RS256/ES256 tokens need --signing-key <private key PEM>".into(),
            ));
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = MintClaims {
        sub: user,
        exp: now + ttl.as_secs(),
        iat: now,
        groups,
        workspaces,
        iss: cfg.issuer.as_deref(),
        aud: cfg.audience.as_deref(),
    };
    jsonwebtoken::encode(&Header::new(alg), &claims, &key)
        .map_err(|e| AuthSetupError::Jwt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Secret};

    fn cfg() -> JwtConfig {
        let mut c = Config::from_toml("").unwrap().auth.jwt;
        c.secret = Some(Secret::new("unit-test-secret"));
        c
    }

    #[test]
    fn minted_tokens_verify() {
        let c = cfg();
        let t = mint(
            &c,
            None,
            "alice",
            &["/g".into()],
            &["ws1".into()],
            Duration::from_secs(60),
        )
        .unwrap();
        let p = JwtVerifier::from_config(&c).unwrap().verify(&t).unwrap();
        assert_eq!(p.user.as_str(), "alice");
        assert_eq!(p.groups[0].as_str(), "/g");
        assert!(
            p.workspaces
                .unwrap()
                .contains(&WorkspaceId::parse("ws1").unwrap())
        );
    }

    #[test]
    fn no_workspaces_claim_means_none() {
        let c = cfg();
        let t = mint(&c, None, "bob", &[], &[], Duration::from_secs(60)).unwrap();
        assert!(
            JwtVerifier::from_config(&c)
                .unwrap()
                .verify(&t)
                .unwrap()
                .workspaces
                .is_none()
        );
    }

    #[test]
    fn wrong_secret_and_alg_none_are_refused() {
        let c = cfg();
        let v = JwtVerifier::from_config(&c).unwrap();
        let mut other = c.clone();
        other.secret = Some(Secret::new("another-secret"));
        let t = mint(&other, None, "eve", &[], &[], Duration::from_secs(60)).unwrap();
        assert!(matches!(v.verify(&t), Err(AuthError::InvalidToken(_))));
        // {"alg":"none","typ":"JWT"}.{"sub":"eve","exp":9999999999}.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJldmUiLCJleHAiOjk5OTk5OTk5OTl9.";
        assert!(v.verify(none).is_err());
    }

    #[test]
    fn other_hmac_algorithm_is_refused() {
        let c = cfg();
        let mut hs512 = c.clone();
        hs512.algorithm = JwtAlgorithm::HS512;
        let t = mint(&hs512, None, "eve", &[], &[], Duration::from_secs(60)).unwrap();
        let err = JwtVerifier::from_config(&c)
            .unwrap()
            .verify(&t)
            .unwrap_err();
        assert_eq!(err.to_string(), "invalid token: algorithm not accepted");
    }
}
