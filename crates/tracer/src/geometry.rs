//! The scene geometry: triangle meshes, their instances, and the two-level BVH that answers
//! closest-hit and occlusion queries.
//!
//! Each mesh gets its own bottom-level BVH over its triangles, stored once however many
//! instances use it; a top-level BVH over the instances' world-space boxes finds the
//! instances a ray may meet, and the ray is moved into each instance's object space (by the
//! inverse transform; `t` is unchanged because the direction is not renormalised) to walk the
//! mesh's tree. Triangles are kept in leaf order, four to a block, so a leaf is one or two
//! contiguous reads.
//!
//! All of it lives in one byte layout (see [`crate::cache`]): a [`Geometry`] is a handle on
//! bytes that it either owns (after [`Geometry::build`]) or borrows (a memory-mapped cache
//! file, a node-shared array). It is `Send + Sync` and cheap to clone.
//!
//! ```
//! use prism_tracer::geometry::{Geometry, Instance};
//! use prism_tracer::math::{Ray, Transform, Vec3};
//! use prism_tracer::mesh::Mesh;
//!
//! // A unit square in the z = 0 plane, used twice: once in place, once moved 5 units up.
//! let square = Mesh::new(
//!     vec![Vec3::new(0.0, 0.0, 0.0), Vec3::new(1.0, 0.0, 0.0),
//!          Vec3::new(1.0, 1.0, 0.0), Vec3::new(0.0, 1.0, 0.0)],
//!     vec![[0, 1, 2], [0, 2, 3]],
//! ).unwrap();
//! let instances = vec![
//!     Instance { mesh: 0, material: 0, transform: Transform::IDENTITY },
//!     Instance { mesh: 0, material: 1, transform: Transform::translate(Vec3::new(0.0, 0.0, 5.0)) },
//! ];
//! let geometry = Geometry::build(vec![square], instances).unwrap();
//! assert_eq!(geometry.triangle_count(), 4);
//!
//! // Looking down from above, the raised copy is hit first.
//! let ray = Ray::new(Vec3::new(0.25, 0.5, 10.0), Vec3::new(0.0, 0.0, -1.0));
//! let hit = geometry.intersect(&ray).unwrap();
//! assert_eq!((hit.instance, hit.material, hit.t), (1, 1, 5.0));
//! assert!(geometry.occluded(&ray));
//!
//! // The same geometry through its byte form, as a cache file or shared array would hold it.
//! let bytes = std::sync::Arc::new(geometry.to_bytes());
//! let copy = Geometry::from_bytes(bytes).unwrap();
//! assert_eq!(copy.intersect(&ray), Some(hit));
//! ```

use crate::bvh::build::{build_binary, collapse, Aabb, BuildParams};
use crate::bvh::{leaf_parts, leaf_ref, traverse, Node4, RayBox, Stack, EMPTY, LEAF};
use crate::cache::{self, ByteSource, Layout, Parts};
use crate::math::{Ray, Transform, Vec3};
use crate::mesh::Mesh;
use crate::triangle::{Shear, Shear4, Tri4, TriangleHit};
use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use thiserror::Error;

/// A placement of a mesh in the world.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable, Serialize, Deserialize)]
#[repr(C)]
pub struct Instance {
    /// Index of the mesh in the list given to [`Geometry::build`].
    pub mesh: u32,
    /// Material index, copied into every [`Hit`] on this instance.
    pub material: u32,
    /// Object to world.
    pub transform: Transform,
}

/// A ray's closest intersection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Ray parameter: the point is `ray.at(t)`.
    pub t: f32,
    /// Barycentric coordinates: the point is `(1 - u - v) * a + u * b + v * c` for the
    /// triangle's corners `[a, b, c]` in mesh order.
    pub u: f32,
    pub v: f32,
    /// Index of the instance hit.
    pub instance: u32,
    /// Index of the triangle in its mesh (`Mesh::indices`).
    pub prim: u32,
    /// The instance's material.
    pub material: u32,
    /// World-space geometric normal, unit length: the mesh's own `(b - a) x (c - a)` carried
    /// by the instance's transform (inverse transpose), so it points out of a closed mesh
    /// whatever the transform, mirrors included; not flipped towards the ray.
    pub normal: Vec3,
    /// World-space first corner `a`, exactly as [`Geometry::world_triangle`] gives it: with
    /// `normal` it fixes the triangle's plane, which shading needs for every hit, without a
    /// second lookup of the mesh.
    pub corner: Vec3,
}

