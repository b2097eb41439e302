//! Kernel benchmarking: test meshes, reproducible ray sets, and a one-call throughput report
//! (what `prism bench trace --mesh FILE` prints).
//!
//! Two ray sets, after the usual practice of BVH papers:
//! - *primary*: pinhole-camera rays through a square image that frames the mesh's bounds;
//! - *diffuse*: incoherent rays leaving the surface, with origins uniformly distributed over
//!   the surface area and cosine-distributed directions about the geometric normal.
//!
//! Everything is deterministic in its seed, so two runs trace the same rays.

use crate::geometry::{Geometry, Instance};
use crate::math::{Ray, Transform, Vec3};
use crate::mesh::Mesh;
use std::fmt;
use std::time::Instant;

/// A small, fast, deterministic generator (SplitMix64) for test and benchmark inputs.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.f32()
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
    /// A uniformly distributed unit vector.
    pub fn unit_vector(&mut self) -> Vec3 {
        let z = self.range(-1.0, 1.0);
        let phi = self.range(0.0, std::f32::consts::TAU);
        let r = (1.0 - z * z).max(0.0).sqrt();
        Vec3::new(r * phi.cos(), r * phi.sin(), z)
    }
}

pub use crate::mesh::icosphere;

/// A closed, rough "asteroid": an icosphere with its vertices displaced radially by a sum of
/// waves, so that it has detail at many scales like a scanned object. `subdivisions = 8`
/// gives 1,310,720 triangles.
pub fn asteroid(subdivisions: u32) -> Mesh {
    let mut m = icosphere(subdivisions);
    for p in &mut m.positions {
        let mut r = 1.0;
        let mut f = 2.0;
        let mut a = 0.15;
        for k in 0..6 {
            let k = k as f32;
            r += a
                * ((p.x * f + 1.3 * k).sin() * (p.y * f * 1.1 + 0.7 * k).cos()
                    + (p.z * f * 0.9 + 2.1 * k).sin() * 0.5);
            f *= 2.1;
            a *= 0.45;
        }
        *p *= r;
    }
    Mesh::new(m.positions, m.indices).expect("the asteroid is a valid mesh")
}

/// `count` pinhole-camera rays through a square image framing `bounds` from a fixed oblique
/// direction (45 degrees vertical field of view, one jittered ray per pixel, row by row).
pub fn primary_rays(bounds: (Vec3, Vec3), count: usize, seed: u64) -> Vec<Ray> {
    let mut rng = Rng::new(seed);
    // Framed as the scene file's default camera frames a mesh, by the bounds' own extent (a
    // floor on the radius left a mesh 1e-12 across a speck no ray hit); a single point gets
    // any extent.
    let (center, radius) = crate::camera::bounding_sphere(bounds.0, bounds.1);
    let radius = if radius > 0.0 { radius } else { 1.0 };
    let half_fov = 22.5f32.to_radians();
    let back = Vec3::new(0.55, 0.35, 0.76).normalize();
    let eye = center + back * (radius / half_fov.sin());
    let forward = (center - eye).normalize();
    let right = forward.cross(Vec3::new(0.0, 1.0, 0.0)).normalize();
    let up = right.cross(forward);
    let side = (count as f64).sqrt().ceil().max(1.0) as usize;
    let scale = half_fov.tan();
    (0..count)
        .map(|i| {
            let (px, py) = (i % side, i / side);
            let x = ((px as f32 + rng.f32()) / side as f32 * 2.0 - 1.0) * scale;
            let y = (1.0 - (py as f32 + rng.f32()) / side as f32 * 2.0) * scale;
            Ray::new(eye, (forward + right * x + up * y).normalize())
        })
        .collect()
}

