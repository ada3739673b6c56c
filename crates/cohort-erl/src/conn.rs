//! Distribution connections: EPMD registration and lookup, the handshake
//! (done by `erl_dist`), and the framed message stream after it (done here,
//! bounded, with ticks).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use erl_dist::epmd::{EpmdClient, NodeEntry};
use erl_dist::handshake::{ClientSideHandshake, HandshakeStatus, ServerSideHandshake};
use erl_dist::message::Message;
use erl_dist::node::{Creation, LocalNode, NodeName};
use erl_dist::DistributionFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::bridge::Event;
use crate::error::BridgeError;
use crate::ext;

/// The capabilities this node announces: OTP 25's mandatory set (with the
/// `DFLAG_MANDATORY_25_DIGEST` bit as `dist.h` defines it, `0x4000000`),
/// published (a visible node), process monitors by pid and by name (OTP
/// sends `MONITOR_P` only when both bits are set), 32-bit pid fields. No atom
/// cache, no fragments, no `SEND_SENDER`: frames stay plain pass-through.
pub(crate) fn local_flags() -> DistributionFlags {
    const MANDATORY_25_DIGEST: u64 = 0x400_0000;
    DistributionFlags::PUBLISHED
        | DistributionFlags::EXTENDED_REFERENCES
        | DistributionFlags::DIST_MONITOR
        | DistributionFlags::DIST_MONITOR_NAME
        | DistributionFlags::FUN_TAGS
        | DistributionFlags::NEW_FUN_TAGS
        | DistributionFlags::EXTENDED_PIDS_PORTS
        | DistributionFlags::EXPORT_PTR_TAG
        | DistributionFlags::BIT_BINARIES
        | DistributionFlags::NEW_FLOATS
        | DistributionFlags::SMALL_ATOM_TAGS
        | DistributionFlags::UTF8_ATOMS
        | DistributionFlags::MAP_TAGS
        | DistributionFlags::BIG_CREATION
        | DistributionFlags::HANDSHAKE_23
        | DistributionFlags::UNLINK_ID
        | DistributionFlags::V4_NC
        | DistributionFlags::from_bits_truncate(MANDATORY_25_DIGEST)
}

/// What every connection task needs.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub local: LocalNode,
    pub cookie: String,
    pub epmd: String,
    pub tick: Duration,
    pub timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_frame: usize,
    pub max_terms: usize,
    pub events: mpsc::Sender<Event>,
    /// Nodes we are dialing right now (for simultaneous connects).
    pub dialing: Arc<Mutex<HashSet<String>>>,
    /// Nodes with an established connection.
    pub connected: Arc<Mutex<HashSet<String>>>,
    /// Cancelled when the bridge stops: every connection closes.
    pub stop: tokio_util::sync::CancellationToken,
}

/// Registers `name` (the part before `@`) with the EPMD at `addr`; the
/// returned stream must stay open while the node is alive.
pub(crate) async fn epmd_register(
    addr: &str,
    name: &str,
    port: u16,
) -> Result<(TcpStream, u32), BridgeError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| BridgeError::NoEpmd(addr.to_string(), e.to_string()))?;
    let client = EpmdClient::new(stream.compat());
    let (stream, creation) = client
        .register(NodeEntry::new(name, port))
        .await
        .map_err(|e| BridgeError::EpmdRegister(name.to_string(), e.to_string()))?;
    Ok((stream.into_inner(), creation.get()))
}

async fn epmd_port(epmd: &str, name: &str, host: &str) -> Result<u16, String> {
    // The EPMD of the peer's host: same port as ours.
    let port = epmd.rsplit(':').next().unwrap_or("4369");
    let addr = format!("{host}:{port}");
    let stream = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("EPMD at {addr}: {e}"))?;
    match EpmdClient::new(stream.compat()).get_node(name).await {
        Ok(Some(entry)) => Ok(entry.port),
        Ok(None) => Err(format!("{name} is not registered with the EPMD at {addr}")),
        Err(e) => Err(format!("EPMD at {addr}: {e}")),
    }
}

/// Dials `peer` until the bridge stops: looks it up in EPMD, connects, runs
/// the handshake, then waits for the connection to end and dials again
/// (backoff from 100 ms doubling to 5 s while it fails).
pub(crate) async fn dial_loop(ctx: Ctx, peer: String) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if ctx.connected.lock().unwrap().contains(&peer) {
            // Connected by the peer's own dial: look again later.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        ctx.dialing.lock().unwrap().insert(peer.clone());
        let r = dial_once(&ctx, &peer).await;
        ctx.dialing.lock().unwrap().remove(&peer);
        match r {
            Ok(closed) => {
                backoff = Duration::from_millis(100);
                let _ = closed.await;
            }
            Err(e) => {
                tracing::debug!(peer = %peer, "erlang dial failed: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn dial_once(ctx: &Ctx, peer: &str) -> Result<oneshot::Receiver<()>, String> {
    let (name, host) = peer
        .split_once('@')
        .ok_or_else(|| format!("{peer}: not a node name"))?;
    let port = epmd_port(&ctx.epmd, name, host).await?;
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let hs = async {
        let mut hs = ClientSideHandshake::new(stream.compat(), ctx.local.clone(), &ctx.cookie);
        let status = hs
            .execute_send_name(erl_dist::LOWEST_DISTRIBUTION_PROTOCOL_VERSION)
            .await?;
        // `alive`: the peer holds an older connection of ours; this one replaces it.
        let _ = status;
        hs.execute_rest(true).await
    };
    let (stream, peer_node) = tokio::time::timeout(ctx.handshake_timeout, hs)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
    if peer_node.name.to_string() != peer {
        return Err(format!("dialed {peer}, {} answered", peer_node.name));
    }
    Ok(start_link(ctx, stream.into_inner(), peer_node).await)
}

/// Accepts connections from BEAM nodes until the bridge stops.
pub(crate) async fn accept_loop(ctx: Ctx, listener: TcpListener) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("erlang listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let r = tokio::time::timeout(ctx.handshake_timeout, accept_one(&ctx, stream)).await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(%addr, "erlang handshake refused: {e}"),
                Err(_) => tracing::warn!(%addr, "erlang handshake timed out"),
            }
        });
    }
}

