//! Per-socket ordering of state-changing events.
//!
//! socketioxide runs each incoming event in its own task, so `register` then `unregister` sent
//! back to back may run in either order. A [`Ticket`] is taken synchronously while the event is
//! extracted (in arrival order); the handler then awaits its [`Turn`], so the socket's
//! `register`/`unregister` calls take effect in the order the client sent them.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::Notify;

/// The per-socket counter pair: tickets issued, turns completed.
///
/// Every socket has one, so it is two counters and a `Notify` (about 70 bytes), not a
/// `watch` channel (about 350: its shared state holds eight `Notify`s). It lives inside the
/// socket's [`SocketState`](super::socket_state::SocketState).
#[derive(Debug, Default)]
pub(crate) struct Sequencer {
    issued: AtomicU64,
    completed: AtomicU64,
    /// Woken at the end of every turn.
    turn_ended: Notify,
}

impl AsRef<Sequencer> for Sequencer {
    fn as_ref(&self) -> &Sequencer {
        self
    }
}

/// What holds a sequencer and keeps it alive while tickets are out: a socket's state, or a
/// bare sequencer in tests.
pub(crate) type Owner = Arc<dyn AsRef<Sequencer> + Send + Sync>;

/// A place in the socket's queue, taken in arrival order.
pub(crate) struct Ticket {
    number: u64,
    owner: Option<Owner>,
}

/// The right to act; the next ticket's turn comes when this is dropped.
pub(crate) struct Turn {
    owner: Owner,
}

impl Ticket {
    /// A place after every event already received from the socket (server-side changes to the
    /// socket, such as access changes, queue up behind its pending `register`s this way).
    pub(crate) fn take(owner: Owner) -> Self {
        let number = (*owner).as_ref().issued.fetch_add(1, Ordering::Relaxed);
        Self {
            number,
            owner: Some(owner),
        }
    }

    /// A ticket in no queue: its turn comes at once.
    pub(crate) fn unqueued() -> Self {
        Self {
            number: 0,
            owner: None,
        }
    }

    /// Waits until every earlier ticket of the socket has finished; `None` at once for an
    /// unqueued ticket.
    pub(crate) async fn turn(mut self) -> Option<Turn> {
        let owner = self.owner.take()?;
        let sequencer = (*owner).as_ref();
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
        Some(Turn { owner })
    }
}

impl Drop for Ticket {
    /// A ticket dropped unused (its handler panicked early) still takes and passes its turn,
    /// so later tickets are not stuck behind it.
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let ticket = Ticket {
                number: self.number,
                owner: Some(owner),
            };
            runtime.spawn(ticket.turn());
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let sequencer = (*self.owner).as_ref();
        sequencer.completed.fetch_add(1, Ordering::Release);
        sequencer.turn_ended.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn turns_follow_ticket_order_not_task_order() {
        let sequencer: Owner = Arc::new(Sequencer::default());
        let tickets: Vec<Ticket> = (0..20).map(|_| Ticket::take(sequencer.clone())).collect();
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
        let sequencer: Owner = Arc::new(Sequencer::default());
        let first = Ticket::take(sequencer.clone());
        let second = Ticket::take(sequencer);
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), second.turn())
            .await
            .expect("the second ticket was blocked by a dropped first one");
    }

    #[tokio::test]
    async fn an_unqueued_ticket_has_its_turn_at_once() {
        assert!(Ticket::unqueued().turn().await.is_none());
    }
}