/// `count` diffuse bounce rays: origins uniform over the mesh's surface area (nudged off the
/// surface by 1e-4 of the mesh's size), directions cosine-distributed about the triangle's
/// geometric normal. Empty for a mesh without area.
pub fn diffuse_rays(mesh: &Mesh, count: usize, seed: u64) -> Vec<Ray> {
    let mut rng = Rng::new(seed);
    let mut cdf = Vec::with_capacity(mesh.triangle_count());
    let mut total = 0.0f64;
    for i in 0..mesh.triangle_count() {
        let [a, b, c] = mesh.triangle(i);
        total += (b - a).cross(c - a).length() as f64;
        cdf.push(total);
    }
    let Some((lo, hi)) = mesh.bounds() else {
        return Vec::new();
    };
    if total <= 0.0 || !total.is_finite() {
        return Vec::new();
    }
    let nudge = (hi - lo).length() * 1e-4;
    (0..count)
        .map(|_| {
            let x = rng.f32() as f64 * total;
            let tri = cdf.partition_point(|&c| c <= x).min(cdf.len() - 1);
            let [a, b, c] = mesh.triangle(tri);
            let (r1, r2) = (rng.f32().sqrt(), rng.f32());
            let p = a * (1.0 - r1) + b * (r1 * (1.0 - r2)) + c * (r1 * r2);
            let n = (b - a).cross(c - a).normalize();
            // Cosine-weighted hemisphere about n (Malley's method).
            let (u1, u2) = (rng.f32(), rng.f32());
            let r = u1.sqrt();
            let phi = std::f32::consts::TAU * u2;
            let (t1, t2) = orthonormal_basis(n);
            let dir = t1 * (r * phi.cos()) + t2 * (r * phi.sin()) + n * (1.0 - u1).max(0.0).sqrt();
            Ray::new(p + n * nudge, dir)
        })
        .collect()
}

/// Two unit vectors completing `n` (unit) to an orthonormal basis (Duff et al. 2017).
fn orthonormal_basis(n: Vec3) -> (Vec3, Vec3) {
    let s = 1.0f32.copysign(n.z);
    let a = -1.0 / (s + n.z);
    let b = n.x * n.y * a;
    (
        Vec3::new(1.0 + s * n.x * n.x * a, s * b, -s * n.x),
        Vec3::new(b, s + n.y * n.y * a, -n.y),
    )
}

/// Throughput of one ray set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RayThroughput {
    /// Millions of closest-hit queries per second, one thread.
    pub closest_mrays: f64,
    /// Millions of occlusion queries per second, one thread.
    pub occluded_mrays: f64,
    /// Fraction of the rays that hit something.
    pub hit_fraction: f64,
}

/// What [`trace_benchmark`] measured; `Display` prints a short table.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceReport {
    pub triangles: usize,
    /// Wall time of [`Geometry::build`] on rayon's thread pool.
    pub build_seconds: f64,
    pub build_threads: usize,
    /// Bytes of the built geometry (BVH, triangles, header).
    pub geometry_bytes: usize,
    /// How many of them are in huge pages ([`Geometry::huge_page_bytes`]).
    pub huge_page_bytes: Option<u64>,
    pub rays: usize,
    pub primary: RayThroughput,
    pub diffuse: RayThroughput,
}

impl fmt::Display for TraceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} triangles; BVH build {:.3} s on {} threads",
            self.triangles, self.build_seconds, self.build_threads
        )?;
        let mib = |b: f64| b / f64::from(1 << 20);
        let huge = match self.huge_page_bytes {
            Some(h) => format!("{:.1} MiB of it in huge pages", mib(h as f64)),
            None => "huge pages unknown here".to_string(),
        };
        writeln!(
            f,
            "geometry {:.1} MiB in memory, {huge}",
            mib(self.geometry_bytes as f64)
        )?;
        writeln!(
            f,
            "{} rays per set, single thread; Mrays/s (best of 3):",
            self.rays
        )?;
        for (name, r) in [("primary", &self.primary), ("diffuse", &self.diffuse)] {
            writeln!(
                f,
                "  {name:8} closest {:8.2}   occluded {:8.2}   ({:.1}% hit)",
                r.closest_mrays,
                r.occluded_mrays,
                r.hit_fraction * 100.0
            )?;
        }
        Ok(())
    }
}

/// Builds the mesh's BVH (timed, in parallel) and measures single-thread closest-hit and
/// occlusion throughput on `rays` primary and `rays` diffuse rays (best of three passes).
pub fn trace_benchmark(mesh: &Mesh, rays: usize, seed: u64) -> TraceReport {
    let start = Instant::now();
    let instance = Instance {
        mesh: 0,
        material: 0,
        transform: Transform::IDENTITY,
    };
    let geometry = Geometry::build(vec![mesh.clone()], vec![instance])
        .expect("a validated mesh with one identity instance always builds");
    let build_seconds = start.elapsed().as_secs_f64();
    let bounds = mesh.bounds().unwrap_or((Vec3::ZERO, Vec3::ONE));
    let primary = primary_rays(bounds, rays, seed);
    let diffuse = diffuse_rays(mesh, rays, seed ^ 0x5EED);
    TraceReport {
        triangles: mesh.triangle_count(),
        build_seconds,
        build_threads: rayon::current_num_threads(),
        geometry_bytes: geometry.as_bytes().len(),
        huge_page_bytes: geometry.huge_page_bytes(),
        rays,
        primary: measure(&geometry, &primary),
        diffuse: measure(&geometry, &diffuse),
    }
}

