//! Shutdown signalling: SIGINT/SIGTERM cancel a [`CancellationToken`] that the server and its
//! loops watch. The caller owns the token, so tests shut a server down by cancelling it.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGINT (Ctrl-C) or SIGTERM.
///
/// The handlers are installed before this returns, not when a spawned task first runs: a signal
/// that arrives right after the server logs that it listens must shut it down gracefully, not
/// kill it with the signal's default action.
///
/// # Panics
/// If the signal handlers cannot be installed (at startup only), or outside a tokio runtime.
#[allow(clippy::expect_used)]
pub fn cancel_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    let signalled = {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
        let mut terminate = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
        async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        }
    };
    #[cfg(not(unix))]
    let signalled = async {
        tokio::signal::ctrl_c()
            .await
            .expect("install the Ctrl-C handler");
    };
    tokio::spawn(async move {
        signalled.await;
        tracing::info!("shutdown signal received");
        token.cancel();
    });
}
