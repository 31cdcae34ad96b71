//! `herald::doctor::run` against an in-process herald: the library behind `herald doctor`
//! (client-compat-tests/doctor.test.mjs runs the binary, through nginx and TLS as well).

use std::time::Duration;

use herald::{
    config::Secret,
    doctor::{Options, Report, Status, Step, run},
};

use crate::support::TestServer;

fn options(server: &TestServer, token: Option<String>, workspace: Option<&str>) -> Options {
    Options {
        url: format!("http://{}", server.addr),
        path: None,
        namespace: "/public".to_owned(),
        token: token.map(Secret::new),
        workspace: workspace.map(ToOwned::to_owned),
        ca: None,
        origin: None,
        timeout: Duration::from_secs(10),
        verifier: None,
        leeway: Duration::from_secs(5),
        cells: None,
    }
}

/// "url:pass dns:pass ...".
fn trail(report: &Report) -> String {
    let status = |s: Status| match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Skip => "skip",
    };
    let steps: Vec<String> = report
        .steps
        .iter()
        .map(|s| format!("{}:{}", s.step.name(), status(s.status)))
        .collect();
    steps.join(" ")
}

#[tokio::test]
async fn every_step_passes_against_a_healthy_herald() {
    let server = TestServer::start("").await;
    let token = server.token("alice", &["ws1"], &[]);
    let report = run(&options(&server, Some(token.clone()), Some("ws1"))).await;
    assert!(report.ok, "{}", report.to_text());
    assert_eq!(
        trail(&report),
        "url:pass dns:pass tcp:pass tls:skip polling:pass websocket:pass connect:pass register:pass"
    );
    assert!(!report.to_text().contains(&token) && !report.to_json().contains(&token));
}

#[tokio::test]
async fn stops_at_the_first_failing_step() {
    let server = TestServer::start("").await;

    let mut wrong_path = options(&server, None, None);
    wrong_path.path = Some("/push".to_owned());
    let report = run(&wrong_path).await;
    let last = report.steps.last().unwrap();
    assert_eq!(
        (last.step, last.status),
        (Step::Polling, Status::Fail),
        "{}",
        report.to_text()
    );
    assert!(
        last.detail.contains("wrong engine path /push"),
        "{}",
        last.detail
    );

    let token = server.token("bob", &["ws1"], &[]);
    let report = run(&options(&server, Some(token), Some("ws2"))).await;
    let last = report.steps.last().unwrap();
    assert_eq!(
        (last.step, last.status),
        (Step::Register, Status::Fail),
        "{}",
        report.to_text()
    );
    assert!(last.detail.contains("forbidden"), "{}", last.detail);
    assert!(!report.ok);
}
