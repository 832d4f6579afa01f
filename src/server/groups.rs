//! The classic consumer group protocol as a Kafka broker runs it: JoinGroup collects the
//! members (each with its protocols' metadata), the leader client computes the assignment and
//! hands it over in SyncGroup, Heartbeat tells members of a rebalance, LeaveGroup and session
//! expiry remove members. Clients assign, so this is a state machine over opaque bytes,
//! separate from the embedded [`GroupCoordinator`](crate::GroupCoordinator) (which assigns
//! itself); the two share only the offset store. A group name used by both sides is two
//! groups that commit to the same offsets.
//!
//! States as Kafka names them: `Empty` → (join) `PreparingRebalance` → (every member
//! rejoined, or the rebalance timeout passed: the missing ones are removed) →
//! `CompletingRebalance` → (leader's SyncGroup) `Stable` → (join, leave, expiry)
//! `PreparingRebalance` ...

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

use crate::group::offset_store::{validate_group_id, CommittedOffset};
use crate::offset::{Offset, TopicPartition};
use crate::server::api::{code, error_code};
use crate::server::data::blocking;
use crate::server::Shared;

/// Session timeouts accepted (Kafka's `group.min/max.session.timeout.ms` are 6 s and 30 min;
/// the lower bound here is lower so tests can expire members quickly).
const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<i32> = 1_000..=1_800_000;
/// Members per group at most (Kafka's `group.max.size` default is unbounded; a bound here).
const GROUP_MEMBERS_MAX: usize = 1_000;
/// Groups at most.
const GROUPS_MAX: usize = 10_000;
/// How often the reaper expires members and ends rebalances whose timeout passed.
const REAPER_TICK: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

/// What a waiting JoinGroup is answered with.
type JoinReply = JoinGroupResponse;

struct Member {
    protocols: Vec<(StrBytes, Bytes)>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    last_seen: Instant,
    assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinReply>>,
    sync_waiter: Option<oneshot::Sender<(i16, Bytes)>>,
}

struct Group {
    state: State,
    generation: i32,
    protocol_type: String,
    protocol: Option<StrBytes>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    rebalance_deadline: Option<Instant>,
    /// While set and in the future, the join phase of a group that was empty waits for more
    /// members (Kafka's `group.initial.rebalance.delay.ms`).
    initial_until: Option<Instant>,
}

impl Group {
    fn new(protocol_type: String) -> Self {
        Group {
            state: State::Empty,
            generation: 0,
            protocol_type,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            rebalance_deadline: None,
            initial_until: None,
        }
    }

