//! A size-class cache in front of the module's allocator (dlmalloc on
//! wasm32).
//!
//! A request allocates and frees the same small blocks every time: the
//! header values the host copies in, the facts, the decision's header names.
//! dlmalloc spends a hundred or more wasm instructions on each malloc and
//! each free (bins, coalescing); popping a block from a per-size list costs
//! a few. So blocks of at most [`MAX_CACHED_SIZE`] bytes are rounded up to a
//! power of two and, when freed, kept on that size's list, up to a per-class
//! budget (at most [`MAX_RETAINED_BYTES`] in all); beyond the budget, and for
//! larger blocks or stricter alignments, everything goes to the inner
//! allocator unchanged.
//!
//! The lists are plain cells: the module is single-threaded (a wasm32 build
//! without the `atomics` feature, which is what proxy-wasm hosts run), and
//! the `Sync` that a `#[global_allocator]` needs is only claimed there.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// Class sizes: 16, 32, ..., 2048 bytes.
const MIN_SHIFT: u32 = 4;
const CLASSES: usize = 8;
/// The largest block size that is cached.
pub const MAX_CACHED_SIZE: usize = 1 << (MIN_SHIFT as usize + CLASSES - 1);
/// The alignment every cached block has (dlmalloc's natural alignment on
/// wasm32 is 8; blocks that need more bypass the cache).
const ALIGN: usize = 8;
/// Blocks kept per class: about 4 KiB of each class, at least 4 blocks,
/// at most 64.
const fn budget(class: usize) -> u16 {
    let size = 1usize << (MIN_SHIFT as usize + class);
    let n = 4096 / size;
    if n < 4 {
        4
    } else if n > 64 {
        64
    } else {
        n as u16
    }
}
/// The most memory the lists can hold back from the inner allocator.
pub const MAX_RETAINED_BYTES: usize = {
    let mut total = 0;
    let mut c = 0;
    while c < CLASSES {
        total += (budget(c) as usize) << (MIN_SHIFT as usize + c);
        c += 1;
    }
    total
};

struct Lists {
    /// Head of each class's free list; a free block's first word is the next one.
    heads: [*mut u8; CLASSES],
    counts: [u16; CLASSES],
}

/// The cache, over `A`.
pub struct SizeClasses<A> {
    inner: A,
    lists: UnsafeCell<Lists>,
}

// The module runs on one thread: no two calls into the allocator overlap.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<A: Sync> Sync for SizeClasses<A> {}

impl<A> SizeClasses<A> {
    pub const fn new(inner: A) -> Self {
        SizeClasses {
            inner,
            lists: UnsafeCell::new(Lists {
                heads: [ptr::null_mut(); CLASSES],
                counts: [0; CLASSES],
            }),
        }
    }

    /// The class of a layout, if it is served from the lists.
    fn class(size: usize, align: usize) -> Option<usize> {
        if align > ALIGN || size > MAX_CACHED_SIZE {
            return None;
        }
        let bits = usize::BITS - size.max(1 << MIN_SHIFT).saturating_sub(1).leading_zeros();
        Some(bits.saturating_sub(MIN_SHIFT) as usize)
    }

    fn class_layout(class: usize) -> Layout {
        // Sizes are powers of two no larger than MAX_CACHED_SIZE, ALIGN is a
        // power of two: always a valid layout.
        unsafe { Layout::from_size_align_unchecked(1 << (MIN_SHIFT as usize + class), ALIGN) }
    }

