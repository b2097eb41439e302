//! Counter-based random numbers for rendering.
//!
//! A sample's random numbers are a pure function of `(seed, pixel, pass, sample index)`: the
//! tuple is hashed into a 64-bit key, and the sample then draws its dimensions from a SplitMix64
//! sequence started at that key. Nothing depends on which thread or process renders the sample,
//! or in which order, so a render is bit-identical however it is split.

/// The SplitMix64 increment (2^64 / golden ratio).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser: a bijective avalanche mix of 64 bits.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random stream of one pixel sample.
///
/// ```
/// use prism_tracer::SampleRng;
/// let mut a = SampleRng::new(7, 10, 20, 0, 3);
/// let mut b = SampleRng::new(7, 10, 20, 0, 3);
/// assert_eq!(a.next_f32(), b.next_f32()); // same key, same numbers, on any thread
/// ```
#[derive(Clone, Debug)]
pub struct SampleRng {
    state: u64,
}

impl SampleRng {
    /// The stream of sample `sample` of pixel `(x, y)` (absolute film coordinates) in `pass`.
    pub fn new(seed: u64, x: u32, y: u32, pass: u32, sample: u32) -> SampleRng {
        // Chained hashing: each stage is a bijection of the previous key xor the next word, so
        // two tuples collide only if the 64-bit mix collides.
        let mut key = mix64(seed ^ GOLDEN);
        key = mix64(key ^ ((u64::from(x) << 32) | u64::from(y)));
        key = mix64(key.wrapping_add(GOLDEN) ^ ((u64::from(pass) << 32) | u64::from(sample)));
        SampleRng { state: key }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)` with 24 random bits (every value exactly representable).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform in `[0, 1)` with 53 random bits, for choices among millions of items.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_depend_only_on_the_key() {
        let draw = |s: u64, x: u32, y: u32, p: u32, i: u32| {
            let mut r = SampleRng::new(s, x, y, p, i);
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, 2, 3, 4, 5), draw(1, 2, 3, 4, 5));
        // Each element of the key changes the stream, including swapping x and y.
        let base = draw(1, 2, 3, 4, 5);
        for other in [
            draw(2, 2, 3, 4, 5),
            draw(1, 3, 2, 4, 5),
            draw(1, 2, 3, 5, 5),
            draw(1, 2, 3, 4, 6),
            draw(1, 2, 3, 5, 4),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn uniforms_are_in_range_and_look_uniform() {
        let mut sum = 0.0f64;
        let mut sum_sq = 0.0f64;
        let n = 20_000;
        for i in 0..n {
            // A fresh stream per sample, as the renderer uses them.
            let mut r = SampleRng::new(42, i % 100, i / 100, 0, 0);
            let u = r.next_f32();
            assert!((0.0..1.0).contains(&u));
            let v = r.next_f64();
            assert!((0.0..1.0).contains(&v));
            sum += f64::from(u);
            sum_sq += f64::from(u) * f64::from(u);
        }
        let mean = sum / f64::from(n);
        let var = sum_sq / f64::from(n) - mean * mean;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.005, "variance {var}");
    }
}
