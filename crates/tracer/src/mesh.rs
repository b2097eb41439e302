//! Triangle meshes: f32 positions and u32 index triples, validated on construction.

use crate::math::Vec3;
use thiserror::Error;

/// A mesh that failed validation; says which vertex or triangle was wrong.
#[derive(Debug, Error, PartialEq)]
pub enum MeshError {
    #[error("vertex {index} has a non-finite coordinate ({value:?})")]
    NonFiniteVertex { index: usize, value: [f32; 3] },
    #[error(
        "triangle {triangle} refers to vertex {vertex}, but the mesh has {vertex_count} vertices"
    )]
    IndexOutOfRange {
        triangle: usize,
        vertex: u32,
        vertex_count: usize,
    },
    #[error("the mesh has {0} vertices; at most 2^32 - 1 are supported")]
    TooManyVertices(usize),
}

/// An indexed triangle mesh in object space.
///
/// Degenerate (zero-area) triangles are dropped on construction and counted in
/// [`Mesh::dropped_degenerate`], so every stored triangle has a well-defined normal.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mesh {
    pub positions: Vec<Vec3>,
    pub indices: Vec<[u32; 3]>,
    dropped_degenerate: usize,
}

impl Mesh {
    /// Validates and builds a mesh: every coordinate finite, every index in range. Zero-area
    /// triangles are dropped (see [`Mesh::dropped_degenerate`]).
    pub fn new(positions: Vec<Vec3>, indices: Vec<[u32; 3]>) -> Result<Mesh, MeshError> {
        if positions.len() > u32::MAX as usize {
            return Err(MeshError::TooManyVertices(positions.len()));
        }
        if let Some((index, p)) = positions.iter().enumerate().find(|(_, p)| !p.is_finite()) {
            return Err(MeshError::NonFiniteVertex {
                index,
                value: p.to_array(),
            });
        }
        for (triangle, tri) in indices.iter().enumerate() {
            if let Some(&vertex) = tri.iter().find(|&&v| v as usize >= positions.len()) {
                return Err(MeshError::IndexOutOfRange {
                    triangle,
                    vertex,
                    vertex_count: positions.len(),
                });
            }
        }
        let before = indices.len();
        let indices: Vec<[u32; 3]> = indices
            .into_iter()
            .filter(|t| !is_degenerate(&positions, t))
            .collect();
        let dropped_degenerate = before - indices.len();
        Ok(Mesh {
            positions,
            indices,
            dropped_degenerate,
        })
    }

    /// Number of zero-area triangles dropped by [`Mesh::new`]; readers report it as a warning.
    pub fn dropped_degenerate(&self) -> usize {
        self.dropped_degenerate
    }

    pub fn triangle_count(&self) -> usize {
        self.indices.len()
    }

    /// The three corners of triangle `i`.
    pub fn triangle(&self, i: usize) -> [Vec3; 3] {
        let [a, b, c] = self.indices[i];
        [
            self.positions[a as usize],
            self.positions[b as usize],
            self.positions[c as usize],
        ]
    }

    /// Axis-aligned bounds `(min, max)`; `None` for a mesh without triangles.
    pub fn bounds(&self) -> Option<(Vec3, Vec3)> {
        let mut it = self
            .indices
            .iter()
            .flatten()
            .map(|&v| self.positions[v as usize]);
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), p| (lo.min(p), hi.max(p))))
    }
}

