//! A renderable scene: geometry, materials, camera, and the lights derived from them.

use crate::camera::Camera;
use crate::geometry::Geometry;
use crate::material::Material;
use crate::math::{Rgb, Vec3};
use thiserror::Error;

/// A scene that cannot be rendered; says which instance, material or setting is wrong.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum SceneError {
    #[error("instance {instance} uses material {material}, but the scene has {count} materials")]
    MissingMaterial {
        instance: usize,
        material: u32,
        count: usize,
    },
    #[error("material {index}: {reason}")]
    InvalidMaterial { index: usize, reason: String },
    #[error("{0}")]
    InvalidCamera(String),
    #[error("background radiance {0:?} must be finite and >= 0 per channel")]
    InvalidBackground([f32; 3]),
    #[error(
        "the scene reaches {far:e} units from the origin; past {MAX_COORDINATE:e} the \
         single-precision ray-triangle test (products of three coordinates) overflows: scale \
         it down"
    )]
    TooLarge { far: f32 },
}

/// The farthest from the origin a scene (geometry and camera) may reach: the ray-triangle
/// test multiplies three coordinates relative to the ray's origin, and 2e12 cubed is still
/// within f32's 3.4e38 (a model 1e13 across rendered dark).
pub const MAX_COORDINATE: f32 = 1e12;

/// An emissive world-space triangle.
#[derive(Clone, Copy, Debug)]
struct LightTriangle {
    a: Vec3,
    ab: Vec3,
    ac: Vec3,
    normal: Vec3,
    radiance: Rgb,
}

/// A point sampled on a light.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LightSample {
    pub point: Vec3,
    pub normal: Vec3,
    pub radiance: Rgb,
}

/// Geometry, materials and camera, plus the list of emissive triangles for light sampling.
///
/// Build with [`Scene::new`]; the light list is derived there, so change geometry or materials
/// through a new `Scene`, not by editing the fields.
pub struct Scene {
    pub geometry: Geometry,
    pub materials: Vec<Material>,
    pub camera: Camera,
    background: Rgb,
    lights: Vec<LightTriangle>,
    /// Running sums of light triangle areas (f64: many small lights must not vanish).
    light_cdf: Vec<f64>,
    light_area: f64,
    /// The scene's size where it is below 1, else 1: how far rays leave surfaces near zero.
    offset_scale: f32,
}

impl Scene {
    /// Checks that every instance's material exists and every material and the camera are
    /// valid, and lists the emissive triangles (those of instances whose material is
    /// [`Material::Emissive`] with non-zero radiance) for next-event estimation, each to be
    /// chosen in proportion to its area.
    pub fn new(
        geometry: Geometry,
        materials: Vec<Material>,
        camera: Camera,
    ) -> Result<Scene, SceneError> {
        camera.validate().map_err(SceneError::InvalidCamera)?;
        let (lo, hi) = geometry.bounds();
        let far = [lo, hi, camera.position]
            .iter()
            .map(|p| p.abs().max_component())
            .fold(0.0, f32::max);
        if far > MAX_COORDINATE {
            return Err(SceneError::TooLarge { far });
        }
        for (index, m) in materials.iter().enumerate() {
            m.validate()
                .map_err(|reason| SceneError::InvalidMaterial { index, reason })?;
        }
        let mut lights = Vec::new();
        for (i, inst) in geometry.instances().iter().enumerate() {
            let Some(material) = materials.get(inst.material as usize) else {
                return Err(SceneError::MissingMaterial {
                    instance: i,
                    material: inst.material,
                    count: materials.len(),
                });
            };
            let radiance = material.emission();
            if radiance.max_component() <= 0.0 {
                continue;
            }
            for prim in 0..geometry.mesh_triangle_count(inst.mesh) {
                let [a, b, c] = geometry.world_triangle(i as u32, prim as u32);
                let n = (b - a).cross(c - a);
                // `length` and `normalize` hold for edges whose cross product cannot be
                // squared in f32 (a light 1e10 units wide), so such a light still shines.
                if n.is_finite() && n.length() > 0.0 {
                    lights.push(LightTriangle {
                        a,
                        ab: b - a,
                        ac: c - a,
                        normal: n.normalize(),
                        radiance,
                    });
                }
            }
        }
        let mut total = 0.0f64;
        let light_cdf = lights
            .iter()
            .map(|l| {
                total += 0.5 * f64::from(l.ab.cross(l.ac).length());
                total
            })
            .collect();
        let extent = geometry_extent(&geometry);
        Ok(Scene {
            geometry,
            materials,
            camera,
            background: Rgb::ZERO,
            lights,
            light_cdf,
            light_area: total,
            offset_scale: if extent > 0.0 { extent.min(1.0) } else { 1.0 },
        })
    }

