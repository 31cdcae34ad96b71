//! [`Credentials`]: what a browser presents in its Socket.IO handshake.
//!
//! The token is taken from the first place that has one: `auth.token` (socket.io-client 3/4),
//! the `token` query parameter (socket.io-client 2.x has no `auth`), then an
//! `Authorization: Bearer` header. Cookie and Authorization headers are kept for backend mode.

use axum::http::{HeaderMap, Uri, header};

/// Credentials of one handshake. `Debug` redacts them.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// Bearer token, from auth, query or header.
    pub token: Option<String>,
    /// The raw `Cookie` header.
    pub cookie: Option<String>,
    /// The raw `Authorization` header.
    pub authorization: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("cookie", &self.cookie.as_ref().map(|_| "***"))
            .field("authorization", &self.authorization.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Credentials {
    /// Collects the credentials of a handshake from its `auth` payload, URI and headers.
    pub(crate) fn from_handshake(
        auth: Option<&serde_json::Value>,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Self {
        let header_str = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let authorization = header_str(header::AUTHORIZATION);
        let token = auth
            .and_then(|a| a.get("token"))
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .or_else(|| query_param(uri, "token"))
            .or_else(|| authorization.as_deref().and_then(bearer).map(str::to_owned));
        Self {
            token,
            cookie: header_str(header::COOKIE),
            authorization,
        }
    }

    /// Whether anything at all was presented.
    pub(crate) fn is_empty(&self) -> bool {
        self.token.is_none() && self.cookie.is_none() && self.authorization.is_none()
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A non-empty query parameter of the handshake URI.
pub(crate) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(uri.query()?).ok()?;
    pairs
        .into_iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(k.clone(), v.parse().unwrap());
        }
        map
    }

    #[test]
    fn auth_token_wins_over_query_and_header() {
        let uri: Uri = "/socket.io/?EIO=4&token=from-query".parse().unwrap();
        let h = headers(&[(header::AUTHORIZATION, "Bearer from-header")]);
        let c = Credentials::from_handshake(Some(&json!({"token": "from-auth"})), &uri, &h);
        assert_eq!(c.token.as_deref(), Some("from-auth"));
        let c = Credentials::from_handshake(None, &uri, &h);
        assert_eq!(c.token.as_deref(), Some("from-query"));
        let c = Credentials::from_handshake(Some(&json!({"token": 5})), &"/".parse().unwrap(), &h);
        assert_eq!(c.token.as_deref(), Some("from-header"));
    }

    #[test]
    fn query_token_is_percent_decoded() {
        let uri: Uri = "/socket.io/?token=a%2Bb&EIO=3".parse().unwrap();
        assert_eq!(query_param(&uri, "token").as_deref(), Some("a+b"));
    }

    #[test]
    fn nothing_presented() {
        let c = Credentials::from_handshake(None, &"/".parse().unwrap(), &HeaderMap::new());
        assert!(c.is_empty());
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("bearer  t "), Some("t"));
    }

    #[test]
    fn debug_redacts() {
        let c = Credentials {
            token: Some("secret-token".into()),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("secret-token"));
    }
}
