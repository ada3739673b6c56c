//! Bench-only endpoints for the machine's limits (`cohort bench rtt`) and
//! for per-operation latency: round trips of a small frame over loopback
//! TCP between two node processes and between two tasks of one process,
//! and of a Cohort message to a remote echo process.
//!
//! Every round trip is timed on its own and recorded in an HDR histogram;
//! answers carry the mean and the 50th, 99th and 99.9th percentiles.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use cohort::Message;
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::api_common::{bad, body, Bench, BenchError, BenchResult};

/// Most round trips one call may ask for.
const MAX_ROUNDS: u64 = 1_000_000;
/// Largest frame payload.
const MAX_SIZE: usize = 65_536;
/// How long an echo listener waits for its one connection, and how long
/// any single round trip may take.
const IDLE: Duration = Duration::from_secs(30);

/// A histogram of ns from 1 ns to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// Records `ns` (clamped into the histogram's range).
pub fn record(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns.max(1));
}

/// Mean and percentiles of `h`, as JSON fields.
pub fn percentiles(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(),
        "mean_ns": h.mean(),
        "p50_ns": h.value_at_quantile(0.5),
        "p99_ns": h.value_at_quantile(0.99),
        "p999_ns": h.value_at_quantile(0.999),
        "max_ns": h.max(),
    })
}