    /// Blocks currently held on the lists (for tests and reports).
    pub fn retained(&self) -> usize {
        // Single-threaded: nothing else touches the lists during this read.
        let lists = unsafe { &*self.lists.get() };
        lists
            .counts
            .iter()
            .enumerate()
            .map(|(c, n)| usize::from(*n) << (MIN_SHIFT as usize + c))
            .sum()
    }
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for SizeClasses<A> {
    // One copy of the logic, called from the allocation shims (not inlined
    // into every allocation site of the module: that costs ~30 KB).
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = Self::class(layout.size(), layout.align()) else {
            return unsafe { self.inner.alloc(layout) };
        };
        let lists = unsafe { &mut *self.lists.get() };
        if let (Some(head), Some(count)) = (lists.heads.get_mut(c), lists.counts.get_mut(c))
            && !head.is_null()
        {
            let block = *head;
            // A free block's first word holds the next free block.
            *head = unsafe { block.cast::<*mut u8>().read() };
            *count = count.saturating_sub(1);
            return block;
        }
        unsafe { self.inner.alloc(Self::class_layout(c)) }
    }

    // One copy of the logic, called from the allocation shims (not inlined
    // into every allocation site of the module: that costs ~30 KB).
    #[inline(never)]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(c) = Self::class(layout.size(), layout.align()) else {
            return unsafe { self.inner.dealloc(block, layout) };
        };
        let lists = unsafe { &mut *self.lists.get() };
        if let (Some(head), Some(count)) = (lists.heads.get_mut(c), lists.counts.get_mut(c))
            && *count < budget(c)
        {
            unsafe { block.cast::<*mut u8>().write(*head) };
            *head = block;
            *count += 1;
            return;
        }
        unsafe { self.inner.dealloc(block, Self::class_layout(c)) }
    }

    // One copy of the logic, called from the allocation shims (not inlined
    // into every allocation site of the module: that costs ~30 KB).
    #[inline(never)]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = Self::class(layout.size(), layout.align());
        let new = Self::class(new_size, layout.align());
        match (old, new) {
            // The block already has room.
            (Some(a), Some(b)) if a == b => block,
            (None, None) => unsafe { self.inner.realloc(block, layout, new_size) },
            _ => {
                // Valid: `new_size` rounded up to `layout.align()` does not
                // overflow (the caller's contract).
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    unsafe {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// System, counting what reaches it (live blocks by address).
    struct Counting {
        live: Mutex<HashMap<usize, Layout>>,
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc(layout) };
            self.live.lock().unwrap().insert(p as usize, layout);
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
            let was = self.live.lock().unwrap().remove(&(p as usize));
            assert_eq!(was, Some(layout), "freed with the layout it was allocated with");
            unsafe { System.dealloc(p, layout) }
        }
        unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let was = self.live.lock().unwrap().remove(&(p as usize));
            assert_eq!(was, Some(layout));
            let q = unsafe { System.realloc(p, layout, new_size) };
            let l = Layout::from_size_align(new_size, layout.align()).unwrap();
            self.live.lock().unwrap().insert(q as usize, l);
            q
        }
    }

    fn cache() -> SizeClasses<Counting> {
        SizeClasses::new(Counting {
            live: Mutex::new(HashMap::new()),
        })
    }

    fn live(a: &SizeClasses<Counting>) -> usize {
        a.inner.live.lock().unwrap().len()
    }

    #[test]
    fn classes_round_up_to_powers_of_two() {
        type S = SizeClasses<System>;
        assert_eq!(S::class(1, 1), Some(0));
        assert_eq!(S::class(16, 8), Some(0));
        assert_eq!(S::class(17, 8), Some(1));
        assert_eq!(S::class(32, 4), Some(1));
        assert_eq!(S::class(33, 1), Some(2));
        assert_eq!(S::class(2048, 8), Some(7));
        assert_eq!(S::class(2049, 8), None);
        assert_eq!(S::class(16, 16), None, "stricter alignment bypasses the lists");
        for size in 1..=MAX_CACHED_SIZE {
            let c = S::class(size, 1).unwrap();
            assert!(S::class_layout(c).size() >= size);
            assert!(c == 0 || S::class_layout(c - 1).size() < size);
        }
        assert_eq!(MAX_RETAINED_BYTES, 1024 + 2048 + 4096 * 5 + 4 * 2048);
    }

    #[test]
    fn a_freed_block_is_reused_and_never_handed_out_twice() {
        let a = cache();
        let l = Layout::from_size_align(24, 8).unwrap();
        unsafe {
            let p = a.alloc(l);
            let q = a.alloc(l);
            assert_ne!(p, q);
            a.dealloc(p, l);
            assert_eq!(live(&a), 2, "kept on the list, not freed");
            // Same class (17..=32 bytes), other size and alignment.
            let r = a.alloc(Layout::from_size_align(30, 2).unwrap());
            assert_eq!(r, p);
            let s = a.alloc(l);
            assert!(s != p && s != q);
            for x in [q, s] {
                a.dealloc(x, l);
            }
            a.dealloc(r, Layout::from_size_align(30, 2).unwrap());
        }
        assert_eq!(a.retained(), 3 * 32);
    }

    #[test]
    fn blocks_hold_their_whole_size_and_realloc_moves_only_across_classes() {
        let a = cache();
        let l = Layout::from_size_align(20, 1).unwrap();
        unsafe {
            let p = a.alloc(l);
            ptr::write_bytes(p, 0xab, 32);
            let same = a.realloc(p, l, 32);
            assert_eq!(same, p, "20 -> 32 bytes stays in its block");
            let l32 = Layout::from_size_align(32, 1).unwrap();
            let bigger = a.realloc(same, l32, 100);
            assert_ne!(bigger, p);
            assert!((0..32).all(|i| *bigger.add(i) == 0xab), "contents moved");
            let l100 = Layout::from_size_align(100, 1).unwrap();
            let huge = a.realloc(bigger, l100, 10_000);
            assert!((0..32).all(|i| *huge.add(i) == 0xab));
            let l10k = Layout::from_size_align(10_000, 1).unwrap();
            let back = a.realloc(huge, l10k, 10);
            assert!((0..10).all(|i| *back.add(i) == 0xab));
            a.dealloc(back, Layout::from_size_align(10, 1).unwrap());
        }
        // The 32-, 128- and 16-byte blocks wait on their lists; the rest went
        // back to System with the layout it was allocated with (checked by
        // `Counting`).
        assert_eq!(live(&a), 3);
        assert_eq!(a.retained(), 32 + 128 + 16);
    }

    #[test]
    fn retention_is_bounded_by_the_budget() {
        let a = cache();
        let l = Layout::from_size_align(1000, 8).unwrap();
        let blocks: Vec<*mut u8> = (0..100).map(|_| unsafe { a.alloc(l) }).collect();
        assert_eq!(live(&a), 100);
        for p in blocks {
            unsafe { a.dealloc(p, l) };
        }
        assert_eq!(live(&a), usize::from(budget(6)), "beyond the budget, freed for real");
        assert_eq!(a.retained(), usize::from(budget(6)) * 1024);
        // Fill every class past its budget: never more than MAX_RETAINED_BYTES.
        for size in [1, 17, 40, 100, 200, 300, 700, 1500, 2048] {
            let l = Layout::from_size_align(size, 1).unwrap();
            let blocks: Vec<*mut u8> = (0..80).map(|_| unsafe { a.alloc(l) }).collect();
            for p in blocks {
                unsafe { a.dealloc(p, l) };
            }
        }
        assert_eq!(a.retained(), MAX_RETAINED_BYTES);
    }

    #[test]
    fn large_and_overaligned_blocks_pass_through() {
        let a = cache();
        for l in [
            Layout::from_size_align(4096, 8).unwrap(),
            Layout::from_size_align(64, 64).unwrap(),
        ] {
            unsafe {
                let p = a.alloc(l);
                assert_eq!(p as usize % l.align(), 0);
                assert_eq!(live(&a), 1);
                a.dealloc(p, l);
                assert_eq!(live(&a), 0, "freed at once");
            }
        }
        assert_eq!(a.retained(), 0);
    }
}
