//! Four-lane f32 vectors for the box and triangle tests.
//!
//! On x86_64 this wraps SSE registers (SSE and SSE2 belong to the x86_64 baseline, so every
//! x86_64 CPU has them and no runtime detection is needed). Elsewhere it is a plain `[f32; 4]`
//! whose lane loops the compiler vectorises where it can. Both give bit-identical results:
//! every operation is a single IEEE-754 operation per lane, never fused, so a lane computes
//! exactly what the scalar code in `triangle.rs` computes for the same triangle.

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    /// Four f32 lanes.
    #[derive(Clone, Copy, Debug)]
    pub struct F4(__m128);

    /// A four-lane comparison result (all bits set in a true lane).
    #[derive(Clone, Copy, Debug)]
    pub struct M4(__m128);

    // SAFETY (for every `unsafe` block in this module): the intrinsics used need only the
    // `sse`/`sse2` target features, which are part of the x86_64 baseline and therefore
    // enabled for every x86_64 target Rust supports; none of them touches memory.
    impl F4 {
        #[inline(always)]
        pub fn splat(v: f32) -> F4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            F4(unsafe { _mm_set1_ps(v) })
        }
        #[inline(always)]
        pub fn from_array(a: [f32; 4]) -> F4 {
            F4(bytemuck::cast(a))
        }
        #[inline(always)]
        pub fn to_array(self) -> [f32; 4] {
            bytemuck::cast(self.0)
        }
        #[inline(always)]
        pub fn add(self, o: F4) -> F4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            F4(unsafe { _mm_add_ps(self.0, o.0) })
        }
        #[inline(always)]
        pub fn sub(self, o: F4) -> F4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            F4(unsafe { _mm_sub_ps(self.0, o.0) })
        }
        #[inline(always)]
        pub fn mul(self, o: F4) -> F4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            F4(unsafe { _mm_mul_ps(self.0, o.0) })
        }
        #[inline(always)]
        pub fn div(self, o: F4) -> F4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            F4(unsafe { _mm_div_ps(self.0, o.0) })
        }
        /// Lane-wise minimum; with a NaN in a lane the result is `o`'s lane (SSE semantics).
        #[inline(always)]
        pub fn min(self, o: F4) -> F4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            F4(unsafe { _mm_min_ps(self.0, o.0) })
        }
        /// Lane-wise maximum; with a NaN in a lane the result is `o`'s lane (SSE semantics).
        #[inline(always)]
        pub fn max(self, o: F4) -> F4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            F4(unsafe { _mm_max_ps(self.0, o.0) })
        }
        #[inline(always)]
        pub fn le(self, o: F4) -> M4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            M4(unsafe { _mm_cmple_ps(self.0, o.0) })
        }
        #[inline(always)]
        pub fn ge(self, o: F4) -> M4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            M4(unsafe { _mm_cmpge_ps(self.0, o.0) })
        }
        #[inline(always)]
        pub fn lt(self, o: F4) -> M4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            M4(unsafe { _mm_cmplt_ps(self.0, o.0) })
        }
        #[inline(always)]
        pub fn gt(self, o: F4) -> M4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            M4(unsafe { _mm_cmpgt_ps(self.0, o.0) })
        }
        /// Ordered equality: false in a NaN lane.
        #[inline(always)]
        pub fn eq(self, o: F4) -> M4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            M4(unsafe { _mm_cmpeq_ps(self.0, o.0) })
        }
    }

    impl M4 {
        #[inline(always)]
        pub fn and(self, o: M4) -> M4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            M4(unsafe { _mm_and_ps(self.0, o.0) })
        }
        #[inline(always)]
        pub fn or(self, o: M4) -> M4 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            M4(unsafe { _mm_or_ps(self.0, o.0) })
        }
        /// One bit per lane, lane 0 in bit 0.
        #[inline(always)]
        pub fn bits(self) -> u32 {
            // SAFETY: see the module note; register-only SSE intrinsic.
            (unsafe { _mm_movemask_ps(self.0) }) as u32
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    /// Four f32 lanes.
    #[derive(Clone, Copy, Debug)]
    pub struct F4([f32; 4]);

    /// A four-lane comparison result.
    #[derive(Clone, Copy, Debug)]
    pub struct M4([bool; 4]);

    #[inline(always)]
    fn map2(a: [f32; 4], b: [f32; 4], f: impl Fn(f32, f32) -> f32) -> F4 {
        F4([f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])])
    }
    #[inline(always)]
    fn cmp(a: [f32; 4], b: [f32; 4], f: impl Fn(f32, f32) -> bool) -> M4 {
        M4([f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])])
    }

    impl F4 {
        #[inline(always)]
        pub fn splat(v: f32) -> F4 {
            F4([v; 4])
        }
        #[inline(always)]
        pub fn from_array(a: [f32; 4]) -> F4 {
            F4(a)
        }
        #[inline(always)]
        pub fn to_array(self) -> [f32; 4] {
            self.0
        }
        #[inline(always)]
        pub fn add(self, o: F4) -> F4 {
            map2(self.0, o.0, |a, b| a + b)
        }
        #[inline(always)]
        pub fn sub(self, o: F4) -> F4 {
            map2(self.0, o.0, |a, b| a - b)
        }
        #[inline(always)]
        pub fn mul(self, o: F4) -> F4 {
            map2(self.0, o.0, |a, b| a * b)
        }
        #[inline(always)]
        pub fn div(self, o: F4) -> F4 {
            map2(self.0, o.0, |a, b| a / b)
        }
        /// Lane-wise minimum with SSE's NaN rule: `o`'s lane unless `self < o`.
        #[inline(always)]
        pub fn min(self, o: F4) -> F4 {
            map2(self.0, o.0, |a, b| if a < b { a } else { b })
        }
        /// Lane-wise maximum with SSE's NaN rule: `o`'s lane unless `self > o`.
        #[inline(always)]
        pub fn max(self, o: F4) -> F4 {
            map2(self.0, o.0, |a, b| if a > b { a } else { b })
        }
        #[inline(always)]
        pub fn le(self, o: F4) -> M4 {
            cmp(self.0, o.0, |a, b| a <= b)
        }
        #[inline(always)]
        pub fn ge(self, o: F4) -> M4 {
            cmp(self.0, o.0, |a, b| a >= b)
        }
        #[inline(always)]
        pub fn lt(self, o: F4) -> M4 {
            cmp(self.0, o.0, |a, b| a < b)
        }
        #[inline(always)]
        pub fn gt(self, o: F4) -> M4 {
            cmp(self.0, o.0, |a, b| a > b)
        }
        #[inline(always)]
        pub fn eq(self, o: F4) -> M4 {
            cmp(self.0, o.0, |a, b| a == b)
        }
    }

    impl M4 {
        #[inline(always)]
        pub fn and(self, o: M4) -> M4 {
            M4([
                self.0[0] & o.0[0],
                self.0[1] & o.0[1],
                self.0[2] & o.0[2],
                self.0[3] & o.0[3],
            ])
        }
        #[inline(always)]
        pub fn or(self, o: M4) -> M4 {
            M4([
                self.0[0] | o.0[0],
                self.0[1] | o.0[1],
                self.0[2] | o.0[2],
                self.0[3] | o.0[3],
            ])
        }
        #[inline(always)]
        pub fn bits(self) -> u32 {
            self.0
                .iter()
                .enumerate()
                .fold(0, |m, (i, &b)| m | ((b as u32) << i))
        }
    }
}

