//! A fixed pool of page-aligned buffers.
//!
//! O_DIRECT needs memory aligned to the device's logical block size; we align to 4096 so that every
//! device (512e and 4Kn) is served by the same buffers. The pool is created once with a fixed count:
//! a reader that finds it empty waits, which is the pipeline's back-pressure, and is why peak memory
//! does not grow with the size of the device. A [`PooledBuf`] returns itself to the pool when dropped,
//! so a chunk shared by several consumers (hashers, sink) comes back exactly when the last one is done.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crossbeam_channel::{Receiver, Sender};

/// Alignment of every buffer: the largest logical block size we meet (4Kn drives) and the page size.
pub(crate) const BUFFER_ALIGN: usize = 4096;

/// One heap allocation aligned to [`BUFFER_ALIGN`], zeroed at creation.
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: AlignedBuf owns its allocation exclusively (like Vec<u8>); moving it between threads is sound.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out `&[u8]`, which is sound to read from several threads.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// Allocates `len` zeroed bytes; `len` is rounded up to the alignment.
    ///
    /// # Panics
    /// If `len` is zero or the allocation fails (as `Vec` does).
    pub(crate) fn new(len: usize) -> Self {
        assert!(len > 0, "buffer length must be positive");
        let len = len.next_multiple_of(BUFFER_ALIGN);
        let layout = Layout::from_size_align(len, BUFFER_ALIGN).expect("valid buffer layout");
        // SAFETY: the layout has a non-zero size (asserted above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        Self { ptr, layout }
    }

    /// The whole buffer.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for layout.size() initialised (zeroed) bytes for the life of self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }

    /// The whole buffer, writable.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: ptr was allocated by alloc_zeroed with exactly this layout and is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// The fixed set of buffers shared by the pipeline stages.
#[derive(Clone)]
pub(crate) struct BufferPool {
    give: Sender<AlignedBuf>,
    take: Receiver<AlignedBuf>,
}

impl BufferPool {
    /// Allocates `count` buffers of `buffer_len` bytes up front: all the memory the data path will use.
    pub(crate) fn new(count: usize, buffer_len: usize) -> Self {
        let (give, take) = crossbeam_channel::bounded(count);
        for _ in 0..count {
            give.send(AlignedBuf::new(buffer_len))
                .expect("pool channel has room for every buffer");
        }
        Self { give, take }
    }

    /// A free buffer if one is there now; never waits (the snapshot fetcher polls it between
    /// completions, on a thread that must keep serving its requests).
    pub(crate) fn try_take(&self) -> Option<PooledBuf> {
        self.take.try_recv().ok().map(|buf| PooledBuf {
            buf: Some(buf),
            home: self.give.clone(),
        })
    }

    /// Waits for a free buffer, or gives up after `timeout` so the caller can check for cancellation.
    pub(crate) fn take_timeout(&self, timeout: std::time::Duration) -> Option<PooledBuf> {
        self.take.recv_timeout(timeout).ok().map(|buf| PooledBuf {
            buf: Some(buf),
            home: self.give.clone(),
        })
    }
}

/// A buffer on loan from a [`BufferPool`]; dropping it gives it back.
pub(crate) struct PooledBuf {
    buf: Option<AlignedBuf>,
    home: Sender<AlignedBuf>,
}

impl std::ops::Deref for PooledBuf {
    type Target = AlignedBuf;
    fn deref(&self) -> &AlignedBuf {
        self.buf.as_ref().expect("buffer present until drop")
    }
}

impl std::ops::DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut AlignedBuf {
        self.buf.as_mut().expect("buffer present until drop")
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            // The pool may already be gone at shutdown; then the buffer is simply freed.
            let _ = self.home.send(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buffers_are_aligned_and_rounded_up() {
        let buf = AlignedBuf::new(5000);
        assert_eq!(buf.as_slice().len(), 8192);
        assert_eq!(buf.as_slice().as_ptr() as usize % BUFFER_ALIGN, 0);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
    }

    #[test]
    fn pool_is_bounded_and_buffers_come_back_on_drop() {
        let pool = BufferPool::new(2, 4096);
        let a = pool.take_timeout(Duration::from_millis(10)).expect("first");
        let b = pool
            .take_timeout(Duration::from_millis(10))
            .expect("second");
        assert!(
            pool.take_timeout(Duration::from_millis(10)).is_none(),
            "pool must be empty"
        );
        assert!(pool.try_take().is_none(), "pool must be empty");
        drop(a);
        assert!(pool.take_timeout(Duration::from_millis(10)).is_some());
        drop(b);
        assert!(
            pool.try_take().is_some(),
            "a returned buffer is taken at once"
        );
    }
}
