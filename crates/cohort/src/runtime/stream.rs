//! Event streams: what a subscriber receives from [`Node::subscribe`],
//! [`NameTable::subscribe`], [`Node::monitor_nodes`] and
//! [`Scope::monitor`](crate::Scope::monitor).
//!
//! Each subscriber has a buffer of its own of [`EVENT_BUFFER`] events, so a
//! slow subscriber never holds up the node or other subscribers, and never
//! makes the node's memory grow. The overflow policy is tokio's
//! `broadcast`'s: when a subscriber's buffer is full, its oldest event is
//! dropped to make room, and the subscriber's next item is
//! `Err(`[`Lagged`]`(n))`, saying how many events it missed; the events
//! after that arrive as before. A subscriber that lagged should read the
//! current state again (`members`, `registered_names`, `nodes`) rather
//! than trust the changes it saw.
//!
//! [`Node::subscribe`]: crate::Node::subscribe
//! [`NameTable::subscribe`]: crate::NameTable::subscribe
//! [`Node::monitor_nodes`]: crate::Node::monitor_nodes

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

/// How many events wait for one subscriber before the oldest is dropped.
pub const EVENT_BUFFER: usize = 1024;

/// The subscriber fell behind: this many events were dropped from its
/// buffer, the oldest first. Later events arrive as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the subscriber fell behind and missed {0} events")]
pub struct Lagged(pub u64);

/// The node's side of a subscription.
pub(crate) type EventSender<T> = broadcast::Sender<T>;

/// A subscription: a [`Stream`] of `Result<T, Lagged>` with a bounded
/// buffer (see the [module](self) for the overflow policy). It ends (yields
/// `None`) when the node stops or the subscription is ended; dropping it
/// unsubscribes.
pub struct EventStream<T> {
    inner: BroadcastStream<T>,
}

impl<T> std::fmt::Debug for EventStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// A subscription's two ends.
pub(crate) fn channel<T: Clone + Send + 'static>() -> (EventSender<T>, EventStream<T>) {
    let (tx, rx) = broadcast::channel(EVENT_BUFFER);
    (
        tx,
        EventStream {
            inner: BroadcastStream::new(rx),
        },
    )
}

impl<T: Clone + Send + 'static> EventStream<T> {
    /// The next event, `Err(Lagged(n))` after `n` were dropped, or `None`
    /// once the subscription has ended.
    pub async fn recv(&mut self) -> Option<Result<T, Lagged>> {
        self.next().await
    }

    /// As [`recv`](Self::recv), without waiting: `None` when no event is
    /// waiting now (or the subscription has ended).
    pub fn try_recv(&mut self) -> Option<Result<T, Lagged>> {
        // Outside tokio's cooperative budget: a task that has used its
        // budget would otherwise see "nothing waiting" while events wait.
        tokio::task::unconstrained(self.next())
            .now_or_never()
            .flatten()
    }
}

impl<T: Clone + Send + 'static> Stream for EventStream<T> {
    type Item = Result<T, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner
            .poll_next_unpin(cx)
            .map(|item| item.map(|r| r.map_err(|BroadcastStreamRecvError::Lagged(n)| Lagged(n))))
    }
}
