//! Polygons of four or more vertices cut into triangles.
//!
//! Readers first write a polygon as a fan around its first vertex, which is what exporters'
//! quads and convex n-gons need and what most readers do. A fan of a concave polygon covers
//! area outside it, though (an L-shaped face becomes a staircase), and exporters write concave
//! n-gons routinely. [`Cutter::cut`] leaves a convex polygon's fan as it is, so convex meshes
//! load exactly as before, and replaces a concave polygon's fan by an ear clipping of the
//! polygon in its own plane: the same number of triangles, covering the polygon and nothing
//! else. A polygon that has no ears (it crosses itself) keeps its fan and is counted, for a
//! warning.

use crate::math::Vec3;

/// Polygons with more vertices than this are not clipped: the clipping costs up to the cube of
/// the vertex count. A concave one keeps its fan and is counted as not clipped.
const MAX_CLIPPED: usize = 1024;

/// What became of one polygon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cut {
    /// Convex (or a triangle, or flat to a line or a point): the fan is right.
    Fan,
    /// Concave: clipped into ears.
    Ears,
    /// Concave, but crossing itself or too large to clip: the fan is kept.
    Unclipped,
}

/// Cuts polygons; holds the scratch space reused from one polygon to the next.
#[derive(Default)]
pub(super) struct Cutter {
    polygon: Vec<u32>,
    points: Vec<[f64; 2]>,
    left: Vec<usize>,
    /// Concave polygons that kept their fan.
    pub(super) unclipped: usize,
}

impl Cutter {
    /// Takes the fan of one polygon, `fan[k] = [v0, v(k+1), v(k+2)]` (as the readers write it),
    /// and replaces it by an ear clipping of the polygon if the polygon is concave. Every
    /// index in `fan` must be below `positions.len()`.
    pub(super) fn cut(&mut self, positions: &[Vec3], fan: &mut [[u32; 3]]) -> Cut {
        if fan.len() < 2 {
            return Cut::Fan;
        }
        self.polygon.clear();
        self.polygon.extend_from_slice(&fan[0]);
        self.polygon.extend(fan[1..].iter().map(|t| t[2]));
        if !self.project(positions) || self.is_convex() {
            return Cut::Fan;
        }
        if self.polygon.len() <= MAX_CLIPPED && self.clip(fan) {
            return Cut::Ears;
        }
        self.unclipped += 1;
        Cut::Unclipped
    }

    /// Projects the polygon onto the plane of its largest normal component, oriented so that
    /// it runs counter-clockwise there. False when it has no area to orient by.
    fn project(&mut self, positions: &[Vec3]) -> bool {
        let p = |i: u32| {
            let v = positions[i as usize];
            [f64::from(v.x), f64::from(v.y), f64::from(v.z)]
        };
        // Newell's normal: right for non-planar polygons too, as warped quads are.
        let mut normal = [0.0f64; 3];
        let n = self.polygon.len();
        for k in 0..n {
            let (a, b) = (p(self.polygon[k]), p(self.polygon[(k + 1) % n]));
            normal[0] += (a[1] - b[1]) * (a[2] + b[2]);
            normal[1] += (a[2] - b[2]) * (a[0] + b[0]);
            normal[2] += (a[0] - b[0]) * (a[1] + b[1]);
        }
        let axis = (0..3)
            .max_by(|&i, &j| normal[i].abs().total_cmp(&normal[j].abs()))
            .unwrap_or(2);
        let along = normal[axis];
        if along == 0.0 || !along.is_finite() {
            return false;
        }
        // Dropping an axis keeps the right-handed order of the other two: (y, z), (z, x), (x, y).
        let (u, w) = ((axis + 1) % 3, (axis + 2) % 3);
        let flip = if along < 0.0 { -1.0 } else { 1.0 };
        self.points.clear();
        self.points.extend(self.polygon.iter().map(|&i| {
            let q = p(i);
            [q[u], flip * q[w]]
        }));
        true
    }

