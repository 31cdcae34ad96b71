//! Request heads that own their bytes, so that a connection's read buffer is not kept alive.
//!
//! hyper parses a request head without copying it: the URI and every header value are slices
//! of the connection's read buffer (8 KiB, grown to 16 KiB while a request is parsed).
//! engineioxide keeps the head of a socket's handshake or upgrade request for the socket's
//! life (`req_parts`), and so that whole buffer: 16 KiB per idle WebSocket, half of what a
//! connection cost (docs/benchmarks.md). [`owned_head`] copies the URI and the header values
//! into allocations of their own before anything else sees the request; it has to run outside
//! axum's router, which stores a clone of the URI (`OriginalUri`) in the request's extensions.

use axum::http::{HeaderMap, HeaderValue, Request, Uri};

/// The request, with a URI and header values that no longer point into hyper's read buffer.
pub fn owned_head<B>(request: Request<B>) -> Request<B> {
    let (mut parts, body) = request.into_parts();
    parts.uri = owned_uri(&parts.uri);
    parts.headers = owned_headers(&parts.headers);
    Request::from_parts(parts, body)
}

fn owned_uri(uri: &Uri) -> Uri {
    // Parsing its text again gives the URI bytes of its own; a URI that hyper parsed always
    // parses again, the clone is only a fallback.
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
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
        let buffer =
            Bytes::from(b"/socket.io/?EIO=4&transport=websocket dGhlIHNhbXBsZQ==".to_vec());
        let request = owned_head(request_in(&buffer));
        // Only the test's own handle is left: the request holds copies.
        assert!(
            buffer.is_unique(),
            "the request still shares the read buffer"
        );
        assert_eq!(request.uri(), "/socket.io/?EIO=4&transport=websocket");
        let values: Vec<_> = request
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            values,
            [
                ("sec-websocket-key", "dGhlIHNhbXBsZQ=="),
                ("x-custom", "dGhlIHNhbXBsZQ==")
            ]
        );
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
        let request = owned_head(request);
        assert!(request.headers()["authorization"].is_sensitive());
        let cookies: Vec<_> = request.headers().get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }
}
