//! A minimal Socket.IO v5 / Engine.IO v4 client over WebSocket, enough to drive herald.
//!
//! A reader task answers engine pings and forwards Socket.IO packets of every namespace to the
//! [`Client`], which keeps what it has not consumed yet (so acks and events may arrive in any
//! interleaving) and a history of every event of its namespace (for "never received" checks).

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use super::{
    WAIT,
    wire::{Event, Incoming, Packet, encode, event_array, frame, parse_packet, to_event},
};

/// How a disconnect was observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disconnect {
    /// A Socket.IO DISCONNECT packet for the namespace.
    Packet,
    /// The transport closed.
    Closed,
}

/// Handshake options.
#[derive(Debug, Clone)]
pub(crate) struct ClientBuilder {
    addr: SocketAddr,
    path: String,
    namespace: String,
    auth: Option<Value>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    answer_pings: bool,
    /// `wss://` with this client configuration; `ws://` without.
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl ClientBuilder {
    /// Leaves engine pings unanswered (to see the server's ping timeout).
    pub(crate) fn without_pongs(mut self) -> Self {
        self.answer_pings = false;
        self
    }

    pub(crate) fn path(mut self, path: &str) -> Self {
        path.clone_into(&mut self.path);
        self
    }

    pub(crate) fn namespace(mut self, ns: &str) -> Self {
        ns.clone_into(&mut self.namespace);
        self
    }

    pub(crate) fn auth(mut self, auth: Value) -> Self {
        self.auth = Some(auth);
        self
    }

    pub(crate) fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Connects over `wss://`, trusting what `config` trusts.
    pub(crate) fn tls(mut self, config: Arc<tokio_rustls::rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Connects and asserts that the namespace admitted the client.
    pub(crate) async fn connect(self) -> Client {
        let ns = self.namespace.clone();
        match self.try_connect().await {
            Ok(client) => client,
            Err(message) => panic!("connect to {ns} refused: {message}"),
        }
    }

    /// Connects; `Err` carries the CONNECT_ERROR message (e.g. "unauthorized").
    pub(crate) async fn try_connect(self) -> Result<Client, String> {
        let mut url = format!(
            "{}://{}{}/?EIO=4&transport=websocket",
            if self.tls.is_some() { "wss" } else { "ws" },
            self.addr,
            self.path.trim_end_matches('/')
        );
        for (k, v) in &self.query {
            url.push_str(&format!("&{k}={}", encode(v)));
        }
        let mut request = url.into_client_request().expect("websocket request");
        for (k, v) in &self.headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                k.parse().expect("header name");
            request
                .headers_mut()
                .append(name, HeaderValue::from_str(v).expect("header value"));
        }
        let (ws, _) = tokio::time::timeout(
            WAIT,
            // TCP_NODELAY: this client never delays what it sends.
            tokio_tungstenite::connect_async_tls_with_config(
                request,
                None,
                true,
                self.tls.clone().map(tokio_tungstenite::Connector::Rustls),
            ),
        )
        .await
        .expect("websocket handshake timed out")
        .expect("websocket handshake failed");
        let (mut sink, mut stream) = ws.split();

        let open = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("no Engine.IO open packet")
            .expect("stream ended before the open packet")
            .expect("websocket error before the open packet");
        let open = open.to_text().expect("text open packet").to_owned();
        let handshake: Value =
            serde_json::from_str(open.strip_prefix('0').expect("open packet starts with 0"))
                .expect("open packet JSON");
        assert!(
            handshake["sid"].is_string(),
            "open packet without sid: {open}"
        );

        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
        });
        let (in_tx, inbox) = mpsc::unbounded_channel();
        let pings = Arc::new(AtomicUsize::new(0));
        let pong = self.answer_pings.then(|| out.clone());
        let reader = tokio::spawn(read_loop(stream, in_tx, pong, pings.clone()));

