//! Request heads that own their bytes, so that a connection's read buffer is not kept alive,
//! and that keep only what is read later of the requests engineioxide keeps.
//!
//! hyper parses a request head without copying it: the URI and every header value are slices
//! of the connection's read buffer (8 KiB, grown to 16 KiB while a request is parsed).
//! engineioxide keeps the head of a socket's handshake or upgrade request for the socket's
//! life (`req_parts`), and so that whole buffer: 16 KiB per idle WebSocket, half of what a
//! connection cost (docs/benchmarks.md). [`OwnedHead`] copies the URI and the header values
//! into allocations of their own before anything else sees the request; it has to run outside
//! axum's router, which stores a clone of the URI (`OriginalUri`) in the request's extensions.
//!
//! Of a request that opens an Engine.IO session (the head engineioxide keeps), it copies only
//! [`SESSION_HEADERS`], and the `Cookie` header only when backend auth reads it: a browser also
//! sends User-Agent, Accept-Language, Accept-Encoding, Cache-Control,
//! Sec-WebSocket-Extensions, the application's cookies and more, which nothing reads once the
//! request is routed but which would stay with the socket as long as it lives, each in a
//! header map entry of its own (docs/benchmarks.md measures it with Chrome's headers).

use std::sync::Arc;

use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Request, Uri,
    header::{
        AUTHORIZATION, CONNECTION, COOKIE, ORIGIN, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
        SEC_WEBSOCKET_VERSION, UPGRADE,
    },
};

use super::session_request::opens_session;

/// The headers of a session-opening request that are read after it is routed: the WebSocket
/// upgrade (engineioxide, the Engine.IO v3 bridge), the origin check, the browser's
/// credentials (a bearer token; and the cookies in backend auth mode, see [`OwnedHead::new`]),
/// and a backend's forwarded address (`/private`).
pub(crate) const SESSION_HEADERS: [HeaderName; 8] = [
    UPGRADE,
    CONNECTION,
    SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION,
    SEC_WEBSOCKET_PROTOCOL,
    ORIGIN,
    AUTHORIZATION,
    HeaderName::from_static("x-forwarded-for"),
];

/// Copies every request's head out of hyper's read buffer (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct OwnedHead {
    /// The Engine.IO path, without its trailing `/`.
    engine_path: Arc<str>,
    /// Whether a session-opening request keeps its `Cookie` header.
    keep_cookies: bool,
}

impl OwnedHead {
    /// For a server whose Engine.IO endpoint is `engine_path`; `keep_cookies` when the
    /// browsers' cookies are read at connect (backend auth forwards them to the application).
    pub(crate) fn new(engine_path: &str, keep_cookies: bool) -> Self {
        Self {
            engine_path: engine_path.trim_end_matches('/').into(),
            keep_cookies,
        }
    }

    /// The request, with a URI and header values that no longer point into hyper's read
    /// buffer; when it opens an Engine.IO session, with [`SESSION_HEADERS`] (and the cookies,
    /// if kept) only.
    pub(crate) fn apply<B>(&self, request: Request<B>) -> Request<B> {
        let (mut parts, body) = request.into_parts();
        let session = opens_session(&self.engine_path, &parts.method, &parts.uri);
        parts.uri = owned_uri(&parts.uri);
        parts.headers = owned_headers(&parts.headers, |name| {
            !session || SESSION_HEADERS.contains(name) || (self.keep_cookies && name == COOKIE)
        });
        Request::from_parts(parts, body)
    }
}

