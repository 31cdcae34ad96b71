//! Cluster mode: what one node tells the others about the chat, and presence across nodes.
//! On a single node everything here is a no-op or this node's own view.
//!
//! Messages are stored (in Redis) before anyone is told, so a notice only has to reach the
//! sockets: it travels on the cluster's control stream ([`crate::cluster::control`]) as a
//! [`Notice`] (kind `chat`), and each other node delivers it to its own sockets in the room
//! (`handle_remote`). A notice lost while Redis is away costs a live update only: the message
//! is in `history`.
//!
//! Presence: each node mirrors its own view ([`super::presence`]) into the sorted set
//! `<prefix>:chat:presence:<room>`, one member `<node>\0<user>` per user present through that
//! node, scored by when the entry expires (`chat.presence_timeout` ahead). A node refreshes its
//! entries every third of the timeout while it lives; the entries of a node that died expire,
//! and the next sweep of a node with members in the room removes them and announces the new
//! list. A room's members are the users of its unexpired entries (plus this node's own view,
//! should Redis be away).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Chat, now_ms, protocol::RoomMembers};
use crate::{
    chat::notice::Notice,
    cluster::control::{self, Handlers},
    ids::UserId,
    socketio::state::AppState,
};

/// Tells the other nodes (cluster mode); a failure is logged: the notice is a live update of
/// something already stored.
pub(crate) async fn tell(state: &AppState, notice: &Notice) {
    let Some(redis) = &state.cluster else {
        return;
    };
    if let Err(error) = control::broadcast(redis, &state.node_id, notice).await {
        tracing::warn!(%error, room = %notice.room(), "chat notice not sent to the other nodes");
    }
}

/// Registers what this node does with another node's notice: deliver it to this node's
/// sockets in the room.
pub(crate) fn handle_remote(handlers: &mut Handlers, state: &AppState) {
    let state = state.clone();
    handlers.on(move |notice: Notice| {
        super::broadcast::deliver_here(&state, &notice, None);
        std::future::ready(())
    });
}

fn presence_key(prefix: &str, room: &Uuid) -> String {
    format!("{prefix}:chat:presence:{room}")
}

