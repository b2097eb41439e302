//! Scene files: a TOML description of camera, materials, meshes (files or built-in shapes),
//! instances with transforms and area lights, turned into a [`Scene`].
//!
//! Every table refuses unknown keys, and every error names the scene file, the line and the
//! key's path (`instances[2].transform.scale`), so a typo is found at once. Mesh file paths
//! are relative to the directory the scene file is named in (a symbolic link's own directory,
//! not its target's). A mesh file can also be rendered on its own: [`load_scene`]
//! frames it with a default camera and light.
//!
//! The format, by example (see `crates/tracer/scenes/example.toml` for a complete scene):
//!
//! ```toml
//! background = [0.02, 0.02, 0.03]      # optional radiance of rays that leave the scene
//!
//! [camera]
//! position = [0, 1.5, 5]
//! look_at = [0, 0.5, 0]
//! up = [0, 1, 0]                        # optional, default +y
//! vfov_degrees = 40
//!
//! [[materials]]
//! name = "white"
//! type = "lambertian"                   # lambertian | emissive | mirror | dielectric
//! albedo = [0.75, 0.75, 0.75]           # emissive: radiance, mirror: reflectance, dielectric: ior
//!
//! [[meshes]]
//! name = "ball"
//! shape = "sphere"                      # quad | box | sphere (unit size), or file = "x.obj"
//! subdivisions = 3                      # sphere only (icosphere level, 0-7, default 3)
//!
//! [[instances]]
//! mesh = "ball"
//! material = "white"
//! transform = { scale = 0.5, rotate = [{ axis = [0, 1, 0], degrees = 30 }], translate = [0, 0.5, 0] }
//! # or transform = { matrix = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]] }
//!
//! [[lights]]                            # an emissive parallelogram, lit on both sides
//! corner = [-0.5, 3, -0.5]
//! edge_a = [1, 0, 0]
//! edge_b = [0, 0, 1]
//! radiance = [12, 12, 12]
//! ```
//!
//! Transforms apply scale first, then the rotations in order, then the translation.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use prism_tracer::scene_file::scene_from_toml_str;
//! let text = r#"
//!     [camera]
//!     position = [0, 0, 5]
//!     look_at = [0, 0, 0]
//!     vfov_degrees = 40
//!     [[materials]]
//!     name = "grey"
//!     type = "lambertian"
//!     albedo = [0.5, 0.5, 0.5]
//!     [[meshes]]
//!     name = "cube"
//!     shape = "box"
//!     [[instances]]
//!     mesh = "cube"
//!     material = "grey"
//!     [[lights]]
//!     corner = [-1, 2, -1]
//!     edge_a = [2, 0, 0]
//!     edge_b = [0, 0, 2]
//!     radiance = [5, 5, 5]
//! "#;
//! let scene = scene_from_toml_str(text, std::path::Path::new("."))?;
//! assert_eq!(scene.light_count(), 2);
//!
//! let typo = text.replace("albedo", "albdeo");
//! let Err(err) = scene_from_toml_str(&typo, std::path::Path::new(".")) else {
//!     panic!("a misspelt key must be refused");
//! };
//! assert!(err.to_string().contains("materials[0]"), "{err}");
//! assert!(err.to_string().contains("albdeo"), "{err}");
//! # Ok(())
//! # }
//! ```

use crate::camera::Camera;
use crate::geometry::{Geometry, Instance};
use crate::io::{self, LoadError, MeshFormat};
use crate::material::Material;
use crate::math::{relative_determinant, Rgb, Transform, Vec3, MIN_RELATIVE_DETERMINANT};
use crate::mesh::Mesh;
use crate::scene::Scene;
use rayon::prelude::*;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;
use toml::Spanned;

/// A scene file that could not be turned into a scene. `Display` is one line starting with the
/// scene file's path, then the line and key path where known.
#[derive(Debug, Error)]
pub enum SceneFileError {
    /// The scene file could not be read; `message` says why ("cannot read: ...", or what the
    /// path is instead of a regular file).
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error(
        "{}: not a scene: expected a .toml scene file or a .obj, .ply or .stl mesh",
        path.display()
    )]
    UnsupportedFile { path: PathBuf },
    /// Bad TOML, an unknown or missing key, a wrong type or an invalid value.
    #[error("{}: {}{}{message}", path.display(), at_line(*line), keyed(key))]
    Invalid {
        path: PathBuf,
        /// Where the problem is: `instances[2].transform.scale`; empty for the whole file.
        key: String,
        line: Option<usize>,
        message: String,
    },
    /// A mesh file named by the scene could not be read.
    #[error("{}: {}{}{source}", path.display(), at_line(*line), keyed(key))]
    Mesh {
        path: PathBuf,
        key: String,
        line: Option<usize>,
        source: Box<LoadError>,
    },
    /// The mesh file given to [`load_scene`] in place of a scene file could not be read.
    #[error(transparent)]
    MeshFile(Box<LoadError>),
    /// The acceleration structure or the scene refused the description.
    #[error("{}: {message}", path.display())]
    Build { path: PathBuf, message: String },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

