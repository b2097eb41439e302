//! Small f32 vector math: points, directions, colours, rays and affine transforms.
//!
//! Everything is `repr(C)` and `Pod` so that arrays of these types can live in a cache file or a
//! node-shared array and be read back without copying.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};
use std::ops::{Add, AddAssign, Div, Index, Mul, MulAssign, Neg, Sub, SubAssign};

/// A 3-vector of f32: a point, a direction, a normal or an RGB triple.
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable, Serialize, Deserialize)]
#[repr(C)]
pub struct Vec3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

/// Linear RGB radiance or reflectance.
pub type Rgb = Vec3;

impl Vec3 {
    pub const ZERO: Vec3 = Vec3::new(0.0, 0.0, 0.0);
    pub const ONE: Vec3 = Vec3::new(1.0, 1.0, 1.0);

    pub const fn new(x: f32, y: f32, z: f32) -> Self {
        Vec3 { x, y, z }
    }
    pub const fn splat(v: f32) -> Self {
        Vec3::new(v, v, v)
    }
    pub fn from_array(a: [f32; 3]) -> Self {
        Vec3::new(a[0], a[1], a[2])
    }
    pub fn to_array(self) -> [f32; 3] {
        [self.x, self.y, self.z]
    }
    pub fn dot(self, o: Vec3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }
    pub fn cross(self, o: Vec3) -> Vec3 {
        Vec3::new(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }
    pub fn length_squared(self) -> f32 {
        self.dot(self)
    }
    /// The Euclidean length, also where its square would overflow or underflow f32 (the cross
    /// product of two 1e10-unit edges is 1e20 long; its square is past f32's 3.4e38).
    pub fn length(self) -> f32 {
        let l2 = self.length_squared();
        if (f32::MIN_POSITIVE..=f32::MAX).contains(&l2) {
            l2.sqrt()
        } else {
            self.rescaled_length()
        }
    }
    /// The unit vector in this direction; zero (or not finite) gives zero, never NaN.
    pub fn normalize(self) -> Vec3 {
        let l2 = self.length_squared();
        if (f32::MIN_POSITIVE..=f32::MAX).contains(&l2) {
            return self / l2.sqrt();
        }
        // Rare: a vector too long or too short to square. Divide by its largest component
        // first, which is exact enough and brings the square into range.
        let m = self.abs().max_component();
        if m > 0.0 && self.is_finite() {
            let v = self / m;
            v / v.length_squared().sqrt()
        } else {
            Vec3::ZERO
        }
    }
    #[cold]
    fn rescaled_length(self) -> f32 {
        let m = self.abs().max_component();
        if m > 0.0 && m.is_finite() {
            (self / m).length_squared().sqrt() * m
        } else if self.is_finite() {
            0.0
        } else {
            f32::INFINITY
        }
    }
    pub fn min(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x.min(o.x), self.y.min(o.y), self.z.min(o.z))
    }
    pub fn max(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x.max(o.x), self.y.max(o.y), self.z.max(o.z))
    }
    pub fn abs(self) -> Vec3 {
        Vec3::new(self.x.abs(), self.y.abs(), self.z.abs())
    }
    /// Component-wise product (colour times reflectance).
    pub fn mul_elem(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x * o.x, self.y * o.y, self.z * o.z)
    }
    pub fn max_component(self) -> f32 {
        self.x.max(self.y).max(self.z)
    }
    /// Index (0, 1, 2) of the largest component.
    pub fn max_axis(self) -> usize {
        if self.x >= self.y && self.x >= self.z {
            0
        } else if self.y >= self.z {
            1
        } else {
            2
        }
    }
    pub fn is_finite(self) -> bool {
        self.x.is_finite() && self.y.is_finite() && self.z.is_finite()
    }
    /// Rec. 709 luminance of a linear RGB value.
    pub fn luminance(self) -> f32 {
        0.2126 * self.x + 0.7152 * self.y + 0.0722 * self.z
    }
}