    /// Enter `PreparingRebalance` (members learn it from their heartbeats and rejoin); a
    /// member waiting in SyncGroup for the previous generation is told to rejoin.
    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == State::PreparingRebalance {
            return;
        }
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send((code(ResponseError::RebalanceInProgress), Bytes::new()));
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.state = State::PreparingRebalance;
        self.rebalance_deadline = Some(now + timeout);
    }

    /// End the join phase if every member has rejoined, or (with `force`) drop those that
    /// have not. Answers every waiting JoinGroup.
    fn maybe_complete_join(&mut self, force: bool) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        let delaying = self.initial_until.is_some_and(|t| Instant::now() < t);
        if !force && (!all_joined || delaying) {
            return;
        }
        self.initial_until = None;
        self.members.retain(|_, m| m.join_waiter.is_some());
        self.generation = self.generation.wrapping_add(1).max(1);
        self.rebalance_deadline = None;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.choose_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = State::CompletingRebalance;
        self.answer_joins();
    }

    /// The first protocol (in the first member's order of preference) every member supports.
    fn choose_protocol(&self) -> Option<StrBytes> {
        let first = self.members.values().next()?;
        first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .cloned()
    }

    fn metadata_of(&self, m: &Member) -> Bytes {
        m.protocols
            .iter()
            .find(|(n, _)| Some(n) == self.protocol.as_ref())
            .map(|(_, md)| md.clone())
            .unwrap_or_default()
    }

    /// Every member with its metadata for the chosen protocol: what the leader is sent.
    fn member_list(&self) -> Vec<JoinGroupResponseMember> {
        self.members
            .iter()
            .map(|(id, m)| {
                let mut jm = JoinGroupResponseMember::default();
                jm.member_id = StrBytes::from_string(id.clone());
                jm.metadata = self.metadata_of(m);
                jm
            })
            .collect()
    }

    fn answer_joins(&mut self) {
        let leader = self.leader.clone().unwrap_or_default();
        let members = self.member_list();
        let template = self.join_response(&leader);
        for (id, m) in &mut self.members {
            m.assignment = Bytes::new();
            if let Some(w) = m.join_waiter.take() {
                let mut r = template.clone();
                r.member_id = StrBytes::from_string(id.clone());
                if *id == leader {
                    r.members.clone_from(&members);
                }
                let _ = w.send(r);
            }
        }
    }

    fn join_response(&self, leader: &str) -> JoinGroupResponse {
        let mut r = JoinGroupResponse::default();
        r.generation_id = self.generation;
        r.protocol_type = Some(StrBytes::from_string(self.protocol_type.clone()));
        r.protocol_name.clone_from(&self.protocol);
        r.leader = StrBytes::from_string(leader.to_owned());
        r
    }

    /// Remove `member_id`, dropping its waits, and rebalance the rest.
    fn remove_member(&mut self, member_id: &str, now: Instant) -> bool {
        if self.members.remove(member_id).is_none() {
            return false;
        }
        if self.members.is_empty() {
            self.state = State::Empty;
            self.generation = self.generation.wrapping_add(1).max(1);
            self.protocol = None;
            self.leader = None;
            self.rebalance_deadline = None;
        } else {
            self.prepare_rebalance(now);
            self.maybe_complete_join(false);
        }
        true
    }

    /// The error for a member's call at `generation`, if any; touches the member.
    fn check_member(&mut self, member_id: &str, generation: i32, now: Instant) -> Result<(), i16> {
        let m = self
            .members
            .get_mut(member_id)
            .ok_or(code(ResponseError::UnknownMemberId))?;
        m.last_seen = now;
        if generation != self.generation {
            return Err(code(ResponseError::IllegalGeneration));
        }
        Ok(())
    }
}

/// Every remote consumer group of the server.
#[derive(Default)]
pub(super) struct Groups {
    groups: Mutex<HashMap<String, Group>>,
    next_member: AtomicU64,
}

/// Expire members whose session passed and end rebalances whose timeout passed, until stop.
pub(super) async fn reaper(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(REAPER_TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        let mut groups = shared.groups.groups.lock();
        for g in groups.values_mut() {
            let expired: Vec<String> = g
                .members
                .iter()
                // A member waiting in JoinGroup or SyncGroup cannot heartbeat meanwhile (its
                // connection handles one request at a time): the rebalance timeout and the
                // leader's expiry bound those waits instead.
                .filter(|(_, m)| {
                    m.join_waiter.is_none()
                        && m.sync_waiter.is_none()
                        && now > m.last_seen + m.session_timeout
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                g.remove_member(&id, now);
            }
            if g.rebalance_deadline.is_some_and(|d| now >= d) {
                g.maybe_complete_join(true);
            } else if g.initial_until.is_some_and(|t| now >= t) {
                g.maybe_complete_join(false);
            }
        }
        // A group without members keeps nothing but its name (offsets live in the store).
        groups.retain(|_, g| !g.members.is_empty());
    }
}

fn join_error(error: ResponseError, member_id: &str) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = code(error);
    r.generation_id = -1;
    r.member_id = StrBytes::from_string(member_id.to_owned());
    r
}

/// JoinGroup: add or refresh the member and wait for the join phase to end.
pub(super) async fn join_group(
    shared: &Arc<Shared>,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let member_id = req.member_id.as_str().to_owned();
    let rx = match register_join(shared, &req, version) {
        Ok(Ok(rx)) => rx,
        Ok(Err(immediate)) => return immediate,
        Err(e) => return join_error(e, &member_id),
    };
    match rx.await {
        Ok(r) => r,
        // The member was removed (expired, left) before the join phase ended.
        Err(_) => join_error(ResponseError::UnknownMemberId, &member_id),
    }
}

