//! The data APIs: Produce (batches validated, then written as received), Fetch (segment
//! bytes handed out as they are, long-polling through the partitions' waits), ListOffsets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest,
    ProduceResponse,
};

use crate::error::Result;
use crate::format::batch::BatchHeader;
use crate::log::partition::Partition;
use crate::offset::Offset;
use crate::server::api::{code, error_code};
use crate::server::Shared;
use crate::topic::handle::Topic;

/// Partitions whose waits one fetch joins at most. A fetch over more partitions wakes on an
/// append to any of the first ones, and otherwise at its deadline (each wait holds a thread).
const WAITED_PARTITIONS_MAX: usize = 16;

/// Run `f` on the blocking pool (store calls may fsync or wait on a condition variable).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// The partition `index` of `topic` (negative indexes are unknown partitions).
fn partition(topic: &Result<Arc<Topic>>, index: i32) -> Result<Arc<Partition>, i16> {
    let topic = topic.as_ref().map_err(error_code)?;
    let index = u32::try_from(index).map_err(|_| code(ResponseError::UnknownTopicOrPartition))?;
    topic.partition(index).map_err(|e| error_code(&e))
}

/// Produce: `None` for `acks=0` (Kafka sends no response then).
pub(super) async fn produce(
    shared: &Arc<Shared>,
    req: ProduceRequest,
    _version: i16,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let s = shared.clone();
    let resp = blocking(move || produce_blocking(&s, req))
        .await
        .unwrap_or_default();
    (acks != 0).then_some(resp)
}

fn produce_blocking(shared: &Shared, req: ProduceRequest) -> ProduceResponse {
    let acks_valid = matches!(req.acks, -1..=1);
    let mut resp = ProduceResponse::default();
    let mut appended: Vec<(usize, usize, Arc<Partition>)> = Vec::new();
    for td in req.topic_data {
        let topic = shared.store.topic(td.name.as_str());
        let mut tr = TopicProduceResponse::default();
        tr.name = td.name.clone();
        for pd in td.partition_data {
            let mut r = PartitionProduceResponse::default();
            r.index = pd.index;
            let result = if acks_valid {
                append_one(&topic, pd)
            } else {
                Err(code(ResponseError::InvalidRequiredAcks))
            };
            match result {
                Ok((p, base)) => {
                    r.base_offset = i64::try_from(base.0).unwrap_or(i64::MAX);
                    r.log_start_offset = i64::try_from(p.log_start_offset().0).unwrap_or(-1);
                    appended.push((resp.responses.len(), tr.partition_responses.len(), p));
                }
                Err(c) => {
                    r.error_code = c;
                    r.base_offset = -1;
                }
            }
            tr.partition_responses.push(r);
        }
        resp.responses.push(tr);
    }
    // acks=all: durable on this node (fsynced) before the response; there are no replicas.
    if req.acks == -1 {
        for (t, i, p) in appended {
            if let Err(e) = p.flush() {
                let r = &mut resp.responses[t].partition_responses[i];
                r.error_code = error_code(&e);
            }
        }
    }
    resp
}

/// Validate and append one partition's batch; the partition and the batch's base offset.
fn append_one(
    topic: &Result<Arc<Topic>>,
    pd: PartitionProduceData,
) -> Result<(Arc<Partition>, Offset), i16> {
    let p = partition(topic, pd.index)?;
    let records = pd.records.ok_or(code(ResponseError::InvalidRequest))?;
    // No transaction coordinator: a transactional batch could never be committed or aborted.
    if BatchHeader::parse(&records).is_ok_and(|h| h.is_transactional()) {
        return Err(code(ResponseError::InvalidTxnState));
    }
    let info = p.append_received(records).map_err(|e| error_code(&e))?;
    Ok((p, info.base_offset))
}

/// What one pass over a fetch's partitions found.
struct FetchRead {
    response: FetchResponse,
    bytes: usize,
    errors: bool,
    /// Each partition read and the offset past which new data would be worth waking for.
    waits: Vec<(Arc<Partition>, Offset)>,
}

/// Fetch: read every partition; if fewer than `min_bytes` came back, wait (at most
/// `max_wait_ms`, capped by the server's `fetch_wait_max`) for an append and read again.
pub(super) async fn fetch(shared: &Arc<Shared>, req: FetchRequest, _version: i16) -> FetchResponse {
    let wait_ms = u64::try_from(req.max_wait_ms).unwrap_or(0);
    let deadline =
        Instant::now() + Duration::from_millis(wait_ms).min(shared.config.fetch_wait_max);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let req = Arc::new(req);
    loop {
        let (s, r) = (shared.clone(), req.clone());
        let Some(read) = blocking(move || read_fetch(&s, &r)).await else {
            let mut resp = FetchResponse::default();
            resp.error_code = code(ResponseError::UnknownServerError);
            return resp;
        };
        let now = Instant::now();
        if read.bytes >= min_bytes || read.errors || now >= deadline || read.waits.is_empty() {
            return read.response;
        }
        wait_any(read.waits, deadline - now).await;
    }
}

/// Wait until one of `waits` has data past its offset, or `timeout` passes. Each wait runs
/// [`Partition::wait_for`] (a condition variable woken by appends) on the blocking pool.
async fn wait_any(waits: Vec<(Arc<Partition>, Offset)>, timeout: Duration) {
    let mut set = tokio::task::JoinSet::new();
    for (p, offset) in waits.into_iter().take(WAITED_PARTITIONS_MAX) {
        set.spawn_blocking(move || p.wait_for(offset, timeout));
    }
    while let Some(woke) = set.join_next().await {
        if matches!(woke, Ok(true)) {
            break;
        }
    }
    // Waits still running end at their timeout; nothing waits for them.
    set.detach_all();
}

