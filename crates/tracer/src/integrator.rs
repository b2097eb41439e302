//! The path tracer: next-event estimation with multiple importance sampling, Russian roulette.

use crate::geometry::{Hit, Query};
use crate::material::{fresnel_dielectric, reflect, refract, sample_cosine, Material};
use crate::math::{Ray, Rgb, Vec3};
use crate::rng::SampleRng;
use crate::scene::Scene;
use crate::stats::PixelStats;
use crate::tile::{TileResult, TileTask};
use serde::{Deserialize, Serialize};
use std::f32::consts::FRAC_1_PI;

/// How paths are traced (the same for every tile of a render).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderSettings {
    /// Most scattering events on a path: 0 shows only emitters seen directly, 1 adds direct
    /// lighting, and so on.
    pub max_depth: u32,
    /// Scattering events before Russian roulette may end a path.
    pub russian_roulette_depth: u32,
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            max_depth: 16,
            russian_roulette_depth: 3,
        }
    }
}

/// Renders one tile: `samples_per_pixel` paths through each selected pixel, folded into one
/// [`PixelStats`] per pixel.
///
/// A pure function of its arguments: sample `k` of pixel `(x, y)` in pass `p` draws its random
/// numbers from `SampleRng::new(seed, x, y, p, k)` alone, so a tile renders to the same bits on
/// any thread or process. A sample whose value is not finite (it should not happen) counts as
/// black rather than poisoning the pixel.
///
/// ```
/// use prism_tracer::{cornell_box, pass_tasks, render_tile, Film, PassSpec, RenderSettings};
/// let scene = cornell_box();
/// let mut film = Film::new(8, 8).unwrap();
/// let pass = PassSpec { index: 0, samples_per_pixel: 2, seed: 42 };
/// for task in pass_tasks(8, 8, 4, &pass, None).unwrap() {
///     // Anywhere: another thread, another process (tasks and results are serde types).
///     let result = render_tile(&scene, &RenderSettings::default(), &task);
///     film.merge(&result).unwrap();
/// }
/// assert_eq!(film.sample_count(), 8 * 8 * 2);
/// ```
pub fn render_tile(scene: &Scene, settings: &RenderSettings, task: &TileTask) -> TileResult {
    let (width, height) = task.image_size();
    let frame = scene.camera.frame(width, height);
    let rect = task.rect();
    let id = task.id();
    let mut stats = Vec::with_capacity(task.pixel_count());
    let mut rays = 0u64;
    let mut query = scene.geometry.query();
    for i in task.pixels().selected(rect.pixel_count()) {
        let (x, y) = rect.pixel(i);
        let mut pixel = PixelStats::default();
        for k in 0..task.samples_per_pixel() {
            let mut rng = SampleRng::new(task.seed(), x, y, id.pass, k);
            let (jx, jy) = (rng.next_f32(), rng.next_f32());
            let ray = frame.ray(x as f32 + jx, y as f32 + jy);
            let mut l = radiance(scene, &mut query, settings, ray, &mut rng, &mut rays);
            if !l.is_finite() {
                l = Rgb::ZERO;
            }
            pixel.add_sample([f64::from(l.x), f64::from(l.y), f64::from(l.z)]);
        }
        stats.push(pixel);
    }
    TileResult {
        id,
        rect,
        pixels: task.pixels().clone(),
        stats,
        ray_count: rays,
    }
}

/// Power heuristic (beta = 2) weight of a strategy with density `a` against one with `b`.
fn power_heuristic(a: f32, b: f32) -> f32 {
    let (a2, b2) = (a * a, b * b);
    if a2 + b2 > 0.0 && (a2 + b2).is_finite() {
        a2 / (a2 + b2)
    } else if a.is_infinite() {
        1.0
    } else {
        0.0
    }
}

/// Moves a surface point off the surface along `n` (unit, pointing to the side the new ray
/// leaves into), far enough that the new ray cannot hit the surface it starts on.
///
/// Wächter & Binder, "A Fast and Robust Method for Avoiding Self-Intersection" (Ray Tracing
/// Gems, 2019): a fixed number of ulps for coordinates away from zero, a small absolute step
/// near zero, where ulps are tiny. That step and the band where it applies assume a scene of
/// unit size or more; `scale` ([`Scene::offset_scale`], at most 1) shrinks both for a smaller
/// one, whose surfaces the unit step would jump over.
pub(crate) fn offset_origin(p: Vec3, n: Vec3, scale: f32) -> Vec3 {
    let origin = scale * (1.0 / 32.0);
    let float_scale = scale * (1.0 / 65536.0);
    const INT_SCALE: f32 = 256.0;
    // Both offsets computed, then one chosen: the choice depends on each coordinate's size,
    // which branches would mispredict often (every bounce calls this two or three times).
    let one = |p: f32, n: f32| {
        let near = p + float_scale * n;
        let of = (INT_SCALE * n) as i32;
        let of = if p < 0.0 { -of } else { of };
        let far = f32::from_bits((p.to_bits() as i32).wrapping_add(of) as u32);
        if p.abs() < origin {
            near
        } else {
            far
        }
    };
    Vec3::new(one(p.x, n.x), one(p.y, n.y), one(p.z, n.z))
}

