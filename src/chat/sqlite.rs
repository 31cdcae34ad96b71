//! [`SqliteStore`]: the single-node [`ChatStore`], an embedded SQLite database in
//! `chat.data_dir`, in WAL mode, surviving restarts.
//!
//! SQLite calls block, so one dedicated thread owns the connection and runs the jobs that async
//! callers send it over a bounded channel (a full channel makes callers wait: memory stays
//! bounded). One writer is what SQLite allows anyway.
//!
//! Migrations are versioned with `PRAGMA user_version`: `MIGRATIONS` lists the schema steps in
//! order, and opening a database applies those past its version, in one transaction each. A
//! crate (rusqlite_migration) would do the same in more lines than it saves here; a database
//! newer than this binary is refused rather than guessed at.

use std::{path::Path, thread};

use futures_util::{FutureExt, future::BoxFuture};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    room::{Room, RoomKind},
    store::{ChatStore, Deleted, Message, Page, StoreError},
};
use crate::ids::{UserId, WorkspaceId};

/// File name of the database inside `chat.data_dir`.
pub(crate) const FILE_NAME: &str = "chat.sqlite3";

/// Jobs waiting for the database thread before callers wait their turn.
const QUEUE: usize = 1024;

/// Schema steps; step `i` brings the database to `user_version = i + 1`. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: rooms and messages. `seq` orders a room's messages (paging); uuids are the public ids.
    "CREATE TABLE rooms (
         uuid TEXT PRIMARY KEY NOT NULL,
         kind TEXT NOT NULL,
         target TEXT,
         workspace TEXT,
         users TEXT NOT NULL,
         label TEXT,
         created INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE messages (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         uuid TEXT NOT NULL UNIQUE,
         room TEXT NOT NULL REFERENCES rooms(uuid),
         author TEXT NOT NULL,
         text TEXT NOT NULL,
         ts INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX messages_by_room ON messages(room, seq);",
];

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The SQLite chat store; cheap to clone (a channel to the database thread).
#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    jobs: mpsc::Sender<Job>,
}

impl SqliteStore {
    /// Opens (creating when missing) `<dir>/chat.sqlite3`, migrates it and starts its thread.
    ///
    /// # Errors
    /// The directory or file cannot be created or opened, or a migration fails.
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
        let mut connection = Connection::open(dir.join(FILE_NAME))?;
        prepare(&mut connection)?;
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        thread::Builder::new()
            .name("herald-chat-sqlite".into())
            .spawn(move || {
                // Ends when every sender is gone; the connection closes with it.
                while let Some(job) = queue.blocking_recv() {
                    job(&mut connection);
                }
            })
            .map_err(|e| StoreError::Open(e.to_string()))?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the database thread and returns its result.
    async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            let _ = tx.send(f(connection));
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// WAL, foreign keys, a busy timeout, then the migrations.
fn prepare(connection: &mut Connection) -> Result<(), StoreError> {
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    migrate(connection)
}

/// Applies the migrations past the database's `user_version`.
fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let version: usize = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Open(format!(
            "the database is at schema version {version}, newer than this herald ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, step) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = connection.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "chat database migrated");
    }
    Ok(())
}

fn insert_room(connection: &Connection, room: &Room) -> Result<Room, StoreError> {
    let users =
        serde_json::to_string(&room.users).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    connection.execute(
        "INSERT INTO rooms (uuid, kind, target, workspace, users, label, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (uuid) DO NOTHING",
        params![
            room.uuid.to_string(),
            room.kind.as_str(),
            room.target,
            room.workspace.as_ref().map(WorkspaceId::as_str),
            users,
            room.label,
            room.created,
        ],
    )?;
    connection
        .query_row(
            "SELECT uuid, kind, target, workspace, users, label, created FROM rooms WHERE uuid = ?1",
            [room.uuid.to_string()],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, Option<String>>(5)?,
                    row.get::<_, i64>(6)?,
                ))
            },
        )
        .map_err(StoreError::from)
        .and_then(|(uuid, kind, target, workspace, users, label, created)| {
            Ok(Room {
                uuid: parse_uuid(&uuid)?,
                kind: RoomKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(kind.clone()))?,
                target,
                workspace: workspace
                    .map(WorkspaceId::parse)
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                users: serde_json::from_str(&users).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                label,
                created,
            })
        })
}

