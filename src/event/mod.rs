//! A published event, from its request to its identity: a [`Publication`] (event name, data
//! kept as raw JSON, [`Targets`], optional coalescing key) parsed and checked from a publish
//! request, refused with a [`PublishError`] that has a stable code, and [`Stamped`] with an id
//! and a time when accepted.
//!
//! Four event names are Pydio Cells kinds (`cells`): their data is Cells' own message, checked
//! at publish, and herald adds the rooms of the sessions that may see them.
//!
//! Every door that publishes (`/private`, `POST /api/v1/publish`, the npm redis-emitter's
//! publishes) produces a `Publication`; the pipeline stamps, coalesces and delivers it, and the
//! event log (`crate::history`, `cluster/log.rs`) stores the `Stamped` event. This module
//! names only ids, so every layer above can share it.

pub(crate) mod cells;
mod publication;
mod stamped;

pub(crate) use publication::RoomError;
pub use publication::{
    MAX_COALESCE_KEY_BYTES, MAX_EVENT_BYTES, Publication, PublishError, RESERVED_EVENTS, Targets,
    null_data,
};
pub use stamped::Stamped;
