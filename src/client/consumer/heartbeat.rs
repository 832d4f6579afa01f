//! The background heartbeat: a group member stays in its group while its application
//! processes records for longer than the session timeout, as Kafka's consumer does with its
//! heartbeat thread; `max_poll_interval` (Kafka's `max.poll.interval.ms`) is the separate
//! bound on the time between polls, after which the member leaves the group by itself.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::group::coordinator::GroupCoordinator;

/// What the heartbeat thread and the consumer share.
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    group: String,
    member_id: String,
    last_poll: Instant,
    stop: bool,
}

/// A running heartbeat thread; stopped and joined on drop.
pub(super) struct Heartbeat {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Start heartbeating `member_id` of `group` every `interval`; leave the group once no
    /// poll happened for `max_poll_interval`. `None` if the thread cannot be spawned (the
    /// consumer then heartbeats from `poll` only, as before).
    pub(super) fn start(
        groups: Arc<GroupCoordinator>,
        group: &str,
        member_id: &str,
        interval: Duration,
        max_poll_interval: Duration,
    ) -> Option<Heartbeat> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                group: group.to_owned(),
                member_id: member_id.to_owned(),
                last_poll: Instant::now(),
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let inner = shared.clone();
        let thread = std::thread::Builder::new()
            .name("seglog-heartbeat".into())
            .spawn(move || run(&inner, &groups, interval, max_poll_interval))
            .ok()?;
        Some(Heartbeat {
            shared,
            thread: Some(thread),
        })
    }

    /// A poll started now.
    pub(super) fn polled(&self) {
        self.shared.state.lock().last_poll = Instant::now();
    }

    /// The member rejoined under a new id.
    pub(super) fn set_member(&self, member_id: &str) {
        let mut state = self.shared.state.lock();
        member_id.clone_into(&mut state.member_id);
        state.last_poll = Instant::now();
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared, groups: &GroupCoordinator, interval: Duration, max_poll: Duration) {
    let mut state = shared.state.lock();
    loop {
        shared.wake.wait_for(&mut state, interval);
        if state.stop {
            return;
        }
        let (group, member_id) = (state.group.clone(), state.member_id.clone());
        if state.last_poll.elapsed() > max_poll {
            // Kafka's consumer leaves the group when poll is not called within
            // max.poll.interval.ms: its partitions go to members that make progress. The
            // next poll rejoins (reporting the partitions as lost).
            drop(state);
            let _ = groups.leave(&group, &member_id);
            state = shared.state.lock();
            continue;
        }
        drop(state);
        // Errors (the member was removed) are the next poll's to handle: it rejoins.
        let _ = groups.heartbeat(&group, &member_id);
        state = shared.state.lock();
    }
}
