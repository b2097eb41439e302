//! Watertight ray-triangle intersection (Woop, Benthin & Wald, "Watertight Ray/Triangle
//! Intersection", JCGT 2013), for one triangle and for blocks of four.
//!
//! The ray is translated to the origin, its axes permuted so that the largest direction
//! component is `z`, and sheared so that the ray becomes the `+z` axis. A triangle is then hit
//! when the origin of the xy plane lies inside its projection, decided by three 2D edge
//! functions. Two triangles sharing an edge compute that edge's function from the *same*
//! transformed vertices with the same operations, so they get the same value with opposite
//! signs: a ray through the edge cannot slip between them. When an edge function is exactly
//! zero in f32 it is recomputed in f64 (the sign then decides), as the paper prescribes.
//!
//! Both sides of a triangle are hit (no back-face culling). Zero-area triangles are never hit:
//! their edge functions sum to zero. Invalid rays are the caller's business ([`Ray::is_valid`]);
//! [`intersect_triangle`] checks it.
//!
//! The four-lane version ([`Tri4`]) computes every lane with exactly the operations of the
//! scalar one, so a BVH query and a brute-force loop over [`intersect_triangle`] agree to the
//! last bit.

use crate::bvh::simd::{F4, M4};
use crate::math::{Ray, Vec3};
use bytemuck::{Pod, Zeroable};

/// Where a ray meets a triangle `[a, b, c]`: the point is `ray.at(t)`, and also
/// `(1 - u - v) * a + u * b + v * c`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TriangleHit {
    pub t: f32,
    pub u: f32,
    pub v: f32,
}

/// Intersects one ray with one triangle; `None` for a miss, for a ray that is not
/// [`Ray::is_valid`] and for a zero-area triangle. The hit is the one in `[ray.tmin, ray.tmax]`.
///
/// ```
/// use prism_tracer::math::{Ray, Vec3};
/// use prism_tracer::triangle::intersect_triangle;
/// let tri = [Vec3::new(-1.0, -1.0, 2.0), Vec3::new(1.0, -1.0, 2.0), Vec3::new(0.0, 1.0, 2.0)];
/// let hit = intersect_triangle(&Ray::new(Vec3::ZERO, Vec3::new(0.0, 0.0, 1.0)), &tri).unwrap();
/// assert_eq!(hit.t, 2.0);
/// ```
pub fn intersect_triangle(ray: &Ray, tri: &[Vec3; 3]) -> Option<TriangleHit> {
    PreparedRay::new(ray)?.intersect(tri)
}

/// A ray prepared for many watertight triangle tests: the per-ray work of
/// [`intersect_triangle`] done once (what a brute-force search over many triangles wants).
/// Gives exactly the results of [`intersect_triangle`] and of the BVH.
#[derive(Clone, Copy, Debug)]
pub struct PreparedRay {
    shear: Shear,
    tmin: f32,
    tmax: f32,
}

impl PreparedRay {
    /// `None` if the ray is not [`Ray::is_valid`].
    pub fn new(ray: &Ray) -> Option<PreparedRay> {
        ray.is_valid().then(|| PreparedRay {
            shear: Shear::new(ray.origin, ray.dir),
            tmin: ray.tmin,
            tmax: ray.tmax,
        })
    }

    /// The hit on `tri` in `[ray.tmin, ray.tmax]`, if any.
    pub fn intersect(&self, tri: &[Vec3; 3]) -> Option<TriangleHit> {
        self.shear.intersect(tri, self.tmin, self.tmax)
    }
}

/// The per-ray constants of the watertight test: axis permutation and shear.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shear {
    pub kx: usize,
    pub ky: usize,
    pub kz: usize,
    pub sx: f32,
    pub sy: f32,
    pub sz: f32,
    pub org: [f32; 3],
}

