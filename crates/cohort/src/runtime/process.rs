//! Process handles: a pid and the mailbox behind it.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use super::Node;
use crate::core::pid::{ExitReason, Pid};
use crate::core::process::{Message, MonitorRef};
use crate::error::CodecError;

/// A local process: a pid and its mailbox.
///
/// Dropping the handle ends the process with reason `Normal`; [`Process::exit`]
/// ends it with another reason. Either way its monitors fire, on every node.
/// A process ended by [`Node::kill`] finds `Message::Exit` as its last message.
#[derive(Debug)]
pub struct Process {
    node: Node,
    pid: Pid,
    rx: mpsc::UnboundedReceiver<Message>,
    ended: bool,
}

impl Process {
    pub(crate) fn new(node: Node, pid: Pid, rx: mpsc::UnboundedReceiver<Message>) -> Self {
        Process {
            node,
            pid,
            rx,
            ended: false,
        }
    }

    /// This process's pid.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// The node that owns this process.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Waits for the next message; `None` once the process was killed and
    /// its mailbox drained.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.rx.try_recv().ok()
    }

    /// Sends raw bytes to `to`, from this process.
    pub fn send(&self, to: &Pid, payload: impl Into<Bytes>) {
        self.node.send_from(&self.pid, to, payload.into());
    }

    /// Sends a serde value (postcard-encoded) to `to`, from this process.
    pub fn send_typed<T: Serialize>(&self, to: &Pid, value: &T) -> Result<(), CodecError> {
        let bytes = postcard::to_stdvec(value)?;
        self.send(to, bytes);
        Ok(())
    }

    /// Monitors `target`: exactly one `Message::Down` will arrive, with the
    /// target's exit reason, `NoProc` if it is already dead, or
    /// `NoConnection` if its node is (or becomes) unreachable.
    pub fn monitor(&self, target: &Pid) -> MonitorRef {
        self.node.monitor(&self.pid, target)
    }

    /// Cancels a monitor; its `Down` will not arrive unless already queued.
    pub fn demonitor(&self, mref: MonitorRef) {
        self.node.demonitor(self.pid.serial(), mref);
    }

    /// Ends this process with `reason`.
    pub fn exit(mut self, reason: ExitReason) {
        self.ended = true;
        self.node.exited(self.pid.serial(), reason);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.ended {
            self.node.exited(self.pid.serial(), ExitReason::Normal);
        }
    }
}

impl Node {
    /// Creates a local process (a mailbox with a pid). Any node of the
    /// cluster can send to its pid or monitor it; dropping the [`Process`]
    /// ends it with reason `normal`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cohort_registry::{ExitReason, Message, Node};
    ///
    /// let a = Node::builder().name("a@127.0.0.1").cookie("secret").start().await?;
    /// let b = Node::builder().name("b@127.0.0.1").cookie("secret").start().await?;
    /// b.connect(&a.local_addr()).await?;
    ///
    /// let mut server = a.spawn();
    /// let mut client = b.spawn();
    /// client.send(server.pid(), "ping");
    /// let Some(Message::Data { from, payload }) = server.recv().await else { panic!() };
    /// assert_eq!(&payload[..], b"ping");
    /// server.send(&from.unwrap(), "pong");
    /// assert!(matches!(client.recv().await, Some(Message::Data { .. })));
    ///
    /// // A monitor fires once, when the process ends. Signals between two
    /// // processes keep their order: once the server has "bye", the monitor
    /// // is in place (a process already gone would be reported `NoProc`).
    /// let mref = client.monitor(server.pid());
    /// client.send(server.pid(), "bye");
    /// server.recv().await;
    /// server.exit(ExitReason::Normal);
    /// let Some(Message::Down { mref: fired, reason, .. }) = client.recv().await else { panic!() };
    /// assert_eq!((fired, reason), (mref, ExitReason::Normal));
    /// # Ok(()) }
    /// ```
    pub fn spawn(&self) -> Process {
        let shared = self.shared();
        let serial = shared.next_serial.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        shared.mailboxes.insert(serial, tx);
        shared.with(|core, _, _| core.spawned(serial));
        Process::new(
            self.clone(),
            Pid::new(shared.name.clone(), shared.creation, serial),
            rx,
        )
    }
}
