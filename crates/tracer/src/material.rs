//! Surface materials and their scattering.

use crate::math::{Rgb, Vec3};
use serde::{Deserialize, Serialize};
use std::f32::consts::PI;

/// How a surface scatters or emits light. All surfaces are two-sided except [`Dielectric`],
/// whose triangle winding gives the outside (the geometric normal points out of the medium).
///
/// [`Dielectric`]: Material::Dielectric
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Material {
    /// Ideal diffuse reflector with reflectance `albedo` per channel, in [0, 1].
    Lambertian { albedo: Rgb },
    /// A black surface emitting `radiance` (>= 0) from both sides. It reflects nothing, so
    /// paths end on it; emissive triangles are sampled directly as lights.
    Emissive { radiance: Rgb },
    /// Perfect specular reflector with reflectance per channel in [0, 1].
    Mirror { reflectance: Rgb },
    /// Smooth clear dielectric (glass, water) with index of refraction `ior` (> 0) inside and
    /// vacuum outside; reflects or refracts with exact Fresnel probabilities.
    Dielectric { ior: f32 },
}

impl Material {
    /// Checks the parameters' ranges; the message says which value is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let unit = |name: &str, c: Rgb| {
            if c.is_finite() && c.min(Rgb::ONE) == c && c.max(Rgb::ZERO) == c {
                Ok(())
            } else {
                Err(format!(
                    "{name} {:?} must be in [0, 1] per channel",
                    c.to_array()
                ))
            }
        };
        match *self {
            Material::Lambertian { albedo } => unit("Lambertian albedo", albedo),
            Material::Mirror { reflectance } => unit("Mirror reflectance", reflectance),
            Material::Emissive { radiance } => {
                if radiance.is_finite() && radiance.max(Rgb::ZERO) == radiance {
                    Ok(())
                } else {
                    Err(format!(
                        "Emissive radiance {:?} must be finite and >= 0 per channel",
                        radiance.to_array()
                    ))
                }
            }
            Material::Dielectric { ior } => {
                if ior.is_finite() && ior > 0.0 {
                    Ok(())
                } else {
                    Err(format!("Dielectric ior {ior} must be finite and > 0"))
                }
            }
        }
    }

    /// The emitted radiance (zero for non-emitters).
    pub fn emission(&self) -> Rgb {
        match *self {
            Material::Emissive { radiance } => radiance,
            _ => Rgb::ZERO,
        }
    }
}

/// Unpolarised Fresnel reflectance at a smooth interface for light arriving at cosine `cos_i`
/// (> 0) from the side with index `eta_i` into the side with index `eta_t`; 1 under total
/// internal reflection. Also returns the transmitted cosine.
pub fn fresnel_dielectric(cos_i: f32, eta_i: f32, eta_t: f32) -> (f32, f32) {
    let cos_i = cos_i.clamp(0.0, 1.0);
    let eta = eta_i / eta_t;
    let sin2_t = eta * eta * (1.0 - cos_i * cos_i);
    if sin2_t >= 1.0 {
        return (1.0, 0.0);
    }
    let cos_t = (1.0 - sin2_t).sqrt();
    let rs = (eta_i * cos_i - eta_t * cos_t) / (eta_i * cos_i + eta_t * cos_t);
    let rp = (eta_t * cos_i - eta_i * cos_t) / (eta_t * cos_i + eta_i * cos_t);
    (0.5 * (rs * rs + rp * rp), cos_t)
}

/// Mirror direction of `d` about the normal `n`.
pub fn reflect(d: Vec3, n: Vec3) -> Vec3 {
    d - n * (2.0 * d.dot(n))
}

/// Refracted direction of unit `d` through an interface with unit normal `n` on the incident
/// side (`d . n < 0`), relative index `eta = eta_i / eta_t`, and the cosines from
/// [`fresnel_dielectric`] (Snell's law in vector form).
pub fn refract(d: Vec3, n: Vec3, eta: f32, cos_i: f32, cos_t: f32) -> Vec3 {
    (d * eta + n * (eta * cos_i - cos_t)).normalize()
}

/// Orthonormal basis around the unit vector `n` (Duff et al. 2017, branchless).
pub fn basis(n: Vec3) -> (Vec3, Vec3) {
    let sign = 1.0f32.copysign(n.z);
    let a = -1.0 / (sign + n.z);
    let b = n.x * n.y * a;
    (
        Vec3::new(1.0 + sign * n.x * n.x * a, sign * b, -sign * n.x),
        Vec3::new(b, sign + n.y * n.y * a, -n.y),
    )
}

