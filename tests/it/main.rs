//! herald's integration tests. Every test starts its own server on `127.0.0.1:0` (see
//! [`support::TestServer`]) and talks to it as browsers and backends do: Socket.IO over
//! WebSocket with a small client of our own, and plain HTTP.

// A test crate: panicking on an unexpected `Err` is how a test (or its helpers) fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod access;
mod auth_backend;
mod auth_jwt;
mod auth_keys;
mod coalesce;
mod conformance;
mod connect_race;
mod delivery;
mod dev_mode;
mod disconnect_user;
mod doctor;
mod expiry;
mod history;
mod http_api;
mod leaks;
mod metrics;
mod origins;
mod payload_limits;
mod private_access;
mod publish;
mod register;
mod rooms;
mod shutdown;
mod slow;
mod status;
mod tls;
mod transport;