impl Index<usize> for Vec3 {
    type Output = f32;
    fn index(&self, i: usize) -> &f32 {
        match i {
            0 => &self.x,
            1 => &self.y,
            _ => &self.z,
        }
    }
}

impl Add for Vec3 {
    type Output = Vec3;
    fn add(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}
impl AddAssign for Vec3 {
    fn add_assign(&mut self, o: Vec3) {
        *self = *self + o;
    }
}
impl Sub for Vec3 {
    type Output = Vec3;
    fn sub(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}
impl SubAssign for Vec3 {
    fn sub_assign(&mut self, o: Vec3) {
        *self = *self - o;
    }
}
impl Mul<f32> for Vec3 {
    type Output = Vec3;
    fn mul(self, s: f32) -> Vec3 {
        Vec3::new(self.x * s, self.y * s, self.z * s)
    }
}
impl Mul<Vec3> for f32 {
    type Output = Vec3;
    fn mul(self, v: Vec3) -> Vec3 {
        v * self
    }
}
impl MulAssign<f32> for Vec3 {
    fn mul_assign(&mut self, s: f32) {
        *self = *self * s;
    }
}
impl Div<f32> for Vec3 {
    type Output = Vec3;
    fn div(self, s: f32) -> Vec3 {
        Vec3::new(self.x / s, self.y / s, self.z / s)
    }
}
impl Neg for Vec3 {
    type Output = Vec3;
    fn neg(self) -> Vec3 {
        Vec3::new(-self.x, -self.y, -self.z)
    }
}

/// A ray `origin + t * dir` for `t` in `[tmin, tmax]`. `dir` need not be normalised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ray {
    pub origin: Vec3,
    pub dir: Vec3,
    pub tmin: f32,
    pub tmax: f32,
}

impl Ray {
    pub fn new(origin: Vec3, dir: Vec3) -> Self {
        Ray {
            origin,
            dir,
            tmin: 0.0,
            tmax: f32::INFINITY,
        }
    }
    pub fn segment(origin: Vec3, dir: Vec3, tmin: f32, tmax: f32) -> Self {
        Ray {
            origin,
            dir,
            tmin,
            tmax,
        }
    }
    pub fn at(&self, t: f32) -> Vec3 {
        self.origin + self.dir * t
    }
    /// A ray a kernel can trace: finite origin, finite non-zero direction, a non-empty interval.
    pub fn is_valid(&self) -> bool {
        self.origin.is_finite()
            && self.dir.is_finite()
            && self.dir.length_squared() > 0.0
            && self.tmin <= self.tmax
            && !self.tmin.is_nan()
            && !self.tmax.is_nan()
    }
}

/// An affine transform stored as a row-major 3x4 matrix together with its inverse.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable, Serialize, Deserialize)]
#[repr(C)]
pub struct Transform {
    /// Rows of the forward matrix `[r0; r1; r2]`, each `[a, b, c, translation]`.
    pub m: [[f32; 4]; 3],
    /// Rows of the inverse matrix.
    pub inv: [[f32; 4]; 3],
}

impl Default for Transform {
    fn default() -> Self {
        Transform::IDENTITY
    }
}

const IDENTITY_ROWS: [[f32; 4]; 3] = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
];

impl Transform {
    pub const IDENTITY: Transform = Transform {
        m: IDENTITY_ROWS,
        inv: IDENTITY_ROWS,
    };