    /// How far a ray leaves the surface it starts on, near the origin, relative to a scene of
    /// unit size: the scene's size where it is smaller (a model in metres of a part a few
    /// micrometres wide), else 1.
    pub(crate) fn offset_scale(&self) -> f32 {
        self.offset_scale
    }

    /// Why this scene may not render as it should, if it may: single-precision coordinates
    /// far from the origin, relative to its size, are too coarse for its surfaces (a
    /// building's model at its map coordinates, say).
    pub fn precision_warning(&self) -> Option<String> {
        // The placed meshes, not the hit bounds: those keep a margin that grows with `far`.
        let (lo, hi) = self.geometry.placed_bounds();
        let extent = (hi - lo).max_component();
        let far = lo.abs().max_component().max(hi.abs().max_component());
        if extent > 0.0 && far > 1e4 * extent {
            // The spacing of f32 values at `far`, as far as the scene reaches.
            let step = far.next_up() - far;
            Some(format!(
                "the scene (lights included) is {extent} units across but lies {far} units from \
                 the origin, where coordinates come in steps of about {step:.2e} (single \
                 precision): its surfaces may render dark or faceted; move it near the origin"
            ))
        } else {
            None
        }
    }

    /// Sets a uniform environment radiance seen by rays that leave the scene (default black).
    /// It is not sampled directly, so it suits soft fill light and furnace tests, not a sky
    /// with a sun.
    pub fn with_background(mut self, radiance: Rgb) -> Result<Scene, SceneError> {
        if !(radiance.is_finite() && radiance.max(Rgb::ZERO) == radiance) {
            return Err(SceneError::InvalidBackground(radiance.to_array()));
        }
        self.background = radiance;
        Ok(self)
    }

    pub fn background(&self) -> Rgb {
        self.background
    }

    /// A key of everything in the scene that decides what is rendered: the geometry's input
    /// ([`Geometry::source_key`]), the materials, the camera and the background. With the same
    /// render settings, scenes of equal keys render the same bits; a resumed render
    /// ([`crate::checkpoint`]) checks it.
    pub fn content_key(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&self.geometry.source_key().to_le_bytes());
        // `Debug` prints floats in their shortest exact form: other values, other text.
        h.update(
            format!(
                "{:?}|{:?}|{:?}",
                self.materials, self.camera, self.background
            )
            .as_bytes(),
        );
        h.digest()
    }

    /// Number of emissive triangles sampled as lights.
    pub fn light_count(&self) -> usize {
        self.lights.len()
    }

    /// Total area of the emissive triangles.
    pub fn light_area(&self) -> f64 {
        self.light_area
    }

    /// A point on the lights, uniform in area (density `1 / light_area` per unit area);
    /// `None` without lights.
    pub(crate) fn sample_light(&self, u_pick: f64, u1: f32, u2: f32) -> Option<LightSample> {
        if self.lights.is_empty() || self.light_area <= 0.0 {
            return None;
        }
        let target = u_pick * self.light_area;
        let i = self
            .light_cdf
            .partition_point(|&c| c <= target)
            .min(self.lights.len() - 1);
        let l = &self.lights[i];
        // Uniform on the triangle by the square-root warp.
        let s = u1.sqrt();
        let (b1, b2) = (s * (1.0 - u2), s * u2);
        Some(LightSample {
            point: l.a + l.ab * b1 + l.ac * b2,
            normal: l.normal,
            radiance: l.radiance,
        })
    }
}

