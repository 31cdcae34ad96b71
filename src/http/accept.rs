//! Content negotiation on `Accept`, for the endpoints that answer a person and a program
//! differently (`/status`: HTML to a browser, JSON to everything else).

use axum::http::{HeaderMap, header};

/// Whether the request's `Accept` prefers `text/html` to `application/json`.
///
/// Each type gets the quality of the most specific media range that matches it (`text/html` >
/// `text/*` > `*/*`), as RFC 9110 says; HTML wins only with a strictly higher quality, so a
/// tie (`*/*`, curl's default), no header or an unreadable one keep JSON.
pub(crate) fn prefers_html(headers: &HeaderMap) -> bool {
    let mut html = Quality::default();
    let mut json = Quality::default();
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for range in value.split(',') {
            html.consider(range, "text", "html");
            json.consider(range, "application", "json");
        }
    }
    html.value() > json.value()
}

/// The best match so far: (specificity, quality in thousandths).
#[derive(Debug, Default)]
struct Quality(Option<(u8, u16)>);

impl Quality {
    fn consider(&mut self, range: &str, kind: &str, subtype: &str) {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let Some((range_kind, range_subtype)) = media.split_once('/') else {
            return;
        };
        let specificity = match (range_kind.trim(), range_subtype.trim()) {
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => 3,
            (k, "*") if k.eq_ignore_ascii_case(kind) => 2,
            ("*", "*") => 1,
            _ => return,
        };
        let quality = parts
            .filter_map(|param| param.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(1000, |(_, q)| parse_q(q.trim()));
        if self.0.is_none_or(|(best, _)| specificity > best) {
            self.0 = Some((specificity, quality));
        }
    }

    fn value(&self) -> u16 {
        self.0.map_or(0, |(_, q)| q)
    }
}

/// A `q` value (0 to 1, up to three decimals) in thousandths; anything unreadable is 0.
fn parse_q(q: &str) -> u16 {
    match q.parse::<f32>() {
        // Bounded to 0..=1000 before the cast.
        Ok(q) if (0.0..=1.0).contains(&q) => (q * 1000.0).round() as u16,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn browsers_get_html() {
        for value in [
            // Chromium and Firefox navigating to a page.
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "TEXT/HTML",
            "text/*, application/json;q=0.5",
        ] {
            assert!(prefers_html(&accept(&[value])), "{value}");
        }
    }

    #[test]
    fn programs_and_ties_get_json() {
        for value in [
            "*/*",
            "application/json",
            "application/json, text/html",
            "text/html;q=0.5, application/json",
            "text/html;q=0, */*",
            "text/html;q=garbage",
            "text/*;q=0.9, */*",
            "garbage",
            "",
        ] {
            assert!(!prefers_html(&accept(&[value])), "{value}");
        }
        assert!(!prefers_html(&HeaderMap::new()));
    }

    #[test]
    fn the_most_specific_range_decides() {
        // text/html is excluded outright, whatever text/* says.
        assert!(!prefers_html(&accept(&["text/*, text/html;q=0"])));
        // Several Accept headers count as one list.
        assert!(prefers_html(&accept(&[
            "application/json;q=0.1",
            "text/html"
        ])));
    }
}