async fn accept_one(ctx: &Ctx, stream: TcpStream) -> Result<(), String> {
    let mut hs = ServerSideHandshake::new(stream.compat(), ctx.local.clone(), &ctx.cookie);
    let name = hs
        .execute_recv_name()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the peer asked for a dynamic name (not supported)")?;
    let name_s = name.to_string();
    // Simultaneous connect: the greater name keeps its own attempt.
    let status = if ctx.dialing.lock().unwrap().contains(&name_s) {
        if ctx.local.name.to_string() > name_s {
            HandshakeStatus::Nok
        } else {
            HandshakeStatus::OkSimultaneous
        }
    } else {
        HandshakeStatus::Ok
    };
    let (stream, peer_node) = hs.execute_rest(status).await.map_err(|e| e.to_string())?;
    drop(start_link(ctx, stream.into_inner(), peer_node).await);
    Ok(())
}

/// Runs an established connection: a reader and a writer task. The returned
/// receiver fires when the connection is gone.
async fn start_link(
    ctx: &Ctx,
    stream: TcpStream,
    peer: erl_dist::node::PeerNode,
) -> oneshot::Receiver<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let node = peer.name.to_string();
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Message>(4096);
    let (closed_tx, closed_rx) = oneshot::channel();
    ctx.connected.lock().unwrap().insert(node.clone());
    let published = peer.flags.contains(DistributionFlags::PUBLISHED);
    tracing::info!(peer = %node, published, "erlang node connected");
    let up = Event::Up {
        id,
        node: node.clone(),
        creation: peer.creation.map(|c| c.get()).unwrap_or(0),
        published,
        tx,
    };
    let _ = ctx.events.send(up).await;
    let writer = tokio::spawn(write_loop(wr, rx, ctx.tick));
    let ctx2 = ctx.clone();
    tokio::spawn(async move {
        let why = tokio::select! {
            why = read_loop(&ctx2, rd, id, &node) => why,
            _ = ctx2.stop.cancelled() => "the bridge stopped".to_string(),
        };
        writer.abort();
        ctx2.connected.lock().unwrap().remove(&node);
        tracing::info!(peer = %node, "erlang node disconnected: {why}");
        let _ = ctx2.events.send(Event::Closed { id, node }).await;
        let _ = closed_tx.send(());
    });
    closed_rx
}

async fn write_loop(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Message>,
    tick: Duration,
) {
    loop {
        let msg = match tokio::time::timeout(tick, rx.recv()).await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(_) => {
                // Idle: tell the peer we are alive (an empty frame).
                if wr.write_all(&[0, 0, 0, 0]).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let mut buf = vec![0, 0, 0, 0, 112];
        if let Err(e) = msg.write_into(&mut buf) {
            tracing::warn!("erlang: could not encode a message: {e}");
            continue;
        }
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        if wr.write_all(&buf).await.is_err() {
            return;
        }
    }
}

async fn read_loop(
    ctx: &Ctx,
    mut rd: tokio::net::tcp::OwnedReadHalf,
    id: u64,
    node: &str,
) -> String {
    let mut buf = Vec::new();
    loop {
        let len = match tokio::time::timeout(ctx.timeout, rd.read_u32()).await {
            Err(_) => return format!("no data or tick for {:?}", ctx.timeout),
            Ok(Err(e)) => return format!("read: {e}"),
            Ok(Ok(n)) => n as usize,
        };
        if len == 0 {
            continue; // tick
        }
        if len > ctx.max_frame {
            tracing::warn!(peer = %node, len, max = ctx.max_frame, "erlang frame too large; closing");
            return "oversized frame".into();
        }
        buf.resize(len, 0);
        match tokio::time::timeout(ctx.timeout, rd.read_exact(&mut buf)).await {
            Err(_) => return "frame body timed out".into(),
            Ok(Err(e)) => return format!("read: {e}"),
            Ok(Ok(_)) => {}
        }
        if buf[0] != 112 {
            tracing::warn!(peer = %node, tag = buf[0], "erlang frame with an unexpected type tag; closing");
            return "unexpected frame type".into();
        }
        if let Err(e) = ext::check_frame(&buf[1..], ctx.max_terms) {
            tracing::warn!(peer = %node, "erlang frame refused ({e}); closing");
            return format!("malformed frame: {e}");
        }
        let msg = match Message::read_from(&mut &buf[1..]) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(peer = %node, "erlang control message not understood ({e}); closing");
                return format!("undecodable frame: {e}");
            }
        };
        if ctx.events.send(Event::Msg { id, msg }).await.is_err() {
            return "bridge stopped".into();
        }
        if buf.capacity() > 1 << 20 {
            buf = Vec::new();
        }
    }
}

/// Parses `name@host`.
pub(crate) fn node_name(s: &str) -> Result<NodeName, BridgeError> {
    s.parse()
        .map_err(|e| BridgeError::Config(format!("node name {s:?}: {e}")))
}

/// This node as the handshake sees it.
pub(crate) fn local_node(name: NodeName, creation: u32) -> LocalNode {
    let mut l = LocalNode::new(name, Creation::new(creation));
    l.flags = local_flags();
    l
}
