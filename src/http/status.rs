//! `GET /status`: the "WS Status" an administrator checks. Needs the private key as a bearer
//! token unless `status_public = true`. Figures are derived from the live Socket.IO state.

use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;

use super::KeyHolder;
use crate::{
    cluster::nodes::{self, NodeInfo},
    error::ApiError,
    realtime::rooms,
    state::AppState,
};

#[derive(Debug, Serialize)]
struct Status {
    status: &'static str,
    version: &'static str,
    uptime_s: u64,
    connections: Connections,
    workspaces: usize,
    /// Cluster mode: the live nodes (this one included) and their connections in total.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterStatus>,
}

#[derive(Debug, Serialize)]
struct ClusterStatus {
    node: String,
    redis: &'static str,
    nodes: Vec<NodeInfo>,
    connections: Connections,
}

#[derive(Debug, Serialize)]
struct Connections {
    public: u64,
    private: u64,
}

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/status", get(status))
}

async fn status(
    State(state): State<AppState>,
    key: Result<KeyHolder, ApiError>,
) -> Result<Json<Status>, ApiError> {
    if !state.cfg.status_public {
        key?;
    }
    let count = |path: &str| state.io.of(path).map_or(0, |ns| ns.sockets().len() as u64);
    let workspaces = match state.io.of(&state.cfg.public.path) {
        Some(ns) => ns
            .rooms()
            .await
            .map_err(|_| ApiError::Unavailable)?
            .iter()
            .filter(|room| rooms::is_workspace_room(room))
            .count(),
        None => 0,
    };
    Ok(Json(Status {
        status: "ON",
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started.elapsed().as_secs(),
        connections: Connections {
            public: count(&state.cfg.public.path),
            private: count(&state.cfg.private.path),
        },
        workspaces,
        cluster: cluster_status(&state).await,
    }))
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
