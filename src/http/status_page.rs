//! The HTML face of `GET /status`, for a person with a browser: ON in big letters, then the
//! figures of the JSON answer laid out to be read at a glance.
//!
//! The page is self-contained (inline CSS, no script, no external asset) and sent with a
//! Content-Security-Policy that allows nothing else: only this page's stylesheet, by its hash.
//! Every dynamic string (workspace ids are user data, node addresses come from Redis,
//! namespaces from the configuration) goes through [`Escaped`].

use std::fmt::{self, Display, Write as _};

use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use sha2::{Digest as _, Sha256};

use super::status::{ClusterStatus, Status, TransportCounts};

/// The page's stylesheet, inlined; the CSP names its hash.
const CSS: &str = "\
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--muted:#6e7781;--line:#d0d7de}\
body{font:16px/1.4 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1.5rem}\
header{display:flex;flex-wrap:wrap;align-items:center;gap:1.5rem 2.5rem;margin-bottom:1.5rem}\
.state{font-size:5rem;font-weight:800;letter-spacing:.05em;margin:0;padding:0 1.5rem;\
border-radius:1rem;color:#fff;background:var(--ok)}\
.state.off{background:var(--bad)}\
dl{display:flex;flex-wrap:wrap;gap:.5rem 2rem;margin:0}dt{color:var(--muted);font-size:.85rem}\
dd{margin:0;font-size:1.25rem;font-weight:600}\
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(17rem,1fr));gap:1.5rem}\
section{border:1px solid var(--line);border-radius:.75rem;padding:1rem 1.25rem}\
h2{font-size:1rem;margin:0 0 .5rem;color:var(--muted);font-weight:600}\
.big{font-size:2.5rem;font-weight:700;margin:0 0 .5rem}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25rem .5rem .25rem 0}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
tbody tr{border-top:1px solid var(--line)}.id{overflow-wrap:anywhere}\
.warn{color:var(--bad);font-weight:600}\
footer{margin-top:1.5rem;color:var(--muted);font-size:.85rem}code{font-size:.85rem}";

/// `s`, HTML-escaped (text and attribute values alike).
pub(super) struct Escaped<'a>(pub(super) &'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// The namespaces' paths, as configured.
pub(super) struct Namespaces<'a> {
    /// Browsers' namespace.
    pub(super) public: &'a str,
    /// Backends' namespace.
    pub(super) private: &'a str,
}

/// The page as a response, with its security headers. `refresh`: seconds between reloads.
pub(super) fn response(status: &Status, namespaces: &Namespaces<'_>, refresh: u32) -> Response {
    let style_hash = BASE64.encode(Sha256::digest(CSS.as_bytes()));
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{style_hash}'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        render(status, namespaces, refresh),
    )
        .into_response()
}

/// `3d 4h 05m`, `2h 03m 10s`, `42s`.
fn uptime(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m {s:02}s"),
        _ => format!("{d}d {h}h {m:02}m"),
    }
}

/// The whole page. Writing to a `String` cannot fail, hence the ignored results.
pub(super) fn render(status: &Status, namespaces: &Namespaces<'_>, refresh: u32) -> String {
    let mut page = String::with_capacity(8 * 1024);
    let state = Escaped(status.status);
    let class = if status.status == "ON" { "on" } else { "off" };
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    );
    if refresh > 0 {
        let _ = writeln!(page, "<meta http-equiv=\"refresh\" content=\"{refresh}\">");
    }
    let _ = write!(
        page,
        "<title>herald: {state}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<header>\n\
         <p id=\"state\" class=\"state {class}\" data-state=\"{state}\">{state}</p>\n<dl>\n\
         <div><dt>version</dt><dd id=\"version\">{version}</dd></div>\n\
         <div><dt>uptime</dt><dd id=\"uptime\" data-seconds=\"{uptime_s}\">{uptime}</dd></div>\n",
        version = Escaped(status.version),
        uptime_s = status.uptime_s,
        uptime = uptime(status.uptime_s),
    );
    if let Some(cluster) = &status.cluster {
        let redis_class = if cluster.redis == "up" {
            ""
        } else {
            " class=\"warn\""
        };
        let _ = write!(
            page,
            "<div><dt>node</dt><dd class=\"id\">{node}</dd></div>\n\
             <div><dt>Redis</dt><dd id=\"redis\"{redis_class}>{redis}</dd></div>\n",
            node = Escaped(&cluster.node),
            redis = Escaped(cluster.redis),
        );
    }
    page.push_str("</dl>\n</header>\n<main>\n");
    connections(&mut page, status, namespaces);
    events(&mut page, status);
    workspaces(&mut page, status);
    if let Some(cluster) = &status.cluster {
        nodes(&mut page, cluster);
    }
    let _ = write!(
        page,
        "</main>\n<footer>{refreshing}The same figures as JSON: \
         <code>curl -H 'Accept: application/json' …/status</code></footer>\n</body>\n</html>\n",
        refreshing = if refresh > 0 {
            format!("Reloads every {refresh} s (<code>?refresh=0</code> stops it). ")
        } else {
            String::new()
        },
    );
    page
}

