//! Page-aligned memory for O_DIRECT writes, reused instead of freed.
//!
//! A direct append copies the tail page and the new bytes into an aligned buffer, and the
//! batch cache then keeps that buffer for tail readers until it is evicted. Taking a fresh
//! allocation for each append made the allocator hand memory back to the kernel and fault
//! it in again (zeroed) on the next append: ~30,000 page faults per GB produced. Here each
//! thread cuts its write regions one after another out of a large block (an arena), and a
//! block whose regions have all been dropped goes back to a process-wide free list
//! for the next arena, so in steady state no append touches fresh memory. Regions of one
//! block are cut in time order, which is the batch cache's eviction order, so a block is
//! returned soon after the cache lets go of its last region.
//!
//! Blocks are 2 MiB aligned and advised for transparent huge pages (`MADV_HUGEPAGE`,
//! honoured in the kernel's THP modes `always` and `madvise`): the O_DIRECT write pins a
//! huge page per 2 MiB instead of each 4 KiB page, and the copy into them takes fewer TLB
//! misses. Produce to a direct log cost x0.97 of the CPU per GB with them, and took
//! x1.2 the MB/s (perf/README, "The copy for O_DIRECT").

use bytes::Bytes;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The alignment of every region (the largest logical block size we target).
pub const ALIGN: usize = 4096;
/// The size of one arena block.
const BLOCK: usize = 8 << 20;
/// The largest region cut from an arena block; a larger write is made of several regions.
pub const MAX_REGION: usize = BLOCK / 4;
/// Blocks start on a huge-page boundary (see the module doc).
const HUGE_PAGE: usize = 2 << 20;
const LAYOUT: Layout = match Layout::from_size_align(BLOCK, HUGE_PAGE) {
    Ok(l) => l,
    Err(_) => panic!("BLOCK and HUGE_PAGE make a valid layout"),
};
/// Free blocks kept for reuse when no batch cache said more (`keep_for_cache`).
const KEEP_FREE_MIN: usize = 4;
/// Bytes of free blocks kept for reuse: the sum of the batch caches' limits.
static KEEP_FREE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Adds a batch cache's limit to the memory kept for reuse. The cache holds regions of
/// this memory; when it lets go of many at once (retention deleting a cached segment, a
/// truncation) the blocks wait on the free list for the cache to grow back, instead of
/// going back to the kernel and being faulted in again. Free blocks plus the cache's own
/// stay within the cache's limit (plus one block per writing thread).
pub fn keep_for_cache(limit_bytes: u64) {
    let add = usize::try_from(limit_bytes).unwrap_or(usize::MAX);
    let _ = KEEP_FREE_BYTES.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_add(add))
    });
}

fn keep_free_blocks() -> usize {
    (KEEP_FREE_BYTES.load(Ordering::Relaxed) / BLOCK).max(KEEP_FREE_MIN)
}

/// The address of `BLOCK` bytes from the global allocator with `LAYOUT`; owned by the
/// `Block` or the free-list entry that holds it.
struct Mem(NonNull<u8>);

// SAFETY: `Mem` is the sole handle to its allocation; the bytes are only reached through
// a `RegionMut` / `Region` (disjoint ranges, see there), so moving it between threads is
// sound.
unsafe impl Send for Mem {}

static FREE: Mutex<Vec<Mem>> = Mutex::new(Vec::new());

/// One arena block; dropped when its last region is, and then kept on the free list (up
/// to `keep_free_blocks`) or freed.
struct Block(Mem);

// SAFETY: shared references to a Block give no access to its bytes by themselves.
unsafe impl Sync for Block {}