type JoinWait = Result<oneshot::Receiver<JoinReply>, JoinGroupResponse>;

/// The id a join is for: a new one for an empty member id, else the (known) member's. A
/// member that needs no rebalance gets its answer instead (`Ok(Err(response))`).
fn join_member_id(
    shared: &Shared,
    g: &Group,
    req: &JoinGroupRequest,
    protocols: &[(StrBytes, Bytes)],
) -> Result<Result<String, JoinGroupResponse>, ResponseError> {
    if req.member_id.is_empty() {
        if g.members.len() >= GROUP_MEMBERS_MAX {
            return Err(ResponseError::GroupMaxSizeReached);
        }
        let n = shared.groups.next_member.fetch_add(1, Ordering::Relaxed);
        return Ok(Ok(format!("member-{n}")));
    }
    let id = req.member_id.as_str();
    let m = g.members.get(id).ok_or(ResponseError::UnknownMemberId)?;
    // As Kafka's coordinator: a member rejoining with unchanged metadata while the group waits
    // for the leader's assignment (it may have missed its JoinGroup response), or a follower
    // doing so in a stable group, gets the current generation, no rebalance.
    let leader = g.leader.as_deref() == Some(id);
    let unchanged = m.protocols == protocols;
    if unchanged && (g.state == State::CompletingRebalance || (g.state == State::Stable && !leader))
    {
        let mut r = g.join_response(g.leader.as_deref().unwrap_or_default());
        r.member_id = req.member_id.clone();
        if leader {
            r.members = g.member_list();
        }
        return Ok(Err(r));
    }
    Ok(Ok(id.to_owned()))
}