fn owned_uri(uri: &Uri) -> Uri {
    // Parsing its text again gives the URI bytes of its own; a URI that hyper parsed always
    // parses again, the clone is only a fallback.
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

fn owned_headers(headers: &HeaderMap, keep: impl Fn(&HeaderName) -> bool) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.keys().filter(|name| keep(name)).count());
    for (name, value) in headers.iter().filter(|(name, _)| keep(name)) {
        // Header names are either static (the standard ones) or already copied by hyper.
        let copy = HeaderValue::from_bytes(value.as_bytes()).map_or_else(
            |_| value.clone(),
            |mut copy| {
                copy.set_sensitive(value.is_sensitive());
                copy
            },
        );
        owned.append(name.clone(), copy);
    }
    owned
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;

    use super::*;

    /// A request whose URI and header values are slices of one shared buffer, as hyper makes
    /// them.
    fn request_in(buffer: &Bytes) -> Request<()> {
        let text = std::str::from_utf8(buffer).unwrap();
        let uri_end = text.find(' ').unwrap();
        let value_start = uri_end + 1;
        let mut request = Request::new(());
        *request.uri_mut() = Uri::from_maybe_shared(buffer.slice(..uri_end)).unwrap();
        let value = HeaderValue::from_maybe_shared(buffer.slice(value_start..)).unwrap();
        request
            .headers_mut()
            .append("sec-websocket-key", value.clone());
        request.headers_mut().append("x-custom", value);
        request
    }

    #[test]
    fn the_head_no_longer_shares_the_buffer() {
        let key = ("sec-websocket-key", "dGhlIHNhbXBsZQ==");
        for (uri, kept) in [
            // Opens a session: x-custom is not among the headers read later.
            ("/socket.io/?EIO=4&transport=websocket", vec![key]),
            // Upgrades a polling session: every header is kept, each one copied.
            (
                "/socket.io/?EIO=4&transport=websocket&sid=abc",
                vec![key, ("x-custom", "dGhlIHNhbXBsZQ==")],
            ),
        ] {
            let buffer = Bytes::from(format!("{uri} dGhlIHNhbXBsZQ==").into_bytes());
            let request = OwnedHead::new("/socket.io", true).apply(request_in(&buffer));
            // Only the test's own handle is left: the request holds copies.
            assert!(
                buffer.is_unique(),
                "{uri}: the request still shares the read buffer"
            );
            assert_eq!(request.uri(), uri);
            let values: Vec<_> = request
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
                .collect();
            assert_eq!(values, kept, "{uri}");
        }
    }

    /// A WebSocket opened by Chrome, as it arrives through nginx.
    fn browser_request(uri: &str) -> Request<()> {
        let mut request = Request::builder().uri(uri);
        for (name, value) in [
            ("host", "files.example.com"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("pragma", "no-cache"),
            ("cache-control", "no-cache"),
            (
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            ),
            ("origin", "https://files.example.com"),
            ("sec-websocket-version", "13"),
            ("accept-encoding", "gzip, deflate, br, zstd"),
            ("accept-language", "en-GB,en-US;q=0.9,en;q=0.8,fr;q=0.7"),
            ("cookie", "session=abc; theme=dark"),
            ("sec-websocket-key", "dGhlIHNhbXBsZQ=="),
            (
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits",
            ),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-real-ip", "203.0.113.7"),
            ("authorization", "Bearer t"),
        ] {
            request = request.header(name, value);
        }
        request.body(()).unwrap()
    }

    fn names(request: &Request<()>) -> Vec<&str> {
        request.headers().keys().map(HeaderName::as_str).collect()
    }

    #[test]
    fn a_request_opening_a_session_keeps_only_what_is_read_later() {
        let uri = "/socket.io/?EIO=4&transport=websocket";
        let read_later = [
            "connection",
            "upgrade",
            "origin",
            "sec-websocket-version",
            "sec-websocket-key",
            "x-forwarded-for",
            "authorization",
        ];
        let jwt = OwnedHead::new("/socket.io/", false).apply(browser_request(uri));
        assert_eq!(names(&jwt), read_later);

        // Backend auth forwards the cookies to the application.
        let backend = OwnedHead::new("/socket.io/", true).apply(browser_request(uri));
        let mut with_cookies = read_later.to_vec();
        with_cookies.insert(4, "cookie");
        assert_eq!(names(&backend), with_cookies);
        assert_eq!(backend.headers()["cookie"], "session=abc; theme=dark");
    }

    #[test]
    fn other_requests_keep_every_header() {
        let head = OwnedHead::new("/socket.io", false);
        for uri in [
            // An upgrade of a long-polling session: engineioxide keeps its handshake's head.
            "/socket.io/?EIO=4&transport=websocket&sid=abc",
            "/api/v1/publish",
            "/socket.io.js",
        ] {
            let request = head.apply(browser_request(uri));
            assert_eq!(names(&request).len(), 16, "{uri}");
        }
    }

    #[test]
    fn repeated_headers_and_sensitivity_are_kept() {
        let mut request = Request::new(());
        let mut secret = HeaderValue::from_static("Bearer t");
        secret.set_sensitive(true);
        request.headers_mut().append("authorization", secret);
        request
            .headers_mut()
            .append("cookie", HeaderValue::from_static("a=1"));
        request
            .headers_mut()
            .append("cookie", HeaderValue::from_static("b=2"));
        let request = OwnedHead::new("/socket.io", true).apply(request);
        assert!(request.headers()["authorization"].is_sensitive());
        let cookies: Vec<_> = request.headers().get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }
}
