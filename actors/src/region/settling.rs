//! Store results the region actor waits for, polled as one stream.
//!
//! actix polls every future spawned in an actor's context at each of the actor's wake-ups.
//! With a store call in flight per cluster (10,000 clusters registering at once, each with a
//! registration, a snapshot and templates to write), spawning each wait in the context made
//! every message cost O(calls in flight). Here they wait in one `FuturesUnordered`, added to
//! the context once as a stream: a wake-up polls only the calls whose results came.

use futures::future::LocalBoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Futures pushed from the actor; their outputs come out of [`Settling::stream`].
pub(super) struct Settling<T> {
    shared: Rc<RefCell<Shared<T>>>,
}

struct Shared<T> {
    pending: FuturesUnordered<LocalBoxFuture<'static, T>>,
    /// The stream's task, to wake when a future is pushed while it had nothing to wait for.
    waker: Option<Waker>,
}

impl<T> Settling<T> {
    pub(super) fn new() -> Self {
        Settling {
            shared: Rc::new(RefCell::new(Shared {
                pending: FuturesUnordered::new(),
                waker: None,
            })),
        }
    }

    pub(super) fn push(&self, future: LocalBoxFuture<'static, T>) {
        let mut shared = self.shared.borrow_mut();
        shared.pending.push(future);
        if let Some(waker) = shared.waker.take() {
            waker.wake();
        }
    }

    /// How many pushed futures have not finished.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shared.borrow().pending.len()
    }

    /// The outputs, in the order the futures finish. The stream never ends: with nothing
    /// pending it waits for the next push.
    pub(super) fn stream(&self) -> SettlingStream<T> {
        SettlingStream {
            shared: self.shared.clone(),
        }
    }
}

pub(super) struct SettlingStream<T> {
    shared: Rc<RefCell<Shared<T>>>,
}

impl<T> Stream for SettlingStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut shared = self.shared.borrow_mut();
        match shared.pending.poll_next_unpin(cx) {
            Poll::Ready(Some(output)) => Poll::Ready(Some(output)),
            // Empty (`None`) or waiting: a push wakes this task; a finishing future wakes it
            // through `FuturesUnordered`.
            Poll::Ready(None) | Poll::Pending => {
                shared.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::oneshot;
    use futures::executor::LocalPool;
    use futures::task::LocalSpawnExt;

    #[test]
    fn outputs_come_in_the_order_their_futures_finish_and_a_push_wakes_an_idle_stream() {
        let mut pool = LocalPool::new();
        let settling: Settling<u32> = Settling::new();
        let mut stream = settling.stream();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = seen.clone();
        pool.spawner()
            .spawn_local(async move {
                while let Some(n) = stream.next().await {
                    sink.borrow_mut().push(n);
                }
            })
            .unwrap();
        pool.run_until_stalled();
        assert!(seen.borrow().is_empty(), "nothing pushed, nothing out");

        let (first_tx, first_rx) = oneshot::channel::<u32>();
        let (second_tx, second_rx) = oneshot::channel::<u32>();
        settling.push(Box::pin(async move { first_rx.await.unwrap() }));
        settling.push(Box::pin(async move { second_rx.await.unwrap() }));
        pool.run_until_stalled();
        assert_eq!(settling.len(), 2);
        second_tx.send(2).unwrap();
        pool.run_until_stalled();
        assert_eq!(*seen.borrow(), vec![2], "the second finished first");
        first_tx.send(1).unwrap();
        pool.run_until_stalled();
        assert_eq!(*seen.borrow(), vec![2, 1]);
        assert_eq!(settling.len(), 0);

        // Empty again: the stream waits, and the next push wakes it.
        settling.push(Box::pin(async { 3 }));
        pool.run_until_stalled();
        assert_eq!(*seen.borrow(), vec![2, 1, 3]);
    }
}