pub(crate) use imp::{F4, M4};

/// Asks the CPU to start loading `node`'s two cache lines, so that the load overlaps the work
/// on the node visited before it. A hint only: nothing is read, and it cannot fail.
#[inline(always)]
pub(crate) fn prefetch(node: &super::Node4) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (node as *const super::Node4).cast::<i8>();
        // SAFETY: a prefetch never faults and its effect cannot be observed by the program;
        // both addresses lie inside the live 128-byte `*node` (sse is x86_64 baseline).
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = node;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_compute_like_scalars() {
        let a = F4::from_array([1.0, -2.0, 3.5, f32::NAN]);
        let b = F4::from_array([0.5, 4.0, 3.5, 1.0]);
        assert_eq!(a.add(b).to_array()[..3], [1.5, 2.0, 7.0]);
        assert_eq!(a.sub(b).to_array()[..3], [0.5, -6.0, 0.0]);
        assert_eq!(a.mul(b).to_array()[..3], [0.5, -8.0, 12.25]);
        assert_eq!(a.div(b).to_array()[..3], [2.0, -0.5, 1.0]);
        // A NaN lane takes the second operand in min/max and is false in every comparison.
        assert_eq!(a.min(b).to_array(), [0.5, -2.0, 3.5, 1.0]);
        assert_eq!(a.max(b).to_array(), [1.0, 4.0, 3.5, 1.0]);
        assert_eq!(a.le(b).bits(), 0b0110);
        assert_eq!(a.ge(b).bits(), 0b0101);
        assert_eq!(a.lt(b).bits(), 0b0010);
        assert_eq!(a.gt(b).bits(), 0b0001);
        assert_eq!(a.eq(b).bits(), 0b0100);
        assert_eq!(a.lt(b).or(a.gt(b)).bits(), 0b0011);
        assert_eq!(a.le(b).and(a.ge(b)).bits(), 0b0100);
        assert_eq!(F4::splat(2.0).to_array(), [2.0; 4]);
    }
}
