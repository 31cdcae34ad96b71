//! Commands that act on a user's sockets wherever they are: `disconnect_user` and access
//! changes. The node that receives one applies it to its own sockets and appends it to the
//! stream `<prefix>:control`; every other node reads that stream and applies it too.

use std::{future::Future, time::Duration};

use redis::{
    AsyncCommands,
    streams::{StreamMaxlen, StreamReadOptions, StreamReadReply},
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Redis, link::Link};
use crate::realtime::events::{AccessChange, DisconnectUser};

/// Commands kept in the stream (only nodes that are up read them, at once).
const KEPT: usize = 10_000;
/// How long one read waits.
const BLOCK: Duration = Duration::from_millis(1000);

/// A command for every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Command {
    /// Disconnect every socket of a user.
    DisconnectUser(DisconnectUser),
    /// Replace (or re-ask) a user's allowed workspaces.
    Access(AccessChange),
    /// Something happened in a chat room (a message, a deletion, presence).
    Chat(crate::chat::cluster::Notice),
}

/// Appends `command` for the other nodes.
///
/// # Errors
/// Redis unreachable: the command did not reach the other nodes.
pub async fn broadcast(redis: &Redis, origin: &str, command: &Command) -> redis::RedisResult<()> {
    let mut commands = redis.commands.clone();
    let body = serde_json::to_string(command).unwrap_or_default();
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

/// Reads the other nodes' commands and hands each to `apply`, until `shutdown`.
pub fn spawn_reader<F, Fut>(redis: &Redis, origin: String, apply: F, shutdown: CancellationToken)
where
    F: Fn(Command) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
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
                        match body.as_deref().map(serde_json::from_str::<Command>) {
                            Some(Ok(command)) => apply(command).await,
                            _ => {
                                tracing::error!(id = %entry.id, "cluster control: unreadable command skipped")
                            }
                        }
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
    use uuid::Uuid;

    use super::*;
    use crate::{
        chat::{
            cluster::Notice,
            protocol::{MessageRef, RoomMembers},
            store::Message,
        },
        ids::{UserId, WorkspaceId},
    };

    const ROOM: &str = "0b7e3c52-5d7f-4a59-9d55-3f3c3c8a0e11";
    const MESSAGE: &str = "5f0c1f0e-8a51-4b6e-a0c3-2b8f0d5b7a42";

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    fn uuid(text: &str) -> Uuid {
        Uuid::parse_str(text).unwrap()
    }

    /// Each kind of command and its exact bytes in the stream entry's `c` field.
    fn commands() -> Vec<(Command, String)> {
        vec![
            (
                Command::DisconnectUser(DisconnectUser {
                    user: user("u1"),
                    reason: Some("password changed".into()),
                }),
                r#"{"kind":"disconnect_user","body":{"user":"u1","reason":"password changed"}}"#
                    .to_owned(),
            ),
            (
                Command::DisconnectUser(DisconnectUser {
                    user: user("u1"),
                    reason: None,
                }),
                r#"{"kind":"disconnect_user","body":{"user":"u1","reason":null}}"#.to_owned(),
            ),
            (
                Command::Access(AccessChange {
                    user: user("u1"),
                    workspaces: Some(vec![
                        WorkspaceId::parse("a").unwrap(),
                        WorkspaceId::parse("b").unwrap(),
                    ]),
                }),
                r#"{"kind":"access","body":{"user":"u1","workspaces":["a","b"]}}"#.to_owned(),
            ),
            (
                Command::Access(AccessChange {
                    user: user("u1"),
                    workspaces: None,
                }),
                r#"{"kind":"access","body":{"user":"u1","workspaces":null}}"#.to_owned(),
            ),
            (
                Command::Chat(Notice::Message(Message {
                    uuid: uuid(MESSAGE),
                    room: uuid(ROOM),
                    author: user("u1"),
                    text: "hi \"there\"".into(),
                    ts: 1_700_000_000_000,
                })),
                format!(
                    r#"{{"kind":"chat","body":{{"kind":"message","body":{{"uuid":"{MESSAGE}","room":"{ROOM}","author":"u1","text":"hi \"there\"","ts":1700000000000}}}}}}"#
                ),
            ),
            (
                Command::Chat(Notice::Deleted(MessageRef {
                    room: uuid(ROOM),
                    uuid: uuid(MESSAGE),
                })),
                format!(
                    r#"{{"kind":"chat","body":{{"kind":"deleted","body":{{"room":"{ROOM}","uuid":"{MESSAGE}"}}}}}}"#
                ),
            ),
            (
                Command::Chat(Notice::Members(RoomMembers {
                    room: uuid(ROOM),
                    members: vec![user("u1"), user("u2")],
                })),
                format!(
                    r#"{{"kind":"chat","body":{{"kind":"members","body":{{"room":"{ROOM}","members":["u1","u2"]}}}}}}"#
                ),
            ),
        ]
    }

    #[test]
    fn each_kind_has_its_exact_bytes_on_the_stream() {
        for (command, bytes) in commands() {
            assert_eq!(serde_json::to_string(&command).unwrap(), bytes);
        }
    }

    #[test]
    fn each_kind_reads_back_from_its_bytes() {
        for (command, bytes) in commands() {
            let read: Command = serde_json::from_str(&bytes).unwrap();
            assert_eq!(
                serde_json::to_string(&read).unwrap(),
                serde_json::to_string(&command).unwrap()
            );
        }
    }
}
