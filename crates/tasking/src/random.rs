//! Random streams indexed by task: `(seed, task index)` → an independent generator.
//!
//! A task draws its random numbers from a generator derived from the run's seed and the task's
//! own index (or a longer key such as `(pixel, pass, sample)`), never from a per-thread
//! generator. Which thread or process runs a task, and in which order, then cannot change what
//! it draws: results are identical for every split of the work.
//!
//! The key is hashed with SplitMix64's finaliser (a bijective 64-bit mixer) into the 256-bit
//! state of a xoshiro256++ generator. Distinct keys give unrelated states; with a period of
//! 2^256 - 1 the streams of different tasks do not overlap in practice.

use rand_core::RngCore;

/// Weyl increment of SplitMix64 (2^64 / golden ratio, odd).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective mixer with full avalanche.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a seed and a key of any length into one 64-bit value. Different key lengths give
/// different hashes (the length is mixed in), so `(seed, [1])` and `(seed, [1, 0])` differ.
pub fn stream_key(seed: u64, key: &[u64]) -> u64 {
    let mut h = mix64(seed ^ GOLDEN.wrapping_mul(key.len() as u64 + 1));
    for &k in key {
        h = mix64(h.wrapping_add(GOLDEN) ^ mix64(k.wrapping_add(GOLDEN)));
    }
    h
}

/// A task's random generator (xoshiro256++ seeded from `(seed, key)`).
///
/// ```
/// use prism_tasking::TaskRng;
/// let mut a = TaskRng::new(42, 7);
/// let mut b = TaskRng::new(42, 7);
/// assert_eq!(a.next_f64(), b.next_f64()); // same task, same numbers, wherever it runs
/// assert_ne!(TaskRng::new(42, 8).next_u64(), TaskRng::new(42, 7).next_u64());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRng {
    s: [u64; 4],
}

impl TaskRng {
    /// The generator of task `index` in a run with `seed`.
    pub fn new(seed: u64, index: u64) -> TaskRng {
        TaskRng::from_key(seed, &[index])
    }

    /// The generator for a longer key, e.g. `&[pixel, pass, sample]`.
    pub fn from_key(seed: u64, key: &[u64]) -> TaskRng {
        let mut x = stream_key(seed, key);
        let mut s = [0u64; 4];
        for slot in &mut s {
            x = x.wrapping_add(GOLDEN);
            *slot = mix64(x);
        }
        // The all-zero state is xoshiro's only fixed point; SplitMix outputs of consecutive
        // Weyl states are never all zero, but guard anyway at no cost.
        if s == [0; 4] {
            s[0] = GOLDEN;
        }
        TaskRng { s }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform number in `[0, 1)` with 53 random bits.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform number in `(0, 1]`: safe to take the logarithm of.
    #[inline]
    pub fn next_f64_nonzero(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

// Lets callers use `rand`'s distributions with a task's stream.
impl RngCore for TaskRng {
    fn next_u32(&mut self) -> u32 {
        (TaskRng::next_u64(self) >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        TaskRng::next_u64(self)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = TaskRng::next_u64(self).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_stream_different_keys_different_streams() {
        let draw = |seed, index| {
            let mut r = TaskRng::new(seed, index);
            (0..8).map(|_| r.next_u64()).collect::<Vec<u64>>()
        };
        let (a, b) = (draw(1, 5), draw(1, 5));
        assert_eq!(a, b);
        assert_ne!(TaskRng::new(1, 5), TaskRng::new(1, 6));
        assert_ne!(TaskRng::new(1, 5), TaskRng::new(2, 5));
        assert_ne!(stream_key(3, &[1]), stream_key(3, &[1, 0]));
        assert_ne!(stream_key(3, &[1, 2]), stream_key(3, &[2, 1]));
    }

    #[test]
    fn uniform_numbers_look_uniform() {
        let mut r = TaskRng::new(9, 0);
        let n = 100_000;
        let mut bins = [0usize; 10];
        let mut sum = 0.0;
        for _ in 0..n {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
            bins[(x * 10.0) as usize] += 1;
            sum += x;
        }
        assert!((sum / n as f64 - 0.5).abs() < 0.01);
        // Chi-square with 9 degrees of freedom: 27.9 is the 0.999 quantile.
        let e = n as f64 / 10.0;
        let chi2: f64 = bins.iter().map(|&b| (b as f64 - e).powi(2) / e).sum();
        assert!(chi2 < 27.9, "chi2 = {chi2}");
    }

    #[test]
    fn neighbouring_streams_are_uncorrelated() {
        // First draws of consecutive task indices: their correlation must be near zero.
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|i| TaskRng::new(7, i).next_f64()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let cov: f64 = xs
            .windows(2)
            .map(|w| (w[0] - mean) * (w[1] - mean))
            .sum::<f64>()
            / (n - 1) as f64;
        let var: f64 = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((cov / var).abs() < 0.03, "lag-1 correlation {}", cov / var);
    }

    #[test]
    fn fill_bytes_matches_words() {
        let mut a = TaskRng::new(4, 4);
        let mut b = a.clone();
        let mut buf = [0u8; 12];
        a.fill_bytes(&mut buf);
        let w0 = b.next_u64().to_le_bytes();
        let w1 = b.next_u64().to_le_bytes();
        assert_eq!(&buf[..8], &w0);
        assert_eq!(&buf[8..], &w1[..4]);
    }
}
