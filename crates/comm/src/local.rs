//! The one-process world: what a communicator is when there is no MPI (or when an MPI build
//! was not started by a launcher). Messages to oneself go through an in-process queue, so a
//! program written for N ranks (send to rank 0, then receive on rank 0) runs unchanged.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::{Status, TagSel};

/// A message waiting in the queue.
#[derive(Debug)]
struct Message {
    tag: i32,
    bytes: Vec<u8>,
}

/// The queue of messages sent to oneself on one communicator.
#[derive(Debug, Default)]
pub(crate) struct LocalComm {
    queue: Mutex<VecDeque<Message>>,
    arrived: Condvar,
}

fn status(m: &Message) -> Status {
    Status {
        source: 0,
        tag: m.tag,
        bytes: m.bytes.len(),
    }
}

impl LocalComm {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Message>> {
        // The queue is consistent after any panic (push and remove are single calls).
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push(&self, tag: i32, bytes: Vec<u8>) {
        self.lock().push_back(Message { tag, bytes });
        self.arrived.notify_all();
    }

    fn position(queue: &VecDeque<Message>, tag: TagSel) -> Option<usize> {
        queue.iter().position(|m| tag.matches(m.tag))
    }

    /// The status of the first matching message, waiting for one when `block`.
    pub(crate) fn probe(&self, tag: TagSel, block: bool) -> Option<Status> {
        let mut queue = self.lock();
        loop {
            if let Some(i) = Self::position(&queue, tag) {
                return Some(status(&queue[i]));
            }
            if !block {
                return None;
            }
            queue = self
                .arrived
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Removes the first matching message, waiting for one when `block`.
    pub(crate) fn take(&self, tag: TagSel, block: bool) -> Option<(Vec<u8>, Status)> {
        let mut queue = self.lock();
        loop {
            if let Some(i) = Self::position(&queue, tag) {
                let m = queue.remove(i)?;
                let st = status(&m);
                return Some((m.bytes, st));
            }
            if !block {
                return None;
            }
            queue = self
                .arrived
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_select_and_order_is_kept() {
        let q = LocalComm::default();
        q.push(1, vec![1]);
        q.push(2, vec![2]);
        q.push(1, vec![3]);
        assert_eq!(q.take(TagSel::Tag(2), false).unwrap().0, vec![2]);
        assert_eq!(q.probe(TagSel::Any, false).unwrap().tag, 1);
        assert_eq!(q.take(TagSel::Any, false).unwrap().0, vec![1]);
        assert_eq!(q.take(TagSel::Tag(1), false).unwrap().0, vec![3]);
        assert!(q.take(TagSel::Any, false).is_none());
    }

    #[test]
    fn blocking_take_wakes_on_push_from_another_thread() {
        let q = std::sync::Arc::new(LocalComm::default());
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.take(TagSel::Tag(7), true).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(20));
        q.push(7, vec![9, 9]);
        let (bytes, st) = t.join().unwrap();
        assert_eq!(bytes, vec![9, 9]);
        assert_eq!(st.bytes, 2);
    }
}