/// Why [`Geometry::build`] refused its input.
#[derive(Debug, Error, PartialEq)]
pub enum GeometryError {
    #[error("instance {instance} refers to mesh {mesh}, but there are only {mesh_count} meshes")]
    MissingMesh {
        instance: usize,
        mesh: u32,
        mesh_count: usize,
    },
    #[error("instance {instance} has a transform that is singular, not finite, or whose stored inverse does not match it")]
    NonInvertibleTransform { instance: usize },
    #[error("mesh {mesh}: {problem}")]
    InvalidMesh { mesh: usize, problem: String },
    #[error("the scene is too large: {0}")]
    TooLarge(String),
}

/// Where one mesh's data sits in the shared arrays.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct MeshRecord {
    /// Root node of the mesh's BVH, or `EMPTY` for a mesh without triangles.
    pub root: u32,
    pub node_start: u32,
    pub node_count: u32,
    pub block_start: u32,
    pub block_count: u32,
    pub vertex_start: u32,
    pub vertex_count: u32,
    pub index_start: u32,
    pub triangle_count: u32,
    pub lo: [f32; 3],
    pub hi: [f32; 3],
}

/// The arrays of a geometry, borrowed from its bytes for the duration of a query.
pub(crate) struct View<'a> {
    pub meshes: &'a [MeshRecord],
    pub instances: &'a [Instance],
    pub nodes: &'a [Node4],
    pub blocks: &'a [Tri4],
    pub positions: &'a [Vec3],
    pub indices: &'a [[u32; 3]],
}

/// What a query needs to know about an instance it enters (the transform by reference: a ray
/// enters several instances, and copying 96 bytes for each showed in profiles).
#[derive(Clone, Copy, Debug)]
struct Placement<'g> {
    instance: usize,
    root: u32,
    material: u32,
    identity: bool,
    transform: &'g Transform,
}

impl<'g> Placement<'g> {
    #[inline(always)]
    fn of(instance: usize, inst: &'g Instance, meshes: &[MeshRecord]) -> Placement<'g> {
        Placement {
            instance,
            root: meshes[inst.mesh as usize].root,
            material: inst.material,
            identity: inst.transform.is_identity(),
            transform: &inst.transform,
        }
    }

    /// The ray in the instance's object space, or `None` if it does not survive the
    /// transform.
    #[inline(always)]
    fn object_ray(&self, ray: &Ray) -> Option<(Vec3, Vec3)> {
        if self.identity {
            return Some((ray.origin, ray.dir));
        }
        let o = self.transform.inverse_point(ray.origin);
        let d = self.transform.inverse_vector(ray.dir);
        (o.is_finite() && d.is_finite() && d.length_squared() > 0.0).then_some((o, d))
    }

    /// The ray set up for this instance's tree: the object-space ray, its box test and (made
    /// at the first leaf) its triangle constants. An instance placed without a transform gets
    /// the world ray's, shared by every such instance and made once per ray; others get new
    /// ones, kept in `own`. `None` if the ray does not survive the transform.
    #[inline(always)]
    fn enter<'s>(
        &self,
        ray: &Ray,
        world: &'s RayBox,
        world_shear: &'s mut Option<Shear4>,
        own: &'s mut Option<(RayBox, Option<Shear4>)>,
    ) -> Option<(Vec3, Vec3, &'s RayBox, &'s mut Option<Shear4>)> {
        let (o, d) = self.object_ray(ray)?;
        if self.identity {
            return Some((o, d, world, world_shear));
        }
        let (rb, shear) = own.insert((RayBox::new(o, d), None));
        Some((o, d, rb, shear))
    }
}

/// Meshes, instances and their two-level BVH; see the [module docs](self).
#[derive(Clone)]
pub struct Geometry {
    pub(crate) src: Arc<dyn ByteSource>,
    pub(crate) layout: Layout,
    /// The one instance of a scene that has only one: queries skip the top level.
    pub(crate) single: Option<usize>,
}