        let mut client = Client {
            ns: self.namespace,
            out,
            inbox,
            pending: VecDeque::new(),
            history: Vec::new(),
            arrivals: Vec::new(),
            next_ack: 0,
            pings,
            reader,
            writer,
        };
        let auth = self.auth.map(|a| a.to_string()).unwrap_or_default();
        client.send_packet('0', None, &auth);
        let ns = client.ns.clone();
        let reply = client
            .wait_for(&format!("CONNECT answer on {ns}"), |p| {
                p.ns == ns && (p.kind == '0' || p.kind == '4')
            })
            .await;
        let Incoming::Packet(reply) = reply else {
            panic!("connection closed before the CONNECT answer on {ns}");
        };
        if reply.kind == '0' {
            Ok(client)
        } else {
            let error: Value = serde_json::from_str(&reply.payload).expect("connect error JSON");
            Err(error["message"].as_str().unwrap_or_default().to_owned())
        }
    }
}

type WsStream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

async fn read_loop(
    mut stream: WsStream,
    inbox: mpsc::UnboundedSender<Incoming>,
    pong: Option<mpsc::UnboundedSender<Message>>,
    pings: Arc<AtomicUsize>,
) {
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else {
            if msg.is_close() {
                break;
            }
            continue;
        };
        let text = text.as_str();
        match text.chars().next() {
            Some('2') => {
                pings.fetch_add(1, Ordering::SeqCst);
                if let Some(out) = &pong {
                    let _ = out.send(Message::text("3"));
                }
            }
            Some('1') => break,
            Some('4') => {
                let _ = inbox.send(Incoming::Packet(parse_packet(text)));
            }
            _ => {}
        }
    }
    let _ = inbox.send(Incoming::Closed);
}

/// A connected Socket.IO client on one namespace.
#[derive(Debug)]
pub(crate) struct Client {
    ns: String,
    out: mpsc::UnboundedSender<Message>,
    inbox: mpsc::UnboundedReceiver<Incoming>,
    pending: VecDeque<Incoming>,
    history: Vec<Event>,
    arrivals: Vec<String>,
    next_ack: u64,
    pings: Arc<AtomicUsize>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Client {
    /// Starts building a client of `ws://addr/socket.io/` on `/public`.
    pub(crate) fn builder(addr: SocketAddr) -> ClientBuilder {
        ClientBuilder {
            addr,
            path: "/socket.io".to_owned(),
            namespace: "/public".to_owned(),
            auth: None,
            query: Vec::new(),
            headers: Vec::new(),
            answer_pings: true,
            tls: None,
        }
    }

    /// Sends a Socket.IO packet of `kind` on this client's namespace.
    fn send_packet(&self, kind: char, ack: Option<u64>, json: &str) {
        self.send_text(frame(kind, &self.ns, ack, json));
    }

    /// Sends a raw WebSocket text frame.
    pub(crate) fn send_text(&self, text: String) {
        // A closed socket is observed by the waits, not here.
        let _ = self.out.send(Message::text(text));
    }

    /// Sends a raw WebSocket binary frame (a Socket.IO binary attachment).
    pub(crate) fn send_binary(&self, bytes: Vec<u8>) {
        let _ = self.out.send(Message::binary(bytes));
    }

    /// Allocates the next ack id.
    pub(crate) fn next_ack_id(&mut self) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        id
    }

    fn send_event(&self, event: &str, args_json: &str, ack: Option<u64>) {
        self.send_packet('2', ack, &event_array(event, args_json));
    }

    /// Emits an event without ack.
    pub(crate) fn emit(&self, event: &str, arg: &Value) {
        self.send_event(event, &arg.to_string(), None);
    }

    /// Sends an event with an ack id and returns the id, without waiting for the ack.
    pub(crate) fn request_raw(&mut self, event: &str, args_json: &str) -> u64 {
        let id = self.next_ack_id();
        self.send_event(event, args_json, Some(id));
        id
    }

    /// Emits with an ack and returns the first ack argument.
    pub(crate) async fn emit_with_ack(&mut self, event: &str, arg: &Value) -> Value {
        let id = self.request_raw(event, &arg.to_string());
        self.ack(id).await
    }

    /// Emits raw argument text (byte for byte) with an ack and returns the first ack argument.
    pub(crate) async fn emit_raw_with_ack(&mut self, event: &str, args_json: &str) -> Value {
        let id = self.request_raw(event, args_json);
        self.ack(id).await
    }

