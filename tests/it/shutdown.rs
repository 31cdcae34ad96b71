//! Graceful shutdown: cancelling the token disconnects every socket and `run` returns within
//! `shutdown_timeout`.

use std::time::{Duration, Instant};

use crate::support::{TestServer, client::Disconnect};

#[tokio::test]
async fn cancelling_disconnects_everyone_and_returns_in_time() {
    let server = TestServer::start("shutdown_timeout = \"3s\"").await;
    let url = server.url("/health");
    let mut alice = server.registered("alice", &["ws-a"]).await;
    let mut bob = server.browser("bob", &[]).await;
    let mut backend = server.backend().await;

    let started = Instant::now();
    server
        .stop(Duration::from_secs(5))
        .await
        .expect("run returns Ok");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");

    // As npm socket.io's `io.close()`: the transport closes without a Socket.IO DISCONNECT
    // packet, so socket.io-client sees "transport close" and reconnects to the restarted
    // server. A DISCONNECT packet ("io server disconnect") would leave every browser
    // disconnected for good after a deploy.
    for client in [&mut alice, &mut bob, &mut backend] {
        let how = client.expect_disconnect().await;
        assert_eq!(
            how,
            Disconnect::Closed,
            "a DISCONNECT packet stops client reconnection: {:?}",
            client.arrivals()
        );
    }
    assert!(
        reqwest::get(&url).await.is_err(),
        "the listener still accepts after shutdown"
    );
}

#[tokio::test]
async fn an_idle_server_stops_at_once() {
    let server = TestServer::start("").await;
    let started = Instant::now();
    server
        .stop(Duration::from_secs(5))
        .await
        .expect("run returns Ok");
    assert!(started.elapsed() < Duration::from_secs(2));
}