/// A closed sphere of radius 1: the icosahedron with each face split into `4^subdivisions`
/// triangles, vertices shared, consistently wound (normals outward).
pub fn icosphere(subdivisions: u32) -> Mesh {
    let t = (1.0 + 5f32.sqrt()) / 2.0;
    let mut positions: Vec<Vec3> = [
        (-1.0, t, 0.0),
        (1.0, t, 0.0),
        (-1.0, -t, 0.0),
        (1.0, -t, 0.0),
        (0.0, -1.0, t),
        (0.0, 1.0, t),
        (0.0, -1.0, -t),
        (0.0, 1.0, -t),
        (t, 0.0, -1.0),
        (t, 0.0, 1.0),
        (-t, 0.0, -1.0),
        (-t, 0.0, 1.0),
    ]
    .iter()
    .map(|&(x, y, z)| Vec3::new(x, y, z).normalize())
    .collect();
    let mut faces: Vec<[u32; 3]> = vec![
        [0, 11, 5],
        [0, 5, 1],
        [0, 1, 7],
        [0, 7, 10],
        [0, 10, 11],
        [1, 5, 9],
        [5, 11, 4],
        [11, 10, 2],
        [10, 7, 6],
        [7, 1, 8],
        [3, 9, 4],
        [3, 4, 2],
        [3, 2, 6],
        [3, 6, 8],
        [3, 8, 9],
        [4, 9, 5],
        [2, 4, 11],
        [6, 2, 10],
        [8, 6, 7],
        [9, 8, 1],
    ];
    for _ in 0..subdivisions {
        let mut midpoints = std::collections::HashMap::new();
        let mut mid = |a: u32, b: u32, positions: &mut Vec<Vec3>| -> u32 {
            *midpoints.entry((a.min(b), a.max(b))).or_insert_with(|| {
                let p = ((positions[a as usize] + positions[b as usize]) * 0.5).normalize();
                positions.push(p);
                positions.len() as u32 - 1
            })
        };
        let mut next = Vec::with_capacity(faces.len() * 4);
        for [a, b, c] in faces {
            let ab = mid(a, b, &mut positions);
            let bc = mid(b, c, &mut positions);
            let ca = mid(c, a, &mut positions);
            next.extend_from_slice(&[[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]);
        }
        faces = next;
    }
    Mesh::new(positions, faces).expect("the icosphere is a valid mesh")
}

/// Whether the triangle has no area: repeated or collinear corners. Computed in f64, where
/// products of f32 coordinates neither underflow nor overflow, so a triangle 1e-20 or 1e30
/// across counts as a triangle like any other; only an area of exactly zero is degenerate.
fn is_degenerate(positions: &[Vec3], t: &[u32; 3]) -> bool {
    has_zero_area(&t.map(|v| positions[v as usize]))
}

/// [`is_degenerate`] for corners given as they are (the geometry's build checks the same way
/// the meshes it is handed, whose fields are public). Finite corners expected.
pub(crate) fn has_zero_area(corners: &[Vec3; 3]) -> bool {
    let [a, b, c] = corners.map(|p| p.to_array().map(f64::from));
    let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
    let n = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    // Positions are finite (checked first), so `n` is too.
    n == [0.0; 3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_meshes_are_errors_that_say_where() {
        let p = vec![
            Vec3::ZERO,
            Vec3::new(1.0, 0.0, 0.0),
            Vec3::new(0.0, 1.0, 0.0),
        ];
        let err = Mesh::new(p.clone(), vec![[0, 1, 3]]).unwrap_err();
        assert_eq!(
            err,
            MeshError::IndexOutOfRange {
                triangle: 0,
                vertex: 3,
                vertex_count: 3
            }
        );
        let mut q = p.clone();
        q[1].y = f32::NAN;
        assert!(matches!(
            Mesh::new(q, vec![[0, 1, 2]]),
            Err(MeshError::NonFiniteVertex { index: 1, .. })
        ));
    }

    #[test]
    fn degenerate_triangles_are_dropped_and_counted() {
        let p = vec![
            Vec3::ZERO,
            Vec3::new(1.0, 0.0, 0.0),
            Vec3::new(0.0, 1.0, 0.0),
            Vec3::new(2.0, 0.0, 0.0),
        ];
        let m = Mesh::new(p, vec![[0, 1, 2], [0, 1, 3], [2, 2, 1]]).unwrap();
        assert_eq!(m.triangle_count(), 1);
        assert_eq!(m.dropped_degenerate(), 2);
        assert_eq!(m.bounds(), Some((Vec3::ZERO, Vec3::new(1.0, 1.0, 0.0))));
    }

    #[test]
    fn only_zero_area_counts_as_degenerate_at_any_scale() {
        for s in [1e-20f32, 1e-12, 1.0, 1e30, 3e38] {
            let p = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (0.5, 0.0)]
                .map(|(x, y)| Vec3::new(x * s, y * s, 0.0))
                .to_vec();
            // A right triangle, a collinear one and a repeated corner.
            let m = Mesh::new(p, vec![[0, 1, 2], [0, 3, 1], [1, 1, 2]]).unwrap();
            assert_eq!(m.indices, vec![[0, 1, 2]], "scale {s}");
            assert_eq!(m.dropped_degenerate(), 2, "scale {s}");
        }
        // A sliver far thinner than its length has area: it stays.
        let p = vec![
            Vec3::ZERO,
            Vec3::new(1.0, 0.0, 0.0),
            Vec3::new(0.5, 1e-30, 0.0),
        ];
        assert_eq!(Mesh::new(p, vec![[0, 1, 2]]).unwrap().triangle_count(), 1);
    }
}
