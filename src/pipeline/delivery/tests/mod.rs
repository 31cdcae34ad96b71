//! Delivery and replay without sockets: a door and subscribers that record what they are sent
//! (here), live delivery (`live.rs`) and replays (`replay.rs`).

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::Duration,
};

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Deliverer, DeliverySettings};
use crate::{
    auth::{Credentials, Principal, Session, cells::CellsIdentity},
    history::{EventLog, MemoryLog},
    ids::{UserId, WorkspaceId},
    metrics::Metrics,
    pipeline::{
        Joined, LoggedRoom, Publication, PublishError, Stamped,
        subscriber::{
            Door, DoorClosed, Outgoing, Resync, RoomJoins, Sent, Subscriber, SubscriberId, Turn,
        },
    },
    rooms,
};

/// What one subscriber was sent.
#[derive(Debug, Clone, PartialEq)]
enum Received {
    Event {
        event: String,
        data: Value,
        meta: Value,
        offset: Option<String>,
    },
    Resync(Value),
}

/// A subscriber whose queue holds `capacity` items.
struct TestSubscriber {
    id: SubscriberId,
    capacity: usize,
    gone: AtomicBool,
    received: Mutex<Vec<Received>>,
    rooms: Mutex<HashSet<String>>,
    cut: Mutex<Vec<&'static str>>,
    joins: Arc<RoomJoins>,
    session: Mutex<Option<Arc<Session>>>,
    /// What it was told of its session: `revoked <workspace>`, `ended <reason>`.
    told: Mutex<Vec<String>>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

static NEXT_ID: AtomicU8 = AtomicU8::new(1);

impl TestSubscriber {
    fn new(capacity: usize) -> Arc<Self> {
        let mut bytes = [0x80; 16];
        bytes[15] = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Arc::new(Self {
            id: SubscriberId::from_bytes(bytes),
            capacity,
            gone: AtomicBool::new(false),
            received: Mutex::default(),
            rooms: Mutex::default(),
            cut: Mutex::default(),
            joins: Arc::default(),
            session: Mutex::default(),
            told: Mutex::default(),
            turn: Arc::default(),
        })
    }

    fn in_rooms(capacity: usize, rooms: &[String]) -> Arc<Self> {
        let subscriber = Self::new(capacity);
        subscriber.join(rooms);
        subscriber
    }

    fn queue(&self, item: Received) -> Sent {
        if self.gone.load(Ordering::Relaxed) {
            return Sent::Gone;
        }
        let mut received = self.received.lock().unwrap();
        if received.len() >= self.capacity {
            return Sent::Full;
        }
        received.push(item);
        Sent::Done
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The `data` of each event received, in order.
    fn data(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter_map(|item| match item {
                Received::Event { data, .. } => Some(data),
                Received::Resync(_) => None,
            })
            .collect()
    }

    fn metas(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter_map(|item| match item {
                Received::Event { meta, .. } => Some(meta),
                Received::Resync(_) => None,
            })
            .collect()
    }

    fn cut(&self) -> Vec<&'static str> {
        self.cut.lock().unwrap().clone()
    }

    fn told(&self) -> Vec<String> {
        self.told.lock().unwrap().clone()
    }

    fn rooms(&self) -> HashSet<String> {
        self.rooms.lock().unwrap().clone()
    }
}

impl Subscriber for TestSubscriber {
    fn id(&self) -> SubscriberId {
        self.id
    }

    fn send(&self, outgoing: &Outgoing<'_>) -> Sent {
        self.queue(Received::Event {
            event: outgoing.event.to_owned(),
            data: serde_json::from_str(outgoing.data.get()).unwrap(),
            meta: serde_json::from_str(outgoing.meta.get()).unwrap(),
            offset: outgoing.offset.map(str::to_owned),
        })
    }

    fn resync(&self, resync: &Resync<'_>) -> Sent {
        self.queue(Received::Resync(serde_json::to_value(resync).unwrap()))
    }

    fn cut_off(&self, why: &'static str) {
        self.cut.lock().unwrap().push(why);
    }

    fn join(&self, rooms: &[String]) {
        self.rooms.lock().unwrap().extend(rooms.iter().cloned());
    }

    fn leave(&self, rooms: &[String]) {
        let mut joined = self.rooms.lock().unwrap();
        for room in rooms {
            joined.remove(room);
        }
    }

    fn room_joins(&self) -> Option<Arc<RoomJoins>> {
        Some(self.joins.clone())
    }

    fn session(&self) -> Option<Arc<Session>> {
        self.session.lock().unwrap().clone()
    }

