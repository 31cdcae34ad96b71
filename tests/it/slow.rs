//! Slow consumers: a WebSocket client that stops reading fills its TCP buffers, then its
//! queue of `engine.max_buffer_size` packets. It must not hold up anyone else: a reading client
//! in the same workspace gets every event, in order, while it lasts. herald then cuts the slow
//! client's connection (its queue stays bounded), and the client, back with `since`, gets what
//! it missed from the event log.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest},
};

use crate::support::{PRIVATE_KEY, TestServer, WAIT, publish_ok, without_position};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads text frames until one starts with `prefix`; fails after [`WAIT`].
async fn read_until(ws: &mut Ws, prefix: &str) -> String {
    let wait = async {
        while let Some(frame) = ws.next().await {
            if let Message::Text(text) = frame.expect("websocket frame")
                && text.starts_with(prefix)
            {
                return text.to_string();
            }
        }
        panic!("connection closed before a frame starting with {prefix:?}");
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no frame starting with {prefix:?} within {WAIT:?}"))
}

/// A raw client registered to `ws`: it reads only what the test makes it read.
async fn raw_registered(server: &TestServer, user: &str, ws: &str) -> Ws {
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
    let (mut socket, _) = connect_async(url.into_client_request().expect("request"))
        .await
        .expect("websocket");
    read_until(&mut socket, "0{").await;
    let auth = json!({"token": server.token(user, &[ws], &[])});
    socket
        .send(Message::text(format!("40/public,{auth}")))
        .await
        .expect("send connect");
    read_until(&mut socket, "40/public,").await;
    socket
        .send(Message::text(format!(
            "42/public,0[\"register\",{}]",
            json!(ws)
        )))
        .await
        .expect("send register");
    read_until(&mut socket, "43/public,0").await;
    socket
}

async fn public_connections(server: &TestServer) -> u64 {
    let status: Value = reqwest::Client::new()
        .get(server.url("/status"))
        .bearer_auth(PRIVATE_KEY)
        .send()
        .await
        .expect("GET /status")
        .json()
        .await
        .expect("status JSON");
    status["connections"]["public"]
        .as_u64()
        .expect("public count")
}

/// The offset in the meta of a raw `42/public,["slow",<data>,<meta>]` frame.
fn offset_of(frame: &str) -> Option<u64> {
    let args: Value = serde_json::from_str(frame.strip_prefix("42/public,")?).ok()?;
    (args[0] == json!("slow")).then(|| args[2]["offset"].as_u64())?
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_recovers_with_since() {
    let server = TestServer::start(
        r#"
[engine]
max_buffer_size = 64
[history]
size = 10000
"#,
    )
    .await;
    let mut reader = server.browser("bob", &["ws-s"]).await;
    let ack = reader
        .emit_with_ack("register", &json!({"workspace": "ws-s"}))
        .await;
    assert_eq!(
        without_position(&ack),
        json!({"ok": true, "workspace": "ws-s"})
    );
    let epoch = ack["epoch"].as_str().expect("epoch").to_owned();
    let mut slow = raw_registered(&server, "alice", "ws-s").await;
    assert_eq!(public_connections(&server).await, 2);

    // 16 KiB per event: the slow client's socket buffers and queue fill after a few MB. Publish
    // in batches until herald has cut it off, the reader taking every event as it comes.
    let data = "x".repeat(16 * 1024);
    let mut backend = server.backend().await;
    let mut published = 0u64;
    let mut read = 0u64;
    while public_connections(&server).await == 2 {
        assert!(
            published < 4000,
            "the slow client was still connected after {published} events of 16 KiB"
        );
        for _ in 0..50 {
            publish_ok(
                &mut backend,
                &json!({"event": "slow", "workspace": "ws-s", "data": data}),
            )
            .await;
            published += 1;
        }
        while read < published {
            let event = reader.next_event("slow").await;
            read += 1;
            assert_eq!(
                event.args[1]["offset"],
                json!(read),
                "the reader was held up"
            );
        }
    }

    // What reached the slow client before the cut is still in its buffers; then the
    // connection ends instead of waiting for more.
    let mut last = 0;
    let drain = async {
        while let Some(Ok(frame)) = slow.next().await {
            if let Message::Text(text) = frame
                && let Some(offset) = offset_of(&text)
            {
                assert_eq!(offset, last + 1, "the slow client's stream has a gap");
                last = offset;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .expect("the slow client's connection did not end");
    assert!(
        last < published,
        "nothing was withheld from the slow client"
    );

    // Back with `since`: the rest, exactly.
    let mut back = server.browser("alice", &["ws-s"]).await;
    let since = json!({"workspace": "ws-s", "since": {"offset": last, "epoch": epoch}});
    let ack = back.emit_with_ack("register", &since).await;
    assert_eq!(ack["offset"], json!(published), "{ack}");
    for expected in last + 1..=published {
        let event = back.next_event("slow").await;
        assert_eq!(event.args[1]["offset"], json!(expected));
    }
    publish_ok(&mut backend, &json!({"event": "marker", "user": "alice"})).await;
    back.next_event("marker").await;
    assert_eq!(back.count("slow") as u64, published - last);
}