fn connections(page: &mut String, status: &Status, namespaces: &Namespaces<'_>) {
    let cells = status
        .cells
        .as_ref()
        .map_or(0, |cells| cells.connections as u64);
    let total = status.connections.public + status.connections.private + cells;
    let _ = write!(
        page,
        "<section id=\"connections\">\n<h2>Connections on this node</h2>\n\
         <p class=\"big\" id=\"connections-total\">{total}</p>\n<table>\n\
         <thead><tr><th>namespace</th><th class=\"n\">WebSocket</th><th class=\"n\">polling</th>\
         <th class=\"n\">total</th></tr></thead>\n<tbody>\n"
    );
    let rows: [(&str, &str, &TransportCounts); 2] = [
        ("public", namespaces.public, &status.transports.public),
        ("private", namespaces.private, &status.transports.private),
    ];
    for (name, path, counts) in rows {
        let _ = writeln!(
            page,
            "<tr data-namespace=\"{name}\"><th>{path}</th><td class=\"n\">{ws}</td>\
             <td class=\"n\">{polling}</td><td class=\"n\">{sum}</td></tr>",
            path = Escaped(path),
            ws = counts.websocket,
            polling = counts.polling,
            sum = counts.websocket + counts.polling,
        );
    }
    if let Some(cells) = &status.cells {
        let _ = writeln!(
            page,
            "<tr data-namespace=\"cells\"><th>Pydio Cells ({subscribed} subscribed)</th>\
             <td class=\"n\">{open}</td><td class=\"n\">0</td><td class=\"n\">{open}</td></tr>",
            subscribed = cells.subscribed,
            open = cells.connections,
        );
    }
    page.push_str("</tbody>\n</table>\n</section>\n");
}

fn events(page: &mut String, status: &Status) {
    let rates = &status.events_per_second;
    let _ = write!(
        page,
        "<section id=\"events\">\n<h2>Events per second (last 10 s)</h2>\n\
         <p class=\"big\" id=\"delivered-rate\">{delivered:.1}</p>\n<dl>\n\
         <div><dt>delivered to sockets</dt><dd>{delivered:.1}/s</dd></div>\n\
         <div><dt>published</dt><dd id=\"published-rate\">{published:.1}/s</dd></div>\n\
         </dl>\n</section>\n",
        delivered = rates.delivered,
        published = rates.published,
    );
}

fn workspaces(page: &mut String, status: &Status) {
    let _ = write!(
        page,
        "<section id=\"workspaces\">\n<h2>Busiest workspaces on this node</h2>\n\
         <p class=\"big\">{count}</p>\n",
        count = status.workspaces,
    );
    if status.busiest_workspaces.is_empty() {
        page.push_str("<p>No socket is registered to a workspace.</p>\n</section>\n");
        return;
    }
    page.push_str(
        "<table>\n<thead><tr><th>workspace</th><th class=\"n\">members</th></tr></thead>\n<tbody>\n",
    );
    for busy in &status.busiest_workspaces {
        let _ = writeln!(
            page,
            "<tr><td class=\"id\">{id}</td><td class=\"n\">{members}</td></tr>",
            id = Escaped(&busy.workspace),
            members = busy.members,
        );
    }
    page.push_str("</tbody>\n</table>\n</section>\n");
}

fn nodes(page: &mut String, cluster: &ClusterStatus) {
    let _ = write!(
        page,
        "<section id=\"nodes\">\n<h2>Cluster nodes</h2>\n<p class=\"big\">{count}</p>\n",
        count = cluster.nodes.len(),
    );
    if cluster.redis != "up" {
        page.push_str(
            "<p class=\"warn\">Redis is unreachable: nodes deliver their local events only.</p>\n",
        );
    }
    page.push_str(
        "<table>\n<thead><tr><th>node</th><th>address</th><th class=\"n\">public</th>\
         <th class=\"n\">private</th></tr></thead>\n<tbody>\n",
    );
    for node in &cluster.nodes {
        let _ = writeln!(
            page,
            "<tr><td class=\"id\">{id}</td><td>{addr}</td><td class=\"n\">{public}</td>\
             <td class=\"n\">{private}</td></tr>",
            id = Escaped(&node.id),
            addr = Escaped(&node.addr),
            public = node.public,
            private = node.private,
        );
    }
    page.push_str("</tbody>\n</table>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_attributes() {
        assert_eq!(
            Escaped("<script>alert(\"x\")</script> & 'y'").to_string(),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(Escaped("plain ünïcode").to_string(), "plain ünïcode");
        assert_eq!(Escaped("").to_string(), "");
    }

    #[test]
    fn uptime_reads_at_a_glance() {
        assert_eq!(uptime(42), "42s");
        assert_eq!(uptime(61), "1m 01s");
        assert_eq!(uptime(2 * 3600 + 3 * 60 + 10), "2h 03m 10s");
        assert_eq!(uptime(3 * 86_400 + 4 * 3600 + 5 * 60), "3d 4h 05m");
    }

    #[test]
    fn the_style_is_the_only_inline_content_and_matches_its_hash() {
        assert!(!CSS.contains("</style"));
        let hash = BASE64.encode(Sha256::digest(CSS.as_bytes()));
        assert_eq!(hash.len(), 44);
    }
}