impl std::fmt::Debug for Geometry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.view();
        f.debug_struct("Geometry")
            .field("meshes", &v.meshes.len())
            .field("instances", &v.instances.len())
            .field("world_triangles", &self.layout.triangle_count)
            .field("nodes", &v.nodes.len())
            .field("bytes", &self.src.bytes().len())
            .finish()
    }
}

/// Bottom-level trees: leaves of up to 8 triangles, tested four at a time.
const BLAS_PARAMS: BuildParams = BuildParams {
    max_leaf: 8,
    lanes: 4,
    traversal_cost: 1.0,
};
/// Top-level tree: one instance per leaf.
const TLAS_PARAMS: BuildParams = BuildParams {
    max_leaf: 1,
    lanes: 1,
    traversal_cost: 1.0,
};

/// One mesh's tree before the arrays are joined; indices are local to the mesh.
struct Blas {
    nodes: Vec<Node4>,
    blocks: Vec<Tri4>,
    bounds: Aabb,
}

/// The criterion of `Mesh::new`, which drops these triangles (a mesh built by hand may hold
/// them); tiny and huge triangles are kept as there.
fn is_degenerate(t: &[Vec3; 3]) -> bool {
    !t.iter().all(|p| p.is_finite()) || crate::mesh::has_zero_area(t)
}

fn check_mesh(m: usize, mesh: &Mesh) -> Result<(), GeometryError> {
    let problem = |problem: String| GeometryError::InvalidMesh { mesh: m, problem };
    if mesh.positions.len() > u32::MAX as usize || mesh.indices.len() > u32::MAX as usize {
        return Err(problem("more than 2^32 - 1 vertices or triangles".into()));
    }
    if let Some(i) = mesh.positions.iter().position(|p| !p.is_finite()) {
        return Err(problem(format!("vertex {i} is not finite")));
    }
    let n = mesh.positions.len();
    if let Some(t) = mesh
        .indices
        .iter()
        .position(|t| t.iter().any(|&i| i as usize >= n))
    {
        return Err(problem(format!(
            "triangle {t} refers to a vertex past the {n} there are"
        )));
    }
    Ok(())
}

fn build_blas(m: usize, mesh: &Mesh) -> Result<Blas, GeometryError> {
    // Zero-area triangles can never be hit; they keep their index but get no leaf.
    let kept: Vec<u32> = (0..mesh.indices.len() as u32)
        .into_par_iter()
        .filter(|&t| !is_degenerate(&mesh.triangle(t as usize)))
        .collect();
    if kept.is_empty() {
        return Ok(Blas {
            nodes: Vec::new(),
            blocks: Vec::new(),
            bounds: Aabb::EMPTY,
        });
    }
    let boxes: Vec<Aabb> = kept
        .par_iter()
        .map(|&t| Aabb::of_points(&mesh.triangle(t as usize)))
        .collect();
    let bin = build_binary(&boxes, BLAS_PARAMS);
    // The tree is collapsed first, which only numbers the blocks; the blocks (the bulk of the
    // data, gathered from scattered vertices) are then filled in parallel.
    let mut leaves: Vec<std::ops::Range<usize>> = Vec::new();
    let mut block_count = 0;
    let nodes = collapse(&bin, |range| {
        let first = block_count;
        block_count += range.len().div_ceil(4);
        leaves.push(range);
        leaf_ref(first, block_count - first).ok_or_else(|| {
            GeometryError::TooLarge(format!("mesh {m} needs more than 2^27 triangle blocks"))
        })
    })?;
    let mut blocks = vec![Tri4::new(&[]); block_count];
    let mut rest = &mut blocks[..];
    let mut jobs = Vec::with_capacity(leaves.len());
    for range in leaves {
        let (mine, tail) = rest.split_at_mut(range.len().div_ceil(4));
        jobs.push((mine, range));
        rest = tail;
    }
    jobs.into_par_iter().for_each(|(out, range)| {
        for (block, chunk) in out.iter_mut().zip(bin.order[range].chunks(4)) {
            let mut tris = [([Vec3::ZERO; 3], 0u32); 4];
            for (slot, &p) in tris.iter_mut().zip(chunk) {
                let t = kept[p as usize];
                *slot = (mesh.triangle(t as usize), t);
            }
            *block = Tri4::new(&tris[..chunk.len()]);
        }
    });
    Ok(Blas {
        nodes,
        blocks,
        bounds: bin.nodes[0].bounds,
    })
}

