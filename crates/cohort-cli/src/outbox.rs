//! The bounded outgoing queue of an admin WebSocket (attached processes
//! and dashboards): counted in bytes, written by its own task.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures::SinkExt;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use crate::listen::Client;

/// How long a dropped client gets to take its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// What is on its way to one WebSocket client, counted in bytes: the
/// session never waits for the client, and a client that lets more than
/// the cap pile up is dropped.
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<WsMessage>,
    queued: Arc<AtomicUsize>,
    cap: usize,
    /// Told when the cap is passed: the writer stops waiting for the
    /// client and sends the close frame.
    overflow: Arc<Notify>,
}

impl Outbox {
    /// Starts the writer of `sink`.
    pub(crate) fn start(
        sink: futures::stream::SplitSink<WebSocket, WsMessage>,
        cap: usize,
        client: Client,
    ) -> (Outbox, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let overflow = Arc::new(Notify::new());
        let task = tokio::spawn(write_out(
            sink,
            rx,
            queued.clone(),
            overflow.clone(),
            cap,
            client,
        ));
        (
            Outbox {
                tx,
                queued,
                cap,
                overflow,
            },
            task,
        )
    }

    /// Queues one event; false when the client is gone or would have more
    /// than the cap waiting (then the writer closes the connection).
    pub(crate) fn push(&self, v: Value) -> bool {
        let t = v.to_string();
        let n = t.len();
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > self.cap {
            self.overflow.notify_one();
            return false;
        }
        self.tx.send(WsMessage::Text(t.into())).is_ok()
    }

    /// Queues a close frame after what is queued.
    pub(crate) fn close(&self, frame: CloseFrame) {
        let _ = self.tx.send(WsMessage::Close(Some(frame)));
    }
}

/// Writes queued messages to the client until the queue closes (then the
/// rest is flushed, within [`CLOSE_GRACE`]) or overflows (then a close
/// frame says why, within [`CLOSE_GRACE`], and the connection is dropped).
async fn write_out(
    mut sink: futures::stream::SplitSink<WebSocket, WsMessage>,
    mut rx: mpsc::UnboundedReceiver<WsMessage>,
    queued: Arc<AtomicUsize>,
    overflow: Arc<Notify>,
    cap: usize,
    client: Client,
) {
    let size = |m: &WsMessage| match m {
        WsMessage::Text(t) => t.len(),
        _ => 0,
    };
    loop {
        let sent = tokio::select! {
            biased;
            _ = overflow.notified() => false,
            m = rx.recv() => {
                let Some(m) = m else {
                    // The session ended: its last events go out, then the
                    // connection closes.
                    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
                    return;
                };
                let n = size(&m);
                tokio::select! {
                    biased;
                    _ = overflow.notified() => false,
                    r = sink.send(m) => {
                        if r.is_err() {
                            return;
                        }
                        queued.fetch_sub(n, Ordering::AcqRel);
                        true
                    }
                }
            }
        };
        if !sent {
            tracing::warn!(client = %client, cap,
                "admin: dropped an attached client that does not read (outgoing queue full)");
            let frame = CloseFrame {
                code: 1008,
                reason: format!("outgoing queue over {cap} bytes: the client does not read").into(),
            };
            let _ =
                tokio::time::timeout(CLOSE_GRACE, sink.send(WsMessage::Close(Some(frame)))).await;
            return;
        }
    }
}