/// What a join request must hold whatever the group's state.
fn check_join_request(req: &JoinGroupRequest) -> Result<(), ResponseError> {
    validate_group_id(req.group_id.as_str()).map_err(|_| ResponseError::InvalidGroupId)?;
    if !SESSION_TIMEOUT_MS.contains(&req.session_timeout_ms) {
        return Err(ResponseError::InvalidSessionTimeout);
    }
    if req.protocols.is_empty() || req.protocol_type.is_empty() {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    Ok(())
}

/// A join must use the group's protocol type and share a protocol with every member (an
/// empty group takes the joiner's type).
fn check_protocols(g: &mut Group, req: &JoinGroupRequest) -> Result<(), ResponseError> {
    if g.members.is_empty() {
        req.protocol_type.as_str().clone_into(&mut g.protocol_type);
        return Ok(());
    }
    let shared_protocol = req.protocols.iter().any(|p| {
        g.members
            .values()
            .all(|m| m.protocols.iter().any(|(n, _)| *n == p.name))
    });
    if g.protocol_type != req.protocol_type.as_str() || !shared_protocol {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    Ok(())
}

fn register_join(
    shared: &Shared,
    req: &JoinGroupRequest,
    version: i16,
) -> Result<JoinWait, ResponseError> {
    let group_id = req.group_id.as_str();
    check_join_request(req)?;
    let now = Instant::now();
    let mut groups = shared.groups.groups.lock();
    if !groups.contains_key(group_id) && groups.len() >= GROUPS_MAX {
        return Err(ResponseError::GroupMaxSizeReached);
    }
    let g = groups
        .entry(group_id.to_owned())
        .or_insert_with(|| Group::new(req.protocol_type.as_str().to_owned()));
    check_protocols(g, req)?;
    let starting_empty = g.members.is_empty();
    let protocols: Vec<(StrBytes, Bytes)> = req
        .protocols
        .iter()
        .map(|p| (p.name.clone(), p.metadata.clone()))
        .collect();
    let member_id = match join_member_id(shared, g, req, &protocols)? {
        Ok(id) => id,
        Err(current) => return Ok(Err(current)),
    };
    let (tx, rx) = oneshot::channel();
    // JoinGroup v0 has no rebalance timeout: Kafka uses the session timeout.
    let rebalance_ms = if version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let ms = |v: i32| Duration::from_millis(u64::try_from(v).unwrap_or(0));
    let member = g.members.entry(member_id).or_insert_with(|| Member {
        protocols: Vec::new(),
        session_timeout: Duration::ZERO,
        rebalance_timeout: Duration::ZERO,
        last_seen: now,
        assignment: Bytes::new(),
        join_waiter: None,
        sync_waiter: None,
    });
    member.protocols = protocols;
    member.session_timeout = ms(req.session_timeout_ms);
    member.rebalance_timeout = ms(rebalance_ms);
    member.last_seen = now;
    member.join_waiter = Some(tx);
    // A group starting from empty waits `group_initial_rebalance_delay` for more members,
    // extended by each one that joins meanwhile, within the rebalance timeout (as Kafka).
    let delay = shared.config.group_initial_rebalance_delay;
    if starting_empty || g.initial_until.is_some() {
        g.initial_until = (!delay.is_zero()).then(|| now + delay);
    }
    g.prepare_rebalance(now);
    g.maybe_complete_join(false);
    Ok(Ok(rx))
}

/// SyncGroup: the leader hands over every member's assignment; the others wait for it.
pub(super) async fn sync_group(
    shared: &Arc<Shared>,
    req: SyncGroupRequest,
    _version: i16,
) -> SyncGroupResponse {
    let result = register_sync(shared, &req);
    let (error_code, assignment) = match result {
        Ok(Ok(done)) => done,
        Ok(Err(rx)) => rx
            .await
            .unwrap_or((code(ResponseError::RebalanceInProgress), Bytes::new())),
        Err(c) => (c, Bytes::new()),
    };
    let mut r = SyncGroupResponse::default();
    r.error_code = error_code;
    r.assignment = assignment;
    r.protocol_type.clone_from(&req.protocol_type);
    r.protocol_name.clone_from(&req.protocol_name);
    r
}

type SyncWait = Result<(i16, Bytes), oneshot::Receiver<(i16, Bytes)>>;

fn register_sync(shared: &Shared, req: &SyncGroupRequest) -> Result<SyncWait, i16> {
    let now = Instant::now();
    let mut groups = shared.groups.groups.lock();
    let g = groups
        .get_mut(req.group_id.as_str())
        .ok_or(code(ResponseError::UnknownMemberId))?;
    let member_id = req.member_id.as_str();
    g.check_member(member_id, req.generation_id, now)?;
    match g.state {
        State::Empty | State::PreparingRebalance => Err(code(ResponseError::RebalanceInProgress)),
        State::Stable => Ok(Ok((0, g.members[member_id].assignment.clone()))),
        State::CompletingRebalance => {
            if g.leader.as_deref() == Some(member_id) {
                for a in &req.assignments {
                    if let Some(m) = g.members.get_mut(a.member_id.as_str()) {
                        m.assignment = a.assignment.clone();
                    }
                }
                g.state = State::Stable;
                for m in g.members.values_mut() {
                    if let Some(w) = m.sync_waiter.take() {
                        let _ = w.send((0, m.assignment.clone()));
                    }
                }
                return Ok(Ok((0, g.members[member_id].assignment.clone())));
            }
            let (tx, rx) = oneshot::channel();
            if let Some(m) = g.members.get_mut(member_id) {
                m.sync_waiter = Some(tx);
            }
            Ok(Err(rx))
        }
    }
}

/// Heartbeat: keeps the session; `REBALANCE_IN_PROGRESS` tells the member to rejoin.
pub(super) fn heartbeat(
    shared: &Arc<Shared>,
    req: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let now = Instant::now();
    let mut groups = shared.groups.groups.lock();
    let result = match groups.get_mut(req.group_id.as_str()) {
        None => Err(code(ResponseError::UnknownMemberId)),
        Some(g) => g
            .check_member(req.member_id.as_str(), req.generation_id, now)
            .and_then(|()| {
                if g.state == State::PreparingRebalance {
                    Err(code(ResponseError::RebalanceInProgress))
                } else {
                    Ok(())
                }
            }),
    };
    let mut r = HeartbeatResponse::default();
    r.error_code = result.err().unwrap_or(0);
    r
}

/// LeaveGroup: one member (v0-2) or a list (v3+); the rest of the group rebalances.
pub(super) fn leave_group(
    shared: &Arc<Shared>,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let now = Instant::now();
    let ids: Vec<StrBytes> = if version >= 3 {
        req.members.iter().map(|m| m.member_id.clone()).collect()
    } else {
        vec![req.member_id.clone()]
    };
    let mut groups = shared.groups.groups.lock();
    let mut r = LeaveGroupResponse::default();
    let Some(g) = groups.get_mut(req.group_id.as_str()) else {
        r.error_code = code(ResponseError::UnknownMemberId);
        return r;
    };
    for id in ids {
        let removed = g.remove_member(id.as_str(), now);
        let mut mr = MemberResponse::default();
        mr.member_id = id;
        if !removed {
            mr.error_code = code(ResponseError::UnknownMemberId);
        }
        if version < 3 {
            r.error_code = mr.error_code;
        }
        r.members.push(mr);
    }
    if version < 3 {
        r.members.clear();
    }
    r
}

/// OffsetCommit: fenced by member and generation like Kafka's (a generation of -1 with no
/// member commits without a group, as a standalone consumer does), then one atomic commit
/// to the shared offset store.
pub(super) async fn offset_commit(
    shared: &Arc<Shared>,
    req: OffsetCommitRequest,
    _version: i16,
) -> OffsetCommitResponse {
    let group_error = check_commit(shared, &req).err();
    let s = shared.clone();
    blocking(move || commit_blocking(&s, &req, group_error))
        .await
        .unwrap_or_default()
}

fn check_commit(shared: &Shared, req: &OffsetCommitRequest) -> Result<(), i16> {
    validate_group_id(req.group_id.as_str()).map_err(|e| error_code(&e))?;
    if req.generation_id_or_member_epoch < 0 && req.member_id.is_empty() {
        return Ok(());
    }
    let mut groups = shared.groups.groups.lock();
    let g = groups
        .get_mut(req.group_id.as_str())
        .ok_or(code(ResponseError::UnknownMemberId))?;
    g.check_member(
        req.member_id.as_str(),
        req.generation_id_or_member_epoch,
        Instant::now(),
    )?;
    if g.state == State::CompletingRebalance {
        return Err(code(ResponseError::RebalanceInProgress));
    }
    Ok(())
}

fn commit_blocking(
    shared: &Shared,
    req: &OffsetCommitRequest,
    group_error: Option<i16>,
) -> OffsetCommitResponse {
    let mut resp = OffsetCommitResponse::default();
    let mut list = Vec::new();
    for t in &req.topics {
        let topic = shared.store.topic(t.name.as_str());
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            let entry = match (
                &topic,
                u32::try_from(p.partition_index),
                u64::try_from(p.committed_offset),
            ) {
                _ if group_error.is_some() => Err(group_error.unwrap_or_default()),
                (Err(e), _, _) => Err(error_code(e)),
                (Ok(t), Ok(i), Ok(o)) if i < t.partition_count() => Ok((i, o)),
                (Ok(_), Ok(_), Err(_)) => Err(code(ResponseError::InvalidCommitOffsetSize)),
                _ => Err(code(ResponseError::UnknownTopicOrPartition)),
            };
            match entry {
                Ok((i, o)) => {
                    let meta = p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.as_str().to_owned())
                        .unwrap_or_default();
                    let tp = TopicPartition::new(t.name.as_str(), i);
                    list.push((tp, CommittedOffset::new(Offset(o)).with_metadata(meta)));
                }
                Err(c) => pr.error_code = c,
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    if !list.is_empty() {
        if let Err(e) = shared.offsets.commit(req.group_id.as_str(), &list) {
            let c = error_code(&e);
            for pr in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                if pr.error_code == 0 {
                    pr.error_code = c;
                }
            }
        }
    }
    resp
}

/// OffsetFetch (one group, v1-7): the committed offsets, -1 where none was committed; every
/// committed partition of the group for a null topic list.
pub(super) async fn offset_fetch(
    shared: &Arc<Shared>,
    req: OffsetFetchRequest,
    _version: i16,
) -> OffsetFetchResponse {
    let s = shared.clone();
    blocking(move || fetch_offsets_blocking(&s, &req))
        .await
        .unwrap_or_default()
}

fn fetch_offsets_blocking(shared: &Shared, req: &OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    let group = req.group_id.as_str();
    let wanted: Vec<(TopicName, Vec<i32>)> = match &req.topics {
        Some(ts) => ts
            .iter()
            .map(|t| (t.name.clone(), t.partition_indexes.clone()))
            .collect(),
        None => match shared.offsets.fetch_group(group) {
            Ok(all) => {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (tp, _) in all {
                    by_topic
                        .entry(tp.topic.clone())
                        .or_default()
                        .push(i32::try_from(tp.partition).unwrap_or(i32::MAX));
                }
                by_topic
                    .into_iter()
                    .map(|(t, ps)| (TopicName(StrBytes::from_string(t)), ps))
                    .collect()
            }
            Err(e) => {
                resp.error_code = error_code(&e);
                return resp;
            }
        },
    };
    for (name, partitions) in wanted {
        let mut tr = OffsetFetchResponseTopic::default();
        tr.name = name.clone();
        for index in partitions {
            let mut pr = OffsetFetchResponsePartition::default();
            pr.partition_index = index;
            pr.committed_offset = -1;
            pr.committed_leader_epoch = -1;
            let tp = u32::try_from(index)
                .ok()
                .map(|i| TopicPartition::new(name.as_str(), i));
            match tp.map(|tp| shared.offsets.fetch(group, &tp)) {
                Some(Ok(Some(c))) => {
                    pr.committed_offset = i64::try_from(c.offset.0).unwrap_or(i64::MAX);
                    pr.metadata = Some(StrBytes::from_string(c.metadata.clone()));
                }
                Some(Ok(None)) | None => pr.metadata = Some(StrBytes::default()),
                Some(Err(e)) => pr.error_code = error_code(&e),
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

/// DescribeGroups: state, protocol and members (with their metadata and assignment).
pub(super) fn describe_groups(
    shared: &Arc<Shared>,
    req: DescribeGroupsRequest,
    _version: i16,
) -> DescribeGroupsResponse {
    let groups = shared.groups.groups.lock();
    let mut resp = DescribeGroupsResponse::default();
    for id in &req.groups {
        let mut d = DescribedGroup::default();
        d.group_id = id.clone();
        match groups.get(id.as_str()) {
            None => d.group_state = StrBytes::from_static_str("Dead"),
            Some(g) => {
                d.group_state = StrBytes::from_static_str(g.state.name());
                d.protocol_type = StrBytes::from_string(g.protocol_type.clone());
                d.protocol_data = g.protocol.clone().unwrap_or_default();
                for (mid, m) in &g.members {
                    let mut dm = DescribedGroupMember::default();
                    dm.member_id = StrBytes::from_string(mid.clone());
                    dm.member_metadata = g.metadata_of(m);
                    dm.member_assignment = m.assignment.clone();
                    d.members.push(dm);
                }
            }
        }
        resp.groups.push(d);
    }
    resp
}

/// ListGroups: every group the server coordinates (not the embedded coordinator's).
pub(super) fn list_groups(
    shared: &Arc<Shared>,
    _req: ListGroupsRequest,
    _version: i16,
) -> ListGroupsResponse {
    let groups = shared.groups.groups.lock();
    let mut resp = ListGroupsResponse::default();
    for (id, g) in groups.iter() {
        let mut l = ListedGroup::default();
        l.group_id = GroupId(StrBytes::from_string(id.clone()));
        l.protocol_type = StrBytes::from_string(g.protocol_type.clone());
        l.group_state = StrBytes::from_static_str(g.state.name());
        resp.groups.push(l);
    }
    resp
}