    /// Waits for the ack of request `id` and returns its first argument.
    pub(crate) async fn ack(&mut self, id: u64) -> Value {
        let ns = self.ns.clone();
        let what = format!("ack {id} on {ns}");
        match self
            .wait_for(&what, |p| p.ns == ns && p.kind == '3' && p.ack == Some(id))
            .await
        {
            Incoming::Packet(p) => {
                let mut args: Vec<Value> = serde_json::from_str(&p.payload).expect("ack JSON");
                assert!(!args.is_empty(), "empty ack: {}", p.raw);
                args.swap_remove(0)
            }
            Incoming::Closed => panic!("connection closed while waiting for {what}"),
        }
    }

    /// Waits for the next event called `name` (events of other names are kept).
    pub(crate) async fn next_event(&mut self, name: &str) -> Event {
        let ns = self.ns.clone();
        let wanted = serde_json::to_string(name).expect("name");
        let what = format!("event {name:?} on {ns}");
        match self
            .wait_for(&what, |p| {
                p.ns == ns && p.kind == '2' && p.payload.starts_with(&format!("[{wanted}"))
            })
            .await
        {
            Incoming::Packet(p) => to_event(&p),
            Incoming::Closed => panic!("connection closed while waiting for {what}"),
        }
    }

    /// Waits until the server disconnects this namespace or closes the transport.
    pub(crate) async fn expect_disconnect(&mut self) -> Disconnect {
        let ns = self.ns.clone();
        match self
            .wait_for(&format!("disconnect of {ns}"), |p| {
                p.ns == ns && p.kind == '1'
            })
            .await
        {
            Incoming::Packet(_) => Disconnect::Packet,
            Incoming::Closed => Disconnect::Closed,
        }
    }

    /// Every event of this namespace received so far, consumed or not.
    pub(crate) fn events(&self) -> &[Event] {
        &self.history
    }

    /// How many events called `name` were received so far.
    pub(crate) fn count(&self, name: &str) -> usize {
        self.history.iter().filter(|e| e.name == name).count()
    }

    /// What arrived for this namespace, in order: `event:<name>`, `ack`, `disconnect`,
    /// `closed` (the transport), ...
    pub(crate) fn arrivals(&self) -> &[String] {
        &self.arrivals
    }

    fn note_arrival(&mut self, item: &Incoming) {
        match item {
            Incoming::Closed => self.arrivals.push("closed".to_owned()),
            Incoming::Packet(p) if p.ns == self.ns => match p.kind {
                '2' => {
                    let event = to_event(p);
                    self.arrivals.push(format!("event:{}", event.name));
                    self.history.push(event);
                }
                '1' => self.arrivals.push("disconnect".to_owned()),
                '3' => self.arrivals.push("ack".to_owned()),
                other => self.arrivals.push(format!("packet:{other}")),
            },
            Incoming::Packet(_) => {}
        }
    }

    /// How many engine pings the reader has answered.
    pub(crate) fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }

    /// Takes the first item matching `wanted` (or a close), from what is pending or what
    /// arrives within [`WAIT`]; panics naming `what` otherwise.
    async fn wait_for(&mut self, what: &str, wanted: impl Fn(&Packet) -> bool) -> Incoming {
        let matches = |item: &Incoming| match item {
            Incoming::Packet(p) => wanted(p),
            Incoming::Closed => true,
        };
        if let Some(pos) = self.pending.iter().position(matches) {
            let item = self.pending.remove(pos).expect("position is valid");
            if matches!(item, Incoming::Closed) {
                // Keep the close visible to later waits too.
                self.pending.push_back(Incoming::Closed);
            }
            return item;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let item = tokio::time::timeout_at(deadline, self.inbox.recv())
                .await
                .unwrap_or_else(|_| panic!("{what} did not happen within {WAIT:?}"))
                .unwrap_or(Incoming::Closed);
            self.note_arrival(&item);
            if matches(&item) {
                if matches!(item, Incoming::Closed) {
                    self.pending.push_back(Incoming::Closed);
                }
                return item;
            }
            self.pending.push_back(item);
        }
    }
}