/// A world-space box around an instance: the mesh's top boxes transformed, widened to cover
/// the rounding of the transform (so the top level never loses a ray its mesh would hit).
fn instance_bounds(root: &Node4, t: &Transform) -> Aabb {
    let mut out = Aabb::EMPTY;
    for slot in 0..4 {
        if root.child[slot] == EMPTY {
            continue;
        }
        let (lo, hi) = root.child_bounds(slot);
        let mut b = Aabb::EMPTY;
        for corner in 0..8 {
            let p = Vec3::new(
                if corner & 1 == 0 { lo.x } else { hi.x },
                if corner & 2 == 0 { lo.y } else { hi.y },
                if corner & 4 == 0 { lo.z } else { hi.z },
            );
            b.grow_point(t.point(p));
        }
        let mag = lo.abs().max(hi.abs());
        for a in 0..3 {
            let m = &t.m[a];
            let scale = m[0].abs() * mag.x + m[1].abs() * mag.y + m[2].abs() * mag.z + m[3].abs();
            let pad = scale * 1e-5;
            b.lo[a] -= pad;
            b.hi[a] += pad;
        }
        out.grow(&b);
    }
    out
}

fn transform_ok(t: &Transform) -> bool {
    if Transform::from_rows(t.m).is_none() || t.inv.iter().flatten().any(|v| !v.is_finite()) {
        return false;
    }
    // The stored inverse must be the inverse (fields are public): m * inv = I, to within
    // rounding scaled by the magnitudes involved.
    (0..3).all(|i| {
        (0..3).all(|j| {
            let (mut s, mut mag) = (0.0f64, 0.0f64);
            for k in 0..3 {
                s += t.m[i][k] as f64 * t.inv[k][j] as f64;
                mag += (t.m[i][k] as f64 * t.inv[k][j] as f64).abs();
            }
            let id = if i == j { 1.0 } else { 0.0 };
            (s - id).abs() <= 1e-3 * (1.0 + mag)
        })
    })
}

fn index_u32(n: usize, what: &str) -> Result<u32, GeometryError> {
    u32::try_from(n).map_err(|_| GeometryError::TooLarge(format!("more than 2^32 - 1 {what}")))
}

