//! A Kafka-protocol server over a seglog data directory, for Kafka's own clients.
//!
//! ```text
//! cargo run --example kafka_server --features kafka-server -- \
//!     --data-dir DIR [--listen 127.0.0.1:9092] [--auto-create-partitions N]
//! ```
//!
//! Then `kcat -b 127.0.0.1:9092 -L`, or any Kafka client. It stops cleanly (server handle
//! shut down, store closed) on SIGINT or SIGTERM. No authentication, no TLS: keep it on
//! 127.0.0.1 unless something in front of it authenticates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use seglog::server::{serve, ServerConfig};
use seglog::{LogStore, StoreConfig};

struct Args {
    data_dir: PathBuf,
    listen: SocketAddr,
    auto_create: Option<u32>,
}

fn parse_args() -> Result<Args, String> {
    let mut data_dir = None;
    let mut listen: SocketAddr = "127.0.0.1:9092".parse().map_err(|e| format!("{e}"))?;
    let mut auto_create = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
            "--listen" => listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--auto-create-partitions" => {
                auto_create = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--auto-create-partitions: {e}"))?,
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        data_dir: data_dir.ok_or("--data-dir is required")?,
        listen,
        auto_create,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().inspect_err(|_| {
        eprintln!(
            "usage: kafka_server --data-dir DIR [--listen ADDR] [--auto-create-partitions N]"
        );
    })?;
    let store = Arc::new(LogStore::open(&args.data_dir, StoreConfig::default())?);
    let config = ServerConfig::default().with_auto_create_partitions(args.auto_create);
    let server = serve(store.clone(), args.listen, config)?;
    println!("listening on {}", server.local_addr());
    wait_for_signal()?;
    server.shutdown();
    store.close()?;
    println!("stopped");
    Ok(())
}

/// Block until SIGINT or SIGTERM.
fn wait_for_signal() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })
}