fn keyed(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

/// Everything a scene file describes, before the acceleration structure is built. Useful to
/// inspect or adjust a scene (or to build it more than once).
#[derive(Clone, Debug)]
pub struct SceneDescription {
    pub camera: Camera,
    pub materials: Vec<Material>,
    pub meshes: Vec<Mesh>,
    pub instances: Vec<Instance>,
    pub background: Rgb,
    /// Non-fatal findings (dropped degenerate triangles, unused meshes, ...), each naming
    /// the file it concerns.
    pub warnings: Vec<String>,
    /// The mesh files the scene is read from (for a lone mesh file, that file), so that a
    /// program writing files beside them can refuse to overwrite one.
    pub mesh_files: Vec<std::path::PathBuf>,
}

impl SceneDescription {
    /// Builds the acceleration structure and the scene; `origin` names the source in errors.
    pub fn build(self, origin: &Path) -> Result<Scene, SceneFileError> {
        let build = |e: &dyn fmt::Display| SceneFileError::Build {
            path: origin.to_path_buf(),
            message: e.to_string(),
        };
        let geometry = Geometry::build(self.meshes, self.instances).map_err(|e| build(&e))?;
        Scene::new(geometry, self.materials, self.camera)
            .and_then(|s| s.with_background(self.background))
            .map_err(|e| build(&e))
    }
}

/// Loads a scene: a `.toml` scene file, or a `.obj`/`.ply`/`.stl` mesh framed for an image of
/// the given aspect ratio (width / height) by a default camera and area light, with a neutral
/// grey Lambertian material and no ground. Warnings are printed to stderr; see
/// [`load_scene_with_report`] to receive them instead.
pub fn load_scene(path: &Path, aspect_ratio: f32) -> Result<Scene, SceneFileError> {
    let (scene, warnings) = load_scene_with_report(path, aspect_ratio)?;
    io::print_warnings(&warnings);
    Ok(scene)
}

/// [`load_scene`], returning the warnings instead of printing them.
pub fn load_scene_with_report(
    path: &Path,
    aspect_ratio: f32,
) -> Result<(Scene, Vec<String>), SceneFileError> {
    let mut description = read_scene_description(path, aspect_ratio)?;
    let warnings = std::mem::take(&mut description.warnings);
    Ok((description.build(path)?, warnings))
}

/// Reads a scene file or frames a mesh file (see [`load_scene`]) without building it.
pub fn read_scene_description(
    path: &Path,
    aspect_ratio: f32,
) -> Result<SceneDescription, SceneFileError> {
    let is_toml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    if is_toml {
        // A regular file only: a FIFO would hang the render, /dev/zero fill its memory.
        let bytes = crate::regular::read(path).map_err(|e| SceneFileError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let offset = e.utf8_error().valid_up_to();
            SceneFileError::Invalid {
                path: path.to_path_buf(),
                key: String::new(),
                line: Some(line_of_bytes(e.as_bytes(), offset)),
                message: format!("byte offset {offset}: the file is not UTF-8 text"),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        parse_scene_description(&text, base, path)
    } else if MeshFormat::from_path(path).is_some() {
        let (mesh, warnings) =
            io::load_mesh_with_report(path).map_err(|e| SceneFileError::MeshFile(Box::new(e)))?;
        let mut d = mesh_scene_description(mesh, aspect_ratio).map_err(|message| {
            SceneFileError::Invalid {
                path: path.to_path_buf(),
                key: String::new(),
                line: None,
                message,
            }
        })?;
        d.warnings = warnings;
        d.mesh_files = vec![path.to_path_buf()];
        Ok(d)
    } else {
        Err(SceneFileError::UnsupportedFile {
            path: path.to_path_buf(),
        })
    }
}

/// Parses scene TOML held in memory; mesh files are found relative to `base_dir`. Errors name
/// the text as `<string>`.
pub fn scene_from_toml_str(text: &str, base_dir: &Path) -> Result<Scene, SceneFileError> {
    let origin = Path::new("<string>");
    let mut description = parse_scene_description(text, base_dir, origin)?;
    io::print_warnings(&std::mem::take(&mut description.warnings));
    description.build(origin)
}

/// Parses scene TOML into a [`SceneDescription`]: mesh files are read relative to `base_dir`,
/// and `origin` (usually the scene file's path) names the text in errors.
pub fn parse_scene_description(
    text: &str,
    base_dir: &Path,
    origin: &Path,
) -> Result<SceneDescription, SceneFileError> {
    let file = parse_toml(text, origin)?;
    Resolver {
        text,
        origin,
        base_dir,
    }
    .resolve(file)
}

/// A scene for a single mesh: a grey Lambertian surface seen from the front, above and to
/// the right (y up) at a distance that fits its bounding sphere into the image, lit by a
/// square area light above it, with a faint background so unlit sides keep their outline.
/// Errors if `aspect_ratio` is not a positive finite number or the mesh is empty.
pub fn mesh_scene_description(mesh: Mesh, aspect_ratio: f32) -> Result<SceneDescription, String> {
    if !(aspect_ratio.is_finite() && aspect_ratio > 0.0) {
        return Err(format!(
            "aspect ratio {aspect_ratio} must be a positive number"
        ));
    }
    let (lo, hi) = mesh
        .bounds()
        .ok_or_else(|| "the mesh has no triangles".to_string())?;
    let (center, radius) = crate::camera::bounding_sphere(lo, hi);
    let vfov_degrees = 40.0f32;
    let half_v = (vfov_degrees * 0.5).to_radians();
    let half_h = (half_v.tan() * aspect_ratio).atan();
    let half = half_v.min(half_h);
    let distance = 1.1 * radius / half.sin();
    let view_dir = Vec3::new(0.45, 0.35, 1.0).normalize();
    let camera = Camera {
        position: center + view_dir * distance,
        look_at: center,
        up: Vec3::new(0.0, 1.0, 0.0),
        vfov_degrees,
    };
    if !(radius > 0.0 && camera.position.is_finite()) || camera.validate().is_err() {
        return Err(format!(
            "the mesh is too large or too small to frame (bounds {:?} to {:?})",
            lo.to_array(),
            hi.to_array()
        ));
    }
    let side = 1.5 * radius;
    let corner = center + Vec3::new(-0.5 * side, 2.0 * radius, -0.5 * side + 0.5 * radius);
    let light = parallelogram(corner, Vec3::new(side, 0.0, 0.0), Vec3::new(0.0, 0.0, side))
        .ok_or_else(|| "the mesh is too large or too small to light".to_string())?;
    let instance = |mesh: u32, material: u32| Instance {
        mesh,
        material,
        transform: Transform::IDENTITY,
    };
    Ok(SceneDescription {
        camera,
        materials: vec![
            Material::Lambertian {
                albedo: Rgb::splat(0.75),
            },
            Material::Emissive {
                radiance: Rgb::splat(4.0),
            },
        ],
        meshes: vec![mesh, light],
        instances: vec![instance(0, 0), instance(1, 1)],
        background: Rgb::splat(0.05),
        warnings: Vec::new(),
        mesh_files: Vec::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// The file's structure, as serde reads it. Values that are checked after reading keep their
// span, so an error points at the key's own line rather than its table's header.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SceneToml {
    camera: Spanned<Table<CameraToml>>,
    #[serde(default)]
    background: Option<Spanned<Vec3Toml>>,
    #[serde(default)]
    materials: Tables<MaterialToml>,
    #[serde(default)]
    meshes: Tables<MeshToml>,
    #[serde(default)]
    instances: Tables<InstanceToml>,
    #[serde(default)]
    lights: Tables<LightToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraToml {
    position: Spanned<Vec3Toml>,
    look_at: Spanned<Vec3Toml>,
    up: Option<Spanned<Vec3Toml>>,
    vfov_degrees: Spanned<F32>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum MaterialKind {
    Lambertian,
    Emissive,
    Mirror,
    Dielectric,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaterialToml {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: MaterialKind,
    albedo: Option<Spanned<Vec3Toml>>,
    radiance: Option<Spanned<Vec3Toml>>,
    reflectance: Option<Spanned<Vec3Toml>>,
    ior: Option<Spanned<F32>>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum ShapeKind {
    Quad,
    Box,
    Sphere,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeshToml {
    name: Spanned<String>,
    file: Option<Spanned<String>>,
    shape: Option<Spanned<ShapeKind>>,
    subdivisions: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceToml {
    mesh: Spanned<String>,
    material: Spanned<String>,
    #[serde(default)]
    transform: Table<TransformToml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransformToml {
    scale: Option<Spanned<Scale>>,
    rotate: Option<Tables<RotationToml>>,
    translate: Option<Spanned<Vec3Toml>>,
    matrix: Option<Spanned<Array<Array<F32, 4>, 3>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationToml {
    axis: Vec3Toml,
    degrees: F32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LightToml {
    corner: Vec3Toml,
    edge_a: Vec3Toml,
    edge_b: Vec3Toml,
    radiance: Spanned<Vec3Toml>,
}

/// A number held as f32. A value the file writes within f64's range but outside f32's is an
/// error quoting it, where a plain `f32` field would quietly read `1e39` as infinity and
/// `1e-50` as zero (and a later check would then quote `inf` or call the value zero).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct F32(f32);

impl F32 {
    fn from_f64<E: de::Error>(v: f64) -> Result<F32, E> {
        let f = v as f32;
        if v.is_finite() && f.is_infinite() {
            return Err(E::custom(format!(
                "{v:e} is too large for 32-bit floats (at most about 3.4e38)"
            )));
        }
        if v != 0.0 && f == 0.0 {
            return Err(E::custom(format!(
                "{v:e} is too small for 32-bit floats (it would become 0; the smallest is about \
                 1.4e-45)"
            )));
        }
        Ok(F32(f))
    }
}

impl<'de> Deserialize<'de> for F32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<F32, D::Error> {
        d.deserialize_any(NumberVisitor)
    }
}

struct NumberVisitor;

impl<'de> Visitor<'de> for NumberVisitor {
    type Value = F32;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<F32, E> {
        F32::from_f64(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<F32, E> {
        F32::from_f64(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<F32, E> {
        F32::from_f64(v as f64)
    }
}

/// An array of exactly `N` elements. Serde's own `[T; N]` stops reading after `N` and the
/// toml crate does not complain about the rest, so `albedo = [0.7, 0.7, 0.65, "rgba"]` would
/// pass as three numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Array<T, const N: usize>([T; N]);

type Vec3Toml = Array<F32, 3>;

impl Vec3Toml {
    fn vec3(&self) -> Vec3 {
        Vec3::from_array(self.0.map(|F32(v)| v))
    }
}

impl<T: Copy + Default, const N: usize> Default for Array<T, N> {
    fn default() -> Self {
        Array([T::default(); N])
    }
}

impl<'de, T: Deserialize<'de> + Copy + Default, const N: usize> Deserialize<'de> for Array<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Copy + Default, const N: usize> Visitor<'de> for V<T, N> {
            type Value = Array<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "an array of length {N}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Array<T, N>, A::Error> {
                let mut out = [T::default(); N];
                read_exactly(seq, &mut out, &self)?;
                Ok(Array(out))
            }
        }
        d.deserialize_seq(V::<T, N>(std::marker::PhantomData))
    }
}

/// Fills `out` from `seq`, refusing a shorter or longer sequence with its actual length.
fn read_exactly<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
    mut seq: A,
    out: &mut [T],
    expected: &dyn de::Expected,
) -> Result<(), A::Error> {
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(i, expected))?;
    }
    let mut len = out.len();
    while seq.next_element::<de::IgnoredAny>()?.is_some() {
        len += 1;
    }
    if len > out.len() {
        return Err(de::Error::invalid_length(len, expected));
    }
    Ok(())
}

/// `scale = 2` or `scale = [1, 2, 1]`. Read with a visitor rather than an untagged enum, so
/// that errors inside keep their key path and line.
#[derive(Debug)]
struct Scale([f32; 3]);

impl<'de> Deserialize<'de> for Scale {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scale, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scale;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or an array of 3 numbers")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scale, E> {
                Ok(Scale([NumberVisitor.visit_f64::<E>(v)?.0; 3]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scale, E> {
                Ok(Scale([NumberVisitor.visit_i64::<E>(v)?.0; 3]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scale, E> {
                Ok(Scale([NumberVisitor.visit_u64::<E>(v)?.0; 3]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scale, A::Error> {
                let mut s = [F32(0.0); 3];
                read_exactly(seq, &mut s, &self)?;
                Ok(Scale(s.map(|F32(v)| v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A table of the file, read as `T` only if it is a table. Serde's derived structs also take
/// an array of their fields in order, so `instances = [["ball", "white"]]` would pass as an
/// instance, and `[[camera]]` (an array of tables) would be read as a camera whose
/// `position` is a table, an error that points nowhere near the mistake.
#[derive(Debug, Default)]
struct Table<T>(T);

/// How a user writes the table `Self` is read from, for the message that refuses an array.
trait Written {
    const AS: &'static str;
}

impl Written for CameraToml {
    const AS: &'static str = "`[camera]`";
}
impl Written for MaterialToml {
    const AS: &'static str = "`[[materials]]`";
}
impl Written for MeshToml {
    const AS: &'static str = "`[[meshes]]`";
}
impl Written for InstanceToml {
    const AS: &'static str = "`[[instances]]`";
}
impl Written for TransformToml {
    const AS: &'static str = "`transform = { ... }` or `[instances.transform]`";
}
impl Written for RotationToml {
    const AS: &'static str = "`{ axis = [x, y, z], degrees = d }`";
}
impl Written for LightToml {
    const AS: &'static str = "`[[lights]]`";
}

impl<T> std::ops::Deref for Table<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: Deserialize<'de> + Written> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Written> Visitor<'de> for V<T> {
            type Value = Table<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a table ({})", T::AS)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Table<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Table)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Table<T>, A::Error> {
                Err(de::Error::custom(format!(
                    "must be a table ({}), not an array",
                    T::AS
                )))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// An array of tables of the file (`[[materials]]`), read only if it is an array: one table
/// written where an array of them belongs (`[materials]`) is named as such, not as serde's
/// "invalid type: map, expected a sequence".
#[derive(Debug)]
struct Tables<T>(Vec<Spanned<Table<T>>>);

impl<T> Default for Tables<T> {
    fn default() -> Self {
        Tables(Vec::new())
    }
}

impl<T> std::ops::Deref for Tables<T> {
    type Target = Vec<Spanned<Table<T>>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a, T> IntoIterator for &'a Tables<T> {
    type Item = &'a Spanned<Table<T>>;
    type IntoIter = std::slice::Iter<'a, Spanned<Table<T>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'de, T: Deserialize<'de> + Written> Deserialize<'de> for Tables<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Written> Visitor<'de> for V<T> {
            type Value = Tables<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "an array of tables ({})", T::AS)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Tables<T>, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Tables)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Tables<T>, A::Error> {
                Err(de::Error::custom(format!(
                    "must be an array of tables ({}), not a single table",
                    T::AS
                )))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Deserializes with the key path of any error, then renders it as one line with its line.
fn parse_toml(text: &str, origin: &Path) -> Result<SceneToml, SceneFileError> {
    let invalid = |key: String, span: Option<std::ops::Range<usize>>, message: &str| {
        SceneFileError::Invalid {
            path: origin.to_path_buf(),
            key,
            line: span.map(|s| line_of(text, s.start)),
            message: message.trim().replace('\n', " "),
        }
    };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        // The toml crate says only "duplicate key"; the span holds the key's text.
        let quoted = e
            .span()
            .and_then(|s| text.get(s))
            .filter(|k| !k.is_empty() && !k.contains('\n'));
        match quoted {
            Some(k) if e.message().trim() == "duplicate key" => {
                invalid(String::new(), e.span(), &format!("duplicate key `{k}`"))
            }
            _ => invalid(String::new(), e.span(), e.message()),
        }
    })?;
    // The path of an unknown key ends with the key itself: `instances[1].transform.sclae`.
    serde_path_to_error::deserialize(de)
        .map_err(|e| invalid(key_path(e.path()), e.inner().span(), e.inner().message()))
}

/// `instances[2].transform.scale`, leaving out the hidden fields `toml::Spanned` reads through.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

fn line_of(text: &str, offset: usize) -> usize {
    line_of_bytes(text.as_bytes(), offset)
}

fn line_of_bytes(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

// ---------------------------------------------------------------------------------------------
// From the file's structure to a scene description: names resolved, values checked.

struct Resolver<'a> {
    text: &'a str,
    origin: &'a Path,
    base_dir: &'a Path,
}

impl Resolver<'_> {
    fn err<T>(
        &self,
        key: impl Into<String>,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Result<T, SceneFileError> {
        Err(SceneFileError::Invalid {
            path: self.origin.to_path_buf(),
            key: key.into(),
            line: Some(line_of(self.text, span.start)),
            message: message.into(),
        })
    }

    fn resolve(&self, file: SceneToml) -> Result<SceneDescription, SceneFileError> {
        let mut warnings = Vec::new();
        let camera = self.camera(&file.camera)?;
        let background = match &file.background {
            Some(b) => {
                let v = b.get_ref().vec3();
                if !(v.is_finite() && v.max(Rgb::ZERO) == v) {
                    return self.err(
                        "background",
                        b.span(),
                        "radiance must be finite and >= 0 per channel",
                    );
                }
                v
            }
            None => Rgb::ZERO,
        };

        let mut materials = Vec::new();
        let mut material_index = HashMap::new();
        for (i, m) in file.materials.iter().enumerate() {
            let key = format!("materials[{i}]");
            let material = self.material(&key, m)?;
            let name = &m.get_ref().name;
            if let Some(first) = material_index.insert(name.get_ref().clone(), materials.len()) {
                return self.err(
                    format!("{key}.name"),
                    name.span(),
                    format!("duplicate material name `{name}` (also materials[{first}])"),
                );
            }
            materials.push(material);
        }

        let mut mesh_index = HashMap::new();
        for (i, m) in file.meshes.iter().enumerate() {
            let name = &m.get_ref().name;
            if let Some(first) = mesh_index.insert(name.get_ref().clone(), i) {
                return self.err(
                    format!("meshes[{i}].name"),
                    name.span(),
                    format!("duplicate mesh name `{name}` (also meshes[{first}])"),
                );
            }
        }

        // Resolve instances first, so only meshes in use are loaded.
        let mut used = vec![false; file.meshes.len()];
        let mut instances = Vec::new();
        for (i, inst) in file.instances.iter().enumerate() {
            let key = format!("instances[{i}]");
            let def = inst.get_ref();
            let Some(&mesh) = mesh_index.get(def.mesh.get_ref()) else {
                return self.err(
                    format!("{key}.mesh"),
                    def.mesh.span(),
                    format!(
                        "no mesh named `{}` (meshes: {})",
                        def.mesh.get_ref(),
                        names(file.meshes.iter().map(|m| m.get_ref().name.get_ref()))
                    ),
                );
            };
            let Some(&material) = material_index.get(def.material.get_ref()) else {
                return self.err(
                    format!("{key}.material"),
                    def.material.span(),
                    format!(
                        "no material named `{}` (materials: {})",
                        def.material.get_ref(),
                        names(file.materials.iter().map(|m| m.get_ref().name.get_ref()))
                    ),
                );
            };
            let transform = self.transform(&format!("{key}.transform"), &def.transform)?;
            used[mesh] = true;
            instances.push((mesh, material as u32, transform));
        }

        let loaded: Vec<Option<(Mesh, Vec<String>)>> = file
            .meshes
            .par_iter()
            .enumerate()
            .map(|(i, m)| {
                if used[i] {
                    self.mesh(i, m).map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect::<Result<_, _>>()?;
        let mut meshes = Vec::new();
        let mut new_index = vec![u32::MAX; loaded.len()];
        for (i, entry) in loaded.into_iter().enumerate() {
            match entry {
                Some((mesh, w)) => {
                    warnings.extend(w);
                    new_index[i] = meshes.len() as u32;
                    meshes.push(mesh);
                }
                None => warnings.push(format!(
                    "{}: meshes[{i}] (`{}`) is not used by any instance",
                    self.origin.display(),
                    file.meshes[i].get_ref().name.get_ref()
                )),
            }
        }
        let mut instances: Vec<Instance> = instances
            .into_iter()
            .map(|(mesh, material, transform)| Instance {
                mesh: new_index[mesh],
                material,
                transform,
            })
            .collect();

        for (i, l) in file.lights.iter().enumerate() {
            let key = format!("lights[{i}]");
            let d = l.get_ref();
            let radiance = d.radiance.get_ref().vec3();
            let material = Material::Emissive { radiance };
            if let Err(reason) = material.validate() {
                return self.err(format!("{key}.radiance"), d.radiance.span(), reason);
            }
            let Some(quad) = parallelogram(d.corner.vec3(), d.edge_a.vec3(), d.edge_b.vec3())
            else {
                return self.err(
                    key,
                    l.span(),
                    "corner, edge_a and edge_b must be finite, and the edges non-zero and not \
                     parallel",
                );
            };
            instances.push(Instance {
                mesh: meshes.len() as u32,
                material: materials.len() as u32,
                transform: Transform::IDENTITY,
            });
            meshes.push(quad);
            materials.push(material);
        }

        if instances.is_empty() {
            return self.err(
                "instances",
                0..0,
                "the scene has no instances and no lights: nothing to render",
            );
        }
        let lit = instances
            .iter()
            .any(|i| materials[i.material as usize].emission().max_component() > 0.0);
        if !lit && background.max_component() <= 0.0 {
            warnings.push(format!(
                "{}: no light (no emissive instance, no [[lights]], black background): the \
                 image will be black",
                self.origin.display()
            ));
        }
        let mesh_files = file
            .meshes
            .iter()
            .filter_map(|m| m.get_ref().file.as_ref())
            .map(|f| self.base_dir.join(f.get_ref()))
            .collect();
        Ok(SceneDescription {
            camera,
            materials,
            meshes,
            instances,
            background,
            warnings,
            mesh_files,
        })
    }

    fn camera(&self, c: &Spanned<Table<CameraToml>>) -> Result<Camera, SceneFileError> {
        let d = c.get_ref();
        let camera = Camera {
            position: d.position.get_ref().vec3(),
            look_at: d.look_at.get_ref().vec3(),
            up: d
                .up
                .as_ref()
                .map_or(Vec3::new(0.0, 1.0, 0.0), |u| u.get_ref().vec3()),
            vfov_degrees: d.vfov_degrees.get_ref().0,
        };
        if let Err((field, reason)) = camera.check() {
            // The message names the field; the line is the field's own (the table's for a
            // default `up`).
            let span = match field {
                "position" => d.position.span(),
                "look_at" => d.look_at.span(),
                "up" => d.up.as_ref().map_or(c.span(), |u| u.span()),
                _ => d.vfov_degrees.span(),
            };
            return self.err("camera", span, reason);
        }
        Ok(camera)
    }

    fn material(
        &self,
        key: &str,
        m: &Spanned<Table<MaterialToml>>,
    ) -> Result<Material, SceneFileError> {
        let d = m.get_ref();
        let rgb =
            |v: &Option<Spanned<Vec3Toml>>| v.as_ref().map(|v| (v.get_ref().vec3(), v.span()));
        let (wanted, material) = match d.kind {
            MaterialKind::Lambertian => (
                "albedo",
                rgb(&d.albedo).map(|(albedo, s)| (Material::Lambertian { albedo }, s)),
            ),
            MaterialKind::Emissive => (
                "radiance",
                rgb(&d.radiance).map(|(radiance, s)| (Material::Emissive { radiance }, s)),
            ),
            MaterialKind::Mirror => (
                "reflectance",
                rgb(&d.reflectance).map(|(reflectance, s)| (Material::Mirror { reflectance }, s)),
            ),
            MaterialKind::Dielectric => (
                "ior",
                d.ior.as_ref().map(|ior| {
                    (
                        Material::Dielectric {
                            ior: ior.get_ref().0,
                        },
                        ior.span(),
                    )
                }),
            ),
        };
        let given = [
            ("albedo", d.albedo.as_ref().map(|v| v.span())),
            ("radiance", d.radiance.as_ref().map(|v| v.span())),
            ("reflectance", d.reflectance.as_ref().map(|v| v.span())),
            ("ior", d.ior.as_ref().map(|v| v.span())),
        ];
        let type_name = format!("{:?}", d.kind).to_lowercase();
        if let Some((extra, Some(at))) = given.iter().find(|(k, g)| g.is_some() && *k != wanted) {
            return self.err(
                format!("{key}.{extra}"),
                at.clone(),
                format!("not a parameter of type = \"{type_name}\" (it takes `{wanted}`)"),
            );
        }
        let Some((material, at)) = material else {
            return self.err(
                format!("{key}.{wanted}"),
                m.span(),
                format!("missing field `{wanted}` (required by type = \"{type_name}\")"),
            );
        };
        if let Err(reason) = material.validate() {
            return self.err(format!("{key}.{wanted}"), at, reason);
        }
        Ok(material)
    }

    fn transform(&self, key: &str, t: &TransformToml) -> Result<Transform, SceneFileError> {
        if let Some(m) = &t.matrix {
            if t.scale.is_some() || t.rotate.is_some() || t.translate.is_some() {
                return self.err(
                    format!("{key}.matrix"),
                    m.span(),
                    "give either `matrix` or scale/rotate/translate, not both",
                );
            }
            let rows = m.get_ref().0.map(|Array(row)| row.map(|F32(v)| v));
            return Transform::from_rows(rows).map_or_else(
                || {
                    let finite = rows.iter().flatten().all(|v| v.is_finite());
                    let relative = relative_determinant(&rows);
                    let message = if !finite || relative.is_nan() || relative == 0.0 {
                        "singular or not finite".to_string()
                    } else if relative < MIN_RELATIVE_DETERMINANT {
                        format!(
                            "singular: its determinant is only {relative:.1e} times the cube of \
                             its longest row's length (at least {MIN_RELATIVE_DETERMINANT:e} is \
                             needed), so it flattens space too nearly to invert"
                        )
                    } else {
                        format!(
                            "its inverse is beyond single precision's range (above about {:.0e})",
                            f32::MAX
                        )
                    };
                    self.err(format!("{key}.matrix"), m.span(), message)
                },
                Ok,
            );
        }
        let mut out = Transform::IDENTITY;
        if let Some(scale) = &t.scale {
            let Scale(s) = *scale.get_ref();
            let Some(transform) = Transform::scale(Vec3::from_array(s)) else {
                let [x, y, z] = s;
                let relative = relative_determinant(&[
                    [x, 0.0, 0.0, 0.0],
                    [0.0, y, 0.0, 0.0],
                    [0.0, 0.0, z, 0.0],
                ]);
                let smallest = x.abs().min(y.abs()).min(z.abs());
                let why = if !s.iter().all(|v| v.is_finite() && *v != 0.0) {
                    "every factor must be finite and non-zero".to_string()
                } else if relative < MIN_RELATIVE_DETERMINANT {
                    format!(
                        "the factors multiply to only {relative:.1e} times the cube of the \
                         largest (at least {MIN_RELATIVE_DETERMINANT:e} is needed), so they \
                         flatten space too nearly to invert"
                    )
                } else {
                    format!(
                        "1/{smallest:e} is beyond single precision's range: every factor must \
                         be at least about {:.0e} in magnitude",
                        1.0 / f64::from(f32::MAX)
                    )
                };
                return self.err(
                    format!("{key}.scale"),
                    scale.span(),
                    format!("{s:?}: {why}"),
                );
            };
            out = transform;
        }
        for (j, r) in t.rotate.iter().flatten().enumerate() {
            let d = r.get_ref();
            let (axis, degrees) = (d.axis.vec3(), d.degrees.0);
            let rotation = Transform::rotate(axis, degrees)
                .filter(|_| axis.is_finite() && degrees.is_finite());
            let Some(rotation) = rotation else {
                return self.err(
                    format!("{key}.rotate[{j}]"),
                    r.span(),
                    "the axis must be finite and non-zero, the angle finite",
                );
            };
            out = rotation.then_after(&out);
        }
        if let Some(tr) = &t.translate {
            let v = tr.get_ref().vec3();
            if !v.is_finite() {
                return self.err(format!("{key}.translate"), tr.span(), "must be finite");
            }
            out = Transform::translate(v).then_after(&out);
            if out.inv.iter().flatten().any(|v| !v.is_finite()) {
                return self.err(
                    format!("{key}.translate"),
                    tr.span(),
                    "this moves the model so far for its size (its scale) that the \
                     transform's inverse is beyond single precision's range",
                );
            }
        }
        Ok(out)
    }

    fn mesh(
        &self,
        i: usize,
        m: &Spanned<Table<MeshToml>>,
    ) -> Result<(Mesh, Vec<String>), SceneFileError> {
        let key = format!("meshes[{i}]");
        let span = m.span();
        let d = m.get_ref();
        let subdivisions = d.subdivisions.as_ref().map(|s| (*s.get_ref(), s.span()));
        match (&d.file, &d.shape) {
            (Some(_), Some(shape)) => {
                self.err(key, shape.span(), "give either `file` or `shape`, not both")
            }
            (None, None) => self.err(key, span, "missing field `file` or `shape`"),
            (Some(file), None) => {
                if let Some((_, at)) = subdivisions {
                    return self.err(
                        format!("{key}.subdivisions"),
                        at,
                        "only for shape = \"sphere\"",
                    );
                }
                let path = self.base_dir.join(file.get_ref());
                io::load_mesh_with_report(&path).map_err(|source| SceneFileError::Mesh {
                    path: self.origin.to_path_buf(),
                    key: format!("{key}.file"),
                    line: Some(line_of(self.text, file.span().start)),
                    source: Box::new(source),
                })
            }
            (None, Some(shape)) => {
                let mesh = match (shape.get_ref(), subdivisions) {
                    (ShapeKind::Sphere, s) => {
                        if let Some((s, at)) = s.clone() {
                            if s > shapes::MAX_SPHERE_SUBDIVISIONS {
                                return self.err(
                                    format!("{key}.subdivisions"),
                                    at,
                                    format!(
                                        "{s} is too fine; at most {}",
                                        shapes::MAX_SPHERE_SUBDIVISIONS
                                    ),
                                );
                            }
                        }
                        shapes::sphere(s.map_or(3, |(s, _)| s))
                    }
                    (_, Some((_, at))) => {
                        return self.err(
                            format!("{key}.subdivisions"),
                            at,
                            "only for shape = \"sphere\"",
                        )
                    }
                    (ShapeKind::Quad, None) => shapes::quad(),
                    (ShapeKind::Box, None) => shapes::unit_box(),
                };
                Ok((mesh, Vec::new()))
            }
        }
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<String> = it.map(|n| format!("`{n}`")).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The parallelogram `corner + s * a + t * b` for s, t in [0, 1], facing `a x b`; `None` if
/// it is degenerate or not finite.
fn parallelogram(corner: Vec3, a: Vec3, b: Vec3) -> Option<Mesh> {
    let positions = vec![corner, corner + a, corner + a + b, corner + b];
    let mesh = Mesh::new(positions, vec![[0, 1, 2], [0, 2, 3]]).ok()?;
    (mesh.triangle_count() == 2).then_some(mesh)
}

/// Built-in unit shapes for scene files, each closed (except the quad) with outward-facing
/// winding (`(b - a) x (c - a)` points out).
pub mod shapes {
    use crate::math::Vec3;
    use crate::mesh::Mesh;

    /// Icosphere levels beyond this are refused (level 7 is 327 680 triangles).
    pub const MAX_SPHERE_SUBDIVISIONS: u32 = 7;

    /// The unit square `[-0.5, 0.5]²` in the y = 0 plane, facing +y.
    pub fn quad() -> Mesh {
        let p = [[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]
            .map(|[x, z]| Vec3::new(x, 0.0, z))
            .to_vec();
        build(p, vec![[0, 2, 1], [0, 3, 2]])
    }

    /// The cube `[-0.5, 0.5]³`: 8 shared corners, 12 triangles.
    pub fn unit_box() -> Mesh {
        let p = (0..8)
            .map(|i| {
                let c = |bit: u32| if i & bit != 0 { 0.5 } else { -0.5 };
                Vec3::new(c(1), c(2), c(4))
            })
            .collect();
        // Corner i has x from bit 0, y from bit 1, z from bit 2.
        let faces = [
            [0, 4, 6, 2], // -x
            [1, 3, 7, 5], // +x
            [0, 1, 5, 4], // -y
            [2, 6, 7, 3], // +y
            [0, 2, 3, 1], // -z
            [4, 5, 7, 6], // +z
        ];
        let indices = faces
            .iter()
            .flat_map(|&[a, b, c, d]| [[a, b, c], [a, c, d]])
            .collect();
        build(p, indices)
    }

    /// A unit sphere (radius 1, centred at the origin) tessellated as an icosphere: the
    /// icosahedron with each triangle split into four `subdivisions` times (20 × 4^s
    /// triangles). Capped at [`MAX_SPHERE_SUBDIVISIONS`].
    pub fn sphere(subdivisions: u32) -> Mesh {
        crate::mesh::icosphere(subdivisions.min(MAX_SPHERE_SUBDIVISIONS))
    }

    fn build(positions: Vec<Vec3>, indices: Vec<[u32; 3]>) -> Mesh {
        // Fixed, finite data with indices in range: validation cannot fail.
        Mesh::new(positions, indices).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outward(mesh: &Mesh) -> bool {
        (0..mesh.triangle_count()).all(|i| {
            let [a, b, c] = mesh.triangle(i);
            (b - a).cross(c - a).dot(a + b + c) > 0.0
        })
    }

    /// Every edge is shared by exactly two triangles, in opposite directions.
    fn closed(mesh: &Mesh) -> bool {
        let mut edges = HashMap::new();
        for t in &mesh.indices {
            for k in 0..3 {
                *edges.entry((t[k], t[(k + 1) % 3])).or_insert(0) += 1;
            }
        }
        edges
            .iter()
            .all(|(&(a, b), &n)| n == 1 && edges.get(&(b, a)) == Some(&1))
    }

    #[test]
    fn shapes_are_closed_and_face_outwards() {
        let b = shapes::unit_box();
        assert_eq!(b.triangle_count(), 12);
        assert!(outward(&b) && closed(&b));
        for s in 0..3 {
            let m = shapes::sphere(s);
            assert_eq!(m.triangle_count(), 20 * 4usize.pow(s));
            assert!(outward(&m) && closed(&m));
            assert!(m.positions.iter().all(|p| (p.length() - 1.0).abs() < 1e-5));
        }
        let q = shapes::quad();
        let [a, b, c] = q.triangle(1);
        assert!((b - a).cross(c - a).y > 0.0);
        let [a, b, c] = q.triangle(0);
        assert!((b - a).cross(c - a).y > 0.0);
    }

    #[test]
    fn the_flattening_limit_is_the_one_transforms_have() {
        let flat = |f: f64, s: f32| Transform::scale(Vec3::new(s, s, s * f as f32));
        for s in [1e-3, 1.0, 1e3] {
            assert!(flat(MIN_RELATIVE_DETERMINANT * 1.01, s).is_some());
            assert!(flat(MIN_RELATIVE_DETERMINANT * 0.99, s).is_none());
        }
    }

    #[test]
    fn key_paths_skip_spanned_internals() {
        let e = parse_toml(
            "[camera]\nposition = [0, 0, 1]\nlook_at = [0, 0, 0]\nvfov_degrees = 40\n\
             [[instances]]\nmesh = \"a\"\nmaterial = \"b\"\ntransform = { scale = [1, 2] }\n",
            Path::new("s.toml"),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("s.toml: line 8: instances[0].transform.scale: "),
            "{text}"
        );
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    const CAMERA: &str = "[camera]\nposition = [0, 0, 5]\nlook_at = [0, 0, 0]\nvfov_degrees = 40\n";
    const REST: &str = "[[materials]]\nname = \"white\"\ntype = \"lambertian\"\n\
                        albedo = [0.7, 0.7, 0.7]\n[[meshes]]\nname = \"ball\"\nshape = \"sphere\"\n\
                        [[instances]]\nmesh = \"ball\"\nmaterial = \"white\"\n";

    fn error(text: &str) -> String {
        match parse_scene_description(text, Path::new("."), Path::new("s.toml")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_single_table_where_an_array_of_tables_belongs_is_named() {
        let one_material = REST.replacen("[[materials]]", "[materials]", 1);
        assert_eq!(
            error(&format!("{CAMERA}{one_material}")),
            "s.toml: line 5: materials: must be an array of tables (`[[materials]]`), not a \
             single table"
        );
        let one_rotation = format!(
            "{CAMERA}{REST}transform = {{ rotate = {{ axis = [0, 1, 0], degrees = 30 }} }}\n"
        );
        let e = error(&one_rotation);
        assert!(
            e.contains("instances[0].transform.rotate: must be an array of tables")
                && e.contains("not a single table"),
            "{e}"
        );
    }

    #[test]
    fn a_camera_written_as_an_array_of_tables_is_named() {
        let text = format!("{}{REST}", CAMERA.replace("[camera]", "[[camera]]"));
        assert_eq!(
            error(&text),
            "s.toml: line 1: camera: must be a table (`[camera]`), not an array"
        );
        let text = format!("camera = [[0, 0, 5], [0, 0, 0], [0, 1, 0], 40]\n{REST}");
        assert_eq!(
            error(&text),
            "s.toml: line 1: camera: must be a table (`[camera]`), not an array"
        );
    }

    /// Each of these used to be read as the struct's fields in order: the instance rendered,
    /// the others failed with messages about serde's internals (`struct MaterialToml`).
    #[test]
    fn tables_written_as_arrays_of_their_fields_are_refused() {
        // (what to take out of the scene, the array form put first in the file, the error)
        let cases = [
            (
                "[[instances]]\nmesh = \"ball\"\nmaterial = \"white\"\n",
                "instances = [[\"ball\", \"white\"]]\n",
                "line 1: instances[0]: must be a table (`[[instances]]`), not an array",
            ),
            (
                "[[materials]]\nname = \"white\"\ntype = \"lambertian\"\nalbedo = [0.7, 0.7, 0.7]\n",
                "materials = [[\"white\", \"lambertian\", [0.7, 0.7, 0.7]]]\n",
                "line 1: materials[0]: must be a table (`[[materials]]`), not an array",
            ),
            (
                "[[meshes]]\nname = \"ball\"\nshape = \"sphere\"\n",
                "meshes = [[\"ball\", \"sphere\"]]\n",
                "line 1: meshes[0]: must be a table (`[[meshes]]`), not an array",
            ),
            (
                "",
                "lights = [[[0, 3, 0], [1, 0, 0], [0, 0, 1], [5, 5, 5]]]\n",
                "line 1: lights[0]: must be a table (`[[lights]]`), not an array",
            ),
        ];
        let scene = format!("{CAMERA}{REST}");
        for (from, to, want) in cases {
            assert!(scene.contains(from), "{from}");
            let text = format!("{to}{}", scene.replacen(from, "", 1));
            let got = error(&text);
            assert_eq!(got, format!("s.toml: {want}"), "{to}");
            assert!(!got.contains("Toml"), "{got}");
        }
        // Inside an instance, on the line after the scene's last.
        let cases = [
            (
                "transform = [2, [], [0, 1, 0]]\n",
                "instances[0].transform: must be a table (`transform = { ... }` or \
                 `[instances.transform]`), not an array",
            ),
            (
                "transform = { rotate = [[[0, 1, 0], 30]] }\n",
                "instances[0].transform.rotate[0]: must be a table (`{ axis = [x, y, z], \
                 degrees = d }`), not an array",
            ),
        ];
        for (to, want) in cases {
            let got = error(&format!("{scene}{to}"));
            assert_eq!(got, format!("s.toml: line 15: {want}"), "{to}");
        }
        // Not a table at all: the expected form is named too.
        assert_eq!(
            error(&format!("instances = [\"ball\"]\n{CAMERA}{REST}").replacen(
                "[[instances]]\nmesh = \"ball\"\nmaterial = \"white\"\n",
                "",
                1
            )),
            "s.toml: line 1: instances[0]: invalid type: string \"ball\", expected a table \
             (`[[instances]]`)"
        );
    }

    #[test]
    fn inline_tables_are_still_tables() {
        let text = format!(
            "materials = [{{ name = \"white\", type = \"lambertian\", albedo = [1, 1, 1] }}]\n\
             meshes = [{{ name = \"ball\", shape = \"sphere\" }}]\n\
             lights = [{{ corner = [0, 3, 0], edge_a = [1, 0, 0], edge_b = [0, 0, 1], radiance = [5, 5, 5] }}]\n\
             instances = [{{ mesh = \"ball\", material = \"white\", transform = {{ rotate = [{{ axis = [0, 1, 0], degrees = 30 }}] }} }}]\n{CAMERA}"
        );
        let d = parse_scene_description(&text, Path::new("."), Path::new("s.toml")).unwrap();
        assert_eq!(d.instances.len(), 2);
        assert_eq!(d.materials.len(), 2);
    }
}