    /// Builds a transform from a forward matrix; `None` if it is singular or not finite.
    pub fn from_rows(m: [[f32; 4]; 3]) -> Option<Transform> {
        let inv = invert_affine(&m)?;
        Some(Transform { m, inv })
    }
    pub fn translate(t: Vec3) -> Transform {
        Transform {
            m: [
                [1.0, 0.0, 0.0, t.x],
                [0.0, 1.0, 0.0, t.y],
                [0.0, 0.0, 1.0, t.z],
            ],
            inv: [
                [1.0, 0.0, 0.0, -t.x],
                [0.0, 1.0, 0.0, -t.y],
                [0.0, 0.0, 1.0, -t.z],
            ],
        }
    }
    /// Non-uniform scale; `None` if a factor is zero or not finite.
    pub fn scale(s: Vec3) -> Option<Transform> {
        Transform::from_rows([
            [s.x, 0.0, 0.0, 0.0],
            [0.0, s.y, 0.0, 0.0],
            [0.0, 0.0, s.z, 0.0],
        ])
    }
    /// Rotation by `degrees` about `axis` (right-handed); `None` for a zero axis.
    pub fn rotate(axis: Vec3, degrees: f32) -> Option<Transform> {
        let a = axis.normalize();
        if a == Vec3::ZERO {
            return None;
        }
        let (s, c) = degrees.to_radians().sin_cos();
        let t = 1.0 - c;
        Transform::from_rows([
            [
                t * a.x * a.x + c,
                t * a.x * a.y - s * a.z,
                t * a.x * a.z + s * a.y,
                0.0,
            ],
            [
                t * a.x * a.y + s * a.z,
                t * a.y * a.y + c,
                t * a.y * a.z - s * a.x,
                0.0,
            ],
            [
                t * a.x * a.z - s * a.y,
                t * a.y * a.z + s * a.x,
                t * a.z * a.z + c,
                0.0,
            ],
        ])
    }
    /// `self` applied after `first`: `self.then_after(first).point(p) == self.point(first.point(p))`.
    pub fn then_after(&self, first: &Transform) -> Transform {
        Transform {
            m: mul_affine(&self.m, &first.m),
            inv: mul_affine(&first.inv, &self.inv),
        }
    }
    pub fn inverse(&self) -> Transform {
        Transform {
            m: self.inv,
            inv: self.m,
        }
    }
    pub fn point(&self, p: Vec3) -> Vec3 {
        apply(&self.m, p, 1.0)
    }
    pub fn vector(&self, v: Vec3) -> Vec3 {
        apply(&self.m, v, 0.0)
    }
    /// Transforms a normal (by the inverse transpose), not normalised.
    pub fn normal(&self, n: Vec3) -> Vec3 {
        let i = &self.inv;
        Vec3::new(
            i[0][0] * n.x + i[1][0] * n.y + i[2][0] * n.z,
            i[0][1] * n.x + i[1][1] * n.y + i[2][1] * n.z,
            i[0][2] * n.x + i[1][2] * n.y + i[2][2] * n.z,
        )
    }
    pub fn inverse_point(&self, p: Vec3) -> Vec3 {
        apply(&self.inv, p, 1.0)
    }
    pub fn inverse_vector(&self, v: Vec3) -> Vec3 {
        apply(&self.inv, v, 0.0)
    }
    pub fn is_identity(&self) -> bool {
        // Every entry compared, no early exit: queries ask this for each instance they enter,
        // and a short-circuit comparison there mispredicted often enough to show in profiles.
        self.m
            .iter()
            .flatten()
            .zip(IDENTITY_ROWS.iter().flatten())
            .fold(true, |same, (a, b)| same & (a == b))
    }
}

fn apply(m: &[[f32; 4]; 3], v: Vec3, w: f32) -> Vec3 {
    Vec3::new(
        m[0][0] * v.x + m[0][1] * v.y + m[0][2] * v.z + m[0][3] * w,
        m[1][0] * v.x + m[1][1] * v.y + m[1][2] * v.z + m[1][3] * w,
        m[2][0] * v.x + m[2][1] * v.y + m[2][2] * v.z + m[2][3] * w,
    )
}

fn mul_affine(a: &[[f32; 4]; 3], b: &[[f32; 4]; 3]) -> [[f32; 4]; 3] {
    let mut r = [[0.0f32; 4]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            let mut s = (0..3).map(|k| a[i][k] * b[k][j]).sum::<f32>();
            if j == 3 {
                s += a[i][3];
            }
            *cell = s;
        }
    }
    r
}

/// Below this [`relative_determinant`] a transform counts as singular: it flattens space (nearly)
/// to a plane, a line or a point, and cannot be inverted.
pub(crate) const MIN_RELATIVE_DETERMINANT: f64 = 1e-30;