impl Geometry {
    /// Builds the per-mesh trees (in parallel, binned SAH) and the tree over the instances.
    ///
    /// Zero-area triangles are kept in the meshes (their indices do not move) but can never be
    /// hit. Errors: an instance naming a mesh that does not exist, a transform that is not
    /// invertible, a mesh with non-finite vertices or out-of-range indices, or a scene too
    /// large for 32-bit indices.
    pub fn build(meshes: Vec<Mesh>, instances: Vec<Instance>) -> Result<Geometry, GeometryError> {
        let source_key = Geometry::input_key(&meshes, &instances);
        for (i, inst) in instances.iter().enumerate() {
            if inst.mesh as usize >= meshes.len() {
                return Err(GeometryError::MissingMesh {
                    instance: i,
                    mesh: inst.mesh,
                    mesh_count: meshes.len(),
                });
            }
            if !transform_ok(&inst.transform) {
                return Err(GeometryError::NonInvertibleTransform { instance: i });
            }
        }
        if instances.len() >= crate::bvh::INDEX_MASK as usize {
            return Err(GeometryError::TooLarge("more than 2^27 instances".into()));
        }
        for (m, mesh) in meshes.iter().enumerate() {
            check_mesh(m, mesh)?;
        }
        let blas: Vec<Blas> = meshes
            .par_iter()
            .enumerate()
            .map(|(m, mesh)| build_blas(m, mesh))
            .collect::<Result<_, _>>()?;

        // Join the per-mesh arrays, moving local indices to global ones.
        let total_nodes: usize = blas.iter().map(|b| b.nodes.len()).sum();
        let total_blocks: usize = blas.iter().map(|b| b.blocks.len()).sum();
        let mut nodes = Vec::with_capacity(total_nodes + instances.len());
        let mut blocks = Vec::with_capacity(total_blocks);
        let mut positions = Vec::new();
        let mut indices = Vec::new();
        let mut records = Vec::with_capacity(meshes.len());
        for (mesh, b) in meshes.iter().zip(blas) {
            let block_count = b.blocks.len();
            let node_start = nodes.len();
            let block_start = blocks.len();
            if block_start + b.blocks.len() > crate::bvh::INDEX_MASK as usize {
                return Err(GeometryError::TooLarge(
                    "more than 2^27 triangle blocks in all".into(),
                ));
            }
            nodes.extend(b.nodes.iter().map(|n| {
                let mut n = *n;
                for c in &mut n.child {
                    if *c == EMPTY {
                    } else if *c & LEAF != 0 {
                        *c += block_start as u32;
                    } else {
                        *c += node_start as u32;
                    }
                }
                n
            }));
            if blocks.is_empty() {
                // The first mesh's blocks (often the only mesh) move rather than copy.
                blocks = b.blocks;
            } else {
                blocks.extend_from_slice(&b.blocks);
            }
            records.push(MeshRecord {
                root: if b.nodes.is_empty() {
                    EMPTY
                } else {
                    index_u32(node_start, "nodes")?
                },
                node_start: index_u32(node_start, "nodes")?,
                node_count: index_u32(b.nodes.len(), "nodes")?,
                block_start: block_start as u32,
                block_count: block_count as u32,
                vertex_start: index_u32(positions.len(), "vertices")?,
                vertex_count: mesh.positions.len() as u32,
                index_start: index_u32(indices.len(), "triangles")?,
                triangle_count: mesh.indices.len() as u32,
                lo: b.bounds.lo,
                hi: b.bounds.hi,
            });
            positions.extend_from_slice(&mesh.positions);
            indices.extend_from_slice(&mesh.indices);
        }
        index_u32(positions.len(), "vertices")?;
        index_u32(indices.len(), "triangles")?;

        // The top level, over instances of non-empty meshes.
        let placed: Vec<(u32, Aabb)> = instances
            .iter()
            .enumerate()
            .filter(|(_, inst)| records[inst.mesh as usize].root != EMPTY)
            .map(|(i, inst)| {
                let root = &nodes[records[inst.mesh as usize].root as usize];
                (i as u32, instance_bounds(root, &inst.transform))
            })
            .collect();
        // Finite vertices under a finite transform can still land past f32's range (a scale
        // of 1e30 along one axis), and a cache refuses such bounds as damage.
        if let Some(&(i, _)) = placed
            .iter()
            .find(|(_, b)| !(b.lo_vec().is_finite() && b.hi_vec().is_finite()))
        {
            return Err(GeometryError::TooLarge(format!(
                "instance {i} (of mesh {}): its transform takes the mesh beyond the range of \
                 f32; a scene must lie within {:e} units of the origin: scale it down",
                instances[i as usize].mesh,
                crate::scene::MAX_COORDINATE
            )));
        }
        let tlas_start = index_u32(nodes.len(), "nodes")?;
        let mut tlas_root = EMPTY;
        let mut bounds = Aabb::EMPTY;
        if !placed.is_empty() {
            let boxes: Vec<Aabb> = placed.iter().map(|p| p.1).collect();
            let bin = build_binary(&boxes, TLAS_PARAMS);
            bounds = bin.nodes[0].bounds;
            let top = collapse(&bin, |range| {
                leaf_ref(placed[bin.order[range.start] as usize].0 as usize, 1)
                    .ok_or_else(|| GeometryError::TooLarge("too many instances".into()))
            })?;
            nodes.extend(top.into_iter().map(|mut n| {
                for c in &mut n.child {
                    if *c & LEAF == 0 {
                        *c += tlas_start;
                    }
                }
                n
            }));
            index_u32(nodes.len(), "nodes")?;
            tlas_root = tlas_start;
        }
        let triangle_count = instances
            .iter()
            .map(|i| meshes[i.mesh as usize].indices.len() as u64)
            .sum();
        let bounds = if bounds.is_empty() {
            (Vec3::ZERO, Vec3::ZERO)
        } else {
            (bounds.lo_vec(), bounds.hi_vec())
        };
        let bytes = cache::serialize(&Parts {
            meshes: &records,
            instances: &instances,
            nodes: &nodes,
            blocks: &blocks,
            positions: &positions,
            indices: &indices,
            tlas_root,
            tlas_start,
            triangle_count,
            bounds,
            source_key,
        });
        let src: Arc<dyn ByteSource> = Arc::new(bytes);
        let layout = cache::parse(src.bytes(), "freshly built geometry", false)
            .expect("a freshly serialised geometry parses");
        Ok(Geometry::from_parts(src, layout))
    }

