//! What `herald doctor` found: one result per step, a verdict, and their rendering as text
//! (one line per step) or JSON.

use serde::Serialize;

/// The steps, in the order a browser's socket.io-client goes through them; with `--cells`, the
/// Cells door's steps take the place of the Socket.IO ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The URL parses (scheme, host, port, engine path).
    Url,
    /// The host name resolves.
    Dns,
    /// A TCP connection opens.
    Tcp,
    /// The TLS handshake succeeds and the certificate is trusted (https/wss only).
    Tls,
    /// The Engine.IO long-polling handshake answers an open packet.
    Polling,
    /// The WebSocket upgrade of that session succeeds.
    Websocket,
    /// The Socket.IO CONNECT to the namespace is accepted (with the token).
    Connect,
    /// `register` of the workspace is acknowledged.
    Register,
    /// The Cells door (`cells.event_path`) answers a WebSocket upgrade with 101.
    CellsUpgrade,
    /// The Cells door does not refuse the token's subscribe.
    CellsSubscribe,
}

impl Step {
    /// The step's name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Self::Url => "url",
            Self::Dns => "dns",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Polling => "polling",
            Self::Websocket => "websocket",
            Self::Connect => "connect",
            Self::Register => "register",
            Self::CellsUpgrade => "cells_upgrade",
            Self::CellsSubscribe => "cells_subscribe",
        }
    }
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It worked.
    Pass,
    /// It failed; later steps did not run.
    Fail,
    /// It does not apply (no TLS on http, no token given, no workspace given).
    Skip,
}

/// One step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// Which step.
    pub step: Step,
    /// Pass, fail or skip.
    pub status: Status,
    /// What happened, in plain words.
    pub detail: String,
    /// On failure: the likely cause and the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A step that failed: what happened, and what probably causes it and how to fix it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) what: String,
    pub(crate) hint: String,
}

impl Failure {
    pub(crate) fn new(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            hint: hint.into(),
        }
    }
}

/// A step that passed: the value later steps need and a line saying what was seen.
pub(crate) struct Passed<T> {
    pub(crate) value: T,
    pub(crate) detail: String,
}

impl<T> Passed<T> {
    pub(crate) fn new(value: T, detail: impl Into<String>) -> Self {
        Self {
            value,
            detail: detail.into(),
        }
    }
}

/// Everything `herald doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The URL as given.
    pub url: String,
    /// Whether every step that ran passed.
    pub ok: bool,
    /// The steps that ran, in order; the last one failed when `ok` is false.
    pub steps: Vec<StepResult>,
    /// One line: the conclusion.
    pub verdict: String,
}

impl Report {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            ok: true,
            steps: Vec::new(),
            verdict: String::new(),
        }
    }

    /// Records a step's outcome; returns its value when it passed.
    pub(crate) fn record<T>(
        &mut self,
        step: Step,
        outcome: Result<Passed<T>, Failure>,
    ) -> Option<T> {
        match outcome {
            Ok(passed) => {
                self.push(step, Status::Pass, passed.detail, None);
                Some(passed.value)
            }
            Err(failure) => {
                self.ok = false;
                self.verdict = format!("FAIL at step {}: {}", step.name(), failure.what);
                self.push(step, Status::Fail, failure.what, Some(failure.hint));
                None
            }
        }
    }

    pub(crate) fn skip(&mut self, step: Step, why: impl Into<String>) {
        self.push(step, Status::Skip, why.into(), None);
    }

    pub(crate) fn conclude(&mut self, verdict: impl Into<String>) {
        if self.ok {
            self.verdict = verdict.into();
        }
    }

    fn push(&mut self, step: Step, status: Status, detail: String, hint: Option<String>) {
        self.steps.push(StepResult {
            step,
            status,
            detail,
            hint,
        });
    }

    /// The report as text: one line per step with its mark, the fix under a failed step, and
    /// the verdict last.
    pub fn to_text(&self) -> String {
        let mut out = format!("herald doctor {}\n", self.url);
        // The details line up after the longest step name ("websocket" unless a Cells step ran).
        let width = self
            .steps
            .iter()
            .map(|s| s.step.name().len())
            .max()
            .unwrap_or(0)
            .max(Step::Websocket.name().len());
        for s in &self.steps {
            let mark = match s.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "SKIP",
            };
            out.push_str(&format!(
                "{mark}  {:<width$}  {}\n",
                s.step.name(),
                s.detail
            ));
            if let Some(hint) = &s.hint {
                out.push_str(&format!("      {:<width$}  fix: {hint}\n", ""));
            }
        }
        out.push_str(&format!("verdict: {}\n", self.verdict));
        out
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> String {
        // invariant: the report is plain strings, booleans and enums; it always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// At most `max` characters of `text` from the network, control characters replaced, for
/// quoting in a message.
pub(crate) fn snippet(text: &str, max: usize) -> String {
    let mut s: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_a_mark_per_step_the_fix_and_the_verdict() {
        let mut report = Report::new("http://x");
        assert_eq!(
            report.record(Step::Url, Ok(Passed::new(7, "parsed"))),
            Some(7)
        );
        report.skip(Step::Tls, "plain");
        let failed: Option<()> =
            report.record(Step::Polling, Err(Failure::new("404", "use /socket.io")));
        assert!(failed.is_none());
        report.conclude("OK: never shown after a failure");
        assert!(!report.ok);
        let text = report.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "PASS  url        parsed");
        assert_eq!(lines[2], "SKIP  tls        plain");
        assert_eq!(lines[3], "FAIL  polling    404");
        assert_eq!(lines[4].trim(), "fix: use /socket.io");
        assert_eq!(lines[5], "verdict: FAIL at step polling: 404");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["steps"][2]["status"], "fail");
        assert_eq!(json["steps"][2]["hint"], "use /socket.io");
        assert_eq!(snippet("a\nbcdef", 3), "a b…");
    }

    #[test]
    fn cells_steps_are_snake_case_and_line_up() {
        let mut report = Report::new("http://x");
        report.skip(Step::Polling, "cells");
        report.skip(Step::CellsSubscribe, "no token");
        let text = report.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "SKIP  polling          cells");
        assert_eq!(lines[2], "SKIP  cells_subscribe  no token");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["steps"][1]["step"], "cells_subscribe");
        assert_eq!(json["steps"][0]["step"], "polling");
    }
}