    fn workspaces(&self) -> Vec<WorkspaceId> {
        let rooms = self.rooms.lock().unwrap();
        rooms
            .iter()
            .filter_map(|room| rooms::workspace_of(room))
            .collect()
    }

    fn turn(&self) -> BoxFuture<'static, Turn> {
        let turn = self.turn.clone().lock_owned();
        Box::pin(async move { Box::new(turn.await) as Turn })
    }

    fn adopt(&self, session: Arc<Session>, lost: &[WorkspaceId]) {
        let rooms: Vec<String> = lost.iter().map(rooms::workspace_room).collect();
        self.leave(&rooms);
        *self.session.lock().unwrap() = Some(session);
        let mut told = self.told.lock().unwrap();
        told.extend(lost.iter().map(|workspace| format!("revoked {workspace}")));
    }

    fn end_session(&self, reason: &str) {
        self.told.lock().unwrap().push(format!("ended {reason}"));
    }
}

/// A door listing its connected subscribers by the rooms they joined.
#[derive(Default)]
struct TestDoor {
    connected: Mutex<Vec<Arc<TestSubscriber>>>,
    closed: AtomicBool,
}

impl TestDoor {
    fn connect(&self, subscriber: &Arc<TestSubscriber>) {
        self.connected.lock().unwrap().push(subscriber.clone());
    }
}

impl Door for TestDoor {
    fn members(&self, room: &str, each: &mut dyn FnMut(&dyn Subscriber)) -> Result<(), DoorClosed> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(DoorClosed);
        }
        let members: Vec<_> = self
            .connected
            .lock()
            .unwrap()
            .iter()
            .filter(|subscriber| subscriber.rooms.lock().unwrap().contains(room))
            .cloned()
            .collect();
        for member in members {
            each(member.as_ref());
        }
        Ok(())
    }

    fn subscribers_of(&self, user: &UserId) -> Vec<Arc<dyn Subscriber>> {
        let connected = self.connected.lock().unwrap();
        (connected.iter())
            .filter(|subscriber| {
                (subscriber.session()).is_some_and(|session| session.principal.user == *user)
            })
            .map(|subscriber| subscriber.clone() as Arc<dyn Subscriber>)
            .collect()
    }
}

struct Setup {
    door: Arc<TestDoor>,
    deliverer: Deliverer,
}

fn setup_with(history: usize, hold_limit: usize, recovery_offsets: bool) -> Setup {
    let door = Arc::new(TestDoor::default());
    let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new(history, Duration::from_secs(600)));
    let settings = DeliverySettings {
        hold_limit,
        recovery_offsets,
        shared_log: false,
    };
    let doors: Vec<Arc<dyn Door>> = vec![door.clone()];
    Setup {
        door,
        deliverer: Deliverer::new(doors, log, settings, Metrics::new()),
    }
}

fn setup() -> Setup {
    setup_with(100, 100, false)
}

fn workspace(id: &str) -> WorkspaceId {
    WorkspaceId::parse(id).unwrap()
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn stamped(body: &Value) -> Stamped {
    Stamped::new(Publication::parse(&body.to_string(), 10).unwrap())
}

impl Setup {
    /// Publishes `data` as event `e` to `targets` (a publish body without event and data).
    async fn publish(&self, targets: Value, data: u32) -> Result<(), PublishError> {
        let mut body = targets;
        body["event"] = json!("e");
        body["data"] = json!(data);
        self.deliverer.deliver(stamped(&body)).await
    }

    async fn publish_ok(&self, targets: Value, data: u32) {
        self.publish(targets, data)
            .await
            .expect("delivery accepted the event");
    }

    fn connected(&self, capacity: usize, rooms: &[String]) -> Arc<TestSubscriber> {
        let subscriber = TestSubscriber::in_rooms(capacity, rooms);
        self.door.connect(&subscriber);
        subscriber
    }

    /// A subscriber of `user` whose session allows `workspaces`, registered to each.
    fn session_of(&self, user: &UserId, workspaces: &[WorkspaceId]) -> Arc<TestSubscriber> {
        let rooms: Vec<String> = workspaces.iter().map(rooms::workspace_room).collect();
        let subscriber = self.connected(100, &rooms);
        let principal = Principal::new(
            user.clone(),
            Vec::new(),
            Some(workspaces.to_vec()),
            None,
            CellsIdentity::default(),
        );
        *subscriber.session.lock().unwrap() = Some(Arc::new(Session {
            principal,
            credentials: Credentials::default(),
        }));
        subscriber
    }
}

mod access;
mod live;
mod replay;