    pub(crate) fn view(&self) -> View<'_> {
        let b = self.src.bytes();
        let r = &self.layout.ranges;
        View {
            meshes: bytemuck::cast_slice(&b[r[0].clone()]),
            instances: bytemuck::cast_slice(&b[r[1].clone()]),
            nodes: bytemuck::cast_slice(&b[r[2].clone()]),
            blocks: bytemuck::cast_slice(&b[r[3].clone()]),
            positions: bytemuck::cast_slice(&b[r[4].clone()]),
            indices: bytemuck::cast_slice(&b[r[5].clone()]),
        }
    }

    /// Wraps validated bytes.
    pub(crate) fn from_parts(src: Arc<dyn ByteSource>, layout: Layout) -> Geometry {
        let mut g = Geometry {
            src,
            layout,
            single: None,
        };
        if g.layout.tlas_root != EMPTY {
            let v = g.view();
            let root = &v.nodes[g.layout.tlas_root as usize];
            let used: Vec<u32> = root.child.iter().copied().filter(|&c| c != EMPTY).collect();
            if let [only] = used[..] {
                if only & LEAF != 0 {
                    let inst = leaf_parts(only).0;
                    g.single = Some(inst);
                }
            }
        }
        g
    }

    /// The closest hit in `[ray.tmin, ray.tmax]`; `None` for a miss or an invalid ray.
    ///
    /// For many rays, [`Geometry::query`] once and ask the [`Query`].
    pub fn intersect(&self, ray: &Ray) -> Option<Hit> {
        self.query().intersect(ray)
    }

    /// Whether anything is hit in `[ray.tmin, ray.tmax]` (stops at the first hit found);
    /// `false` for an invalid ray.
    pub fn occluded(&self, ray: &Ray) -> bool {
        self.query().occluded(ray)
    }

    /// A [`Query`] for tracing many rays against this geometry one after another.
    pub fn query(&self) -> Query<'_> {
        let b = self.src.bytes();
        let r = &self.layout.ranges;
        let meshes: &[MeshRecord] = bytemuck::cast_slice(&b[r[0].clone()]);
        let instances: &[Instance] = bytemuck::cast_slice(&b[r[1].clone()]);
        Query {
            meshes,
            instances,
            nodes: bytemuck::cast_slice(&b[r[2].clone()]),
            blocks: bytemuck::cast_slice(&b[r[3].clone()]),
            tlas_root: self.layout.tlas_root,
            single: self.single.map(|i| Placement::of(i, &instances[i], meshes)),
            stack: Stack::new(),
        }
    }

    /// A 64-bit digest (xxh3) of the meshes and instances that [`Geometry::build`] would
    /// build: it records this key, and a cache file keeps it, so a cache built from other input
    /// (a mesh or a placement edited since) can be told apart from a current one without
    /// rebuilding. Never 0, which stands for "unknown" in files written before keys existed.
    pub fn input_key(meshes: &[Mesh], instances: &[Instance]) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&(meshes.len() as u64).to_le_bytes());
        for mesh in meshes {
            h.update(&(mesh.positions.len() as u64).to_le_bytes());
            h.update(bytemuck::cast_slice(&mesh.positions));
            h.update(&(mesh.indices.len() as u64).to_le_bytes());
            h.update(bytemuck::cast_slice(&mesh.indices));
        }
        h.update(bytemuck::cast_slice(instances));
        h.digest().max(1)
    }

    /// The [`Geometry::input_key`] of what this geometry was built from (0 if unknown: a cache
    /// written before keys existed).
    pub fn source_key(&self) -> u64 {
        self.layout.source_key
    }

    /// The instances, in the order given to [`Geometry::build`].
    pub fn instances(&self) -> &[Instance] {
        self.view().instances
    }

    /// Number of meshes.
    pub fn mesh_count(&self) -> usize {
        self.view().meshes.len()
    }

    /// Number of triangles of mesh `mesh` (including zero-area ones, which are never hit).
    ///
    /// # Panics
    /// If there is no such mesh.
    pub fn mesh_triangle_count(&self, mesh: u32) -> usize {
        self.view().meshes[mesh as usize].triangle_count as usize
    }

    /// The corners of triangle `prim` of instance `instance`, in world space.
    ///
    /// # Panics
    /// If there is no such instance or triangle.
    pub fn world_triangle(&self, instance: u32, prim: u32) -> [Vec3; 3] {
        let v = self.view();
        let inst = &v.instances[instance as usize];
        let r = &v.meshes[inst.mesh as usize];
        assert!(
            prim < r.triangle_count,
            "triangle {prim} of a mesh with {}",
            r.triangle_count
        );
        let tri = v.indices[(r.index_start + prim) as usize];
        tri.map(|i| {
            inst.transform
                .point(v.positions[r.vertex_start as usize + i as usize])
        })
    }

    /// World-space bounds `(min, max)` of everything that can be hit; both zero for an empty
    /// scene.
    pub fn bounds(&self) -> (Vec3, Vec3) {
        self.layout.bounds
    }

    /// World-space bounds `(min, max)` of the meshes as their instances place them, without
    /// the margin [`Geometry::bounds`] adds for rounding (which grows with the distance from
    /// the origin): the scene's own size. Both zero for an empty scene.
    pub fn placed_bounds(&self) -> (Vec3, Vec3) {
        let v = self.view();
        let mut out = Aabb::EMPTY;
        for inst in v.instances {
            let r = &v.meshes[inst.mesh as usize];
            if r.root == EMPTY {
                continue;
            }
            for corner in 0..8 {
                let pick = |axis: usize| {
                    if corner & (1 << axis) == 0 {
                        r.lo[axis]
                    } else {
                        r.hi[axis]
                    }
                };
                out.grow_point(inst.transform.point(Vec3::new(pick(0), pick(1), pick(2))));
            }
        }
        if out.lo_vec().is_finite() && out.hi_vec().is_finite() {
            (out.lo_vec(), out.hi_vec())
        } else {
            (Vec3::ZERO, Vec3::ZERO)
        }
    }

    /// Number of triangles in the world, each instance counting its mesh's triangles.
    pub fn triangle_count(&self) -> usize {
        self.layout.triangle_count as usize
    }
}

