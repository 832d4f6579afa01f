//! The cluster APIs of a one-node cluster: Metadata (this server is broker 0, controller and
//! leader of every partition), CreateTopics, DeleteTopics, FindCoordinator.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::server::api::{code, error_code};
use crate::server::data::blocking;
use crate::server::Shared;
use crate::topic::handle::{validate_topic_name, TopicConfig};

/// The one node's id.
const NODE_ID: i32 = 0;

/// Metadata: the broker, and the requested topics (all of them for a null list, or an empty
/// one before v1), creating unknown ones when the server and the request allow it.
pub(super) async fn metadata(
    shared: &Arc<Shared>,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let s = shared.clone();
    blocking(move || metadata_blocking(&s, &req, version))
        .await
        .unwrap_or_default()
}

fn metadata_blocking(shared: &Shared, req: &MetadataRequest, version: i16) -> MetadataResponse {
    let mut resp = MetadataResponse::default();
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(NODE_ID);
    broker.host = StrBytes::from_string(shared.host.clone());
    broker.port = shared.port;
    resp.brokers.push(broker);
    resp.cluster_id = Some(StrBytes::from_static_str("seglog"));
    resp.controller_id = BrokerId(NODE_ID);
    let names: Vec<String> = match &req.topics {
        Some(t) if !(t.is_empty() && version == 0) => t
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.as_str().to_owned()))
            .collect(),
        _ => shared.store.list_topics(),
    };
    // Before v4 a request could not refuse auto-creation.
    let allow_create = version < 4 || req.allow_auto_topic_creation;
    for name in names {
        resp.topics
            .push(topic_metadata(shared, &name, allow_create));
    }
    resp
}

fn topic_metadata(shared: &Shared, name: &str, allow_create: bool) -> MetadataResponseTopic {
    let mut mt = MetadataResponseTopic::default();
    mt.name = Some(TopicName(StrBytes::from_string(name.to_owned())));
    let mut topic = shared.store.topic(name);
    if let (Err(crate::error::Error::UnknownTopic { .. }), Some(n), true) =
        (&topic, shared.config.auto_create_partitions, allow_create)
    {
        if validate_topic_name(name).is_ok() {
            let created = shared.store.create_topic(name, TopicConfig::new(n));
            topic = created.or_else(|_| shared.store.topic(name));
        }
    }
    match topic {
        Ok(t) => {
            for i in 0..t.partition_count() {
                let mut mp = MetadataResponsePartition::default();
                mp.partition_index = i32::try_from(i).unwrap_or(i32::MAX);
                mp.leader_id = BrokerId(NODE_ID);
                mp.leader_epoch = 0;
                mp.replica_nodes = vec![BrokerId(NODE_ID)];
                mp.isr_nodes = vec![BrokerId(NODE_ID)];
                mt.partitions.push(mp);
            }
        }
        Err(e) => mt.error_code = error_code(&e),
    }
    mt
}

/// CreateTopics: `num_partitions` (-1: one), replication factor -1 or 1 (there is one node);
/// explicit replica assignments and topic configs are refused (seglog has no mapping from
/// Kafka's topic configs yet, and ignoring them would be worse).
pub(super) async fn create_topics(
    shared: &Arc<Shared>,
    req: CreateTopicsRequest,
    _version: i16,
) -> CreateTopicsResponse {
    let s = shared.clone();
    blocking(move || {
        let mut resp = CreateTopicsResponse::default();
        for t in &req.topics {
            let mut r = CreatableTopicResult::default();
            r.name = t.name.clone();
            match create_one(&s, t, req.validate_only) {
                Ok(partitions) => {
                    r.num_partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
                    r.replication_factor = 1;
                }
                Err((c, message)) => {
                    r.error_code = c;
                    r.error_message = Some(StrBytes::from_string(message));
                }
            }
            resp.topics.push(r);
        }
        resp
    })
    .await
    .unwrap_or_default()
}

fn create_one(
    shared: &Shared,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<u32, (i16, String)> {
    let refuse = |e: ResponseError, m: &str| Err((code(e), m.to_owned()));
    if !matches!(t.replication_factor, -1 | 1) {
        return refuse(
            ResponseError::InvalidReplicationFactor,
            "one node: replication factor 1",
        );
    }
    if !t.assignments.is_empty() {
        return refuse(
            ResponseError::InvalidReplicaAssignment,
            "replica assignments are not supported",
        );
    }
    if !t.configs.is_empty() {
        return refuse(
            ResponseError::InvalidConfig,
            "topic configs are not supported",
        );
    }
    let partitions = if t.num_partitions == -1 {
        1
    } else {
        u32::try_from(t.num_partitions).map_err(|_| {
            (
                code(ResponseError::InvalidPartitions),
                "negative partition count".to_owned(),
            )
        })?
    };
    let config = TopicConfig::new(partitions);
    let checked = validate_topic_name(t.name.as_str()).and_then(|()| config.validate());
    let invalid = |e: crate::error::Error| {
        let c = match e {
            crate::error::Error::InvalidConfig { .. } => code(ResponseError::InvalidPartitions),
            _ => error_code(&e),
        };
        (c, e.to_string())
    };
    checked.map_err(invalid)?;
    if validate_only {
        if shared.store.topic(t.name.as_str()).is_ok() {
            return refuse(ResponseError::TopicAlreadyExists, "topic exists");
        }
        return Ok(partitions);
    }
    shared
        .store
        .create_topic(t.name.as_str(), config)
        .map_err(invalid)?;
    Ok(partitions)
}

/// DeleteTopics by name (topic ids are not supported: seglog topics have none).
pub(super) async fn delete_topics(
    shared: &Arc<Shared>,
    req: DeleteTopicsRequest,
    _version: i16,
) -> DeleteTopicsResponse {
    let s = shared.clone();
    blocking(move || {
        let mut resp = DeleteTopicsResponse::default();
        let names = req
            .topic_names
            .iter()
            .cloned()
            .chain(req.topics.iter().filter_map(|t| t.name.clone()));
        for name in names {
            let mut r = DeletableTopicResult::default();
            if let Err(e) = s.store.delete_topic(name.as_str()) {
                r.error_code = error_code(&e);
                r.error_message = Some(StrBytes::from_string(e.to_string()));
            }
            r.name = Some(name);
            resp.responses.push(r);
        }
        resp
    })
    .await
    .unwrap_or_default()
}

/// FindCoordinator: this node coordinates every group; there is no transaction coordinator.
pub(super) fn find_coordinator(
    shared: &Arc<Shared>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let mut resp = FindCoordinatorResponse::default();
    let answer = |key: &StrBytes| {
        let mut c = Coordinator::default();
        c.key = key.clone();
        if req.key_type == 0 {
            c.node_id = BrokerId(NODE_ID);
            c.host = StrBytes::from_string(shared.host.clone());
            c.port = shared.port;
        } else {
            c.node_id = BrokerId(-1);
            c.port = -1;
            c.error_code = code(ResponseError::CoordinatorNotAvailable);
        }
        c
    };
    if version >= 4 {
        resp.coordinators = req.coordinator_keys.iter().map(answer).collect();
    } else {
        let c = answer(&req.key);
        resp.error_code = c.error_code;
        resp.node_id = c.node_id;
        resp.host = c.host;
        resp.port = c.port;
    }
    resp
}