fn timeout_ms(state: &AppState) -> i64 {
    i64::try_from(state.cfg.chat.presence_timeout.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Mirrors whether `user` is in `room` on this node into Redis (cluster mode).
pub(crate) async fn sync(state: &AppState, chat: &Chat, room: Uuid, user: &UserId) {
    let Some(redis) = &state.cluster else {
        return;
    };
    let key = presence_key(&redis.prefix, &room);
    let member = format!("{}\0{user}", state.node_id);
    let mut pipe = redis::pipe();
    if chat.presence.holds(&room, user) {
        let ttl = timeout_ms(state);
        pipe.zadd(&key, member, now_ms().saturating_add(ttl))
            .ignore()
            .pexpire(&key, ttl)
            .ignore();
    } else {
        pipe.zrem(&key, member).ignore();
    }
    let mut commands = redis.commands.clone();
    if let Err(error) = pipe.query_async::<()>(&mut commands).await {
        tracing::warn!(%error, %room, "chat presence not written to Redis");
    }
}

/// The room's members: cluster-wide in cluster mode, else this node's.
pub(crate) async fn members(state: &AppState, chat: &Chat, room: Uuid) -> Vec<UserId> {
    let mut members = chat.presence.members(&room);
    let Some(redis) = &state.cluster else {
        return members;
    };
    let mut commands = redis.commands.clone();
    let entries: redis::RedisResult<Vec<String>> = redis::cmd("ZRANGE")
        .arg(presence_key(&redis.prefix, &room))
        .arg(now_ms())
        .arg("+inf")
        .arg("BYSCORE")
        .query_async(&mut commands)
        .await;
    match entries {
        Ok(entries) => members.extend(
            entries
                .iter()
                .filter_map(|entry| UserId::parse(entry.split_once('\0')?.1).ok()),
        ),
        Err(error) => {
            tracing::warn!(%error, %room, "chat presence: Redis unavailable, this node's view only")
        }
    }
    members.sort();
    members.dedup();
    members
}

/// Cluster mode: refreshes this node's presence entries and sweeps expired ones (a dead
/// node's) from the rooms it has members in, announcing the lists that changed, until
/// `shutdown`.
pub(crate) fn spawn_presence(state: AppState, chat: Chat, shutdown: CancellationToken) {
    let Some(redis) = state.cluster.clone() else {
        return;
    };
    let period = (state.cfg.chat.presence_timeout / 3).max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let ttl = timeout_ms(&state);
            let (now, mut pipe) = (now_ms(), redis::pipe());
            for (room, user) in chat.presence.entries() {
                let key = presence_key(&redis.prefix, &room);
                pipe.zadd(&key, format!("{}\0{user}", state.node_id), now + ttl)
                    .ignore()
                    .pexpire(&key, ttl)
                    .ignore();
            }
            let rooms = chat.presence.rooms();
            for room in &rooms {
                pipe.zrembyscore(presence_key(&redis.prefix, room), "-inf", now);
            }
            let mut commands = redis.commands.clone();
            let swept: Vec<i64> = match pipe.query_async(&mut commands).await {
                Ok(swept) => swept,
                Err(error) => {
                    tracing::debug!(%error, "chat presence refresh failed");
                    continue;
                }
            };
            for (room, removed) in rooms.into_iter().zip(swept) {
                if removed > 0 {
                    let members = members(&state, &chat, room).await;
                    let notice = Notice::Members(RoomMembers { room, members });
                    super::broadcast::deliver_here(&state, &notice, None);
                    tell(&state, &notice).await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::chat::{protocol::MessageRef, store::Message};

    const ROOM: &str = "0b7e3c52-5d7f-4a59-9d55-3f3c3c8a0e11";
    const MESSAGE: &str = "5f0c1f0e-8a51-4b6e-a0c3-2b8f0d5b7a42";

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    fn uuid(text: &str) -> Uuid {
        Uuid::parse_str(text).unwrap()
    }

    /// Each notice and its exact bytes in the control stream entry's `c` field.
    fn notices() -> Vec<(Notice, String)> {
        vec![
            (
                Notice::Message(Message {
                    uuid: uuid(MESSAGE),
                    room: uuid(ROOM),
                    author: user("u1"),
                    text: "hi \"there\"".into(),
                    ts: 1_700_000_000_000,
                }),
                format!(
                    r#"{{"kind":"chat","body":{{"kind":"message","body":{{"uuid":"{MESSAGE}","room":"{ROOM}","author":"u1","text":"hi \"there\"","ts":1700000000000}}}}}}"#
                ),
            ),
            (
                Notice::Deleted(MessageRef {
                    room: uuid(ROOM),
                    uuid: uuid(MESSAGE),
                }),
                format!(
                    r#"{{"kind":"chat","body":{{"kind":"deleted","body":{{"room":"{ROOM}","uuid":"{MESSAGE}"}}}}}}"#
                ),
            ),
            (
                Notice::Members(RoomMembers {
                    room: uuid(ROOM),
                    members: vec![user("u1"), user("u2")],
                }),
                format!(
                    r#"{{"kind":"chat","body":{{"kind":"members","body":{{"room":"{ROOM}","members":["u1","u2"]}}}}}}"#
                ),
            ),
        ]
    }

    #[test]
    fn each_notice_has_its_exact_bytes_on_the_stream() {
        for (notice, bytes) in notices() {
            assert_eq!(control::encode(&notice).unwrap(), bytes);
        }
    }

    #[tokio::test]
    async fn each_notice_reads_back_from_its_bytes() {
        let read = Arc::new(Mutex::new(Vec::new()));
        let mut handlers = Handlers::default();
        let noted = read.clone();
        handlers.on(move |notice: Notice| {
            noted
                .lock()
                .unwrap()
                .push(control::encode(&notice).unwrap());
            std::future::ready(())
        });
        let mut written = Vec::new();
        for (_, bytes) in notices() {
            handlers.apply("1-0", Some(&bytes)).await;
            written.push(bytes);
        }
        assert_eq!(*read.lock().unwrap(), written);
    }
}