impl Shear {
    /// `dir` must be finite and non-zero.
    #[inline]
    pub fn new(origin: Vec3, dir: Vec3) -> Shear {
        let kz = dir.abs().max_axis();
        let mut kx = (kz + 1) % 3;
        let mut ky = (kx + 1) % 3;
        // Keep the winding of the projected triangle independent of the ray's direction.
        if dir[kz] < 0.0 {
            std::mem::swap(&mut kx, &mut ky);
        }
        // One division; multiplying by its result rounds differently from dividing twice,
        // which does not matter: watertightness needs the same shear for every triangle, not
        // an exact one.
        let sz = 1.0 / dir[kz];
        Shear {
            kx,
            ky,
            kz,
            sx: dir[kx] * sz,
            sy: dir[ky] * sz,
            sz,
            org: origin.to_array(),
        }
    }

    /// The scalar test. Every lane of [`Tri4::intersect`] repeats these operations in order.
    #[inline]
    pub fn intersect(&self, tri: &[Vec3; 3], tmin: f32, tmax: f32) -> Option<TriangleHit> {
        let o = self.org;
        let rel = |p: Vec3| {
            let p = p.to_array();
            [
                p[self.kx] - o[self.kx],
                p[self.ky] - o[self.ky],
                p[self.kz] - o[self.kz],
            ]
        };
        let (a, b, c) = (rel(tri[0]), rel(tri[1]), rel(tri[2]));
        let ax = a[0] - self.sx * a[2];
        let ay = a[1] - self.sy * a[2];
        let bx = b[0] - self.sx * b[2];
        let by = b[1] - self.sy * b[2];
        let cx = c[0] - self.sx * c[2];
        let cy = c[1] - self.sy * c[2];
        let mut u = cx * by - cy * bx;
        let mut v = ax * cy - ay * cx;
        let mut w = bx * ay - by * ax;
        if u == 0.0 || v == 0.0 || w == 0.0 {
            [u, v, w] = edges_f64(ax, ay, bx, by, cx, cy);
        }
        let inside = (u >= 0.0 && v >= 0.0 && w >= 0.0) || (u <= 0.0 && v <= 0.0 && w <= 0.0);
        let det = u + v + w;
        if !inside || det == 0.0 || det.is_nan() {
            return None;
        }
        let az = self.sz * a[2];
        let bz = self.sz * b[2];
        let cz = self.sz * c[2];
        let t = (u * az + v * bz + w * cz) / det;
        if !(t >= tmin && t <= tmax) {
            return None;
        }
        Some(TriangleHit {
            t,
            u: v / det,
            v: w / det,
        })
    }
}

/// The three edge functions in f64, for when one of them is exactly zero in f32 (the ray
/// passes through an edge or vertex to f32 precision); the f64 sign decides which triangle
/// gets the hit, consistently for both neighbours.
#[inline(never)]
#[cold]
fn edges_f64(ax: f32, ay: f32, bx: f32, by: f32, cx: f32, cy: f32) -> [f32; 3] {
    let [ax, ay, bx, by, cx, cy] = [ax, ay, bx, by, cx, cy].map(f64::from);
    [
        (cx * by - cy * bx) as f32,
        (ax * cy - ay * cx) as f32,
        (bx * ay - by * ax) as f32,
    ]
}

/// Up to four triangles in structure-of-arrays form, the leaf storage of the BVH.
///
/// `v[corner][axis][lane]`; unused lanes hold NaN corners (never hit) and the primitive id
/// [`Tri4::PAD`].
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct Tri4 {
    pub v: [[[f32; 4]; 3]; 3],
    pub prim: [u32; 4],
}

/// The ray constants of [`Shear`], splatted to four lanes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shear4 {
    pub scalar: Shear,
    o: [F4; 3],
    s: [F4; 3],
}

impl Shear4 {
    #[inline]
    pub fn new(s: Shear) -> Shear4 {
        Shear4 {
            scalar: s,
            o: [s.org[s.kx], s.org[s.ky], s.org[s.kz]].map(F4::splat),
            s: [s.sx, s.sy, s.sz].map(F4::splat),
        }
    }
}

impl Tri4 {
    /// The primitive id of an unused lane.
    pub const PAD: u32 = u32::MAX;

