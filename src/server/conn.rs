//! Sockets: the accept loop (bounded by `connections_max`) and one task per connection that
//! reads length-prefixed frames (bounded by `request_bytes_max` before anything is
//! allocated), hands each to `api::handle`, and writes the response. Requests of one
//! connection are handled one at a time, in order, as Kafka's broker does: the in-flight
//! limit per connection is one request being handled, the rest wait in the socket.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::server::api::{self, Reply};
use crate::server::Shared;

/// Accept connections until the stop signal, then wait for every connection task to end.
pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(shared.config.connections_max));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        // Reap finished connection tasks so the set does not grow with history.
        while tasks.try_join_next().is_some() {}
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        // Past the limit the connection is closed at once (dropped).
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            connection(shared, stream, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// Serve one connection until the peer closes it, a frame is bad, or the server stops.
async fn connection(shared: Arc<Shared>, stream: TcpStream, mut stop: watch::Receiver<bool>) {
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 << 10, rd);
    let mut wr = BufWriter::with_capacity(64 << 10, wr);
    let max = shared.config.request_bytes_max;
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, max) => f,
            _ = stop.changed() => return,
        };
        let Ok(Some(frame)) = frame else {
            return;
        };
        let reply = tokio::select! {
            r = api::handle(&shared, frame) => r,
            _ = stop.changed() => return,
        };
        match reply {
            Reply::Send(body) => {
                if write_frame(&mut wr, &body).await.is_err() {
                    return;
                }
            }
            Reply::Nothing => {}
            Reply::Close => return,
        }
        // Responses are flushed once no further request is already buffered, so pipelined
        // requests get their responses in one write.
        if rd.buffer().is_empty() && wr.flush().await.is_err() {
            return;
        }
    }
}

/// One request frame: a 4-byte big-endian length, then that many bytes. `Ok(None)` at a clean
/// end of stream; an error on a length outside `[4, max]` (nothing is allocated for it) or
/// on a stream that ends inside a frame.
async fn read_frame<R: AsyncReadExt + Unpin>(
    rd: &mut R,
    max: usize,
) -> std::io::Result<Option<Bytes>> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (4..=max).contains(l))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad frame length"))?;
    // Memory follows the bytes that arrive, not the length announced: a peer that announces
    // a large frame and sends nothing holds 64 KiB, not the frame.
    let mut buf = Vec::with_capacity(len.min(64 << 10));
    let got = (&mut *rd).take(len as u64).read_to_end(&mut buf).await?;
    if got != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(Bytes::from(buf)))
}

async fn write_frame<W: AsyncWriteExt + Unpin>(wr: &mut W, body: &[u8]) -> std::io::Result<()> {
    let len = i32::try_from(body.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "response too large"))?;
    wr.write_all(&len.to_be_bytes()).await?;
    wr.write_all(body).await
}