fn page(
    connection: &Connection,
    room: &Uuid,
    before: Option<&Uuid>,
    limit: usize,
) -> Result<Page, StoreError> {
    let room_text = room.to_string();
    let before_seq = match before {
        None => i64::MAX,
        Some(before) => connection
            .query_row(
                "SELECT seq FROM messages WHERE uuid = ?1 AND room = ?2",
                [before.to_string(), room_text.clone()],
                |row| row.get(0),
            )
            .optional()?
            .ok_or(StoreError::UnknownBefore)?,
    };
    let mut statement = connection.prepare_cached(
        "SELECT uuid, author, text, ts FROM messages WHERE room = ?1 AND seq < ?2
         ORDER BY seq DESC LIMIT ?3",
    )?;
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
    let rows = statement.query_map(params![room_text, before_seq, fetch], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
        ))
    })?;
    let mut messages = Vec::with_capacity(limit.min(256));
    for row in rows {
        let (uuid, author, text, ts) = row?;
        messages.push(Message {
            uuid: parse_uuid(&uuid)?,
            room: *room,
            author: UserId::parse(author).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            text,
            ts,
        });
    }
    let more = messages.len() > limit;
    messages.truncate(limit);
    messages.reverse();
    Ok(Page { messages, more })
}

fn delete(
    connection: &mut Connection,
    room: &Uuid,
    message: &Uuid,
    author: &UserId,
) -> Result<Deleted, StoreError> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (message, room) = (message.to_string(), room.to_string());
    let owner: Option<String> = tx
        .query_row(
            "SELECT author FROM messages WHERE uuid = ?1 AND room = ?2",
            [&message, &room],
            |row| row.get(0),
        )
        .optional()?;
    let outcome = match owner {
        None => Deleted::NotFound,
        Some(owner) if owner != author.as_str() => Deleted::NotAuthor,
        Some(_) => {
            tx.execute("DELETE FROM messages WHERE uuid = ?1", [&message])?;
            Deleted::Done
        }
    };
    tx.commit()?;
    Ok(outcome)
}

