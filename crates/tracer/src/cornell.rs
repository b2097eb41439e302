//! The built-in Cornell box: the classic geometry and reflectances, needing no file.
//!
//! Coordinates are the Cornell Program of Computer Graphics' measured data (millimetres, a room
//! about 555 wide, 549 high and 559 deep, y up, camera looking down +z): a white floor, ceiling
//! and back wall, a red left wall, a green right wall, a short and a tall white block, and an
//! area light of 130 x 105 just below the ceiling.

use crate::camera::Camera;
use crate::geometry::{Geometry, Instance};
use crate::material::Material;
use crate::math::{Rgb, Transform, Vec3};
use crate::mesh::Mesh;
use crate::scene::Scene;

/// Diffuse reflectances of the classic scene.
pub const WHITE: Rgb = Rgb::new(0.73, 0.73, 0.73);
pub const RED: Rgb = Rgb::new(0.63, 0.065, 0.05);
pub const GREEN: Rgb = Rgb::new(0.14, 0.45, 0.09);
/// Radiance of the ceiling light.
pub const LIGHT: Rgb = Rgb::new(17.0, 12.0, 4.0);

type Quad = [[f32; 3]; 4];

const FLOOR: Quad = [
    [552.8, 0.0, 0.0],
    [0.0, 0.0, 0.0],
    [0.0, 0.0, 559.2],
    [549.6, 0.0, 559.2],
];
const CEILING: Quad = [
    [556.0, 548.8, 0.0],
    [556.0, 548.8, 559.2],
    [0.0, 548.8, 559.2],
    [0.0, 548.8, 0.0],
];
const BACK_WALL: Quad = [
    [549.6, 0.0, 559.2],
    [0.0, 0.0, 559.2],
    [0.0, 548.8, 559.2],
    [556.0, 548.8, 559.2],
];
const GREEN_WALL: Quad = [
    [0.0, 0.0, 559.2],
    [0.0, 0.0, 0.0],
    [0.0, 548.8, 0.0],
    [0.0, 548.8, 559.2],
];
const RED_WALL: Quad = [
    [552.8, 0.0, 0.0],
    [549.6, 0.0, 559.2],
    [556.0, 548.8, 559.2],
    [556.0, 548.8, 0.0],
];
/// Half a millimetre below the ceiling, so the two never overlap.
const LIGHT_QUAD: Quad = [
    [343.0, 548.3, 227.0],
    [343.0, 548.3, 332.0],
    [213.0, 548.3, 332.0],
    [213.0, 548.3, 227.0],
];
const SHORT_BLOCK: [Quad; 5] = [
    [
        [130.0, 165.0, 65.0],
        [82.0, 165.0, 225.0],
        [240.0, 165.0, 272.0],
        [290.0, 165.0, 114.0],
    ],
    [
        [290.0, 0.0, 114.0],
        [290.0, 165.0, 114.0],
        [240.0, 165.0, 272.0],
        [240.0, 0.0, 272.0],
    ],
    [
        [130.0, 0.0, 65.0],
        [130.0, 165.0, 65.0],
        [290.0, 165.0, 114.0],
        [290.0, 0.0, 114.0],
    ],
    [
        [82.0, 0.0, 225.0],
        [82.0, 165.0, 225.0],
        [130.0, 165.0, 65.0],
        [130.0, 0.0, 65.0],
    ],
    [
        [240.0, 0.0, 272.0],
        [240.0, 165.0, 272.0],
        [82.0, 165.0, 225.0],
        [82.0, 0.0, 225.0],
    ],
];
const TALL_BLOCK: [Quad; 5] = [
    [
        [423.0, 330.0, 247.0],
        [265.0, 330.0, 296.0],
        [314.0, 330.0, 456.0],
        [472.0, 330.0, 406.0],
    ],
    [
        [423.0, 0.0, 247.0],
        [423.0, 330.0, 247.0],
        [472.0, 330.0, 406.0],
        [472.0, 0.0, 406.0],
    ],
    [
        [472.0, 0.0, 406.0],
        [472.0, 330.0, 406.0],
        [314.0, 330.0, 456.0],
        [314.0, 0.0, 456.0],
    ],
    [
        [314.0, 0.0, 456.0],
        [314.0, 330.0, 456.0],
        [265.0, 330.0, 296.0],
        [265.0, 0.0, 296.0],
    ],
    [
        [265.0, 0.0, 296.0],
        [265.0, 330.0, 296.0],
        [423.0, 330.0, 247.0],
        [423.0, 0.0, 247.0],
    ],
];

/// A mesh of quads, each split into two triangles.
fn quads_mesh(quads: &[Quad]) -> Mesh {
    let mut positions = Vec::new();
    let mut indices = Vec::new();
    for q in quads {
        let base = positions.len() as u32;
        positions.extend(q.iter().map(|&p| Vec3::from_array(p)));
        indices.push([base, base + 1, base + 2]);
        indices.push([base, base + 2, base + 3]);
    }
    // The data above is finite and in range: validation cannot fail.
    Mesh::new(positions, indices).unwrap_or_default()
}

/// The camera of the classic scene, from the open side.
///
/// The original 35 mm lens on 25 mm film (39.3 degrees) also sees a thin black frame outside
/// the box; this field of view (37.7 degrees) puts the front edge of the floor at the bottom of
/// the image, so the box fills the frame.
pub fn cornell_camera() -> Camera {
    Camera {
        position: Vec3::new(278.0, 273.0, -800.0),
        look_at: Vec3::new(278.0, 273.0, 0.0),
        up: Vec3::new(0.0, 1.0, 0.0),
        vfov_degrees: 2.0 * (273.0f32 / 800.0).atan().to_degrees(),
    }
}

/// The Cornell box, ready to render (best with a square image).
///
/// ```
/// let scene = prism_tracer::cornell_box();
/// assert_eq!(scene.light_count(), 2); // the ceiling light's two triangles
/// ```
pub fn cornell_box() -> Scene {
    let mut white = vec![FLOOR, CEILING, BACK_WALL];
    white.extend_from_slice(&SHORT_BLOCK);
    white.extend_from_slice(&TALL_BLOCK);
    let meshes = vec![
        quads_mesh(&white),
        quads_mesh(&[RED_WALL]),
        quads_mesh(&[GREEN_WALL]),
        quads_mesh(&[LIGHT_QUAD]),
    ];
    let materials = vec![
        Material::Lambertian { albedo: WHITE },
        Material::Lambertian { albedo: RED },
        Material::Lambertian { albedo: GREEN },
        Material::Emissive { radiance: LIGHT },
    ];
    let instances = (0..4)
        .map(|i| Instance {
            mesh: i,
            material: i,
            transform: Transform::IDENTITY,
        })
        .collect();
    // Fixed, valid data: neither the build nor the scene checks can fail.
    let geometry = Geometry::build(meshes, instances).expect("the built-in Cornell box is valid");
    Scene::new(geometry, materials, cornell_camera()).expect("the built-in Cornell box is valid")
}