/// The world-space point of a hit, on the triangle's plane to within a few ulps.
///
/// `origin + t * dir` alone can miss the plane by an ulp of the ray origin's coordinates (a
/// wall at x = 0 seen from x = 278 gets |x| ~ 3e-5), more than the offset of
/// [`offset_origin`] near zero, which would let the next ray re-hit its own surface. Projecting
/// onto the plane through a vertex removes that cancellation error.
fn hit_point(ray: &Ray, hit: &Hit) -> Vec3 {
    let p = ray.at(hit.t);
    let n = hit.normal;
    p - n * (p - hit.corner).dot(n)
}

/// The most rays [`radiance`] traces for one sample, whatever the settings: one per path
/// vertex (at most `max_depth + 1`, and `max_depth` is a `u32`) and a shadow ray at each
/// scattering vertex. A film that counts more rays than its samples allow was not rendered
/// here, which is how a checkpoint's ray count is checked; keep it in step with `radiance`.
pub(crate) const MAX_RAYS_PER_SAMPLE: u64 = 2 * u32::MAX as u64 + 1;

/// Radiance arriving along `ray`: one path sample. Counts traced rays in `rays`.
pub(crate) fn radiance(
    scene: &Scene,
    query: &mut Query,
    settings: &RenderSettings,
    mut ray: Ray,
    rng: &mut SampleRng,
    rays: &mut u64,
) -> Rgb {
    let mut l = Rgb::ZERO;
    let mut beta = Rgb::ONE;
    let mut bounces = 0u32;
    // Solid-angle density of the last scattering direction if it was diffuse (then a hit
    // emitter is weighted against light sampling); None after the camera or a specular bounce.
    let mut diffuse_pdf: Option<f32> = None;
    loop {
        *rays += 1;
        let Some(hit) = query.intersect(&ray) else {
            l += beta.mul_elem(scene.background());
            break;
        };
        // Scene::new checked every instance's material; a stray index renders black.
        let Some(&material) = scene.materials.get(hit.material as usize) else {
            break;
        };
        let d = ray.dir;
        let n = hit.normal;
        let p = hit_point(&ray, &hit);
        // Faces the side the ray came from.
        let facing = if n.dot(d) < 0.0 { n } else { -n };
        if let Material::Emissive { radiance } = material {
            let weight = match diffuse_pdf {
                None => 1.0,
                Some(pdf_bsdf) => {
                    let cos_l = n.dot(d).abs();
                    if cos_l > 0.0 && scene.light_area() > 0.0 {
                        let pdf_light = hit.t * hit.t / (cos_l * scene.light_area() as f32);
                        power_heuristic(pdf_bsdf, pdf_light)
                    } else {
                        0.0
                    }
                }
            };
            l += beta.mul_elem(radiance) * weight;
            break;
        }
        if bounces >= settings.max_depth {
            break;
        }
        match material {
            Material::Lambertian { albedo } => {
                let f = albedo * FRAC_1_PI;
                l += beta.mul_elem(direct_light(scene, query, p, facing, f, rng, rays));
                let (wi, cos) = sample_cosine(facing, rng.next_f32(), rng.next_f32());
                beta = beta.mul_elem(albedo);
                diffuse_pdf = Some(cos * FRAC_1_PI);
                ray = Ray::new(offset_origin(p, facing, scene.offset_scale()), wi);
            }
            Material::Mirror { reflectance } => {
                beta = beta.mul_elem(reflectance);
                diffuse_pdf = None;
                ray = Ray::new(
                    offset_origin(p, facing, scene.offset_scale()),
                    reflect(d, facing).normalize(),
                );
            }
            Material::Dielectric { ior } => {
                let entering = n.dot(d) < 0.0;
                let (eta_i, eta_t) = if entering { (1.0, ior) } else { (ior, 1.0) };
                let cos_i = -d.dot(facing);
                let (fresnel, cos_t) = fresnel_dielectric(cos_i, eta_i, eta_t);
                // Reflect or refract with the Fresnel probabilities: the weight is 1 either way.
                // Radiance's eta^2 scaling across the interface is left out: it cancels on
                // paths that leave the medium again, the only ones that reach an emitter here.
                ray = if rng.next_f32() < fresnel {
                    Ray::new(
                        offset_origin(p, facing, scene.offset_scale()),
                        reflect(d, facing).normalize(),
                    )
                } else {
                    let t = refract(d, facing, eta_i / eta_t, cos_i, cos_t);
                    Ray::new(offset_origin(p, -facing, scene.offset_scale()), t)
                };
                diffuse_pdf = None;
            }
            Material::Emissive { .. } => break,
        }
        bounces += 1;
        if bounces >= settings.russian_roulette_depth {
            let survive = beta.max_component().min(0.95);
            if survive.is_nan() || survive <= 0.0 || rng.next_f32() >= survive {
                break;
            }
            beta = beta / survive;
        }
    }
    l
}