fn read_fetch(shared: &Shared, req: &FetchRequest) -> FetchRead {
    let mut out = FetchRead {
        response: FetchResponse::default(),
        bytes: 0,
        errors: false,
        waits: Vec::new(),
    };
    let mut remaining = usize::try_from(req.max_bytes).unwrap_or(0);
    for ft in &req.topics {
        let topic = shared.store.topic(ft.topic.as_str());
        let mut tr = FetchableTopicResponse::default();
        tr.topic = ft.topic.clone();
        for fp in &ft.partitions {
            let mut pd = PartitionData::default();
            pd.partition_index = fp.partition;
            let limit = usize::try_from(fp.partition_max_bytes)
                .unwrap_or(0)
                .min(remaining);
            match read_partition(&topic, fp.partition, fp.fetch_offset, limit, out.bytes > 0) {
                Ok((p, records, hw)) => {
                    remaining -= records.len().min(remaining);
                    out.bytes += records.len();
                    pd.high_watermark = i64::try_from(hw.0).unwrap_or(i64::MAX);
                    pd.last_stable_offset = pd.high_watermark;
                    pd.log_start_offset = i64::try_from(p.log_start_offset().0).unwrap_or(0);
                    pd.records = Some(records);
                    out.waits.push((p, hw));
                }
                Err((c, bounds)) => {
                    pd.error_code = c;
                    out.errors = true;
                    if let Some((start, hw)) = bounds {
                        pd.log_start_offset = start;
                        pd.high_watermark = hw;
                    }
                }
            }
            tr.partitions.push(pd);
        }
        out.response.responses.push(tr);
    }
    out
}

type PartitionRead = (Arc<Partition>, bytes::Bytes, Offset);

/// Read one partition from `offset`, up to about `limit` bytes (at least one whole batch
/// unless `limit` is 0, or `others` already has data and the batch does not fit). The bytes
/// are the segment's, copied once into the response; the error carries the log bounds.
fn read_partition(
    topic: &Result<Arc<Topic>>,
    index: i32,
    offset: i64,
    limit: usize,
    others: bool,
) -> Result<PartitionRead, (i16, Option<(i64, i64)>)> {
    let p = partition(topic, index).map_err(|c| (c, None))?;
    let hw = p.high_watermark();
    let bounds = || {
        let start = i64::try_from(p.log_start_offset().0).unwrap_or(0);
        Some((start, i64::try_from(hw.0).unwrap_or(i64::MAX)))
    };
    let Ok(offset) = u64::try_from(offset) else {
        return Err((code(ResponseError::OffsetOutOfRange), bounds()));
    };
    if limit == 0 {
        return Ok((p, bytes::Bytes::new(), hw));
    }
    let read = match p.read(Offset(offset), limit) {
        Ok(r) => r,
        Err(e) => return Err((error_code(&e), bounds())),
    };
    let size = read.size_bytes();
    if others && size > limit {
        return Ok((p, bytes::Bytes::new(), hw));
    }
    let mut buf = BytesMut::with_capacity(size);
    for b in read.batches() {
        buf.extend_from_slice(b.as_bytes());
    }
    let hw = Offset(hw.0.max(read.next_offset().0));
    Ok((p, buf.freeze(), hw))
}

/// ListOffsets: earliest (-2), latest (-1: the high watermark) or the first offset whose
/// timestamp is at least the one given.
pub(super) async fn list_offsets(
    shared: &Arc<Shared>,
    req: ListOffsetsRequest,
    _version: i16,
) -> ListOffsetsResponse {
    let s = shared.clone();
    blocking(move || list_offsets_blocking(&s, &req))
        .await
        .unwrap_or_default()
}

fn list_offsets_blocking(shared: &Shared, req: &ListOffsetsRequest) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    for lt in &req.topics {
        let topic = shared.store.topic(lt.name.as_str());
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = lt.name.clone();
        for lp in &lt.partitions {
            let mut r = ListOffsetsPartitionResponse::default();
            r.partition_index = lp.partition_index;
            r.leader_epoch = -1;
            match partition(&topic, lp.partition_index).and_then(|p| offset_at(&p, lp.timestamp)) {
                Ok((offset, timestamp)) => {
                    r.offset = offset;
                    r.timestamp = timestamp;
                }
                Err(c) => {
                    r.error_code = c;
                    r.offset = -1;
                    r.timestamp = -1;
                }
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    resp
}

/// `(offset, timestamp)` for a ListOffsets query; `(-1, -1)` when no record is that new.
fn offset_at(p: &Partition, timestamp: i64) -> Result<(i64, i64), i16> {
    let as_i64 = |o: Offset| i64::try_from(o.0).unwrap_or(i64::MAX);
    match timestamp {
        -2 => Ok((as_i64(p.log_start_offset()), -1)),
        -1 => Ok((as_i64(p.high_watermark()), -1)),
        t if t >= 0 => match p.offset_for_timestamp(t).map_err(|e| error_code(&e))? {
            Some(o) => Ok((as_i64(o), record_timestamp(p, o).unwrap_or(-1))),
            None => Ok((-1, -1)),
        },
        _ => Err(code(ResponseError::InvalidRequest)),
    }
}

/// The timestamp of the record at `offset`, if it can be read.
fn record_timestamp(p: &Partition, offset: Offset) -> Option<i64> {
    let read = p.read(offset, 1).ok()?;
    let batch = read.batches().first()?;
    batch
        .records()
        .filter_map(std::result::Result::ok)
        .find(|r| r.offset >= offset)
        .map(|r| r.timestamp_ms)
}
