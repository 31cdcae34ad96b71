//! `GET /status`: the "WS Status" an administrator checks. Needs the private key as a bearer
//! token unless `status_public = true`. Figures are derived from the live Socket.IO state.
//!
//! JSON by default (curl, monitoring); HTML (`status_page`) when the request's `Accept` prefers
//! `text/html`, as a browser's does. Both carry the same figures.

use std::{cmp::Reverse, collections::BinaryHeap, sync::Arc};

use axum::{
    Extension, Json, Router,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use socketioxide::TransportType;

use super::{
    KeyHolder, accept,
    status_page::{self, Namespaces},
};
use crate::{
    cells::CellsDoor,
    cluster::nodes::{self, NodeInfo},
    error::ApiError,
    metrics::Rates,
    rooms,
    socketio::Io,
    socketio::state::AppState,
};

/// Workspaces listed as the busiest.
const TOP_WORKSPACES: usize = 10;
/// Workspace rooms whose members one request counts for the busiest list: bounds its work
/// (the rooms beyond are counted in `workspaces`, not ranked).
const MAX_RANKED_ROOMS: usize = 10_000;
/// The HTML page reloads itself this often unless `?refresh=` says otherwise (0: never).
const DEFAULT_REFRESH_S: u32 = 10;
/// Longest reload period `?refresh=` may ask for.
const MAX_REFRESH_S: u32 = 3600;

/// Everything `/status` says.
#[derive(Debug, Serialize)]
pub(super) struct Status {
    /// Always `ON` while herald answers.
    pub(super) status: &'static str,
    pub(super) version: &'static str,
    pub(super) uptime_s: u64,
    /// What `limits.max_connections` bounds on this node: Engine.IO sessions (each counts from
    /// its handshake, before it joins a namespace, until its transport closes) and the Pydio
    /// Cells door's sockets.
    pub(super) sessions: i64,
    /// Sockets on this node, by namespace.
    pub(super) connections: Connections,
    /// The same sockets by namespace and transport.
    pub(super) transports: Transports,
    /// Workspace rooms with at least one registered socket on this node.
    pub(super) workspaces: usize,
    /// The workspaces with the most registered sockets on this node, most first.
    pub(super) busiest_workspaces: Vec<Busy>,
    pub(super) events_per_second: Rates,
    /// Cluster mode: the live nodes (this one included) and their connections in total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cluster: Option<ClusterStatus>,
    /// The Pydio Cells door, when enabled: its WebSockets on this node, and how many of them
    /// are subscribed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cells: Option<CellsStatus>,
}

#[derive(Debug, Serialize)]
pub(super) struct CellsStatus {
    pub(super) connections: usize,
    pub(super) subscribed: usize,
}

#[derive(Debug, Serialize)]
pub(super) struct ClusterStatus {
    pub(super) node: String,
    pub(super) redis: &'static str,
    pub(super) nodes: Vec<NodeInfo>,
    pub(super) connections: Connections,
}

#[derive(Debug, Serialize)]
pub(super) struct Connections {
    pub(super) public: u64,
    pub(super) private: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct Transports {
    pub(super) public: TransportCounts,
    pub(super) private: TransportCounts,
}

/// Sockets of one namespace by transport.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct TransportCounts {
    /// On a WebSocket.
    pub(crate) websocket: u64,
    /// On HTTP long-polling.
    pub(crate) polling: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct Busy {
    pub(super) workspace: String,
    pub(super) members: usize,
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    refresh: Option<u32>,
}

/// The sockets of the namespace at `path` by transport (none when it does not exist).
pub(crate) fn transport_counts(io: &Io, path: &str) -> TransportCounts {
    let sockets = io.of(path).map(|ns| ns.sockets()).unwrap_or_default();
    let websocket = sockets
        .iter()
        .filter(|socket| socket.transport_type() == TransportType::Websocket)
        .count() as u64;
    TransportCounts {
        websocket,
        polling: sockets.len() as u64 - websocket,
    }
}

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/status", get(status))
}

async fn status(
    State(state): State<AppState>,
    cells: Option<Extension<Arc<CellsDoor>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    key: Result<KeyHolder, ApiError>,
) -> Result<Response, ApiError> {
    if !state.cfg.status_public {
        key?;
    }
    let mut status = gather(&state).await?;
    status.cells = cells.map(|Extension(door)| {
        let (connections, subscribed) = door.counts();
        CellsStatus {
            connections,
            subscribed,
        }
    });
    let mut response = if accept::prefers_html(&headers) {
        let refresh = query
            .and_then(|q| serde_urlencoded::from_str::<StatusQuery>(&q).ok())
            .and_then(|q| q.refresh)
            .unwrap_or(DEFAULT_REFRESH_S)
            .min(MAX_REFRESH_S);
        let namespaces = Namespaces {
            public: &state.cfg.public.path,
            private: &state.cfg.private.path,
        };
        status_page::response(&status, &namespaces, refresh)
    } else {
        Json(status).into_response()
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(response)
}

async fn gather(state: &AppState) -> Result<Status, ApiError> {
    let public = transport_counts(&state.io, &state.cfg.public.path);
    let private = transport_counts(&state.io, &state.cfg.private.path);
    let (workspaces, busiest_workspaces) = match state.io.of(&state.cfg.public.path) {
        Some(ns) => {
            let rooms = ns
                .clone()
                .rooms()
                .await
                .map_err(|_| ApiError::Unavailable)?;
            let workspace_rooms = || {
                rooms
                    .iter()
                    .map(|room| &**room)
                    .filter(|room| rooms::is_workspace_room(room))
            };
            let busiest = busiest(workspace_rooms().take(MAX_RANKED_ROOMS), |room| {
                ns.clone().within(room.to_owned()).sockets().len()
            });
            (workspace_rooms().count(), busiest)
        }
        None => (0, Vec::new()),
    };
    Ok(Status {
        status: "ON",
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started.elapsed().as_secs(),
        sessions: state.metrics.sessions.get(),
        connections: Connections {
            public: public.websocket + public.polling,
            private: private.websocket + private.polling,
        },
        transports: Transports { public, private },
        workspaces,
        busiest_workspaces,
        events_per_second: state.metrics.throughput.rates(),
        cluster: cluster_status(state).await,
        cells: None,
    })
}

/// The [`TOP_WORKSPACES`] workspace rooms with the most members, most first (ties by id).
fn busiest<'a>(
    workspace_rooms: impl Iterator<Item = &'a str>,
    members: impl Fn(&str) -> usize,
) -> Vec<Busy> {
    // A min-heap of the best so far: the weakest on top, dropped when a better one comes.
    let mut top = BinaryHeap::with_capacity(TOP_WORKSPACES + 1);
    for room in workspace_rooms {
        let Some(id) = rooms::workspace_of(room) else {
            continue;
        };
        top.push(Reverse((members(room), Reverse(id))));
        if top.len() > TOP_WORKSPACES {
            top.pop();
        }
    }
    top.into_sorted_vec()
        .into_iter()
        .map(|Reverse((members, Reverse(id)))| Busy {
            workspace: id.as_str().to_owned(),
            members,
        })
        .collect()
}

async fn cluster_status(state: &AppState) -> Option<ClusterStatus> {
    let redis = state.cluster.as_ref()?;
    let (nodes, reachable) = match nodes::live(redis).await {
        Ok(nodes) => (nodes, true),
        Err(error) => {
            tracing::debug!(%error, "status: nodes not read");
            (Vec::new(), false)
        }
    };
    Some(ClusterStatus {
        node: state.node_id.clone(),
        redis: if reachable { "up" } else { "unreachable" },
        connections: Connections {
            public: nodes.iter().map(|n| n.public).sum(),
            private: nodes.iter().map(|n| n.private).sum(),
        },
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_are_ranked_most_first_and_bounded() {
        let rooms: Vec<String> = (0..50).map(|n| format!("workspace:ws-{n:02}")).collect();
        let members = |room: &str| {
            let n: usize = room.trim_start_matches("workspace:ws-").parse().unwrap();
            n % 20
        };
        let top = busiest(rooms.iter().map(String::as_str), members);
        let ranked: Vec<(&str, usize)> = top
            .iter()
            .map(|b| (b.workspace.as_str(), b.members))
            .collect();
        assert_eq!(ranked.len(), TOP_WORKSPACES);
        // 19 members: ws-19 and ws-39 (ties by id); then 18: ws-18, ws-38; ...
        assert_eq!(
            &ranked[..4],
            &[("ws-19", 19), ("ws-39", 19), ("ws-18", 18), ("ws-38", 18)]
        );
        assert!(ranked.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    #[test]
    fn fewer_rooms_than_the_top_are_all_listed() {
        let top = busiest(["workspace:a", "workspace:b"].into_iter(), |room| {
            usize::from(room.ends_with('b')) + 1
        });
        let ids: Vec<&str> = top.iter().map(|b| b.workspace.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert!(busiest(std::iter::empty(), |_| 1).is_empty());
    }
}
