//! [`RebalanceListener`], and how the consumer calls it.

use crate::client::consumer::{Consumer, Mode};
use crate::offset::TopicPartition;

/// Callbacks on changes of a group member's partitions, Kafka's
/// `ConsumerRebalanceListener`. Every method defaults to doing nothing.
///
/// They run inside [`Consumer::poll`] (and `close`/`unsubscribe` for `on_revoked`), on the
/// polling thread, with the consumer itself as an argument: a listener may
/// [`commit`](super::Consumer::commit), [`commit_offsets`](super::Consumer::commit_offsets),
/// [`seek`](super::Consumer::seek) and query positions, but `poll`, `assign`, `subscribe`,
/// `unsubscribe` fail there with [`Error::InvalidConsumerState`](crate::error::Error::InvalidConsumerState).
///
/// Partitions change hands in two steps (see [`GroupCoordinator`](crate::group::coordinator::GroupCoordinator)): `on_revoked` runs while
/// the consumer still owns the partitions, so a commit made in it is the one the next owner
/// starts from; ownership is given up right after it returns.
pub trait RebalanceListener: Send {
    /// The consumer is about to give up `partitions` (a rebalance moved them, or the consumer
    /// is leaving). Commit what was processed here. With auto-commit on, the consumer has
    /// already committed their positions when this runs.
    fn on_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }

    /// The consumer now owns `partitions`, in addition to those it kept. Their positions
    /// resolve at the next fetch (committed offset, else `auto_offset_reset`) unless set here
    /// with a `seek`.
    fn on_assigned(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }

    /// The consumer lost `partitions` without a chance to commit: it was removed from the
    /// group (session timeout) and other members may already own them. The consumer then
    /// joins the group again as a new member. Unlike Kafka's default, this does not call
    /// `on_revoked`: commits for lost partitions would be fenced anyway.
    fn on_lost(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }
}

/// Which listener method to call.
#[derive(Clone, Copy)]
pub(super) enum Callback {
    Revoked,
    Assigned,
    Lost,
}

impl Consumer {
    /// Call the listener's `which` method for `partitions` (none if empty or no listener).
    /// While it runs, the listener is taken out of the consumer and the calls a listener may
    /// not make fail.
    pub(super) fn callback(&mut self, which: Callback, partitions: &[TopicPartition]) {
        if partitions.is_empty() {
            return;
        }
        let Mode::Group(m) = &mut self.mode else {
            return;
        };
        let Some(mut listener) = m.listener.take() else {
            return;
        };
        self.in_callback = true;
        match which {
            Callback::Revoked => listener.on_revoked(self, partitions),
            Callback::Assigned => listener.on_assigned(self, partitions),
            Callback::Lost => listener.on_lost(self, partitions),
        }
        self.in_callback = false;
        if let Mode::Group(m) = &mut self.mode {
            m.listener = Some(listener);
        }
    }
}