impl Block {
    fn take() -> Block {
        if let Some(m) = FREE.lock().ok().and_then(|mut f| f.pop()) {
            return Block(m);
        }
        // Zeroed, so that the `&mut [u8]` of `RegionMut::bytes_mut` never covers
        // uninitialized memory. Once per block: blocks are reused from the free list.
        // SAFETY: `LAYOUT` has a non-zero size.
        let ptr = unsafe { alloc_zeroed(LAYOUT) };
        match NonNull::new(ptr) {
            Some(ptr) => {
                // SAFETY: the range is the allocation just made, `BLOCK` bytes. The advice
                // only changes how its pages are backed; if the kernel refuses it (no THP),
                // the block works with small pages.
                #[cfg(target_os = "linux")]
                unsafe {
                    libc::madvise(ptr.as_ptr().cast(), BLOCK, libc::MADV_HUGEPAGE);
                }
                Block(Mem(ptr))
            }
            None => std::alloc::handle_alloc_error(LAYOUT),
        }
    }

    fn ptr(&self) -> *mut u8 {
        self.0.0.as_ptr()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Ok(mut free) = FREE.lock()
            && free.len() < keep_free_blocks()
        {
            free.push(Mem(self.0.0));
            return;
        }
        // SAFETY: allocated in `Block::take` with `LAYOUT`, and no region of it is alive
        // (each holds an `Arc` of the block); it is not on the free list.
        unsafe { dealloc(self.ptr(), LAYOUT) }
    }
}

/// The block regions are currently cut from, and how much of it is used.
struct Arena {
    block: Arc<Block>,
    used: usize,
}

thread_local! {
    static ARENA: RefCell<Option<Arena>> = const { RefCell::new(None) };
}

/// A page-aligned region of whole pages that nothing else refers to yet. Fill it with
/// `bytes_mut`, then `freeze` it into `Bytes`.
pub struct RegionMut {
    block: Arc<Block>,
    start: usize,
    len: usize,
}

/// Regions for `len` bytes rounded up to whole pages, in order, each at most `MAX_REGION`,
/// cut from this thread's arena.
pub fn regions(len: usize) -> Vec<RegionMut> {
    let mut left = len.div_ceil(ALIGN).saturating_mul(ALIGN);
    let mut out = Vec::with_capacity(left.div_ceil(MAX_REGION));
    while left > 0 {
        let n = left.min(MAX_REGION);
        out.push(cut(n));
        left -= n;
    }
    out
}

/// A region of `len` bytes (whole pages, at most `MAX_REGION`) from this thread's arena.
fn cut(len: usize) -> RegionMut {
    ARENA.with(|arena| {
        let mut arena = arena.borrow_mut();
        let a = match arena.take() {
            Some(a) if BLOCK - a.used >= len => arena.insert(a),
            full => {
                let fresh = Arena {
                    block: Arc::new(Block::take()),
                    used: 0,
                };
                drop(full);
                arena.insert(fresh)
            }
        };
        let start = a.used;
        a.used += len;
        RegionMut {
            block: a.block.clone(),
            start,
            len,
        }
    })
}

impl RegionMut {
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `[start, start + len)` lies inside the block (checked when cut) and no
        // other region overlaps it: the arena hands out each range once, and a block is
        // reused only after every region of it (each holding an `Arc`) was dropped. Until
        // `freeze`, this `RegionMut` is the only way to reach the range, and `&mut self`
        // makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.block.ptr().add(self.start), self.len) }
    }

    /// The filled region as shared bytes; slices of it keep the block alive.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(Region(self))
    }
}

/// Copies `sources` back to back into `regions` (in order, each filled before the next),
/// and zeroes what is left after them: the padding of the last page.
///
/// A fill of at least `STREAM_MIN` bytes writes with non-temporal stores (`copy_streaming`):
/// the regions are memory the disk reads by DMA and a tail reader reads at most once, and
/// ordinary stores would first read every destination line into the cache (the arena
/// cycles through the whole batch cache, so those lines are in DRAM). In a profile of
/// closed-loop produce to a direct log this copy was 16-19 % of the broker's CPU.
pub fn fill<'a>(regions: &mut [RegionMut], sources: impl Iterator<Item = &'a [u8]>) {
    let total: usize = regions.iter().map(|r| r.len).sum();
    let stream = total >= STREAM_MIN;
    let mut dst = regions.iter_mut().map(RegionMut::bytes_mut);
    let mut cur: &mut [u8] = &mut [];
    for mut src in sources {
        while !src.is_empty() {
            if cur.is_empty() {
                match dst.next() {
                    Some(next) => cur = next,
                    None => return store_fence(stream),
                }
            }
            let n = src.len().min(cur.len());
            let (now, later) = std::mem::take(&mut cur).split_at_mut(n);
            if stream {
                copy_streaming(now, &src[..n]);
            } else {
                now.copy_from_slice(&src[..n]);
            }
            cur = later;
            src = &src[n..];
        }
    }
    cur.fill(0);
    for rest in dst {
        rest.fill(0);
    }
    store_fence(stream);
}

