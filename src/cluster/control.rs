//! Commands that act on sockets wherever they are: a user's `disconnect_user` and access
//! changes, the chat's notices. The node that receives one applies it to its own sockets and
//! appends it to the stream `<prefix>:control`; every other node reads that stream and applies
//! it too.
//!
//! On the stream a command is `{"kind": "...", "body": ...}`, and this module knows no more of
//! it than that: the module that owns a kind of command gives it its type and kind
//! ([`Command`]), encodes it when it [`broadcast`]s, and registers in [`Handlers`] what this
//! node does with one from another node. The wiring (`server.rs`) hands the handlers to the
//! reader ([`spawn_reader`]).

use std::{collections::HashMap, future::Future, time::Duration};

use futures_util::future::BoxFuture;
use redis::{
    AsyncCommands,
    streams::{StreamMaxlen, StreamReadOptions, StreamReadReply},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::{Redis, link::Link};

/// Commands kept in the stream (only nodes that are up read them, at once).
const KEPT: usize = 10_000;
/// How long one read waits.
const BLOCK: Duration = Duration::from_millis(1000);

/// A command for every node: the body of one kind, owned by the module that handles it.
pub(crate) trait Command: Serialize + DeserializeOwned + Send + 'static {
    /// Its `kind` on the stream, one per type.
    const KIND: &'static str;
}

/// A command as written on the stream.
#[derive(Serialize)]
struct Outgoing<'a, C> {
    kind: &'static str,
    body: &'a C,
}

/// A command as read from the stream: its kind, and a body only the kind's handler reads.
#[derive(Deserialize)]
struct Incoming {
    kind: String,
    body: Box<RawValue>,
}

/// The bytes of a command on the stream (the entry's `c` field).
///
/// # Errors
/// The command cannot be written as JSON.
pub(crate) fn encode<C: Command>(command: &C) -> serde_json::Result<String> {
    serde_json::to_string(&Outgoing {
        kind: C::KIND,
        body: command,
    })
}

/// Why a command did not reach the other nodes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BroadcastError {
    /// The command cannot be written as JSON.
    #[error("command not encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// Redis unreachable.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Appends `command` for the other nodes.
///
/// # Errors
/// Redis unreachable (or a command that cannot be encoded): it did not reach the other nodes.
pub(crate) async fn broadcast<C: Command>(
    redis: &Redis,
    origin: &str,
    command: &C,
) -> Result<(), BroadcastError> {
    let body = encode(command)?;
    let mut commands = redis.commands.clone();
    let _: String = commands
        .xadd_maxlen(
            format!("{}:control", redis.prefix),
            StreamMaxlen::Approx(KEPT),
            "*",
            &[("o", origin), ("c", body.as_str())],
        )
        .await?;
    Ok(())
}

/// Applies a command's body, read as its type; `Err` when the body cannot be read as one.
type Apply = Box<dyn Fn(&RawValue) -> serde_json::Result<BoxFuture<'static, ()>> + Send + Sync>;

/// What this node does with each kind of command from the other nodes, each registered by the
/// module that owns the kind.
#[derive(Default)]
pub(crate) struct Handlers {
    by_kind: HashMap<&'static str, Apply>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_kind.keys()).finish()
    }
}

impl Handlers {
    /// Hands every command of kind `C::KIND` from another node to `apply`, one at a time, in
    /// stream order. A kind has one handler.
    pub(crate) fn on<C, F, Fut>(&mut self, apply: F)
    where
        C: Command,
        F: Fn(C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let apply: Apply = Box::new(move |body| {
            let command = serde_json::from_str::<C>(body.get())?;
            Ok(Box::pin(apply(command)))
        });
        let replaced = self.by_kind.insert(C::KIND, apply);
        debug_assert!(replaced.is_none(), "two handlers of `{}`", C::KIND);
    }

    /// Applies one command read from the stream (entry `id`, `c` field `body`); one that cannot
    /// be read (an error) or of a kind without a handler (a warning) is logged and skipped.
    pub(crate) async fn apply(&self, id: &str, body: Option<&str>) {
        let Some(Ok(command)) = body.map(serde_json::from_str::<Incoming>) else {
            tracing::error!(%id, "cluster control: unreadable command skipped");
            return;
        };
        let kind = command.kind.as_str();
        match self.by_kind.get(kind).map(|apply| apply(&command.body)) {
            Some(Ok(applied)) => applied.await,
            Some(Err(error)) => {
                tracing::error!(%id, %kind, %error, "cluster control: unreadable command skipped");
            }
            // A newer node's command, during a rolling upgrade: this node has nothing to apply.
            None => {
                tracing::warn!(%id, %kind, "cluster control: command of an unknown kind skipped")
            }
        }
    }
}