/// Next-event estimate at a diffuse point `p` with normal `n` (facing the viewer) and BRDF
/// value `f`: one point sampled on the lights, weighted against BSDF sampling.
fn direct_light(
    scene: &Scene,
    query: &mut Query,
    p: Vec3,
    n: Vec3,
    f: Rgb,
    rng: &mut SampleRng,
    rays: &mut u64,
) -> Rgb {
    // Always draw the same number of dimensions, lit or not, so a sample's later random
    // numbers do not depend on whether this point saw a light.
    let (u_pick, u1, u2) = (rng.next_f64(), rng.next_f32(), rng.next_f32());
    let Some(light) = scene.sample_light(u_pick, u1, u2) else {
        return Rgb::ZERO;
    };
    let to = light.point - p;
    let dist2 = to.length_squared();
    if dist2.is_nan() || dist2 <= 0.0 {
        return Rgb::ZERO;
    }
    let wi = to / dist2.sqrt();
    let cos_s = n.dot(wi);
    let cos_l = light.normal.dot(wi);
    if cos_s.is_nan() || cos_s <= 0.0 || cos_l == 0.0 || !cos_l.is_finite() {
        return Rgb::ZERO;
    }
    let pdf_light = dist2 / (cos_l.abs() * scene.light_area() as f32);
    // Both ends leave their surfaces towards each other.
    let from = offset_origin(p, n, scene.offset_scale());
    let to_point = offset_origin(
        light.point,
        if cos_l > 0.0 {
            -light.normal
        } else {
            light.normal
        },
        scene.offset_scale(),
    );
    let shadow = Ray::segment(from, to_point - from, 0.0, 1.0);
    *rays += 1;
    if query.occluded(&shadow) {
        return Rgb::ZERO;
    }
    let weight = power_heuristic(pdf_light, cos_s * FRAC_1_PI);
    f.mul_elem(light.radiance) * (cos_s * weight / pdf_light)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_points_move_to_the_requested_side_by_a_few_ulps() {
        for &p in &[
            Vec3::new(0.0, 0.0, 0.0),
            Vec3::new(555.0, -273.0, 1e-3),
            Vec3::new(-1e6, 3.5, -0.02),
        ] {
            for &n in &[
                Vec3::new(0.0, 1.0, 0.0),
                Vec3::new(-0.6, 0.0, 0.8),
                Vec3::new(0.577, -0.577, 0.577),
            ] {
                let q = offset_origin(p, n, 1.0);
                let moved = (q - p).dot(n);
                assert!(moved > 0.0, "{p:?} {n:?}");
                // Small relative to the coordinates: well under 1e-3 relative.
                let scale = p.abs().max_component().max(1.0);
                assert!((q - p).length() < 1e-3 * scale, "{p:?} {n:?} {q:?}");
            }
        }
    }

    #[test]
    fn power_heuristic_weights_sum_to_one() {
        for (a, b) in [(1.0, 1.0), (0.3, 7.0), (0.0, 2.0), (5.0, 0.0)] {
            let s = power_heuristic(a, b) + power_heuristic(b, a);
            assert!((s - 1.0).abs() < 1e-6, "{a} {b}");
        }
        assert_eq!(power_heuristic(0.0, 0.0), 0.0);
        assert_eq!(power_heuristic(f32::INFINITY, 1.0), 1.0);
        assert_eq!(power_heuristic(1.0, f32::INFINITY), 0.0);
    }
}