fn internal(e: impl std::fmt::Display) -> BenchError {
    BenchError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn check_rounds(rounds: u64) -> Result<(), BenchError> {
    if rounds == 0 || rounds > MAX_ROUNDS {
        return Err(bad(format!("rounds must be between 1 and {MAX_ROUNDS}")));
    }
    Ok(())
}

fn check_size(size: usize) -> Result<(), BenchError> {
    if size == 0 || size > MAX_SIZE {
        return Err(bad(format!("size must be between 1 and {MAX_SIZE}")));
    }
    Ok(())
}

/// Opens a loopback listener that accepts one connection and echoes its
/// length-prefixed frames until it closes (or stays idle for 30 s).
pub async fn echo_listen(State(_b): State<Bench>) -> BenchResult {
    let l = TcpListener::bind("127.0.0.1:0").await.map_err(internal)?;
    let addr = l.local_addr().map_err(internal)?;
    tokio::spawn(async move {
        let Ok(Ok((mut s, _))) = tokio::time::timeout(IDLE, l.accept()).await else {
            return;
        };
        let _ = s.set_nodelay(true);
        let mut buf = vec![0u8; 4 + MAX_SIZE];
        loop {
            let mut len = [0u8; 4];
            match tokio::time::timeout(IDLE, s.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let n = u32::from_be_bytes(len) as usize;
            if n > MAX_SIZE {
                return;
            }
            buf[..4].copy_from_slice(&len);
            if s.read_exact(&mut buf[4..4 + n]).await.is_err()
                || s.write_all(&buf[..4 + n]).await.is_err()
            {
                return;
            }
        }
    });
    Ok(Json(json!({ "addr": addr.to_string() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpPingBody {
    /// A loopback address answered by `/bench/echo_listen`.
    addr: String,
    rounds: u64,
    /// Payload bytes of each frame (after a 4-byte length).
    size: usize,
}

/// Round trips of one frame to a loopback echo listener, one at a time.
pub async fn tcp_ping(
    State(_b): State<Bench>,
    req: Result<Json<TcpPingBody>, JsonRejection>,
) -> BenchResult {
    let req = body(req)?;
    check_rounds(req.rounds)?;
    check_size(req.size)?;
    let addr: SocketAddr = req
        .addr
        .parse()
        .map_err(|e| bad(format!("addr {:?}: {e}", req.addr)))?;
    if !addr.ip().is_loopback() {
        return Err(bad("addr must be a loopback address"));
    }
    let mut s = tokio::time::timeout(IDLE, TcpStream::connect(addr))
        .await
        .map_err(internal)?
        .map_err(|e| bad(format!("connecting to {addr}: {e}")))?;
    s.set_nodelay(true).map_err(internal)?;
    let mut frame = vec![7u8; 4 + req.size];
    frame[..4].copy_from_slice(&(req.size as u32).to_be_bytes());
    let mut back = vec![0u8; 4 + req.size];
    let mut h = histogram();
    let warm = (req.rounds / 10).min(1_000);
    for i in 0..warm + req.rounds {
        let t = Instant::now();
        let rt = async {
            s.write_all(&frame).await?;
            s.read_exact(&mut back).await
        };
        tokio::time::timeout(IDLE, rt)
            .await
            .map_err(internal)?
            .map_err(internal)?;
        if i >= warm {
            record(&mut h, t.elapsed().as_nanos() as u64);
        }
    }
    Ok(Json(percentiles(&h)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundsBody {
    rounds: u64,
    /// Payload bytes of each message.
    size: usize,
}

/// Round trips of a small message between two tasks of this process, over
/// unbounded channels (as a process mailbox is).
pub async fn task_ping(
    State(_b): State<Bench>,
    req: Result<Json<RoundsBody>, JsonRejection>,
) -> BenchResult {
    let req = body(req)?;
    check_rounds(req.rounds)?;
    check_size(req.size)?;
    let (to_tx, mut to_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let (back_tx, mut back_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let echo = tokio::spawn(async move {
        while let Some(m) = to_rx.recv().await {
            if back_tx.send(m).is_err() {
                return;
            }
        }
    });
    let msg = Bytes::from(vec![7u8; req.size]);
    let mut h = histogram();
    let warm = (req.rounds / 10).min(1_000);
    for i in 0..warm + req.rounds {
        let t = Instant::now();
        to_tx.send(msg.clone()).map_err(internal)?;
        back_rx
            .recv()
            .await
            .ok_or_else(|| internal("echo task ended"))?;
        if i >= warm {
            record(&mut h, t.elapsed().as_nanos() as u64);
        }
    }
    drop(to_tx);
    let _ = echo.await;
    Ok(Json(percentiles(&h)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoBody {
    /// Name (in the default name table) of the echo process.
    name: String,
}

/// Spawns a process that sends every message back to its sender, and
/// registers it as `name`.
pub async fn echo(
    State(b): State<Bench>,
    req: Result<Json<EchoBody>, JsonRejection>,
) -> BenchResult {
    let req = body(req)?;
    if req.name.is_empty() {
        return Err(bad("empty name"));
    }
    let mut p = b.node.spawn();
    b.node
        .names()
        .register(req.name.clone(), p.pid())
        .await
        .map_err(|e| bad(format!("registering {:?}: {e}", req.name)))?;
    let pid = p.pid().clone();
    tokio::spawn(async move {
        while let Some(m) = p.recv().await {
            match m {
                Message::Data {
                    from: Some(from),
                    payload,
                } => p.send(&from, payload),
                Message::Exit { .. } => return,
                _ => {}
            }
        }
    });
    Ok(Json(json!({ "pid": pid.to_string() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingBody {
    /// Name of an echo process (`/bench/echo`), usually on another node.
    name: String,
    rounds: u64,
    size: usize,
}

/// Round trips of a Cohort message to the echo process `name`: each
/// `send` from a fresh process of this node until the echo arrives.
pub async fn ping(
    State(b): State<Bench>,
    req: Result<Json<PingBody>, JsonRejection>,
) -> BenchResult {
    let req = body(req)?;
    check_rounds(req.rounds)?;
    check_size(req.size)?;
    let to = b
        .node
        .names()
        .whereis(&req.name)
        .ok_or_else(|| bad(format!("no process named {:?}", req.name)))?;
    let mut p = b.node.spawn();
    let msg = Bytes::from(vec![7u8; req.size]);
    let mut h = histogram();
    let warm = (req.rounds / 10).min(1_000);
    for i in 0..warm + req.rounds {
        let t = Instant::now();
        p.send(&to, msg.clone());
        loop {
            match tokio::time::timeout(IDLE, p.recv()).await {
                Ok(Some(Message::Data { .. })) => break,
                Ok(Some(_)) => continue,
                Ok(None) => return Err(internal("ping process ended")),
                Err(_) => return Err(internal(format!("no echo from {:?} in 30 s", req.name))),
            }
        }
        if i >= warm {
            record(&mut h, t.elapsed().as_nanos() as u64);
        }
    }
    Ok(Json(percentiles(&h)))
}
