//! Part buffers that come back once S3 has taken their bytes, to be filled again.
//!
//! A part is a few MiB, above the allocator's mmap threshold: a fresh buffer per part meant a
//! page fault and a zeroed page for every 4 KiB, and an unmap when S3 acknowledged it, which the
//! profile put at about 7 % of the upload's CPU. A returned buffer keeps its pages, and the pool
//! never holds more buffers than were in use at once (parts in flight plus the one filling), which
//! the memory budget already counts.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// The pool; clones share it.
#[derive(Debug, Clone, Default)]
pub(super) struct PartBuffers(Arc<Mutex<Vec<Vec<u8>>>>);

impl PartBuffers {
    /// An empty buffer of at least `capacity` bytes: a returned one if any, else a new one.
    pub(super) fn take(&self, capacity: usize) -> Vec<u8> {
        let returned = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match returned {
            Some(mut buf) if buf.capacity() >= capacity => {
                buf.clear();
                buf
            }
            _ => Vec::with_capacity(capacity),
        }
    }

    /// `buf` as the body of a request; the buffer returns to the pool when the last reference to
    /// the body is dropped (the request acknowledged, failed or abandoned).
    pub(super) fn body(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Returning {
            buf,
            pool: self.clone(),
        })
    }

    /// Buffers waiting to be filled again.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// A filled buffer lent out as a body.
struct Returning {
    buf: Vec<u8>,
    pool: PartBuffers,
}

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.pool
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_returns_its_buffer_when_the_last_reference_goes() {
        let pool = PartBuffers::default();
        let mut buf = pool.take(1024);
        buf.extend_from_slice(b"part one");
        let address = buf.as_ptr();
        let body = pool.body(buf);
        assert_eq!(&body[..], b"part one");
        let clone = body.clone();
        drop(body);
        assert_eq!(pool.idle(), 0, "a clone still holds the bytes");
        drop(clone);
        assert_eq!(pool.idle(), 1);
        let again = pool.take(1024);
        assert!(again.is_empty(), "a returned buffer comes back empty");
        assert_eq!(
            again.as_ptr(),
            address,
            "the same allocation, not a new one"
        );
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn a_returned_buffer_too_small_is_replaced() {
        let pool = PartBuffers::default();
        drop(pool.body(Vec::with_capacity(16)));
        assert!(pool.take(1 << 20).capacity() >= 1 << 20);
        assert_eq!(pool.idle(), 0);
    }
}
