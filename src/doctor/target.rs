//! The URL `herald doctor` checks: scheme, host, port, Engine.IO path and namespace, and the
//! URLs a browser's socket.io-client (or the Cells UI, on its own path) derives from them.

use url::{Host, Url};

use super::report::Failure;

/// Where socket.io-client would connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// https or wss.
    pub secure: bool,
    /// The host name or IP address, without brackets (for DNS, SNI and certificate checks).
    pub host: String,
    /// The host as it goes in a URL (an IPv6 address in brackets).
    pub url_host: String,
    /// The port (the scheme's default when the URL names none).
    pub port: u16,
    /// The Engine.IO path, with a leading and without a trailing slash ("/socket.io").
    pub engine_path: String,
    /// The URL's own path, normalized as the engine path, when it has one: `--cells` checks
    /// that it does not name another path than the Cells door's.
    pub url_path: Option<String>,
    /// The Socket.IO namespace ("/public").
    pub namespace: String,
}

/// The Engine.IO path when neither the URL nor `--path` names one.
pub const DEFAULT_ENGINE_PATH: &str = "/socket.io";

impl Target {
    /// Parses the URL. The engine path is `path` when given, else the URL's path when it has
    /// one, else [`DEFAULT_ENGINE_PATH`].
    pub(crate) fn parse(url: &str, path: Option<&str>, namespace: &str) -> Result<Self, Failure> {
        let parsed = Url::parse(url).map_err(|e| {
            Failure::new(
                format!("cannot parse the URL: {e}"),
                "give the public URL the browsers use, with its scheme: https://push.example.com \
                 (or http://host:8090 for herald without a proxy)",
            )
        })?;
        let secure = match parsed.scheme() {
            "https" | "wss" => true,
            "http" | "ws" => false,
            other => {
                return Err(Failure::new(
                    format!("unsupported scheme {other:?}"),
                    "use http://, https://, ws:// or wss:// (https://push.example.com)",
                ));
            }
        };
        let (host, url_host) = match parsed.host() {
            Some(Host::Domain(d)) => (d.to_owned(), d.to_owned()),
            Some(Host::Ipv4(ip)) => (ip.to_string(), ip.to_string()),
            Some(Host::Ipv6(ip)) => (ip.to_string(), format!("[{ip}]")),
            None => {
                return Err(Failure::new(
                    "the URL has no host",
                    "give the public URL the browsers use: https://push.example.com",
                ));
            }
        };
        let port = parsed
            .port_or_known_default()
            .unwrap_or(if secure { 443 } else { 80 });
        let url_path = if parsed.path().trim_matches('/').is_empty() {
            None
        } else {
            Some(normalize(parsed.path())?)
        };
        let engine_path = match (path, &url_path) {
            (Some(p), _) => normalize(p)?,
            (None, Some(p)) => p.clone(),
            (None, None) => DEFAULT_ENGINE_PATH.to_owned(),
        };
        let namespace = format!("/{}", namespace.trim_start_matches('/'));
        Ok(Self {
            secure,
            host,
            url_host,
            port,
            engine_path,
            url_path,
            namespace,
        })
    }

    /// `scheme://host:port` for HTTP requests.
    pub(crate) fn http_base(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.url_host, self.port)
    }

    /// The Engine.IO endpoint with the query socket.io-client sends, as a path.
    pub(crate) fn engine_query(&self, query: &str) -> String {
        format!("{}/?EIO=4&{query}", self.engine_path)
    }

    /// The WebSocket URL of the Engine.IO endpoint with `query`.
    pub(crate) fn ws_url(&self, query: &str) -> String {
        self.ws_url_at(&self.engine_query(query))
    }

    /// The WebSocket URL of `path` (with its query, if any) on this host.
    pub(crate) fn ws_url_at(&self, path: &str) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}:{}{path}", self.url_host, self.port)
    }

    /// One line describing what will be checked.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}, engine path {}, namespace {}",
            self.http_base(),
            self.engine_path,
            self.namespace
        )
    }
}

/// "/socket.io/" and "socket.io" become "/socket.io".
pub(crate) fn normalize(path: &str) -> Result<String, Failure> {
    let trimmed = path.trim_matches('/');
    if trimmed
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        || trimmed.contains("://")
    {
        return Err(Failure::new(
            format!("the path {path:?} is not a plain URL path"),
            "give the path alone, e.g. --path /socket.io (Engine.IO) or --cells /ws/event (the \
             Cells door)",
        ));
    }
    Ok(format!("/{trimmed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_paths() {
        let t = Target::parse("https://push.example.com", None, "/public").unwrap();
        assert!(t.secure);
        assert_eq!((t.host.as_str(), t.port), ("push.example.com", 443));
        assert_eq!(t.engine_path, "/socket.io");
        assert_eq!(
            t.engine_query("transport=polling"),
            "/socket.io/?EIO=4&transport=polling"
        );

        let t = Target::parse("ws://127.0.0.1:8090/socket.io/appsuite/", None, "public").unwrap();
        assert!(!t.secure);
        assert_eq!(t.engine_path, "/socket.io/appsuite");
        assert_eq!(t.namespace, "/public");
        assert_eq!(
            t.ws_url("transport=websocket&sid=x"),
            "ws://127.0.0.1:8090/socket.io/appsuite/?EIO=4&transport=websocket&sid=x"
        );

        assert_eq!(t.url_path.as_deref(), Some("/socket.io/appsuite"));

        let t = Target::parse("http://[::1]:9000/ignored", Some("custom/"), "/p").unwrap();
        assert_eq!((t.host.as_str(), t.url_host.as_str()), ("::1", "[::1]"));
        assert_eq!(t.engine_path, "/custom");
        assert_eq!(t.url_path.as_deref(), Some("/ignored"));
        assert_eq!(t.http_base(), "http://[::1]:9000");
        assert_eq!(t.ws_url_at("/ws/event"), "ws://[::1]:9000/ws/event");
    }

    #[test]
    fn refuses_what_a_browser_could_not_use() {
        for bad in ["push.example.com", "ftp://x", "localhost:8090", ""] {
            assert!(Target::parse(bad, None, "/public").is_err(), "{bad}");
        }
        assert!(Target::parse("http://x", Some("/a b"), "/public").is_err());
        assert!(Target::parse("http://x", Some("https://x/ws"), "/public").is_err());
    }
}
