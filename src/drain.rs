//! Graceful rolling restart: when a node shuts down, its sockets leave gradually.
//!
//! [`spread`] ends the transports of the node's sockets at an even pace over `shutdown.drain`,
//! instead of all at once, so that a load balancer moves them to the other nodes without a
//! thundering herd of handshakes. A transport is ended by cutting its connection (a WebSocket,
//! or the pending long-polling `GET`): socket.io-client sees a transport close and reconnects,
//! as after npm's `io.close()`, and resumes with `since` (or Socket.IO recovery) where it was. A
//! Socket.IO DISCONNECT packet would instead tell it to stay disconnected.
//!
//! A socket without a connection of its own to cut (a long-polling socket between two polls)
//! is closed with everyone left by `io.close()` at the end of the drain.

use std::time::Duration;

use socketioxide::extract::SocketRef;

use crate::socketio::state::AppState;

/// The shortest pause between two batches of disconnects.
const TICK: Duration = Duration::from_millis(50);

/// How `count` sockets leave within `over`: `(batch size, pause between batches)`. One at a time
/// at an even pace when there are few; batches every [`TICK`] when there are many.
fn pace(count: usize, over: Duration) -> (usize, Duration) {
    let most_ticks = usize::try_from(over.as_millis() / TICK.as_millis()).unwrap_or(usize::MAX);
    let ticks = count.min(most_ticks).max(1);
    let pause = over / u32::try_from(ticks).unwrap_or(u32::MAX);
    (count.div_ceil(ticks).max(1), pause)
}

/// Disconnects the node's sockets (browsers, chat and backends) spread evenly over `over`.
pub(crate) async fn spread(state: &AppState, over: Duration) {
    let cfg = &state.cfg;
    // The chat's namespace exists only when it is enabled (`io.of` finds nothing otherwise).
    let sockets: Vec<SocketRef> = [&cfg.public.path, &cfg.private.path, &cfg.chat.path]
        .into_iter()
        .filter_map(|path| state.io.of(path))
        .flat_map(|ns| ns.sockets())
        .collect();
    if sockets.is_empty() {
        return;
    }
    let (batch, pause) = pace(sockets.len(), over);
    tracing::info!(
        sockets = sockets.len(),
        ?over,
        batch,
        ?pause,
        "draining: disconnecting sockets gradually"
    );
    let mut tick = tokio::time::interval(pause.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cut = 0usize;
    for chunk in sockets.chunks(batch) {
        tick.tick().await;
        for socket in chunk {
            if state.slow.cut_transport(socket) {
                cut += 1;
            }
        }
    }
    tracing::info!(
        cut,
        left = sockets.len() - cut,
        "drained; closing what is left"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_spreads_over_the_window() {
        let five = Duration::from_secs(5);
        // Many: 100 batches of 50 ms.
        assert_eq!(pace(1000, five), (10, TICK));
        assert_eq!(pace(1001, five), (11, TICK));
        // Few: one at a time, evenly over the window.
        assert_eq!(pace(4, five), (1, Duration::from_millis(1250)));
        // No window: everyone at once.
        assert_eq!(pace(7, Duration::ZERO).0, 7);
    }
}
