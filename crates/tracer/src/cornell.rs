//! The built-in Cornell box: the classic geometry and reflectances, needing no file.
//!
//! Coordinates are the Cornell Program of Computer Graphics' measured data (millimetres, a room
//! about 555 wide, 549 high and 559 deep, y up, camera looking down +z): a white floor, ceiling
//! and back wall, a red left wall, a green right wall, a short and a tall white block, and an
//! area light of 130 x 105 set into the ceiling.

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
/// The light's corners in the ceiling plane (y = 548.8): x from 213 to 343, z from 227 to 332.
const LIGHT_X: [f32; 2] = [213.0, 343.0];
const LIGHT_Z: [f32; 2] = [227.0, 332.0];
const CEILING_Y: f32 = 548.8;

/// The ceiling (x 0..556, z 0..559.2) cut into a 3 x 3 grid whose middle cell is the light.
///
/// The light sits in a hole in the ceiling, in its plane, rather than just below it: a gap
/// would let ceiling points next to the light see it at grazing angles from a millimetre
/// away, a huge, rarely sampled contribution (fireflies in the indirect light). Cells share
/// their corners, so no ray slips between ceiling and light.
fn ceiling_and_light() -> (Vec<Quad>, Quad) {
    let xs = [0.0, LIGHT_X[0], LIGHT_X[1], 556.0];
    let zs = [0.0, LIGHT_Z[0], LIGHT_Z[1], 559.2];
    let cell = |i: usize, j: usize| -> Quad {
        [
            [xs[i + 1], CEILING_Y, zs[j]],
            [xs[i + 1], CEILING_Y, zs[j + 1]],
            [xs[i], CEILING_Y, zs[j + 1]],
            [xs[i], CEILING_Y, zs[j]],
        ]
    };
    let mut ceiling = Vec::new();
    for i in 0..3 {
        for j in 0..3 {
            if (i, j) != (1, 1) {
                ceiling.push(cell(i, j));
            }
        }
    }
    (ceiling, cell(1, 1))
}

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
    let (ceiling, light) = ceiling_and_light();
    let mut white = vec![FLOOR, BACK_WALL];
    white.extend(ceiling);
    white.extend_from_slice(&SHORT_BLOCK);
    white.extend_from_slice(&TALL_BLOCK);
    let meshes = vec![
        quads_mesh(&white),
        quads_mesh(&[RED_WALL]),
        quads_mesh(&[GREEN_WALL]),
        quads_mesh(&[light]),
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