/// Cosine-weighted direction in the hemisphere around unit `n`, and its cosine with `n`
/// (the density is `cos / pi`).
pub fn sample_cosine(n: Vec3, u1: f32, u2: f32) -> (Vec3, f32) {
    let r = u1.sqrt();
    let phi = 2.0 * PI * u2;
    let (s, c) = phi.sin_cos();
    let cos = (1.0 - u1).max(0.0).sqrt();
    let (t, b) = basis(n);
    ((t * (r * c) + b * (r * s) + n * cos).normalize(), cos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresnel_has_the_textbook_values() {
        // Normal incidence air -> glass: ((1 - 1.5) / (1 + 1.5))^2 = 0.04.
        let (f, cos_t) = fresnel_dielectric(1.0, 1.0, 1.5);
        assert!((f - 0.04).abs() < 1e-6);
        assert!((cos_t - 1.0).abs() < 1e-6);
        // Brewster's angle: p-polarised reflectance vanishes, so F = rs^2 / 2.
        let brewster = 1.5f32.atan();
        let (f, _) = fresnel_dielectric(brewster.cos(), 1.0, 1.5);
        assert!((f - 0.0739).abs() < 1e-3, "{f}");
        // Total internal reflection from glass beyond the critical angle (41.8 degrees).
        assert_eq!(
            fresnel_dielectric(45f32.to_radians().cos(), 1.5, 1.0).0,
            1.0
        );
        // Grazing incidence reflects everything; matched indices reflect nothing.
        assert!((fresnel_dielectric(0.0, 1.0, 1.5).0 - 1.0).abs() < 1e-6);
        assert!(fresnel_dielectric(0.3, 1.2, 1.2).0.abs() < 1e-7);
    }

    #[test]
    fn refraction_obeys_snells_law() {
        let n = Vec3::new(0.0, 0.0, 1.0);
        for deg in [0.0f32, 10.0, 30.0, 60.0, 85.0] {
            let (s, c) = deg.to_radians().sin_cos();
            let d = Vec3::new(s, 0.0, -c);
            let (f, cos_t) = fresnel_dielectric(c, 1.0, 1.5);
            assert!(f < 1.0);
            let t = refract(d, n, 1.0 / 1.5, c, cos_t);
            assert!((t.length() - 1.0).abs() < 1e-6);
            // Same plane of incidence, bent towards the normal: sin_t = sin_i / 1.5.
            assert!(t.y.abs() < 1e-7 && t.z < 0.0 && t.x >= 0.0);
            assert!((t.x - s / 1.5).abs() < 1e-6, "{deg}: {t:?}");
            assert!((-t.z - cos_t).abs() < 1e-6);
            // Reversibility: the reversed ray retraces the incident one.
            let (_, cos_back) = fresnel_dielectric(cos_t, 1.5, 1.0);
            let back = refract(-t, -n, 1.5, cos_t, cos_back);
            assert!((back + d).length() < 1e-5, "{deg}: {back:?}");
        }
    }

    #[test]
    fn cosine_samples_lie_in_the_hemisphere_with_cosine_density() {
        let n = Vec3::new(0.3, -0.5, 0.8).normalize();
        let (t, b) = basis(n);
        assert!(t.dot(n).abs() < 1e-6 && b.dot(n).abs() < 1e-6 && t.dot(b).abs() < 1e-6);
        let mut mean_cos = 0.0;
        let m = 64;
        for i in 0..m {
            for j in 0..m {
                let (d, cos) =
                    sample_cosine(n, (i as f32 + 0.5) / m as f32, (j as f32 + 0.5) / m as f32);
                assert!((d.length() - 1.0).abs() < 1e-5);
                assert!((d.dot(n) - cos).abs() < 1e-5 && cos > 0.0);
                mean_cos += cos;
            }
        }
        // E[cos] under the cosine density is 2/3.
        mean_cos /= (m * m) as f32;
        assert!((mean_cos - 2.0 / 3.0).abs() < 1e-3, "{mean_cos}");
    }

    #[test]
    fn out_of_range_parameters_are_named() {
        assert!(Material::Lambertian {
            albedo: Rgb::splat(0.5)
        }
        .validate()
        .is_ok());
        let e = Material::Lambertian {
            albedo: Rgb::new(0.5, 1.2, 0.0),
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("albedo"), "{e}");
        assert!(Material::Emissive {
            radiance: Rgb::new(1.0, f32::INFINITY, 0.0)
        }
        .validate()
        .is_err());
        assert!(Material::Dielectric { ior: 0.0 }.validate().is_err());
        assert!(Material::Mirror {
            reflectance: Rgb::splat(-0.1)
        }
        .validate()
        .is_err());
    }
}