fn parse_uuid(raw: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl ChatStore for SqliteStore {
    fn open_room<'a>(&'a self, room: &'a Room) -> BoxFuture<'a, Result<Room, StoreError>> {
        let room = room.clone();
        self.call(move |connection| insert_room(connection, &room))
            .boxed()
    }

    fn post<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), StoreError>> {
        let message = message.clone();
        self.call(move |connection| {
            connection.execute(
                "INSERT INTO messages (uuid, room, author, text, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    message.uuid.to_string(),
                    message.room.to_string(),
                    message.author.as_str(),
                    message.text,
                    message.ts,
                ],
            )?;
            Ok(())
        })
        .boxed()
    }

    fn history<'a>(
        &'a self,
        room: &'a Uuid,
        before: Option<&'a Uuid>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        let (room, before) = (*room, before.copied());
        self.call(move |connection| page(connection, &room, before.as_ref(), limit))
            .boxed()
    }

    fn delete<'a>(
        &'a self,
        room: &'a Uuid,
        message: &'a Uuid,
        author: &'a UserId,
    ) -> BoxFuture<'a, Result<Deleted, StoreError>> {
        let (room, message, author) = (*room, *message, author.clone());
        self.call(move |connection| delete(connection, &room, &message, &author))
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    fn workspace_room(ws: &str, label: Option<&str>, created: i64) -> Room {
        Room::new(
            RoomKind::Workspace,
            Some(ws.into()),
            Some(WorkspaceId::parse(ws).unwrap()),
            vec![],
            label.map(str::to_owned),
            created,
        )
    }

    fn message(room: &Room, author: &str, text: &str, ts: i64) -> Message {
        Message {
            uuid: Uuid::new_v4(),
            room: room.uuid,
            author: user(author),
            text: text.into(),
            ts,
        }
    }

    #[tokio::test]
    async fn the_first_opener_wins_and_rooms_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let first = store
            .open_room(&workspace_room("w", Some("Team"), 1))
            .await
            .unwrap();
        let again = store
            .open_room(&workspace_room("w", Some("Other"), 2))
            .await
            .unwrap();
        assert_eq!(first, again);
        assert_eq!(again.label.as_deref(), Some("Team"));
        let users = Room::new(
            RoomKind::Users,
            None,
            None,
            vec![user("b"), user("a")],
            None,
            3,
        );
        store.open_room(&users).await.unwrap();
        let posted = message(&first, "alice", "hello\nworld", 10);
        store.post(&posted).await.unwrap();
        drop(store);

        let store = SqliteStore::open(dir.path()).unwrap();
        let page = store.history(&first.uuid, None, 10).await.unwrap();
        assert_eq!(page.messages, vec![posted]);
        assert!(!page.more);
        assert_eq!(store.open_room(&users).await.unwrap(), users);
    }

    #[tokio::test]
    async fn pages_go_back_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let room = store
            .open_room(&workspace_room("w", None, 1))
            .await
            .unwrap();
        let other = store
            .open_room(&workspace_room("v", None, 1))
            .await
            .unwrap();
        let mut all = Vec::new();
        for i in 0..7 {
            let m = message(&room, "alice", &format!("m{i}"), i);
            store.post(&m).await.unwrap();
            store
                .post(&message(&other, "bob", "elsewhere", i))
                .await
                .unwrap();
            all.push(m);
        }
        let latest = store.history(&room.uuid, None, 3).await.unwrap();
        assert_eq!(latest.messages, all[4..7]);
        assert!(latest.more);
        let older = store
            .history(&room.uuid, Some(&latest.messages[0].uuid), 3)
            .await
            .unwrap();
        assert_eq!(older.messages, all[1..4]);
        assert!(older.more);
        let oldest = store
            .history(&room.uuid, Some(&older.messages[0].uuid), 3)
            .await
            .unwrap();
        assert_eq!(oldest.messages, all[0..1]);
        assert!(!oldest.more);
        // A message of another room is no anchor here.
        let foreign = store.history(&other.uuid, None, 1).await.unwrap().messages[0].uuid;
        assert!(matches!(
            store.history(&room.uuid, Some(&foreign), 3).await,
            Err(StoreError::UnknownBefore)
        ));
    }

    #[tokio::test]
    async fn only_the_author_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let room = store
            .open_room(&workspace_room("w", None, 1))
            .await
            .unwrap();
        let m = message(&room, "alice", "mine", 1);
        store.post(&m).await.unwrap();
        assert_eq!(
            store
                .delete(&room.uuid, &m.uuid, &user("bob"))
                .await
                .unwrap(),
            Deleted::NotAuthor
        );
        assert_eq!(
            store
                .delete(&Uuid::new_v4(), &m.uuid, &user("alice"))
                .await
                .unwrap(),
            Deleted::NotFound
        );
        assert_eq!(
            store
                .delete(&room.uuid, &m.uuid, &user("alice"))
                .await
                .unwrap(),
            Deleted::Done
        );
        assert_eq!(
            store
                .delete(&room.uuid, &m.uuid, &user("alice"))
                .await
                .unwrap(),
            Deleted::NotFound
        );
        assert!(
            store
                .history(&room.uuid, None, 5)
                .await
                .unwrap()
                .messages
                .is_empty()
        );
    }

    #[test]
    fn migrations_run_once_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut connection = Connection::open(&path).unwrap();
        prepare(&mut connection).unwrap();
        prepare(&mut connection).unwrap();
        let version: usize = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
        let mode: String = connection
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        connection
            .pragma_update(None, "user_version", MIGRATIONS.len() + 1)
            .unwrap();
        assert!(matches!(migrate(&mut connection), Err(StoreError::Open(_))));
    }
}
