//! A Kafka wire protocol server over a [`LogStore`] (cargo feature `kafka-server`), so that
//! Kafka's own clients (librdkafka, kcat, kafka-python, the Java client) can produce to and
//! consume from a store an application also uses in-process.
//!
//! [`serve`] binds a TCP listener and runs the server on its own small tokio runtime; the
//! returned [`ServerHandle`] stops it. Requests and responses are encoded with the
//! `kafka-protocol` crate (generated from Kafka's JSON message schemas); record batches pass
//! through as bytes: a produced batch is validated and written as received, a fetch hands out
//! the segment's bytes.
//!
//! One node, one store: the server is broker 0 and the leader of every partition, and it is
//! its own group coordinator. It has **no authentication and no encryption** (no SASL, no
//! TLS): anyone who can connect can read, write and delete every topic. It binds what it is
//! given (the example binds 127.0.0.1); expose it beyond the machine only behind something
//! that authenticates. See `docs/kafka-server.md` for the API versions and the differences
//! from a Kafka broker.
// Kafka's API names (ApiVersions, JoinGroup, ...) are the protocol's vocabulary in prose, not
// code identifiers: backticks on every one would bury the text.
#![allow(clippy::doc_markdown)]

mod admin;
pub(crate) mod api;
mod conn;
mod data;
mod groups;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::group::offset_store::{FileOffsetStore, OffsetStore};
use crate::group::OFFSETS_DIR;
use crate::topic::store::LogStore;

pub use api::SUPPORTED_APIS;

/// Default [`ServerConfig::request_bytes_max`]: 16 MiB.
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 16 << 20;

/// How a [`serve`]d server behaves. Build it with [`ServerConfig::default`] and the `with_`
/// methods; [`serve`] validates it.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest request frame accepted, in bytes (Kafka's `socket.request.max.bytes`). A
    /// longer frame closes the connection before anything is allocated for it. Between 1 KiB
    /// and 1 GiB; default [`REQUEST_BYTES_MAX_DEFAULT`].
    pub request_bytes_max: usize,
    /// Open connections at most; a connection past the limit is closed at once. Default 256.
    pub connections_max: usize,
    /// Longest a fetch waits for data, whatever the client's `max_wait_ms` asks. Default 30 s.
    pub fetch_wait_max: Duration,
    /// Host name given to clients in metadata and coordinator responses. `None` (default):
    /// the IP address the listener is bound to.
    pub advertised_host: Option<String>,
    /// Create an unknown topic with this many partitions when a client's metadata request
    /// allows it (Kafka's `auto.create.topics.enable` and `num.partitions`). `None` (default):
    /// unknown topics are `UNKNOWN_TOPIC_OR_PARTITION`.
    pub auto_create_partitions: Option<u32>,
    /// Where consumer groups' offsets are committed and fetched. Share it with an embedded
    /// [`GroupCoordinator`](crate::GroupCoordinator) (`GroupCoordinator::for_store(&store,
    /// offsets)`) so that in-process consumers resume from offsets remote ones committed.
    /// `None` (default): a [`FileOffsetStore`] in `<data dir>/__offsets` (which then must not
    /// be opened by anything else).
    pub offset_store: Option<Arc<dyn OffsetStore>>,
    /// Threads of the server's tokio runtime. Default 2.
    pub worker_threads: usize,
    /// How long the first rebalance of an empty group waits for more members, extended by
    /// each one that joins meanwhile (Kafka's `group.initial.rebalance.delay.ms`): consumers
    /// started together then form the group in one rebalance. Default 3 s, Kafka's.
    pub group_initial_rebalance_delay: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            request_bytes_max: REQUEST_BYTES_MAX_DEFAULT,
            connections_max: 256,
            fetch_wait_max: Duration::from_secs(30),
            advertised_host: None,
            auto_create_partitions: None,
            offset_store: None,
            worker_threads: 2,
            group_initial_rebalance_delay: Duration::from_secs(3),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("request_bytes_max", &self.request_bytes_max)
            .field("connections_max", &self.connections_max)
            .field("fetch_wait_max", &self.fetch_wait_max)
            .field("advertised_host", &self.advertised_host)
            .field("auto_create_partitions", &self.auto_create_partitions)
            .field("worker_threads", &self.worker_threads)
            .field(
                "group_initial_rebalance_delay",
                &self.group_initial_rebalance_delay,
            )
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Sets `request_bytes_max`.
    pub fn with_request_bytes_max(mut self, v: usize) -> Self {
        self.request_bytes_max = v;
        self
    }
    /// Sets `connections_max`.
    pub fn with_connections_max(mut self, v: usize) -> Self {
        self.connections_max = v;
        self
    }
    /// Sets `fetch_wait_max`.
    pub fn with_fetch_wait_max(mut self, v: Duration) -> Self {
        self.fetch_wait_max = v;
        self
    }
    /// Sets `advertised_host`.
    pub fn with_advertised_host(mut self, v: impl Into<String>) -> Self {
        self.advertised_host = Some(v.into());
        self
    }
    /// Sets `auto_create_partitions`.
    pub fn with_auto_create_partitions(mut self, v: Option<u32>) -> Self {
        self.auto_create_partitions = v;
        self
    }
    /// Sets `offset_store`.
    pub fn with_offset_store(mut self, v: Arc<dyn OffsetStore>) -> Self {
        self.offset_store = Some(v);
        self
    }
    /// Sets `group_initial_rebalance_delay`.
    pub fn with_group_initial_rebalance_delay(mut self, v: Duration) -> Self {
        self.group_initial_rebalance_delay = v;
        self
    }
    /// Sets `worker_threads`.
    pub fn with_worker_threads(mut self, v: usize) -> Self {
        self.worker_threads = v;
        self
    }

    /// Check every field; the first bad one is returned as [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        if !(1 << 10..=1 << 30).contains(&self.request_bytes_max) {
            return Err(Error::config(
                "request_bytes_max",
                self.request_bytes_max,
                "must be between 1 KiB and 1 GiB",
            ));
        }
        if self.connections_max == 0 {
            return Err(Error::config("connections_max", 0, "must be positive"));
        }
        if !(1..=64).contains(&self.worker_threads) {
            return Err(Error::config(
                "worker_threads",
                self.worker_threads,
                "must be between 1 and 64",
            ));
        }
        if self.auto_create_partitions == Some(0) {
            return Err(Error::config(
                "auto_create_partitions",
                0,
                "must be positive (None: no auto-creation)",
            ));
        }
        Ok(())
    }
}