/// Fills smaller than this use ordinary stores: a small append is read back soon by a tail
/// reader, from the cache.
const STREAM_MIN: usize = 64 << 10;

/// Copies `src` into `dst` (of the same length), the bulk of it with non-temporal stores.
/// The caller runs `store_fence` before anything else reads the bytes.
fn copy_streaming(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    #[cfg(target_arch = "x86_64")]
    let done = {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        // Ordinary stores up to the first 16-byte aligned destination byte.
        let lead = dst.as_ptr().align_offset(16).min(n);
        dst[..lead].copy_from_slice(&src[..lead]);
        let body = (n - lead) / 64 * 64;
        let (d, s) = (&mut dst[lead..lead + body], &src[lead..lead + body]);
        for (dc, sc) in d.chunks_exact_mut(64).zip(s.chunks_exact(64)) {
            let (dp, sp) = (
                dc.as_mut_ptr().cast::<__m128i>(),
                sc.as_ptr().cast::<__m128i>(),
            );
            // SAFETY: both chunks are 64 bytes, so the four 16-byte loads and stores stay
            // inside them; `_mm_loadu_si128` takes any alignment, and `dp` is 16-byte
            // aligned because `lead` aligned the start of `d` and every chunk of it is a
            // multiple of 16 bytes from there. SSE2 is part of the x86_64 baseline.
            unsafe {
                let (a, b) = (_mm_loadu_si128(sp), _mm_loadu_si128(sp.add(1)));
                let (c, e) = (_mm_loadu_si128(sp.add(2)), _mm_loadu_si128(sp.add(3)));
                _mm_stream_si128(dp, a);
                _mm_stream_si128(dp.add(1), b);
                _mm_stream_si128(dp.add(2), c);
                _mm_stream_si128(dp.add(3), e);
            }
        }
        lead + body
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    dst[done..n].copy_from_slice(&src[done..n]);
}

/// Orders the non-temporal stores of a streaming fill before the stores that follow it (the
/// hand-off of the regions to the writing thread and the kernel).
fn store_fence(streamed: bool) {
    #[cfg(target_arch = "x86_64")]
    if streamed {
        // SAFETY: `sfence` has no preconditions; SSE is part of the x86_64 baseline.
        unsafe { std::arch::x86_64::_mm_sfence() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = streamed;
}

/// A filled region, readable from any thread.
struct Region(RegionMut);

impl AsRef<[u8]> for Region {
    fn as_ref(&self) -> &[u8] {
        let r = &self.0;
        // SAFETY: as in `RegionMut::bytes_mut`; after `freeze` nothing writes the range again.
        unsafe { std::slice::from_raw_parts(r.block.ptr().add(r.start), r.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::chunk::slice_chunks;

    #[test]
    fn regions_are_aligned_disjoint_and_keep_their_bytes() {
        let mut frozen = Vec::new();
        for (i, len) in [1usize, 4096, 4097, 100_000, 3 << 20, 12_345]
            .iter()
            .enumerate()
        {
            let rs = regions(*len);
            assert!(rs.iter().map(|r| r.len).sum::<usize>() >= *len);
            for mut r in rs {
                assert_eq!(r.len % ALIGN, 0);
                let s = r.bytes_mut();
                assert_eq!(s.as_ptr() as usize % ALIGN, 0);
                s.fill(i as u8 + 1);
                frozen.push((i as u8 + 1, r.freeze()));
            }
        }
        for (v, b) in &frozen {
            assert!(b.iter().all(|x| x == v), "region {v} was overwritten");
        }
    }

    #[test]
    fn fill_and_slicing_cross_region_boundaries() {
        let src: Vec<u8> = (0..3 * ALIGN + 100).map(|i| (i % 251) as u8).collect();
        let mut regions: Vec<RegionMut> = [ALIGN, 2 * ALIGN, ALIGN]
            .into_iter()
            .flat_map(regions)
            .collect();
        regions[3 - 1].bytes_mut().fill(7);
        let (a, b) = src.split_at(1000);
        fill(&mut regions, [a, b].into_iter());
        let frozen: Vec<Bytes> = regions.into_iter().map(RegionMut::freeze).collect();
        let all: Vec<u8> = frozen.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(&all[..src.len()], &src[..]);
        assert!(
            all[src.len()..].iter().all(|&x| x == 0),
            "padding not zeroed"
        );
        let mid: Vec<u8> = slice_chunks(&frozen, 10, 3 * ALIGN as u64 + 40)
            .iter()
            .flat_map(|b| b.iter().copied())
            .collect();
        assert_eq!(&mid[..], &src[10..3 * ALIGN + 50]);
        assert!(slice_chunks(&frozen, 5, 0).is_empty());
    }

    #[test]
    fn streaming_fills_copy_every_byte_at_any_offset() {
        // Large enough to stream, across several regions, with sources that start and end
        // at every alignment (a tail page of 1..=70 bytes, batches of odd lengths).
        let big = 3 * MAX_REGION / 2 + 77;
        let src: Vec<u8> = (0..big).map(|i| (i * 7 % 253) as u8).collect();
        for head in [0usize, 1, 15, 16, 17, 63, 64, 70] {
            let pieces = [&src[..head], &src[head..head + 129], &src[head + 129..]];
            let mut regions = regions(big);
            assert!(regions.len() >= 2 && big >= STREAM_MIN);
            for r in regions.iter_mut() {
                r.bytes_mut().fill(0xAA);
            }
            fill(&mut regions, pieces.into_iter());
            let all: Vec<u8> = regions
                .into_iter()
                .map(RegionMut::freeze)
                .flat_map(|b| b.to_vec())
                .collect();
            assert_eq!(&all[..big], &src[..], "head {head}");
            assert!(all[big..].iter().all(|&x| x == 0), "padding, head {head}");
        }
        // And the copy alone, at unaligned destinations and lengths not a multiple of 64.
        let mut dst = vec![0u8; 5000];
        for (at, len) in [(0, 4999), (1, 4096), (13, 65), (31, 64), (7, 3)] {
            dst.fill(0);
            copy_streaming(&mut dst[at..at + len], &src[..len]);
            store_fence(true);
            assert_eq!(&dst[at..at + len], &src[..len], "at {at} len {len}");
            assert!(dst[..at].iter().chain(&dst[at + len..]).all(|&x| x == 0));
        }
    }

    #[test]
    fn a_block_is_reused_once_its_regions_are_dropped() {
        // Fill a whole arena block with regions, drop them all, and the next block comes
        // from the free list: the same memory.
        std::thread::spawn(|| {
            let first: Vec<Bytes> = (0..BLOCK / MAX_REGION)
                .map(|_| cut(MAX_REGION).freeze())
                .collect();
            let addr = first[0].as_ptr() as usize;
            drop(first);
            // The arena still holds the full block; the next region needs a new one, and
            // the old one is returned when the arena lets go of it.
            let next = cut(MAX_REGION).freeze();
            drop(next);
            let again: Vec<Bytes> = (0..BLOCK / MAX_REGION)
                .map(|_| cut(MAX_REGION).freeze())
                .collect();
            let addrs: Vec<usize> = again.iter().map(|b| b.as_ptr() as usize).collect();
            assert!(
                addrs.contains(&addr) || FREE.lock().map(|f| f.len()).unwrap_or(0) > 0,
                "a dropped block was neither reused nor kept for reuse"
            );
        })
        .join()
        .expect("test thread");
    }
}
