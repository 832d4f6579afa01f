//! Group membership: the per-poll step that applies the coordinator's view, rejoining,
//! leaving, and automatic commits.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::client::consumer::listener::Callback;
use crate::client::consumer::{Consumer, Mode};
use crate::error::{Error, Result};
use crate::group::offset_store::CommittedOffset;
use crate::offset::TopicPartition;

impl Consumer {
    /// Heartbeat and apply the coordinator's view: revoke (auto-commit, callback, release),
    /// then take over new partitions (callback). Rejoins after being removed.
    pub(super) fn group_step(&mut self) -> Result<()> {
        let Mode::Group(m) = &self.mode else {
            return Ok(());
        };
        let (group, member_id) = (m.group.clone(), m.member_id.clone());
        let sync = match self.groups.sync(&group, &member_id) {
            Ok(sync) => sync,
            Err(Error::UnknownMember { .. }) => {
                self.rejoin()?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if let Mode::Group(m) = &mut self.mode {
            m.generation = sync.generation;
        }
        // A failed commit of revoked partitions is reported once the step is complete: the
        // partitions are released all the same (keeping them would block the new owner, and
        // the next sync would revoke them again).
        let mut committed = Ok(());
        if !sync.to_revoke.is_empty() {
            let revoke = sync.to_revoke.clone();
            if self.config.enable_auto_commit {
                committed = self.commit_changed(Some(&revoke));
            }
            self.callback(Callback::Revoked, &revoke);
            self.parts.retain(|p| !revoke.contains(&p.tp));
            match self.groups.release(&group, &member_id, &revoke) {
                Ok(()) => {}
                Err(Error::UnknownMember { .. }) => return self.rejoin().and(committed),
                Err(e) => return Err(e),
            }
        }
        if !sync.assigned.is_empty() {
            let mut added = Vec::new();
            for tp in &sync.assigned {
                // A topic deleted since the assignment: the next sync revokes it.
                if let Ok(part) = self.open_partition(tp.clone()) {
                    added.push(tp.clone());
                    self.parts.push(part);
                }
            }
            self.parts.sort_by(|a, b| a.tp.cmp(&b.tp));
            self.callback(Callback::Assigned, &added);
        }
        let owned: BTreeSet<&TopicPartition> = sync
            .owned
            .iter()
            .filter(|tp| !sync.to_revoke.contains(tp))
            .collect();
        self.parts.retain(|p| owned.contains(&p.tp));
        committed
    }

    /// After removal by the coordinator: report the partitions lost, join again.
    pub(super) fn rejoin(&mut self) -> Result<()> {
        let lost: Vec<TopicPartition> = self.assignment();
        self.parts.clear();
        if !lost.is_empty() {
            self.callback(Callback::Lost, &lost);
        }
        let Mode::Group(m) = &self.mode else {
            return Ok(());
        };
        let (group, topics) = (m.group.clone(), m.topics.clone());
        let member_id = self
            .groups
            .join(&group, self.config.member_config(topics))?;
        if let Mode::Group(m) = &mut self.mode {
            if let Some(h) = &m.heartbeat {
                h.set_member(&member_id);
            }
            m.member_id = member_id;
            m.generation = 0;
        }
        Ok(())
    }
    /// Leave the group or drop the manual assignment; idle afterwards.
    pub(super) fn shutdown(&mut self) -> Result<()> {
        self.run_pending_commits();
        let mut result = Ok(());
        // Ownership only changes through this consumer's own polls (or its removal), so what
        // it holds is still its own: the coordinator accepts the commit with the generation of
        // the last poll even if members joined or left since (see `GroupCoordinator::commit`).
        if self.config.enable_auto_commit && self.group_id().is_some() {
            result = self.commit_changed(None);
        }
        if let Mode::Group(m) = &self.mode {
            let (group, member_id) = (m.group.clone(), m.member_id.clone());
            let owned = self.assignment();
            self.callback(Callback::Revoked, &owned);
            // A static member stays in the group: its next incarnation takes over.
            let leave = if self.config.group_instance_id.is_some() {
                Ok(())
            } else {
                self.groups.leave(&group, &member_id)
            };
            match leave {
                Ok(()) | Err(Error::UnknownMember { .. }) => {}
                Err(e) => result = result.and(Err(e)),
            }
        }
        self.mode = Mode::Idle;
        self.parts.clear();
        result
    }

    // ----- commits -----

    /// Commit positions that moved since their last commit, of `only` partitions or all.
    /// A refused commit is returned, never dropped: the caller (`poll`, `close`) reports it,
    /// and the records after the last successful commit will be delivered again.
    fn commit_changed(&mut self, only: Option<&[TopicPartition]>) -> Result<()> {
        let offsets: Vec<(TopicPartition, CommittedOffset)> = self
            .parts
            .iter()
            .filter(|p| only.is_none_or(|o| o.contains(&p.tp)))
            .filter_map(|p| match p.position {
                Some(o) if p.committed != Some(o) => Some((p.tp.clone(), CommittedOffset::new(o))),
                _ => None,
            })
            .collect();
        self.commit_offsets(&offsets)
    }

    pub(super) fn maybe_auto_commit(&mut self) -> Result<()> {
        if !self.config.enable_auto_commit
            || self.group_id().is_none()
            || self.last_auto_commit.elapsed() < self.config.auto_commit_interval
        {
            return Ok(());
        }
        self.last_auto_commit = Instant::now();
        self.commit_changed(None)
    }
}