    /// Packs up to four `(corners, primitive id)` pairs; the rest of the lanes are padding.
    pub fn new(tris: &[([Vec3; 3], u32)]) -> Tri4 {
        debug_assert!(tris.len() <= 4);
        let mut t = Tri4 {
            v: [[[f32::NAN; 4]; 3]; 3],
            prim: [Tri4::PAD; 4],
        };
        for (lane, (corners, prim)) in tris.iter().enumerate().take(4) {
            for (k, p) in corners.iter().enumerate() {
                for axis in 0..3 {
                    t.v[k][axis][lane] = p[axis];
                }
            }
            t.prim[lane] = *prim;
        }
        t
    }

    /// Corner `k` of the triangle in `lane`.
    #[inline]
    pub fn corner(&self, lane: usize, k: usize) -> Vec3 {
        Vec3::new(self.v[k][0][lane], self.v[k][1][lane], self.v[k][2][lane])
    }

    /// The three corners of the triangle in `lane`.
    #[inline]
    pub fn corners(&self, lane: usize) -> [Vec3; 3] {
        [
            self.corner(lane, 0),
            self.corner(lane, 1),
            self.corner(lane, 2),
        ]
    }

    /// The four edge-function tests; returns the lanes hit in `[tmin, tmax]`, their `t` and
    /// the edge functions and determinant needed for barycentrics.
    #[inline(always)]
    fn test(&self, r: &Shear4, tmin: f32, tmax: f32) -> (u32, [F4; 3], F4, F4) {
        let s = &r.scalar;
        let rel = |k: usize| {
            let p = &self.v[k];
            [
                F4::from_array(p[s.kx]).sub(r.o[0]),
                F4::from_array(p[s.ky]).sub(r.o[1]),
                F4::from_array(p[s.kz]).sub(r.o[2]),
            ]
        };
        let (a, b, c) = (rel(0), rel(1), rel(2));
        let ax = a[0].sub(r.s[0].mul(a[2]));
        let ay = a[1].sub(r.s[1].mul(a[2]));
        let bx = b[0].sub(r.s[0].mul(b[2]));
        let by = b[1].sub(r.s[1].mul(b[2]));
        let cx = c[0].sub(r.s[0].mul(c[2]));
        let cy = c[1].sub(r.s[1].mul(c[2]));
        let mut u = cx.mul(by).sub(cy.mul(bx));
        let mut v = ax.mul(cy).sub(ay.mul(cx));
        let mut w = bx.mul(ay).sub(by.mul(ax));
        let zero = F4::splat(0.0);
        if u.eq(zero).or(v.eq(zero)).or(w.eq(zero)).bits() != 0 {
            [u, v, w] = edges_f64_lanes([ax, ay, bx, by, cx, cy], [u, v, w]);
        }
        let pos = u.ge(zero).and(v.ge(zero)).and(w.ge(zero));
        let neg = u.le(zero).and(v.le(zero)).and(w.le(zero));
        let det = u.add(v).add(w);
        let mut mask = pos.or(neg).and(det.lt(zero).or(det.gt(zero))).bits();
        if mask == 0 {
            return (0, [u, v, w], det, zero);
        }
        let az = r.s[2].mul(a[2]);
        let bz = r.s[2].mul(b[2]);
        let cz = r.s[2].mul(c[2]);
        let t = u.mul(az).add(v.mul(bz)).add(w.mul(cz)).div(det);
        let in_range: M4 = t.ge(F4::splat(tmin)).and(t.le(F4::splat(tmax)));
        mask &= in_range.bits();
        (mask, [u, v, w], det, t)
    }