/// Reads the other nodes' commands and applies each with `handlers`, until `shutdown`.
pub(crate) fn spawn_reader(
    redis: &Redis,
    origin: String,
    handlers: Handlers,
    shutdown: CancellationToken,
) {
    let redis = redis.clone();
    let key = format!("{}:control", redis.prefix);
    tokio::spawn(async move {
        let Ok(mut link) = Link::open(
            &redis,
            BLOCK * 3,
            "cluster control",
            "commands from other nodes wait until it is back",
            "commands from other nodes restored",
        ) else {
            tracing::error!("cluster control: no Redis connection could be made");
            return;
        };
        // Only commands from now on: older ones were for sockets of another time.
        let mut from = "$".to_owned();
        loop {
            if !link.ready(&shutdown).await {
                return;
            }
            let options = StreamReadOptions::default()
                .block(usize::try_from(BLOCK.as_millis()).unwrap_or(1000))
                .count(256);
            let (keys, ids) = ([&key], [&from]);
            let read = link
                .connection
                .xread_options::<_, _, Option<StreamReadReply>>(&keys, &ids, &options);
            let reply = tokio::select! {
                () = shutdown.cancelled() => return,
                reply = read => reply,
            };
            match reply {
                Ok(reply) => {
                    for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                        from.clone_from(&entry.id);
                        let sender: Option<String> = entry.get("o");
                        if sender.as_deref() == Some(origin.as_str()) {
                            continue;
                        }
                        let body: Option<String> = entry.get("c");
                        handlers.apply(&entry.id, body.as_deref()).await;
                    }
                }
                Err(error) => {
                    if link.failed(&error, &shutdown).await.is_none() {
                        return;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A command of this module's own, to test the stream's side without any door's.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        n: u32,
    }

    impl Command for Ping {
        const KIND: &'static str = "ping";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pong(String);

    impl Command for Pong {
        const KIND: &'static str = "pong";
    }

    /// Handlers that note every ping and pong they are given.
    fn noting() -> (Handlers, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut handlers = Handlers::default();
        let pings = seen.clone();
        handlers.on(move |ping: Ping| {
            pings.lock().unwrap().push(format!("ping {}", ping.n));
            std::future::ready(())
        });
        let pongs = seen.clone();
        handlers.on(move |pong: Pong| {
            let pongs = pongs.clone();
            async move { pongs.lock().unwrap().push(format!("pong {}", pong.0)) }
        });
        (handlers, seen)
    }

    #[test]
    fn a_command_is_its_kind_and_its_body() {
        assert_eq!(
            encode(&Ping { n: 7 }).unwrap(),
            r#"{"kind":"ping","body":{"n":7}}"#
        );
        assert_eq!(
            encode(&Pong("a \"b\"".into())).unwrap(),
            r#"{"kind":"pong","body":"a \"b\""}"#
        );
    }

    #[tokio::test]
    async fn each_kind_goes_to_its_handler_in_order() {
        let (handlers, seen) = noting();
        for entry in [
            r#"{"kind":"pong","body":"x"}"#,
            r#"{"body":{"n":1},"kind":"ping"}"#,
            &encode(&Ping { n: 2 }).unwrap(),
        ] {
            handlers.apply("1-0", Some(entry)).await;
        }
        assert_eq!(*seen.lock().unwrap(), ["pong x", "ping 1", "ping 2"]);
    }

    #[tokio::test]
    async fn unreadable_commands_and_unknown_kinds_are_skipped() {
        let (handlers, seen) = noting();
        for entry in [
            None,
            Some(""),
            Some("not json"),
            Some(r#"{"kind":"ping"}"#),
            Some(r#"{"body":{"n":1}}"#),
            Some(r#"{"kind":"ping","body":{"n":"one"}}"#),
            Some(r#"{"kind":"ping","body":"x"}"#),
            Some(r#"{"kind":"unknown","body":{"n":1}}"#),
        ] {
            handlers.apply("1-0", entry).await;
        }
        handlers
            .apply("1-0", Some(r#"{"kind":"ping","body":{"n":3}}"#))
            .await;
        assert_eq!(*seen.lock().unwrap(), ["ping 3"]);
    }
}
