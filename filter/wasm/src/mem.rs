//! `memcmp` and `bcmp` for wasm32, eight bytes at a time.
//!
//! Every `==` on strings and byte slices in the module (header and rule
//! names, map keys, provider names) ends in `bcmp`, and the compiler-builtins
//! version linked into wasm32 modules compares one byte per loop turn: about
//! ten wasm instructions per byte. Its definitions are weak, so these strong
//! ones replace them in the module: unaligned 64-bit loads, then the last
//! bytes one by one. Same results (tested against slice comparison).

/// `memcmp`: sign of the first differing byte (as unsigned), else 0.
///
/// # Safety
/// `a` and `b` are valid for reads of `n` bytes.
pub unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n >= 8 {
        // Whole words, then one last word ending at byte n (it overlaps
        // bytes already found equal, so its first difference is the first).
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n.
            let (x, y) = unsafe { (load64(a, i), load64(b, i)) };
            if x != y {
                return order64(x, y);
            }
            i += 8;
        }
        if i == n {
            return 0;
        }
        // SAFETY: n >= 8.
        let (x, y) = unsafe { (load64(a, n - 8), load64(b, n - 8)) };
        return if x == y { 0 } else { order64(x, y) };
    }
    if n >= 4 {
        // SAFETY: 4 <= n < 8: bytes 0..4 and n-4..n are in bounds.
        let (x, y) = unsafe { (load32(a, 0), load32(b, 0)) };
        if x != y {
            return order32(x, y);
        }
        let (x, y) = unsafe { (load32(a, n - 4), load32(b, n - 4)) };
        return if x == y { 0 } else { order32(x, y) };
    }
    for i in 0..n {
        // SAFETY: i < n.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// `bcmp`: 0 if the `n` bytes are equal, else non-zero.
///
/// # Safety
/// `a` and `b` are valid for reads of `n` bytes.
pub unsafe fn differ(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n >= 8 {
        // Whole words, then one last (overlapping) word ending at byte n.
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n.
            if unsafe { load64(a, i) != load64(b, i) } {
                return 1;
            }
            i += 8;
        }
        // SAFETY: n >= 8.
        return i32::from(i < n && unsafe { load64(a, n - 8) != load64(b, n - 8) });
    }
    if n >= 4 {
        // SAFETY: 4 <= n < 8: bytes 0..4 and n-4..n are in bounds.
        let (x, y) = unsafe { (load32(a, 0) ^ load32(b, 0), load32(a, n - 4) ^ load32(b, n - 4)) };
        return i32::from(x | y != 0);
    }
    for i in 0..n {
        // SAFETY: i < n.
        if unsafe { *a.add(i) != *b.add(i) } {
            return 1;
        }
    }
    0
}

/// # Safety
/// `p + at .. p + at + 8` is readable.
#[inline(always)]
unsafe fn load64(p: *const u8, at: usize) -> u64 {
    unsafe { p.add(at).cast::<u64>().read_unaligned() }
}

/// # Safety
/// `p + at .. p + at + 4` is readable.
#[inline(always)]
unsafe fn load32(p: *const u8, at: usize) -> u32 {
    unsafe { p.add(at).cast::<u32>().read_unaligned() }
}

/// -1 or 1 as the bytes of two different words compare in memory order.
#[inline(always)]
fn order64(x: u64, y: u64) -> i32 {
    if u64::from_be_bytes(x.to_ne_bytes()) < u64::from_be_bytes(y.to_ne_bytes()) {
        -1
    } else {
        1
    }
}

#[inline(always)]
fn order32(x: u32, y: u32) -> i32 {
    if u32::from_be_bytes(x.to_ne_bytes()) < u32::from_be_bytes(y.to_ne_bytes()) {
        -1
    } else {
        1
    }
}

#[cfg(target_arch = "wasm32")]
mod exported {
    /// # Safety
    /// As C's `memcmp`.
    // One copy, called (not inlined into every comparison of the module:
    // that costs ~10 KB).
    #[inline(never)]
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        unsafe { super::compare(a, b, n) }
    }

    /// # Safety
    /// As C's `bcmp`.
    #[inline(never)]
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        unsafe { super::differ(a, b, n) }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn sign(o: Ordering) -> i32 {
        match o {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }

    fn check(a: &[u8], b: &[u8]) {
        assert_eq!(a.len(), b.len());
        let n = a.len();
        let c = unsafe { compare(a.as_ptr(), b.as_ptr(), n) };
        assert_eq!(c.signum(), sign(a.cmp(b)), "memcmp {a:?} {b:?}");
        let d = unsafe { differ(a.as_ptr(), b.as_ptr(), n) };
        assert_eq!(d != 0, a != b, "bcmp {a:?} {b:?}");
    }

    #[test]
    fn agree_with_slice_comparison_at_every_length_and_position() {
        for n in 0..=40usize {
            let a: Vec<u8> = (0..n).map(|i| (i * 29 + 3) as u8).collect();
            check(&a, &a.clone());
            for i in 0..n {
                for delta in [1u8, 0x7f, 0x80, 0xff] {
                    let mut b = a.clone();
                    b[i] = b[i].wrapping_add(delta);
                    check(&a, &b);
                    check(&b, &a);
                    // A later difference in the other direction must not win.
                    if i + 1 < n {
                        b[n - 1] = b[n - 1].wrapping_sub(delta);
                        check(&a, &b);
                        check(&b, &a);
                    }
                }
            }
        }
    }

    #[test]
    fn unaligned_starts() {
        let buf: Vec<u8> = (0..64u8).collect();
        let mut other = buf.clone();
        other[37] ^= 0x10;
        for start in 0..8 {
            for n in [0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 33, 40] {
                if start + n <= buf.len() {
                    check(&buf[start..start + n], &other[start..start + n]);
                    check(&buf[start..start + n], &buf[start..start + n]);
                }
            }
        }
    }
}
