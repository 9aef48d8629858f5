//! Per-thread scratch buffers that outlive one call, any number at once: the column matrices of
//! both convolution engines (f32 and bf16), the bf16 partial sums, widened images and LRN tiles,
//! and the reference LRN's window sums reuse the same pages from call to call instead of asking
//! the allocator for (and zeroing) megabytes per image or per part. A buffer's
//! contents are whatever its last user left: for work that writes every element before reading it
//! (or clears it first). Each buffer grows to the largest length asked of it and is kept; a thread
//! holds as many as it has used at once.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::thread::LocalKey;

thread_local! {
    static F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    static F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
    static U16: RefCell<Vec<Vec<u16>>> = const { RefCell::new(Vec::new()) };
}

/// The element types with a pool.
pub trait Pooled: Copy + Default + 'static {
    fn pool() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>>;
}

impl Pooled for f32 {
    fn pool() -> &'static LocalKey<RefCell<Vec<Vec<f32>>>> {
        &F32
    }
}

impl Pooled for f64 {
    fn pool() -> &'static LocalKey<RefCell<Vec<Vec<f64>>>> {
        &F64
    }
}

impl Pooled for u16 {
    fn pool() -> &'static LocalKey<RefCell<Vec<Vec<u16>>>> {
        &U16
    }
}

/// `len` elements of a pooled buffer, given back to this thread's pool when dropped.
pub struct Scratch<T: Pooled> {
    buffer: Vec<T>,
    len: usize,
}

/// A scratch buffer of `len` elements with unspecified contents.
pub fn scratch<T: Pooled>(len: usize) -> Scratch<T> {
    let mut buffer = T::pool().with(|p| p.borrow_mut().pop()).unwrap_or_default();
    if buffer.len() < len {
        buffer.resize(len, T::default());
    }
    Scratch { buffer, len }
}

/// A scratch buffer of `len` elements, all zero (`T::default()`).
pub fn zeroed<T: Pooled>(len: usize) -> Scratch<T> {
    let mut s = scratch(len);
    s.fill(T::default());
    s
}

impl<T: Pooled> Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buffer[..self.len]
    }
}

impl<T: Pooled> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buffer[..self.len]
    }
}

impl<T: Pooled> Drop for Scratch<T> {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        // At thread exit the pool may already be gone; the buffer is then simply freed.
        let _ = T::pool().try_with(|p| p.borrow_mut().push(buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_handed_out_again_at_any_length() {
        let first = {
            let mut a = scratch::<f32>(1000);
            a[999] = 7.0;
            a.as_ptr()
        };
        let b = scratch::<f32>(10);
        assert_eq!(b.len(), 10);
        assert_eq!(b.as_ptr(), first, "the same pages");
        let c = zeroed::<f32>(20);
        assert!(c.iter().all(|v| *v == 0.0));
        assert_ne!(c.as_ptr(), b.as_ptr(), "two at once are two buffers");
        drop(b);
        let d = scratch::<f32>(1000);
        assert_eq!(d[999], 7.0, "contents are kept, not cleared");
    }
}
