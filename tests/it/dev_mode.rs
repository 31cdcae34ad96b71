//! Development mode, end to end through the binary: with no configuration at all, herald
//! generates a private key and a JWT secret, prints them with a ready-made browser token, and
//! they work.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;

use crate::support::{Client, publish_ok, without_position};

/// The herald process; killed (it is ours) when dropped.
struct Herald(Child);

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the development banner announced.
#[derive(Debug, Default)]
struct Banner {
    key: Option<String>,
    token: Option<String>,
    addr: Option<SocketAddr>,
}

/// Reads stderr lines until the banner is complete (at most 10 s) and sends it; then keeps
/// draining stderr, so that herald never writes to a closed pipe.
fn read_banner(stderr: std::process::ChildStderr, done: &std::sync::mpsc::Sender<Banner>) {
    let mut lines = BufReader::new(stderr).lines();
    let banner = banner_from(&mut lines);
    let _ = done.send(banner);
    for _ in lines {}
}

fn banner_from(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Banner {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut banner = Banner::default();
    let mut token_next = false;
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let line = line.trim();
        if token_next {
            banner.token = Some(line.to_owned());
            token_next = false;
        } else if line.starts_with("private key (HERALD_PRIVATE__KEY):") {
            banner.key = line.split_whitespace().last().map(str::to_owned);
        } else if line.starts_with("A browser token") {
            token_next = true;
        } else if let Some(rest) = line.strip_prefix("Publish:  curl -X POST http://") {
            banner.addr = rest.split('/').next().and_then(|a| a.parse().ok());
        }
        if banner.key.is_some() && banner.token.is_some() && banner.addr.is_some() {
            break;
        }
    }
    banner
}

#[tokio::test]
async fn generated_secrets_are_printed_and_work() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herald");
    let stderr = child.stderr.take().expect("stderr");
    let _herald = Herald(child);
    let (done, banner) = std::sync::mpsc::channel();
    std::thread::spawn(move || read_banner(stderr, &done));
    let banner = tokio::task::spawn_blocking(move || banner.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("banner reader")
        .expect("no development banner within 10 s");
    let (Some(key), Some(token), Some(addr)) = (&banner.key, &banner.token, banner.addr) else {
        panic!("incomplete development banner: {banner:?}");
    };

    let mut browser = Client::builder(addr)
        .auth(json!({"token": token}))
        .connect()
        .await;
    let ack = browser.emit_with_ack("register", &json!("demo")).await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "demo"})
    );
    let mut backend = Client::builder(addr)
        .namespace("/private")
        .auth(json!({"key": key}))
        .connect()
        .await;
    publish_ok(
        &mut backend,
        &json!({"event": "hello", "workspace": "demo"}),
    )
    .await;
    browser.next_event("hello").await;
}