/// The largest side of the geometry's bounds (0 for an empty or unbounded one).
fn geometry_extent(geometry: &Geometry) -> f32 {
    let (lo, hi) = geometry.bounds();
    let extent = (hi - lo).max_component();
    if extent.is_finite() {
        extent.max(0.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cornell::cornell_box;
    use crate::geometry::Instance;
    use crate::math::Transform;
    use crate::mesh::Mesh;
    use std::sync::Arc;

    #[test]
    fn the_content_key_follows_every_part_of_the_scene_and_survives_sharing() {
        let base = cornell_box();
        let key = base.content_key();
        assert_eq!(cornell_box().content_key(), key);
        // The geometry as another rank sees it: the same bytes, read in place.
        let shared = Geometry::from_bytes(Arc::new(base.geometry.to_bytes())).unwrap();
        let same = Scene::new(shared, base.materials.clone(), base.camera).unwrap();
        assert_eq!(same.content_key(), key);

        let mut camera = base.camera;
        camera.vfov_degrees += 1e-4;
        let moved = Scene::new(base.geometry.clone(), base.materials.clone(), camera).unwrap();
        let mut materials = base.materials.clone();
        materials[0] = Material::Lambertian {
            albedo: Rgb::new(0.5, 0.5, 0.5),
        };
        let recoloured = Scene::new(base.geometry.clone(), materials, base.camera).unwrap();
        let lit = cornell_box()
            .with_background(Rgb::new(0.0, 0.0, 1e-3))
            .unwrap();
        for (what, other) in [
            ("camera", &moved),
            ("material", &recoloured),
            ("background", &lit),
        ] {
            assert_ne!(other.content_key(), key, "a changed {what} kept the key");
        }
        // A vertex moved by a thousandth.
        let quad = |dx: f32| {
            let geometry = one_quad([
                Vec3::new(dx, 0.0, 0.0),
                Vec3::new(1.0, 0.0, 0.0),
                Vec3::new(1.0, 1.0, 0.0),
                Vec3::new(0.0, 1.0, 0.0),
            ]);
            Scene::new(geometry, base.materials.clone(), base.camera)
                .unwrap()
                .content_key()
        };
        assert_eq!(quad(0.0), quad(0.0));
        assert_ne!(quad(0.0), quad(1e-3), "a changed geometry kept the key");
    }

    /// A geometry of one quad (two triangles) with these corners, in order, material 0.
    fn one_quad(corners: [Vec3; 4]) -> Geometry {
        let mesh = Mesh::new(corners.to_vec(), vec![[0, 1, 2], [0, 2, 3]]).unwrap();
        let instance = Instance {
            mesh: 0,
            material: 0,
            transform: Transform::IDENTITY,
        };
        Geometry::build(vec![mesh], vec![instance]).unwrap()
    }

    /// A square light of side `size`, centred on the origin, facing +z.
    fn lit_square(size: f32) -> Result<Scene, SceneError> {
        let h = size / 2.0;
        let geometry = one_quad([
            Vec3::new(-h, -h, 0.0),
            Vec3::new(h, -h, 0.0),
            Vec3::new(h, h, 0.0),
            Vec3::new(-h, h, 0.0),
        ]);
        let light = Material::Emissive {
            radiance: Rgb::new(1.0, 1.0, 1.0),
        };
        let mut camera = cornell_box().camera;
        camera.position = Vec3::new(0.0, 0.0, 2.0 * size);
        camera.look_at = Vec3::ZERO;
        camera.up = Vec3::new(0.0, 1.0, 0.0);
        Scene::new(geometry, vec![light], camera)
    }

    #[test]
    fn lights_too_wide_to_square_their_normal_still_shine() {
        // At 1e10 units a side, the cross product of two edges (1e20) cannot be squared in
        // f32; the light must keep its area and a unit normal all the same.
        for size in [1.0f32, 1e10, 4e11] {
            let scene = lit_square(size).unwrap();
            let area = f64::from(size) * f64::from(size);
            assert!((scene.light_area() / area - 1.0).abs() < 1e-5, "{size}");
            let s = scene.sample_light(0.3, 0.2, 0.7).unwrap();
            assert!(
                (s.normal.z.abs() - 1.0).abs() < 1e-6,
                "{size}: {:?}",
                s.normal
            );
        }
    }

    #[test]
    fn a_scene_past_what_f32_can_multiply_is_refused_with_its_size() {
        let err = lit_square(1e12).err().expect("refused").to_string();
        // The camera, at twice the side, is the farthest.
        assert!(
            err.contains("2e12") && err.contains("scale it down"),
            "{err}"
        );
    }
}
