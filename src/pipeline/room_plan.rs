//! The rooms one event goes to, in delivery order, each with the workspace its members' `meta`
//! names ([`Targets::rooms`] says which and in what order: workspace rooms first). A subscriber
//! in several targeted rooms is reached through the first of them.
//!
//! The event log numbers the event in the same rooms, in the same order
//! ([`crate::history::EventLog::append`] answers one position per room name given):
//! [`RoomPlan::with_positions`] pairs each planned room with its position, and refuses an
//! answer of another length rather than pairing rooms with the wrong offsets.

use crate::{event::Targets, history::Position, ids::WorkspaceId};

/// One room of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedRoom<'a> {
    /// The Socket.IO room name.
    pub(crate) name: String,
    /// The workspace a member reached through this room is told (`meta.workspace`).
    pub(crate) workspace: Option<&'a WorkspaceId>,
}

/// The rooms of one event, in delivery order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoomPlan<'a> {
    rooms: Vec<PlannedRoom<'a>>,
}

impl<'a> RoomPlan<'a> {
    /// The plan of a publication's targets.
    pub(crate) fn of(targets: &'a Targets) -> Self {
        let rooms = targets.rooms();
        Self {
            rooms: rooms
                .map(|(name, workspace)| PlannedRoom { name, workspace })
                .collect(),
        }
    }

    /// The room names, in order: what the event log numbers the event in.
    pub(crate) fn names(&self) -> Vec<String> {
        self.rooms.iter().map(|room| room.name.clone()).collect()
    }

    /// Each room with its position, from the log's answer for [`Self::names`]; `None` when
    /// the answer does not have one position per room.
    pub(crate) fn with_positions(
        &self,
        positions: Vec<Position>,
    ) -> Option<Vec<(&PlannedRoom<'a>, Position)>> {
        (positions.len() == self.rooms.len()).then(|| self.rooms.iter().zip(positions).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{GroupPath, UserId};

    fn targets() -> Targets {
        Targets {
            workspaces: vec![
                WorkspaceId::parse("w2").unwrap(),
                WorkspaceId::parse("w1").unwrap(),
            ],
            users: vec![UserId::parse("alice").unwrap()],
            groups: vec![GroupPath::parse("/eng").unwrap()],
            scopes: Vec::new(),
        }
    }

    fn position(offset: u64) -> Position {
        Position {
            offset,
            epoch: crate::history::Epoch::generate(),
        }
    }

    #[test]
    fn workspaces_come_first_each_naming_itself_then_users_then_groups() {
        let targets = targets();
        let plan = RoomPlan::of(&targets);
        let named: Vec<(&str, Option<&str>)> = plan
            .rooms
            .iter()
            .map(|room| (room.name.as_str(), room.workspace.map(WorkspaceId::as_str)))
            .collect();
        assert_eq!(
            named,
            [
                ("workspace:w2", Some("w2")),
                ("workspace:w1", Some("w1")),
                ("user:alice", None),
                ("group:/eng", None),
            ]
        );
        assert_eq!(
            plan.names(),
            ["workspace:w2", "workspace:w1", "user:alice", "group:/eng"]
        );
    }

    #[test]
    fn positions_pair_with_their_rooms_or_not_at_all() {
        let targets = targets();
        let plan = RoomPlan::of(&targets);
        let paired = plan
            .with_positions((1..=4).map(position).collect())
            .unwrap();
        let offsets: Vec<(&str, u64)> = paired
            .iter()
            .map(|(room, position)| (room.name.as_str(), position.offset))
            .collect();
        assert_eq!(
            offsets,
            [
                ("workspace:w2", 1),
                ("workspace:w1", 2),
                ("user:alice", 3),
                ("group:/eng", 4)
            ]
        );
        assert!(plan.with_positions(vec![position(1)]).is_none());
        assert!(plan.with_positions(Vec::new()).is_none());
    }
}