    /// The nearest hit among the four lanes in `[tmin, tmax]`: `(lane, hit)`. Ties go to the
    /// lowest lane.
    #[inline(always)]
    pub(crate) fn intersect(
        &self,
        r: &Shear4,
        tmin: f32,
        tmax: f32,
    ) -> Option<(usize, TriangleHit)> {
        let (mut mask, [_, v, w], det, t) = self.test(r, tmin, tmax);
        if mask == 0 {
            return None;
        }
        let ts = t.to_array();
        let mut lane = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        while mask != 0 {
            let l = mask.trailing_zeros() as usize;
            if ts[l] < ts[lane] {
                lane = l;
            }
            mask &= mask - 1;
        }
        let det = det.to_array()[lane];
        Some((
            lane,
            TriangleHit {
                t: ts[lane],
                u: v.to_array()[lane] / det,
                v: w.to_array()[lane] / det,
            },
        ))
    }

    /// Whether any lane is hit in `[tmin, tmax]`.
    #[inline(always)]
    pub(crate) fn occludes(&self, r: &Shear4, tmin: f32, tmax: f32) -> bool {
        self.test(r, tmin, tmax).0 != 0
    }
}

/// [`edges_f64`] for the lanes whose f32 edge functions include an exact zero.
#[inline(never)]
#[cold]
fn edges_f64_lanes(xy: [F4; 6], uvw: [F4; 3]) -> [F4; 3] {
    let xy = xy.map(F4::to_array);
    let mut out = uvw.map(F4::to_array);
    for lane in 0..4 {
        if out.iter().any(|e| e[lane] == 0.0) {
            let [u, v, w] = edges_f64(
                xy[0][lane],
                xy[1][lane],
                xy[2][lane],
                xy[3][lane],
                xy[4][lane],
                xy[5][lane],
            );
            out[0][lane] = u;
            out[1][lane] = v;
            out[2][lane] = w;
        }
    }
    out.map(F4::from_array)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ray(o: [f32; 3], d: [f32; 3]) -> Ray {
        Ray::new(Vec3::from_array(o), Vec3::from_array(d))
    }

    const TRI: [Vec3; 3] = [
        Vec3::new(0.0, 0.0, 1.0),
        Vec3::new(1.0, 0.0, 1.0),
        Vec3::new(0.0, 1.0, 1.0),
    ];

    #[test]
    fn hits_report_distance_and_barycentrics() {
        let h = intersect_triangle(&ray([0.25, 0.5, 0.0], [0.0, 0.0, 2.0]), &TRI).unwrap();
        assert_eq!(h.t, 0.5);
        assert!((h.u - 0.25).abs() < 1e-6 && (h.v - 0.5).abs() < 1e-6);
        // Both faces are hit.
        let back = intersect_triangle(&ray([0.25, 0.25, 3.0], [0.0, 0.0, -1.0]), &TRI).unwrap();
        assert_eq!(back.t, 2.0);
        // Outside, behind, or beyond tmax: misses.
        assert!(intersect_triangle(&ray([0.75, 0.75, 0.0], [0.0, 0.0, 1.0]), &TRI).is_none());
        assert!(intersect_triangle(&ray([0.25, 0.25, 2.0], [0.0, 0.0, 1.0]), &TRI).is_none());
        let short = Ray::segment(
            Vec3::new(0.25, 0.25, 0.0),
            Vec3::new(0.0, 0.0, 1.0),
            0.0,
            0.5,
        );
        assert!(intersect_triangle(&short, &TRI).is_none());
    }

    #[test]
    fn edges_and_vertices_are_hit_by_exactly_one_side_or_both() {
        // Two triangles sharing the diagonal of the unit square; rays through the diagonal,
        // through its end points and along many directions must hit at least one of them.
        let a = [
            Vec3::new(0.0, 0.0, 0.0),
            Vec3::new(1.0, 0.0, 0.0),
            Vec3::new(1.0, 1.0, 0.0),
        ];
        let b = [
            Vec3::new(0.0, 0.0, 0.0),
            Vec3::new(1.0, 1.0, 0.0),
            Vec3::new(0.0, 1.0, 0.0),
        ];
        let mut checked = 0;
        // Points of the shared diagonal strictly inside the square (the square's own outer
        // corners are its boundary, where a miss is legitimate).
        for i in 1..64 {
            let s = i as f32 / 64.0;
            let target = Vec3::new(s, s, 0.0);
            for (dx, dy) in [(0.0, 0.0), (0.3, -0.1), (-0.7, 0.2), (0.01, 0.013)] {
                let origin = Vec3::new(0.1 + dx, -0.2 + dy, 1.7);
                let r = Ray::new(origin, target - origin);
                let hit = intersect_triangle(&r, &a).or(intersect_triangle(&r, &b));
                assert!(
                    hit.is_some(),
                    "ray through {target:?} from {origin:?} slipped"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 63 * 4);
    }

    #[test]
    fn degenerate_triangles_and_invalid_rays_never_hit() {
        let degenerate = [
            [Vec3::ZERO, Vec3::ZERO, Vec3::ZERO],
            [
                Vec3::ZERO,
                Vec3::new(1.0, 1.0, 1.0),
                Vec3::new(2.0, 2.0, 2.0),
            ],
            [
                Vec3::ZERO,
                Vec3::new(1.0, 0.0, 0.0),
                Vec3::new(1.0, 0.0, 0.0),
            ],
        ];
        for d in [
            [0.0, 0.0, 1.0],
            [1.0, 1.0, 1.0],
            [1.0, -1.0, 0.0],
            [-1.0, 0.5, 0.25],
        ] {
            for o in [
                [0.0, 0.0, -1.0],
                [0.5, 0.5, 0.5],
                [-1.0, -1.0, -1.0],
                [0.0; 3],
            ] {
                for t in &degenerate {
                    assert!(intersect_triangle(&ray(o, d), t).is_none());
                }
            }
        }
        let bad = [
            ray([0.2, 0.2, 0.0], [0.0, 0.0, 0.0]),
            ray([0.2, 0.2, 0.0], [0.0, f32::NAN, 1.0]),
            ray([0.2, 0.2, 0.0], [0.0, 0.0, f32::INFINITY]),
            ray([f32::NAN, 0.2, 0.0], [0.0, 0.0, 1.0]),
            Ray::segment(Vec3::ZERO, Vec3::new(0.0, 0.0, 1.0), f32::NAN, 1.0),
            Ray::segment(Vec3::ZERO, Vec3::new(0.0, 0.0, 1.0), 2.0, 1.0),
        ];
        for r in &bad {
            assert!(intersect_triangle(r, &TRI).is_none(), "{r:?}");
        }
    }

    #[test]
    fn four_lanes_agree_with_the_scalar_test_bit_for_bit() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let mut hits = 0;
        for _ in 0..2000 {
            let tris: Vec<([Vec3; 3], u32)> = (0..3)
                .map(|i| {
                    let c = Vec3::new(next(), next(), next());
                    let mut corner = |c: Vec3, s: f32| c + Vec3::new(next(), next(), next()) * s;
                    ([corner(c, 0.5), corner(c, 0.5), corner(c, 0.5)], i)
                })
                .collect();
            let block = Tri4::new(&tris);
            // Aim at a point near one of the triangles so that many rays hit.
            let [a, b, c] = tris[0].0;
            let target = (a + b + c) * (1.0 / 3.0) + Vec3::new(next(), next(), next()) * 0.3;
            let origin = Vec3::new(next() * 3.0, next() * 3.0, next() * 3.0);
            let r = Ray::new(origin, target - origin);
            let s = Shear4::new(Shear::new(r.origin, r.dir));
            let scalar = tris
                .iter()
                .enumerate()
                .filter_map(|(i, (t, _))| s.scalar.intersect(t, 0.0, 1e30).map(|h| (i, h)))
                .fold(None::<(usize, TriangleHit)>, |best, (i, h)| match best {
                    Some((_, b)) if b.t <= h.t => best,
                    _ => Some((i, h)),
                });
            let simd = block.intersect(&s, 0.0, 1e30);
            assert_eq!(scalar, simd);
            assert_eq!(block.occludes(&s, 0.0, 1e30), simd.is_some());
            hits += simd.is_some() as usize;
        }
        assert!(hits > 300, "only {hits} hits: the test rays are too sparse");
    }
}