    /// Whether no corner turns clockwise, within rounding, and the corners turn once around
    /// in all (a pentagram turns the same way at every corner, but twice around).
    fn is_convex(&self) -> bool {
        let pts = &self.points;
        let n = pts.len();
        let tolerance = 1e-12 * extent_squared(pts);
        let corner = |k: usize| (pts[(k + n - 1) % n], pts[k], pts[(k + 1) % n]);
        if !(0..n).all(|k| {
            let (a, b, c) = corner(k);
            turn(a, b, c) >= -tolerance
        }) {
            return false;
        }
        // Four corners that all turn one way cannot turn twice around.
        n < 5 || {
            let total: f64 = (0..n)
                .map(|k| {
                    let (a, b, c) = corner(k);
                    let (u, v) = ([b[0] - a[0], b[1] - a[1]], [c[0] - b[0], c[1] - b[1]]);
                    (u[0] * v[1] - u[1] * v[0]).atan2(u[0] * v[0] + u[1] * v[1])
                })
                .sum();
            (total - std::f64::consts::TAU).abs() < 1.0
        }
    }

    /// Ear clipping: cuts off, one after another, a corner that turns counter-clockwise and
    /// holds no other vertex. False, with `fan` as it was, when no corner is an ear.
    fn clip(&mut self, fan: &mut [[u32; 3]]) -> bool {
        let n = self.polygon.len();
        // A vertex at the same place as the one before it (a ring closed by repeating its
        // first vertex, as GIS and CAD exports write) makes a corner that turns by nothing,
        // which no ear may have: it is left out, and becomes a triangle of no area below.
        let pts = &self.points;
        self.left.clear();
        for k in 0..n {
            if self.left.last().is_none_or(|&l| pts[l] != pts[k]) {
                self.left.push(k);
            }
        }
        while self.left.len() > 1 && pts[self.left[self.left.len() - 1]] == pts[self.left[0]] {
            self.left.pop();
        }
        if self.left.len() < 3 {
            return false;
        }
        let mut written = 0;
        for k in 0..n {
            if self.left.binary_search(&k).is_err() {
                let v = self.polygon[k];
                fan[written] = [v, v, v];
                written += 1;
            }
        }
        let (mut at, mut tried) = (0usize, 0usize);
        while self.left.len() > 3 {
            let m = self.left.len();
            let (a, b, c) = (
                self.left[(at + m - 1) % m],
                self.left[at % m],
                self.left[(at + 1) % m],
            );
            if self.is_ear(a, b, c) {
                fan[written] = [self.polygon[a], self.polygon[b], self.polygon[c]];
                written += 1;
                self.left.remove(at % m);
                // The corner before the ear may have become one: look at it next.
                at = (at + m - 2) % (m - 1);
                tried = 0;
            } else {
                at = (at + 1) % m;
                tried += 1;
                if tried > m {
                    // No ear: the polygon crosses itself. Put the fan back.
                    for (k, t) in fan.iter_mut().enumerate() {
                        *t = [self.polygon[0], self.polygon[k + 1], self.polygon[k + 2]];
                    }
                    return false;
                }
            }
        }
        let l = &self.left;
        fan[written] = [self.polygon[l[0]], self.polygon[l[1]], self.polygon[l[2]]];
        true
    }

    /// Whether the corner b (between a and c) turns counter-clockwise and no other vertex left
    /// lies in the triangle a b c or on its edges.
    fn is_ear(&self, a: usize, b: usize, c: usize) -> bool {
        let pts = &self.points;
        let (pa, pb, pc) = (pts[a], pts[b], pts[c]);
        if turn(pa, pb, pc) <= 0.0 {
            return false;
        }
        self.left.iter().all(|&k| {
            let p = pts[k];
            // A vertex at a corner's place (a polygon that touches itself there) is no obstacle.
            k == a || k == b || k == c || p == pa || p == pb || p == pc || !inside(p, pa, pb, pc)
        })
    }
}

