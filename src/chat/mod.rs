//! Chat rooms, as Pydio Cells' chat service: rooms attached to a workspace, a file node or a
//! set of users, persisted messages replayed on join, and presence. What the chat is and keeps;
//! browsers reach it through the Socket.IO door's chat namespace
//! (`socketio/chat/`).
//!
//! - [`protocol`]: event names, typed requests and their limits, payloads.
//! - `room`: room identity (a UUID v5 derived from what the room is attached to).
//! - `store`: the `store::ChatStore` trait; `sqlite` on a single node, `redis` in
//!   cluster mode.
//! - `presence`: who is in each room on this node, as users.
//! - `notice`: what happened in a room, for its connections on every node.
//! - `door`: what a front door does for the chat (`door::ChatDoor`); the doors attach
//!   themselves to `Chat`, which delivers each notice to all of them.
//!
//! Messages are stored before anyone is told: a socket that missed a broadcast finds the
//! message in `history`.

use std::sync::{Arc, PoisonError, RwLock};

use crate::{cluster::Redis, config::Config};

pub(crate) mod door;
pub(crate) mod notice;
pub(crate) mod presence;
pub mod protocol;
pub(crate) mod redis;
pub(crate) mod room;
pub(crate) mod sqlite;
pub(crate) mod store;

/// Why the chat could not start.
#[derive(Debug, thiserror::Error)]
pub enum ChatSetupError {
    /// The store could not be opened.
    #[error("chat store: {0}")]
    Store(#[from] store::StoreError),
}

/// The chat's shared parts; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Chat {
    /// Rooms and messages.
    pub store: Arc<dyn store::ChatStore>,
    /// Who is in each room on this node.
    pub presence: Arc<presence::Presence>,
    /// The doors whose connections chat, each told every notice delivered on this node.
    doors: Arc<RwLock<Vec<Arc<dyn door::ChatDoor>>>>,
}

impl Chat {
    /// Opens the store `cfg` asks for: Redis in cluster mode, else SQLite in `chat.data_dir`.
    /// `None` when the chat is disabled.
    ///
    /// # Errors
    /// The SQLite database cannot be opened or migrated.
    pub(crate) fn open(
        cfg: &Config,
        cluster: Option<&Redis>,
    ) -> Result<Option<Self>, ChatSetupError> {
        if !cfg.chat.enabled {
            return Ok(None);
        }
        let store: Arc<dyn store::ChatStore> = match cluster {
            Some(redis) => Arc::new(redis::RedisStore::new(redis)),
            None => Arc::new(sqlite::SqliteStore::open(&cfg.chat.data_dir)?),
        };
        Ok(Some(Self {
            store,
            presence: Arc::default(),
            doors: Arc::default(),
        }))
    }

    /// Adds a door whose connections get this node's notices.
    pub(crate) fn attach(&self, door: Arc<dyn door::ChatDoor>) {
        self.doors
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(door);
    }

    /// Delivers a notice to the room's connections on this node, of every door, but `except`.
    pub(crate) fn deliver_here(
        &self,
        notice: &notice::Notice,
        except: Option<crate::pipeline::SubscriberId>,
    ) {
        let doors = self.doors.read().unwrap_or_else(PoisonError::into_inner);
        for door in doors.iter() {
            door.deliver(notice, except);
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