fn measure(g: &Geometry, rays: &[Ray]) -> RayThroughput {
    if rays.is_empty() {
        return RayThroughput {
            closest_mrays: 0.0,
            occluded_mrays: 0.0,
            hit_fraction: 0.0,
        };
    }
    let best_rate = |f: &dyn Fn() -> usize| {
        let mut best = 0.0f64;
        let mut out = 0;
        for _ in 0..3 {
            let t = Instant::now();
            out = f();
            let rate = rays.len() as f64 / t.elapsed().as_secs_f64().max(1e-9) / 1e6;
            best = best.max(rate);
        }
        (best, out)
    };
    // One query per batch, as a render loop traces a tile.
    let (closest_mrays, hits) = best_rate(&|| {
        let mut q = g.query();
        rays.iter().filter(|r| q.intersect(r).is_some()).count()
    });
    let (occluded_mrays, _) = best_rate(&|| {
        let mut q = g.query();
        rays.iter().filter(|r| q.occluded(r)).count()
    });
    RayThroughput {
        closest_mrays,
        occluded_mrays,
        hit_fraction: hits as f64 / rays.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icosphere_is_closed_and_outward() {
        let m = icosphere(2);
        assert_eq!(m.triangle_count(), 20 * 16);
        let mut edges = std::collections::HashMap::new();
        for t in &m.indices {
            for k in 0..3 {
                *edges.entry((t[k], t[(k + 1) % 3])).or_insert(0) += 1;
            }
        }
        // Closed and consistently wound: every directed edge once, its reverse once.
        for (&(a, b), &n) in &edges {
            assert_eq!(n, 1);
            assert_eq!(edges.get(&(b, a)), Some(&1));
        }
        for i in 0..m.triangle_count() {
            let [a, b, c] = m.triangle(i);
            assert!((b - a).cross(c - a).dot(a + b + c) > 0.0);
        }
    }

    #[test]
    fn ray_sets_are_reproducible_and_well_formed() {
        let m = icosphere(1);
        let d = diffuse_rays(&m, 500, 3);
        assert_eq!(d, diffuse_rays(&m, 500, 3));
        assert!(d
            .iter()
            .all(|r| r.is_valid() && (r.dir.length() - 1.0).abs() < 1e-3));
        let p = primary_rays(m.bounds().unwrap(), 400, 1);
        assert_eq!(p.len(), 400);
        assert!(p.iter().all(Ray::is_valid));
    }

    /// The primary rays frame a mesh by its own size: the same share of them hits a mesh 1e-12
    /// across as the same mesh 1 across.
    #[test]
    fn a_tiny_mesh_is_framed_as_well_as_a_unit_one() {
        let unit = icosphere(2);
        let tiny = Mesh::new(
            unit.positions.iter().map(|&p| p * 1e-12).collect(),
            unit.indices.clone(),
        )
        .unwrap();
        let hits = |m: &Mesh| trace_benchmark(m, 2000, 9).primary.hit_fraction;
        let (unit, tiny) = (hits(&unit), hits(&tiny));
        assert!(unit > 0.1, "{unit}");
        assert!((tiny - unit).abs() < 0.01, "unit {unit}, 1e-12 {tiny}");
    }

    #[test]
    fn trace_benchmark_reports_sensible_figures() {
        let r = trace_benchmark(&icosphere(3), 2000, 9);
        assert_eq!(r.triangles, 1280);
        assert!(r.primary.closest_mrays > 0.0 && r.diffuse.occluded_mrays > 0.0);
        // The camera frames the sphere, so a good share of primary rays hit it; diffuse rays
        // leave a convex surface and never hit it again.
        assert!(r.primary.hit_fraction > 0.2, "{r}");
        assert_eq!(r.diffuse.hit_fraction, 0.0, "{r}");
        assert!(r.to_string().contains("primary"));
        assert!(r.geometry_bytes > 1280 * 36, "{r}");
        assert_eq!(
            r.huge_page_bytes.is_some(),
            cfg!(target_os = "linux"),
            "{r}"
        );
        assert!(r.to_string().contains(" MiB in memory, "), "{r}");
    }
}