/// Twice the signed area of the triangle a b c: positive when it turns counter-clockwise.
fn turn(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> f64 {
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
}

/// Whether p lies in the counter-clockwise triangle a b c or on its edges.
fn inside(p: [f64; 2], a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> bool {
    turn(a, b, p) >= 0.0 && turn(b, c, p) >= 0.0 && turn(c, a, p) >= 0.0
}

/// The square of the larger side of the points' bounding box.
fn extent_squared(points: &[[f64; 2]]) -> f64 {
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in points {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let side = (hi[0] - lo[0]).max(hi[1] - lo[1]);
    side * side
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan_of(n: u32) -> Vec<[u32; 3]> {
        (1..n - 1).map(|k| [0, k, k + 1]).collect()
    }

    fn area(positions: &[Vec3], tris: &[[u32; 3]]) -> f32 {
        tris.iter()
            .map(|t| {
                let [a, b, c] = t.map(|i| positions[i as usize]);
                (b - a).cross(c - a).length() / 2.0
            })
            .sum()
    }

    /// The L of the review that found the fan's staircase: its first vertex at the inner
    /// corner, so the fan covers 0.4 more than the L's area of 0.28.
    fn l_shape(to_3d: impl Fn(f32, f32) -> Vec3) -> Vec<Vec3> {
        [
            (0.6, 0.2),
            (0.2, 0.2),
            (0.2, 1.0),
            (0.0, 1.0),
            (0.0, 0.0),
            (0.6, 0.0),
        ]
        .into_iter()
        .map(|(x, y)| to_3d(x, y))
        .collect()
    }

    #[test]
    fn a_concave_polygon_is_cut_into_ears_that_cover_it_and_only_it() {
        // In every orientation: each plane, both windings.
        let planes: [fn(f32, f32) -> Vec3; 6] = [
            |x, y| Vec3::new(x, y, 0.0),
            |x, y| Vec3::new(y, x, 0.0),
            |x, y| Vec3::new(0.0, x, y),
            |x, y| Vec3::new(0.0, y, x),
            |x, y| Vec3::new(x, 3.0, y),
            |x, y| Vec3::new(y, -2.0, x),
        ];
        for to_3d in planes {
            let positions = l_shape(to_3d);
            let mut tris = fan_of(6);
            assert!(
                (area(&positions, &tris) - 0.28).abs() > 0.1,
                "the fan is wrong"
            );
            let mut cutter = Cutter::default();
            assert_eq!(cutter.cut(&positions, &mut tris), Cut::Ears);
            assert_eq!(tris.len(), 4);
            assert!((area(&positions, &tris) - 0.28).abs() < 1e-6, "{tris:?}");
            // Every triangle keeps the polygon's winding.
            let normal = (positions[4] - positions[3]).cross(positions[5] - positions[4]);
            for t in &tris {
                let [a, b, c] = t.map(|i| positions[i as usize]);
                assert!((b - a).cross(c - a).dot(normal) > 0.0, "{t:?} flips");
            }
            assert_eq!(cutter.unclipped, 0);
        }
    }

    #[test]
    fn repeated_vertices_do_not_stop_the_clipping() {
        // The L with its ring closed by repeating the first vertex, and one corner twice.
        let l = l_shape(|x, y| Vec3::new(x, y, 0.0));
        let order = [0u32, 1, 2, 3, 3, 4, 5, 0];
        let positions: Vec<Vec3> = order.iter().map(|&i| l[i as usize]).collect();
        let mut tris = fan_of(order.len() as u32);
        let mut cutter = Cutter::default();
        assert_eq!(cutter.cut(&positions, &mut tris), Cut::Ears);
        assert_eq!(tris.len(), 6);
        assert!((area(&positions, &tris) - 0.28).abs() < 1e-6, "{tris:?}");
        // The two left out become triangles of no area (which `Mesh::new` drops).
        let flat = tris.iter().filter(|t| t[0] == t[1] && t[1] == t[2]).count();
        assert_eq!(flat, 2, "{tris:?}");
        assert_eq!(cutter.unclipped, 0);
    }

    #[test]
    fn a_pentagram_is_not_taken_for_a_convex_polygon() {
        // Every corner turns the same way, twice around: its fan would cover the pentagon.
        let star: Vec<Vec3> = (0..5)
            .map(|k| {
                let a = (k as f32) * 4.0 * std::f32::consts::PI / 5.0;
                Vec3::new(a.cos(), a.sin(), 0.0)
            })
            .collect();
        let mut tris = fan_of(5);
        assert_ne!(Cutter::default().cut(&star, &mut tris), Cut::Fan);
        // A regular pentagon, the same corners in order, is convex.
        let pentagon: Vec<Vec3> = [0, 3, 1, 4, 2].iter().map(|&k| star[k]).collect();
        let mut tris = fan_of(5);
        assert_eq!(Cutter::default().cut(&pentagon, &mut tris), Cut::Fan);
    }

    #[test]
    fn a_convex_polygon_keeps_its_fan() {
        let square = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0), (0.0, 1.0)];
        let positions: Vec<Vec3> = square
            .iter()
            .map(|&(x, y)| Vec3::new(x, y, 0.1 * x * y)) // warped a little, as exporters do
            .collect();
        let mut tris = fan_of(5);
        assert_eq!(Cutter::default().cut(&positions, &mut tris), Cut::Fan);
        assert_eq!(tris, fan_of(5));
    }

    #[test]
    fn a_polygon_that_crosses_itself_is_still_cut_into_its_triangles() {
        // Whatever the cut, the triangles are as many as the fan's, of the polygon's vertices.
        let shapes: [&[(f32, f32)]; 2] = [
            &[(0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.5)],
            &[
                (0.0, 0.0),
                (2.0, 0.0),
                (2.0, 2.0),
                (1.0, -1.0),
                (0.0, 2.0),
                (0.5, 1.0),
            ],
        ];
        for shape in shapes {
            let positions: Vec<Vec3> = shape.iter().map(|&(x, y)| Vec3::new(x, y, 0.0)).collect();
            let n = positions.len() as u32;
            let mut tris = fan_of(n);
            Cutter::default().cut(&positions, &mut tris);
            assert_eq!(tris.len(), n as usize - 2);
            assert!(tris.iter().flatten().all(|&i| i < n));
        }
    }

    #[test]
    fn a_concave_polygon_too_large_to_clip_keeps_its_fan_and_is_counted() {
        let positions: Vec<Vec3> = comb(300)
            .iter()
            .map(|&(x, y)| Vec3::new(x, y, 0.0))
            .collect();
        assert!(positions.len() > MAX_CLIPPED);
        let mut cutter = Cutter::default();
        let mut tris = fan_of(positions.len() as u32);
        assert_eq!(cutter.cut(&positions, &mut tris), Cut::Unclipped);
        assert_eq!(tris, fan_of(positions.len() as u32));
        assert_eq!(cutter.unclipped, 1);
    }

    #[test]
    fn flat_polygons_and_triangles_are_left_alone() {
        let line: Vec<Vec3> = (0..4).map(|k| Vec3::new(k as f32, 0.0, 0.0)).collect();
        let mut tris = fan_of(4);
        assert_eq!(Cutter::default().cut(&line, &mut tris), Cut::Fan);
        assert_eq!(tris, fan_of(4));
        let mut one = vec![[0, 1, 2]];
        assert_eq!(Cutter::default().cut(&line, &mut one), Cut::Fan);
    }

    /// A comb of `teeth` concave notches along x: a polygon of 4 × teeth + 2 vertices.
    fn comb(teeth: usize) -> Vec<(f32, f32)> {
        let mut outline = Vec::new();
        for t in 0..teeth {
            let x = t as f32;
            outline.extend([(x, 0.0), (x + 0.5, 0.0), (x + 0.5, 1.0), (x + 0.75, 1.0)]);
        }
        outline.push((teeth as f32, -1.0));
        outline.push((0.0, -1.0));
        outline
    }

    #[test]
    fn a_comb_with_many_teeth_is_clipped() {
        let outline = comb(50);
        // The area by the shoelace formula:
        let shoelace: f32 = (0..outline.len())
            .map(|k| {
                let (a, b) = (outline[k], outline[(k + 1) % outline.len()]);
                a.0 * b.1 - b.0 * a.1
            })
            .sum::<f32>()
            .abs()
            / 2.0;
        let positions: Vec<Vec3> = outline.iter().map(|&(x, y)| Vec3::new(x, y, 0.0)).collect();
        let mut tris = fan_of(positions.len() as u32);
        assert_eq!(Cutter::default().cut(&positions, &mut tris), Cut::Ears);
        assert!((area(&positions, &tris) - shoelace).abs() < 1e-3 * shoelace);
    }
}