/// What every connection shares: the store, the offset store, the group coordinator's state.
pub(crate) struct Shared {
    store: Arc<LogStore>,
    offsets: Arc<dyn OffsetStore>,
    groups: groups::Groups,
    config: ServerConfig,
    /// Host and port given to clients.
    host: String,
    port: i32,
}

/// Serve `store` over Kafka's wire protocol on `addr` (port 0: any free port; see
/// [`ServerHandle::local_addr`]). Binds before returning, so a bind error is returned here
/// ([`Error::Io`] naming the address). The server runs on its own threads until
/// [`ServerHandle::shutdown`] (or drop).
pub fn serve(store: Arc<LogStore>, addr: SocketAddr, config: ServerConfig) -> Result<ServerHandle> {
    config.validate()?;
    let io_err = |e| Error::io(std::path::PathBuf::from(addr.to_string()), e);
    let offsets = match &config.offset_store {
        Some(o) => o.clone(),
        None => Arc::new(FileOffsetStore::open(store.data_dir().join(OFFSETS_DIR))?),
    };
    let listener = std::net::TcpListener::bind(addr).map_err(io_err)?;
    listener.set_nonblocking(true).map_err(io_err)?;
    let local = listener.local_addr().map_err(io_err)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .max_blocking_threads(1024)
        .thread_name("seglog-kafka")
        .enable_all()
        .build()
        .map_err(io_err)?;
    let shared = Arc::new(Shared {
        host: config
            .advertised_host
            .clone()
            .unwrap_or_else(|| local.ip().to_string()),
        port: i32::from(local.port()),
        groups: groups::Groups::default(),
        store,
        offsets,
        config,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let accept = {
        let _enter = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener).map_err(io_err)?;
        runtime.spawn(conn::accept_loop(shared.clone(), listener, stopped.clone()))
    };
    runtime.spawn(groups::reaper(shared.clone(), stopped));
    Ok(ServerHandle {
        runtime: Some(runtime),
        accept: Some(accept),
        stop,
        local,
        offsets: shared.offsets.clone(),
    })
}

/// A running server; [`shutdown`](ServerHandle::shutdown) or drop stops it. Both block until
/// the server's threads have stopped, so call them outside any async runtime (from a tokio
/// task, use `spawn_blocking`).
pub struct ServerHandle {
    runtime: Option<tokio::runtime::Runtime>,
    accept: Option<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    local: SocketAddr,
    offsets: Arc<dyn OffsetStore>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address the listener is bound to (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The offset store remote consumer groups commit to (see
    /// [`ServerConfig::offset_store`]).
    pub fn offset_store(&self) -> Arc<dyn OffsetStore> {
        self.offsets.clone()
    }

    /// Stop accepting, close every connection (a request being handled is answered first
    /// unless it waits: a fetch or join waiting for data or members is dropped), and stop the
    /// runtime's threads. The store stays open: close it yourself.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let _ = self.stop.send(true);
        if let (Some(rt), Some(accept)) = (self.runtime.take(), self.accept.take()) {
            // The accept loop waits for its connections to end after the stop signal.
            let _ =
                rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), accept).await });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}