/// Rays traced one after another against one [`Geometry`]: its arrays are looked up once and
/// the traversal stack is kept, where [`Geometry::intersect`] and [`Geometry::occluded`] do
/// both for every ray (a tenth of the instructions of a Cornell box render). A render loop
/// makes one per tile; it is cheap to make and not shared between threads.
///
/// ```
/// use prism_tracer::geometry::{Geometry, Instance};
/// use prism_tracer::math::{Ray, Transform, Vec3};
/// use prism_tracer::mesh::Mesh;
///
/// let tri = Mesh::new(
///     vec![Vec3::new(-1.0, -1.0, 0.0), Vec3::new(1.0, -1.0, 0.0), Vec3::new(0.0, 1.0, 0.0)],
///     vec![[0, 1, 2]],
/// ).unwrap();
/// let geometry = Geometry::build(vec![tri], vec![Instance { mesh: 0, material: 0, transform: Transform::IDENTITY }]).unwrap();
/// let mut query = geometry.query();
/// let hits = (0..10)
///     .map(|i| Ray::new(Vec3::new(0.15 * i as f32, 0.0, 1.0), Vec3::new(0.0, 0.0, -1.0)))
///     .filter(|ray| query.intersect(ray).is_some())
///     .count();
/// assert_eq!(hits, 4); // at y = 0 the triangle spans x in [-0.5, 0.5]: 0, 0.15, 0.3, 0.45
/// ```
pub struct Query<'g> {
    meshes: &'g [MeshRecord],
    instances: &'g [Instance],
    nodes: &'g [Node4],
    blocks: &'g [Tri4],
    tlas_root: u32,
    single: Option<Placement<'g>>,
    stack: Stack,
}

impl std::fmt::Debug for Query<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("instances", &self.instances.len())
            .field("nodes", &self.nodes.len())
            .field("blocks", &self.blocks.len())
            .finish_non_exhaustive()
    }
}

