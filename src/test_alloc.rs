//! The unit tests' global allocator: the system allocator, except that huge requests are
//! served by `mmap(MAP_NORESERVE)`.
//!
//! Test scaffolding only. The broker never relies on it: `protocol::precheck` refuses every
//! count the frame cannot hold before `kafka-protocol` reserves anything. The precheck's
//! differential tests, though, run the crate itself on hostile frames the walker refused
//! (to prove the crate would refuse them too), and the crate reserves the claimed counts
//! first; on this allocator such a reservation costs address space, not an abort of the
//! test binary. Hosts with strict overcommit ignore MAP_NORESERVE, which is why it could
//! never be the broker's defence.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Requests at least this large are mapped rather than allocated.
const HUGE_BYTES: usize = 1 << 30;
const PAGE_BYTES: usize = 4096;

pub struct BrokerAlloc;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE_BYTES && layout.align() <= PAGE_BYTES
}

// SAFETY: every pointer handed out comes from `System` or from `mmap` of at least
// `layout.size()` bytes with page alignment (>= `layout.align()` for huge layouts), and
// each is released by the matching call, chosen by the same `is_huge` test on the layout
// the caller must pass back.
unsafe impl GlobalAlloc for BrokerAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_huge(&layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // SAFETY: as `alloc`; anonymous mappings are zero-filled.
            unsafe { self.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            // SAFETY: `p` came from our `mmap` of `layout.size()` bytes.
            unsafe {
                libc::munmap(p.cast(), layout.size());
            }
        } else {
            // SAFETY: `p` came from `System` with this layout.
            unsafe { System.dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` forms a valid layout with this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_huge(&layout) && !is_huge(&new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        // SAFETY: allocate, copy the common prefix, release the old block: each call
        // gets the layout it requires.
        unsafe {
            let q = self.alloc(new_layout);
            if !q.is_null() {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
            q
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_untouched_reservations_succeed_and_are_released() {
        let a = BrokerAlloc;
        // 256 GiB: far more than the machine has; only address space is reserved.
        let layout = Layout::from_size_align(256 << 30, 8).expect("layout");
        // SAFETY: non-zero size; released with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            *p = 7;
            assert_eq!(*p, 7);
            a.dealloc(p, layout);
        }
    }

    #[test]
    fn growing_across_the_threshold_keeps_contents() {
        let a = BrokerAlloc;
        let small = Layout::from_size_align(64, 8).expect("layout");
        // SAFETY: layouts match each call; sizes are non-zero.
        unsafe {
            let p = a.alloc(small);
            for i in 0..64 {
                *p.add(i) = i as u8;
            }
            let q = a.realloc(p, small, HUGE_BYTES);
            assert!(!q.is_null());
            for i in 0..64 {
                assert_eq!(*q.add(i), i as u8);
            }
            let big = Layout::from_size_align(HUGE_BYTES, 8).expect("layout");
            let r = a.realloc(q, big, 32);
            assert_eq!(*r.add(63 % 32), 31);
            a.dealloc(r, Layout::from_size_align(32, 8).expect("layout"));
        }
    }
}
