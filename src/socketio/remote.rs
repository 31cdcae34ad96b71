//! `disconnect_user` and access changes as cluster commands: their kinds on the control stream
//! ([`crate::cluster::control`]), and what this node does with another node's: apply it to its
//! own sockets, as the node that received it did (`private.rs`, `access.rs`).

use super::state::AppState;
use super::{
    access,
    events::{AccessChange, DisconnectUser},
    private,
};
use crate::cluster::control::{Command, Handlers};

impl Command for DisconnectUser {
    const KIND: &'static str = "disconnect_user";
}

impl Command for AccessChange {
    const KIND: &'static str = "access";
}

/// Registers what this node does with the other nodes' `disconnect_user` and access changes.
pub(crate) fn handle_remote(handlers: &mut Handlers, state: &AppState) {
    let here = state.clone();
    handlers.on(move |request: DisconnectUser| {
        let state = here.clone();
        async move {
            let _ = private::disconnect_user_here(&state, &request).await;
        }
    });
    let here = state.clone();
    handlers.on(move |change: AccessChange| {
        let state = here.clone();
        async move {
            if let Err(error) = access::apply(&state, change).await {
                tracing::debug!(%error, "access change from another node not applied here");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{
        cluster::control,
        ids::{UserId, WorkspaceId},
    };

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    /// Each command and its exact bytes in the control stream entry's `c` field.
    fn disconnects() -> Vec<(DisconnectUser, &'static str)> {
        vec![
            (
                DisconnectUser {
                    user: user("u1"),
                    reason: Some("password changed".into()),
                },
                r#"{"kind":"disconnect_user","body":{"user":"u1","reason":"password changed"}}"#,
            ),
            (
                DisconnectUser {
                    user: user("u1"),
                    reason: None,
                },
                r#"{"kind":"disconnect_user","body":{"user":"u1","reason":null}}"#,
            ),
        ]
    }

    fn access_changes() -> Vec<(AccessChange, &'static str)> {
        vec![
            (
                AccessChange {
                    user: user("u1"),
                    workspaces: Some(vec![
                        WorkspaceId::parse("a").unwrap(),
                        WorkspaceId::parse("b").unwrap(),
                    ]),
                },
                r#"{"kind":"access","body":{"user":"u1","workspaces":["a","b"]}}"#,
            ),
            (
                AccessChange {
                    user: user("u1"),
                    workspaces: None,
                },
                r#"{"kind":"access","body":{"user":"u1","workspaces":null}}"#,
            ),
        ]
    }

    #[test]
    fn each_kind_has_its_exact_bytes_on_the_stream() {
        for (command, bytes) in disconnects() {
            assert_eq!(control::encode(&command).unwrap(), bytes);
        }
        for (command, bytes) in access_changes() {
            assert_eq!(control::encode(&command).unwrap(), bytes);
        }
    }

    #[tokio::test]
    async fn each_kind_reads_back_from_its_bytes() {
        let read = Arc::new(Mutex::new(Vec::new()));
        let mut handlers = Handlers::default();
        let disconnects_read = read.clone();
        handlers.on(move |command: DisconnectUser| {
            let encoded = control::encode(&command).unwrap();
            disconnects_read.lock().unwrap().push(encoded);
            std::future::ready(())
        });
        let changes_read = read.clone();
        handlers.on(move |command: AccessChange| {
            let encoded = control::encode(&command).unwrap();
            changes_read.lock().unwrap().push(encoded);
            std::future::ready(())
        });
        let mut written = Vec::new();
        let disconnects = disconnects().into_iter().map(|(_, bytes)| bytes);
        for bytes in disconnects.chain(access_changes().into_iter().map(|(_, bytes)| bytes)) {
            handlers.apply("1-0", Some(bytes)).await;
            written.push(bytes.to_owned());
        }
        assert_eq!(*read.lock().unwrap(), written);
    }
}
