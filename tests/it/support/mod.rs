//! Shared test plumbing: a real herald server per test, a small Socket.IO client, a mock auth
//! backend, token helpers and bounded waits.

pub(crate) mod backend;
pub(crate) mod client;
pub(crate) mod tls;
pub(crate) mod tokens;
pub(crate) mod wire;

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, Once},
    time::Duration,
};

use herald::{Config, config::Secret, server::ServerError};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub(crate) use client::Client;

/// The private key every test server is given unless its TOML names another.
pub(crate) const PRIVATE_KEY: &str = "test-private-key-0123";
/// The HS* secret every test server is given unless its TOML names another.
pub(crate) const JWT_SECRET: &str = "test-jwt-secret-0123";
/// How long any single awaited thing may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// Installs a test-writer subscriber once per process (`RUST_LOG` selects; default: warn).
pub(crate) fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Path of a file under `tests/fixtures`.
pub(crate) fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A herald server on `127.0.0.1:<free port>`, stopped when dropped.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) cfg: Arc<Config>,
    pub(crate) shutdown: CancellationToken,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestServer {
    /// Starts a server from `cfg_toml` (layered over the embedded defaults). The private key and
    /// the JWT secret default to [`PRIVATE_KEY`] and [`JWT_SECRET`] when the TOML sets none.
    pub(crate) async fn start(cfg_toml: &str) -> Self {
        Self::start_with(cfg_toml, |_| {}).await
    }

    /// [`Self::start`], with `setup` called on the built state before the first connection is
    /// accepted: a test mounts extra namespaces on `state.io` with it (the protocol documents'
    /// echo handlers). The binary never has them.
    pub(crate) async fn start_with(
        cfg_toml: &str,
        setup: impl FnOnce(&herald::socketio::Io) + Send + 'static,
    ) -> Self {
        init_tracing();
        let mut cfg = Config::from_toml(cfg_toml).expect("test config parses");
        cfg.private
            .key
            .get_or_insert_with(|| Secret::new(PRIVATE_KEY));
        if cfg.auth.jwt.algorithm.is_hmac() {
            cfg.auth
                .jwt
                .secret
                .get_or_insert_with(|| Secret::new(JWT_SECRET));
        }
        cfg.validate(false).expect("test config validates");
        let cfg = Arc::new(cfg);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(herald::server::run_with(
            listener,
            cfg.clone(),
            shutdown.clone(),
            setup,
        ));
        Self {
            addr,
            cfg,
            shutdown,
            handle: Some(handle),
        }
    }

    /// `http://<addr><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A valid HS* browser token for `user`.
    pub(crate) fn token(&self, user: &str, workspaces: &[&str], groups: &[&str]) -> String {
        let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        herald::auth::jwt::mint(
            &self.cfg.auth.jwt,
            None,
            user,
            &owned(groups),
            &owned(workspaces),
            Duration::from_secs(600),
        )
        .expect("mint a test token")
    }

    /// A browser on `/public` presenting `token` as `auth.token`.
    pub(crate) async fn browser_with(&self, token: &str) -> Client {
        Client::builder(self.addr)
            .path(&self.cfg.engine_path)
            .namespace(&self.cfg.public.path)
            .auth(json!({ "token": token }))
            .connect()
            .await
    }

    /// A browser for `user`, who may read `workspaces`.
    pub(crate) async fn browser(&self, user: &str, workspaces: &[&str]) -> Client {
        self.browser_with(&self.token(user, workspaces, &[])).await
    }

    /// A browser for `user`, registered to each of `workspaces`.
    pub(crate) async fn registered(&self, user: &str, workspaces: &[&str]) -> Client {
        let mut client = self.browser(user, workspaces).await;
        for ws in workspaces {
            let ack = client
                .emit_with_ack("register", &json!({ "workspace": ws }))
                .await;
            assert_eq!(
                without_position(&ack),
                json!({"ok": true, "workspace": ws}),
                "register {ws}"
            );
        }
        client
    }

    /// A backend on `/private`, admitted with the configured key.
    pub(crate) async fn backend(&self) -> Client {
        let key = self.cfg.private.key.as_ref().expect("key").expose();
        Client::builder(self.addr)
            .path(&self.cfg.engine_path)
            .namespace(&self.cfg.private.path)
            .auth(json!({ "key": key }))
            .connect()
            .await
    }

    /// Stops the server and returns what `run` returned, failing if it takes longer than
    /// `within`.
    pub(crate) async fn stop(mut self, within: Duration) -> Result<(), ServerError> {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("not stopped yet");
        tokio::time::timeout(within, handle)
            .await
            .unwrap_or_else(|_| panic!("herald::run did not return within {within:?}"))
            .expect("the server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A `register` ack without its `offset` and `epoch`, after checking their types: what the
/// tests that are not about the event log compare.
pub(crate) fn without_position(ack: &Value) -> Value {
    let mut ack = ack.clone();
    if ack["ok"] == json!(true) {
        let fields = ack.as_object_mut().expect("ack object");
        let offset = fields.remove("offset");
        let epoch = fields.remove("epoch");
        assert!(
            offset.as_ref().is_some_and(Value::is_u64),
            "register ack without an offset: {offset:?}"
        );
        assert!(
            epoch
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|e| !e.is_empty()),
            "register ack without an epoch: {epoch:?}"
        );
    }
    ack
}

/// Publishes over `/private` and asserts the publish was accepted; returns the event id.
pub(crate) async fn publish_ok(backend: &mut Client, request: &Value) -> String {
    let ack = backend.emit_with_ack("publish", request).await;
    assert_eq!(ack["ok"], json!(true), "publish {request} refused: {ack}");
    ack["id"].as_str().expect("publish ack id").to_owned()
}

/// Polls `condition` every 20 ms until it holds; fails with `what` after [`WAIT`].
pub(crate) async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still not true after {WAIT:?}"
        );
    }
}