/// The determinant of the linear part of `m`, in f64.
fn determinant(m: &[[f32; 4]; 3]) -> f64 {
    let a = |i: usize, j: usize| m[i][j] as f64;
    a(0, 0) * (a(1, 1) * a(2, 2) - a(1, 2) * a(2, 1))
        - a(0, 1) * (a(1, 0) * a(2, 2) - a(1, 2) * a(2, 0))
        + a(0, 2) * (a(1, 0) * a(2, 1) - a(1, 1) * a(2, 0))
}

/// |determinant| of the linear part of `m` over the cube of its longest row's length: 1 for a
/// rotation or a uniform scale of any size, at most 1, and towards 0 as the transform flattens
/// space in some direction relative to the others. Scale-free, unlike the determinant itself,
/// which a uniform scale of 1e-12 (a model in picometres) makes 1e-36. NaN for a zero matrix.
pub(crate) fn relative_determinant(m: &[[f32; 4]; 3]) -> f64 {
    let longest = m
        .iter()
        .map(|r| {
            r[..3]
                .iter()
                .map(|&v| f64::from(v).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .fold(0.0, f64::max);
    determinant(m).abs() / longest.powi(3)
}

fn invert_affine(m: &[[f32; 4]; 3]) -> Option<[[f32; 4]; 3]> {
    // Invert in f64: small scales in scene files otherwise lose digits.
    let a = |i: usize, j: usize| m[i][j] as f64;
    let det = determinant(m);
    let relative = relative_determinant(m);
    let flat = relative.is_nan() || relative < MIN_RELATIVE_DETERMINANT;
    if !det.is_finite() || flat || m.iter().flatten().any(|v| !v.is_finite()) {
        return None;
    }
    let inv_det = 1.0 / det;
    let c =
        |r0: usize, c0: usize, r1: usize, c1: usize| a(r0, c0) * a(r1, c1) - a(r0, c1) * a(r1, c0);
    let lin = [
        [c(1, 1, 2, 2), -c(0, 1, 2, 2), c(0, 1, 1, 2)],
        [-c(1, 0, 2, 2), c(0, 0, 2, 2), -c(0, 0, 1, 2)],
        [c(1, 0, 2, 1), -c(0, 0, 2, 1), c(0, 0, 1, 1)],
    ];
    let mut r = [[0.0f32; 4]; 3];
    for i in 0..3 {
        for j in 0..3 {
            r[i][j] = (lin[i][j] * inv_det) as f32;
        }
        let t: f64 = (0..3).map(|k| lin[i][k] * inv_det * a(k, 3)).sum();
        r[i][3] = (-t) as f32;
    }
    // A factor too small for its inverse to be an f32 (below about 3e-39).
    r.iter().flatten().all(|v| v.is_finite()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Vec3, b: Vec3) -> bool {
        (a - b).length() < 1e-4
    }

    #[test]
    fn transform_round_trips_through_its_inverse() {
        let t = Transform::translate(Vec3::new(1.0, -2.0, 3.0))
            .then_after(&Transform::rotate(Vec3::new(1.0, 1.0, 0.0), 33.0).unwrap())
            .then_after(&Transform::scale(Vec3::new(2.0, 0.5, 3.0)).unwrap());
        let p = Vec3::new(0.3, 0.7, -1.1);
        assert!(close(t.inverse_point(t.point(p)), p));
        let from_rows = Transform::from_rows(t.m).unwrap();
        assert!(close(from_rows.inverse_point(t.point(p)), p));
        // Scale applies first, then rotation, then translation.
        let s = Transform::scale(Vec3::new(2.0, 1.0, 1.0)).unwrap();
        let tr = Transform::translate(Vec3::new(1.0, 0.0, 0.0));
        assert!(close(
            tr.then_after(&s).point(Vec3::new(1.0, 0.0, 0.0)),
            Vec3::new(3.0, 0.0, 0.0)
        ));
    }

    #[test]
    fn normals_stay_perpendicular_under_non_uniform_scale() {
        let t = Transform::scale(Vec3::new(4.0, 1.0, 1.0)).unwrap();
        let tangent = Vec3::new(1.0, 1.0, 0.0);
        let normal = Vec3::new(1.0, -1.0, 0.0);
        assert!(t.normal(normal).dot(t.vector(tangent)).abs() < 1e-5);
    }

    #[test]
    fn lengths_and_directions_survive_squares_out_of_f32_range() {
        for scale in [1e-30f32, 1e-20, 1e-3, 1.0, 1e10, 1e20, 1e30, 3e37] {
            let v = Vec3::new(3.0, -4.0, 0.0) * scale;
            let l = v.length();
            assert!((l / (5.0 * scale) - 1.0).abs() < 1e-6, "{scale}: {l}");
            let n = v.normalize();
            assert!(
                (n - Vec3::new(0.6, -0.8, 0.0)).abs().max_component() < 1e-6,
                "{n:?}"
            );
        }
        assert_eq!(Vec3::new(f32::INFINITY, 0.0, 0.0).normalize(), Vec3::ZERO);
        assert_eq!(Vec3::new(f32::NAN, 1.0, 0.0).normalize(), Vec3::ZERO);
        assert_eq!(Vec3::new(f32::INFINITY, 0.0, 0.0).length(), f32::INFINITY);
        assert_eq!(
            Vec3::new(f32::MIN_POSITIVE / 8.0, 0.0, 0.0).normalize().x,
            1.0
        );
    }

    /// A uniform scale is as far from singular at 1e-12 (a model in picometres) as at 1; what
    /// counts is how far a transform flattens space, relative to its own size.
    #[test]
    fn the_singularity_check_is_relative_to_the_transform_s_size() {
        for s in [1e-30f32, 1e-20, 1e-12, 1e-3, 1.0, 1e12, 1e30] {
            let t = Transform::scale(Vec3::splat(s)).expect("a uniform scale");
            let p = Vec3::new(0.3, -0.7, 1.1);
            assert!(close(t.inverse_point(t.point(p)), p), "{s}");
            let spin = Transform::rotate(Vec3::new(1.0, 2.0, 3.0), 25.0).unwrap();
            let both = spin.then_after(&t).m;
            assert!(Transform::from_rows(both).is_some(), "{s}");
        }
        // At sizes where 1e-31 of the size is still an f32 with an f32 inverse:
        for s in [1e-3f32, 1.0, 1e12, 1e30] {
            // Flattened in one direction by 1e-31 of the others: singular at any size.
            assert!(
                Transform::scale(Vec3::new(s, s, s * 1e-31)).is_none(),
                "{s}"
            );
            assert!(
                Transform::scale(Vec3::new(s, s, s * 1e-29)).is_some(),
                "{s}"
            );
            // Rows nearly parallel (a shear that flattens): singular at any size.
            let shear = [
                [s, 0.0, 0.0, 0.0],
                [s, s * 1e-31, 0.0, 0.0],
                [0.0, 0.0, s, 0.0],
            ];
            assert!(Transform::from_rows(shear).is_none(), "{s}");
        }
        // An inverse out of f32's range.
        assert!(Transform::scale(Vec3::splat(1e-39)).is_none());
        assert!(Transform::scale(Vec3::splat(3e-38)).is_some());
    }

    #[test]
    fn singular_and_degenerate_inputs_are_refused() {
        assert!(Transform::scale(Vec3::new(1.0, 0.0, 1.0)).is_none());
        assert!(Transform::rotate(Vec3::ZERO, 10.0).is_none());
        assert_eq!(Vec3::ZERO.normalize(), Vec3::ZERO);
        assert!(!Ray::new(Vec3::ZERO, Vec3::ZERO).is_valid());
        assert!(!Ray::new(Vec3::ZERO, Vec3::new(f32::NAN, 0.0, 1.0)).is_valid());
        assert!(Ray::new(Vec3::ZERO, Vec3::new(0.0, 0.0, 1.0)).is_valid());
    }
}
