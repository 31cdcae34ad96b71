//! Per-socket ordering of state-changing events.
//!
//! socketioxide runs each incoming event in its own task, so `register` then `unregister` sent
//! back to back may run in either order. A [`Ticket`] is taken synchronously while the event is
//! extracted (in arrival order); the handler then awaits its [`Turn`], so the socket's
//! `register`/`unregister` calls take effect in the order the client sent them.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use socketioxide::{
    adapter::Adapter,
    handler::{FromMessageParts, Value},
    socket::Socket,
};
use tokio::sync::Notify;

/// The per-socket counter pair: tickets issued, turns completed.
///
/// Every socket has one, so it is two counters and a `Notify` (about 70 bytes), not a
/// `watch` channel (about 350: its shared state holds eight `Notify`s).
#[derive(Debug, Default)]
pub(crate) struct Sequencer {
    issued: AtomicU64,
    completed: AtomicU64,
    /// Woken at the end of every turn.
    turn_ended: Notify,
}

impl Sequencer {
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A place after every event already received from the socket (server-side changes to the
    /// socket, such as access changes, queue up behind its pending `register`s this way).
    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        Ticket {
            number: self.issued.fetch_add(1, Ordering::Relaxed),
            sequencer: Some(self.clone()),
        }
    }
}

/// A place in the socket's queue, taken in arrival order.
#[derive(Debug)]
pub(crate) struct Ticket {
    number: u64,
    sequencer: Option<Arc<Sequencer>>,
}

/// The right to act; the next ticket's turn comes when this is dropped.
#[derive(Debug)]
pub(crate) struct Turn {
    sequencer: Arc<Sequencer>,
}

impl Ticket {
    /// Waits until every earlier ticket of the socket has finished.
    pub(crate) async fn turn(mut self) -> Option<Turn> {
        let sequencer = self.sequencer.take()?;
        loop {
            let turn_ended = sequencer.turn_ended.notified();
            let mut turn_ended = std::pin::pin!(turn_ended);
            // Listening before looking: a turn that ends after the look wakes this one.
            turn_ended.as_mut().enable();
            if sequencer.completed.load(Ordering::Acquire) == self.number {
                break;
            }
            turn_ended.await;
        }
        Some(Turn { sequencer })
    }
}

impl Drop for Ticket {
    /// A ticket dropped unused (its handler panicked early) still takes and passes its turn,
    /// so later tickets are not stuck behind it.
    fn drop(&mut self) {
        if let Some(sequencer) = self.sequencer.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let ticket = Ticket {
                number: self.number,
                sequencer: Some(sequencer),
            };
            runtime.spawn(ticket.turn());
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.sequencer.completed.fetch_add(1, Ordering::Release);
        self.sequencer.turn_ended.notify_waiters();
    }
}

impl<A: Adapter> FromMessageParts<A> for Ticket {
    type Error = Infallible;

    fn from_message_parts(
        socket: &Arc<Socket<A>>,
        _: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let sequencer = match socket.extensions.get::<Arc<Sequencer>>() {
            Some(sequencer) => sequencer,
            None => {
                let sequencer = Sequencer::new();
                socket.extensions.insert(sequencer.clone());
                sequencer
            }
        };
        Ok(sequencer.ticket())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn turns_follow_ticket_order_not_task_order() {
        let sequencer = Sequencer::new();
        let tickets: Vec<Ticket> = (0..20).map(|_| sequencer.ticket()).collect();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Spawn in reverse: without the sequencer the last ticket would tend to run first.
        for (i, ticket) in tickets.into_iter().enumerate().rev() {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let _turn = ticket.turn().await;
                tokio::task::yield_now().await;
                log.lock().unwrap().push(i);
            }));
        }
        for task in tasks {
            tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .expect("a turn never came")
                .unwrap();
        }
        assert_eq!(*log.lock().unwrap(), (0..20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_dropped_ticket_does_not_block_the_next() {
        let sequencer = Sequencer::new();
        let first = sequencer.ticket();
        let second = sequencer.ticket();
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), second.turn())
            .await
            .expect("the second ticket was blocked by a dropped first one");
    }
}