impl<'g> Query<'g> {
    /// The closest hit in `[ray.tmin, ray.tmax]`; `None` for a miss or an invalid ray. The same
    /// answer as [`Geometry::intersect`].
    pub fn intersect(&mut self, ray: &Ray) -> Option<Hit> {
        if !ray.is_valid() || self.tlas_root == EMPTY {
            return None;
        }
        let (nodes, blocks) = (self.nodes, self.blocks);
        let stack = &mut self.stack;
        let mut tmax = ray.tmax;
        let tmin = ray.tmin;
        let mut best: Option<(Placement<'g>, usize, usize, TriangleHit)> = None;
        // Shared by the instances placed without a transform (see `Placement::enter`).
        let world = RayBox::new(ray.origin, ray.dir);
        let mut world_shear = None;
        let mut visit = |p: &Placement<'g>, tmax: &mut f32, stack: &mut Stack| {
            let mut own = None;
            let Some((o, d, rb, shear)) = p.enter(ray, &world, &mut world_shear, &mut own) else {
                return;
            };
            traverse(nodes, p.root, rb, tmin, tmax, stack, |leaf, tmax, _| {
                let (first, count) = leaf_parts(leaf);
                let shear = shear.get_or_insert_with(|| Shear4::new(Shear::new(o, d)));
                for (b, block) in blocks[first..first + count].iter().enumerate() {
                    if let Some((lane, h)) = block.intersect(shear, tmin, *tmax) {
                        *tmax = h.t;
                        best = Some((*p, first + b, lane, h));
                    }
                }
                false
            });
        };
        match &self.single {
            Some(p) => visit(p, &mut tmax, stack),
            None => {
                let (instances, meshes) = (self.instances, self.meshes);
                let root = self.tlas_root;
                traverse(
                    nodes,
                    root,
                    &world,
                    tmin,
                    &mut tmax,
                    stack,
                    |leaf, tmax, stack| {
                        let inst = leaf_parts(leaf).0;
                        visit(&Placement::of(inst, &instances[inst], meshes), tmax, stack);
                        false
                    },
                );
            }
        }
        let (p, block, lane, h) = best?;
        let [a, b, c] = blocks[block].corners(lane);
        let n = (b - a).cross(c - a);
        // The inverse transpose keeps the object's outside out, also under a mirroring
        // transform (whose world-space winding is reversed): a glass ball scaled by -1 stays
        // a glass ball, not a bubble.
        let normal = if p.identity { n } else { p.transform.normal(n) };
        Some(Hit {
            t: h.t,
            u: h.u,
            v: h.v,
            instance: p.instance as u32,
            prim: blocks[block].prim[lane],
            material: p.material,
            normal: normal.normalize(),
            corner: p.transform.point(a),
        })
    }

    /// Whether anything is hit in `[ray.tmin, ray.tmax]`; the same answer as
    /// [`Geometry::occluded`].
    pub fn occluded(&mut self, ray: &Ray) -> bool {
        if !ray.is_valid() || self.tlas_root == EMPTY {
            return false;
        }
        let (nodes, blocks) = (self.nodes, self.blocks);
        let stack = &mut self.stack;
        let mut tmax = ray.tmax;
        let tmin = ray.tmin;
        // Shared by the instances placed without a transform (see `Placement::enter`).
        let world = RayBox::new(ray.origin, ray.dir);
        let mut world_shear = None;
        let mut visit = |p: &Placement<'g>, tmax: &mut f32, stack: &mut Stack| {
            let mut own = None;
            let Some((o, d, rb, shear)) = p.enter(ray, &world, &mut world_shear, &mut own) else {
                return false;
            };
            traverse(nodes, p.root, rb, tmin, tmax, stack, |leaf, tmax, _| {
                let (first, count) = leaf_parts(leaf);
                let shear = shear.get_or_insert_with(|| Shear4::new(Shear::new(o, d)));
                (first..first + count).any(|b| blocks[b].occludes(shear, tmin, *tmax))
            })
        };
        match &self.single {
            Some(p) => visit(p, &mut tmax, stack),
            None => {
                let (instances, meshes) = (self.instances, self.meshes);
                let root = self.tlas_root;
                traverse(
                    nodes,
                    root,
                    &world,
                    tmin,
                    &mut tmax,
                    stack,
                    |leaf, tmax, stack| {
                        let inst = leaf_parts(leaf).0;
                        visit(&Placement::of(inst, &instances[inst], meshes), tmax, stack)
                    },
                )
            }
        }
    }
}
