//! The pinhole camera.

use crate::math::{Ray, Vec3};
use serde::{Deserialize, Serialize};

/// A pinhole camera at `position` looking at `look_at`, with `up` giving the image's vertical
/// and `vfov_degrees` the full vertical field of view.
///
/// Pixel `(0, 0)` is the top-left corner of the image; the horizontal field of view follows
/// from the image's aspect ratio.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    pub position: Vec3,
    pub look_at: Vec3,
    pub up: Vec3,
    pub vfov_degrees: f32,
}

impl Camera {
    /// Checks that the camera defines a view: finite values, a look direction, `up` not parallel
    /// to it, and a field of view in (0, 180) degrees.
    pub fn validate(&self) -> Result<(), String> {
        self.check().map_err(|(_, reason)| reason)
    }

    /// [`Camera::validate`], also naming the field the problem is best shown at
    /// (`"position"`, `"look_at"`, `"up"` or `"vfov_degrees"`), so a scene file can point at
    /// its line.
    ///
    /// Only exactly equal points and an exactly zero `up` are degenerate: a scene of any scale
    /// that f32 can hold has a view, whether its camera is a millionth of a unit from what it
    /// looks at or 10^30 units away.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (field, v) in [
            ("position", self.position),
            ("look_at", self.look_at),
            ("up", self.up),
        ] {
            if !v.is_finite() {
                return Err((
                    field,
                    format!(
                        "camera position, look_at and up must be finite (got {:?}, {:?}, {:?})",
                        self.position.to_array(),
                        self.look_at.to_array(),
                        self.up.to_array()
                    ),
                ));
            }
        }
        let Some(f) = self.forward() else {
            return Err((
                "look_at",
                format!(
                    "camera look_at {:?} coincides with its position",
                    self.look_at.to_array()
                ),
            ));
        };
        // The sine of the angle between the view direction and `up`: relative to neither's
        // length, so it refuses the same directions at every scale.
        let parallel =
            !unit(self.up, || f64s(self.up)).is_some_and(|u| f.cross(u).length() >= 1e-4);
        if parallel {
            return Err((
                "up",
                format!(
                    "camera up {:?} is zero or parallel to the view direction {:?}",
                    self.up.to_array(),
                    f.to_array()
                ),
            ));
        }
        if !(self.vfov_degrees > 0.0 && self.vfov_degrees < 180.0) {
            return Err((
                "vfov_degrees",
                format!(
                    "camera vfov_degrees is {}; it must be in (0, 180)",
                    self.vfov_degrees
                ),
            ));
        }
        Ok(())
    }

    /// The unit view direction; `None` if `look_at` is `position`.
    fn forward(&self) -> Option<Vec3> {
        let (p, l) = (f64s(self.position), f64s(self.look_at));
        unit(self.look_at - self.position, || {
            [l[0] - p[0], l[1] - p[1], l[2] - p[2]]
        })
    }

    /// The camera's view of a `width` x `height` image, to generate rays from.
    pub fn frame(&self, width: u32, height: u32) -> CameraFrame {
        let forward = self.forward().unwrap_or(Vec3::ZERO);
        let right = unit(forward.cross(self.up), || {
            let (f, u) = (f64s(forward), f64s(self.up));
            [
                f[1] * u[2] - f[2] * u[1],
                f[2] * u[0] - f[0] * u[2],
                f[0] * u[1] - f[1] * u[0],
            ]
        })
        .unwrap_or(Vec3::ZERO);
        let up = right.cross(forward);
        let half_h = (self.vfov_degrees.to_radians() * 0.5).tan();
        let aspect = width as f32 / height.max(1) as f32;
        CameraFrame {
            origin: self.position,
            forward,
            right: right * (half_h * aspect),
            up: up * half_h,
            inv_width: 1.0 / width.max(1) as f32,
            inv_height: 1.0 / height.max(1) as f32,
        }
    }
}

/// The sphere a camera frames to show the box `lo`..`hi` whole: its centre and its radius,
/// half the box's diagonal. The framing follows the box's own extent, whatever its size or
/// position: a floor on the radius (or one relative to the distance from the origin) would
/// frame a model 1e-8 across at the origin as a speck. A non-degenerate triangle has a
/// positive extent, but one small enough (1e-20) that its squared length underflows f32,
/// hence the f64 fallback.
pub(crate) fn bounding_sphere(lo: Vec3, hi: Vec3) -> (Vec3, f32) {
    let center = lo * 0.5 + hi * 0.5;
    let mut radius = (hi - lo).length() * 0.5;
    if !(radius >= f32::MIN_POSITIVE && radius.is_finite()) {
        let d = (hi - lo).to_array().map(f64::from);
        radius = ((d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt() * 0.5) as f32;
    }
    (center, radius)
}

fn f64s(v: Vec3) -> [f64; 3] {
    v.to_array().map(f64::from)
}

/// The unit vector along `v`, `None` for zero. `v` is normalized in f32 as before when its
/// squared length is a normal f32 (so ordinary cameras keep their bits); otherwise `exact`,
/// the same vector computed in f64, is normalized there, where neither the difference of two
/// f32 points nor a squared length can overflow or underflow.
fn unit(v: Vec3, exact: impl FnOnce() -> [f64; 3]) -> Option<Vec3> {
    let l2 = v.length_squared();
    if v.is_finite() && l2.is_finite() && l2 >= f32::MIN_POSITIVE {
        return Some(v.normalize());
    }
    let e = exact();
    let l = (e[0] * e[0] + e[1] * e[1] + e[2] * e[2]).sqrt();
    (l > 0.0 && l.is_finite())
        .then(|| Vec3::new((e[0] / l) as f32, (e[1] / l) as f32, (e[2] / l) as f32))
}

/// A camera set up for one image size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraFrame {
    origin: Vec3,
    forward: Vec3,
    /// Half the image-plane width at unit distance, along the image's x axis.
    right: Vec3,
    /// Half the image-plane height at unit distance, along the image's upward axis.
    up: Vec3,
    inv_width: f32,
    inv_height: f32,
}

impl CameraFrame {
    /// The primary ray through the image point `(px, py)` in pixel units (pixel `(x, y)`
    /// covers `[x, x + 1) x [y, y + 1)`); unit-length direction.
    pub fn ray(&self, px: f32, py: f32) -> Ray {
        let sx = 2.0 * px * self.inv_width - 1.0;
        let sy = 1.0 - 2.0 * py * self.inv_height;
        let dir = (self.forward + self.right * sx + self.up * sy).normalize();
        Ray::new(self.origin, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam() -> Camera {
        Camera {
            position: Vec3::new(0.0, 0.0, 0.0),
            look_at: Vec3::new(0.0, 0.0, -1.0),
            up: Vec3::new(0.0, 1.0, 0.0),
            vfov_degrees: 90.0,
        }
    }

    #[test]
    fn image_corners_map_to_the_field_of_view() {
        let f = cam().frame(200, 100);
        let centre = f.ray(100.0, 50.0);
        assert!((centre.dir - Vec3::new(0.0, 0.0, -1.0)).length() < 1e-6);
        // Top edge: 45 degrees up; left edge: atan(2) to the left (aspect 2).
        let top = f.ray(100.0, 0.0).dir;
        assert!((top - Vec3::new(0.0, 1.0, -1.0).normalize()).length() < 1e-6);
        let left = f.ray(0.0, 50.0).dir;
        assert!((left - Vec3::new(-2.0, 0.0, -1.0).normalize()).length() < 1e-6);
    }

    #[test]
    fn degenerate_cameras_are_refused() {
        assert!(cam().validate().is_ok());
        let same = Camera {
            look_at: Vec3::ZERO,
            ..cam()
        };
        assert!(same.validate().unwrap_err().contains("coincides"));
        let parallel = Camera {
            up: Vec3::new(0.0, 0.0, 2.0),
            ..cam()
        };
        assert!(parallel.validate().unwrap_err().contains("parallel"));
        for fov in [0.0, 180.0, f32::NAN] {
            let c = Camera {
                vfov_degrees: fov,
                ..cam()
            };
            assert!(c.validate().unwrap_err().contains("vfov"));
        }
        let nan = Camera {
            position: Vec3::new(f32::NAN, 0.0, 0.0),
            ..cam()
        };
        assert!(nan.validate().is_err());
    }

    #[test]
    fn cameras_of_any_scale_have_a_view() {
        // 5e-7 apart, 5e-8 from the origin (a scene a millionth of a unit across), and the
        // same scene at 10^30 units, seen from 10^30 units away.
        for s in [1e-6f32, 1e-30, 1.0, 1e30] {
            let c = Camera {
                position: Vec3::new(0.0, 1.5, 5.0) * (0.1 * s),
                look_at: Vec3::new(0.0, 0.5, 0.0) * (0.1 * s),
                up: Vec3::new(0.0, 1.0, 0.0) * s,
                vfov_degrees: 40.0,
            };
            assert_eq!(c.check(), Ok(()), "scale {s}");
            let centre = c.frame(16, 16).ray(8.0, 8.0).dir;
            let want = Vec3::new(0.0, -1.0, -5.0).normalize();
            assert!((centre - want).length() < 1e-5, "scale {s}: {centre:?}");
        }
        // Points 3e38 apart (their f32 difference overflows) still give a direction.
        let far = Camera {
            position: Vec3::new(0.0, 0.0, 3e38),
            look_at: Vec3::new(0.0, 0.0, -3e38),
            ..cam()
        };
        assert_eq!(far.check(), Ok(()));
        assert_eq!(far.frame(2, 2).ray(1.0, 1.0).dir, Vec3::new(0.0, 0.0, -1.0));
        // Only equal points coincide, however small the scene; only a zero or parallel `up`
        // is refused.
        let tiny = Vec3::new(0.0, 5e-8, 0.0);
        let same = Camera {
            position: tiny,
            look_at: tiny,
            ..cam()
        };
        assert_eq!(same.check().unwrap_err().0, "look_at");
        let next = Camera {
            position: Vec3::new(0.0, 0.0, 1e-45),
            look_at: Vec3::ZERO,
            ..cam()
        };
        assert_eq!(next.check(), Ok(()));
        for up in [
            Vec3::ZERO,
            Vec3::new(0.0, 0.0, 1e-40),
            Vec3::new(0.0, 1e-9, 1.0),
        ] {
            let c = Camera { up, ..cam() };
            assert_eq!(c.check().unwrap_err().0, "up", "{up:?}");
        }
        let vfov = Camera {
            vfov_degrees: 0.0,
            ..cam()
        };
        assert_eq!(vfov.check().unwrap_err().0, "vfov_degrees");
    }

    #[test]
    fn ordinary_cameras_keep_their_f32_frame() {
        let c = Camera {
            position: Vec3::new(0.3, 1.4, 6.0),
            look_at: Vec3::new(0.1, 0.7, -0.2),
            up: Vec3::new(0.1, 1.0, 0.0),
            vfov_degrees: 40.0,
        };
        let forward = (c.look_at - c.position).normalize();
        let right = forward.cross(c.up).normalize();
        let f = c.frame(64, 32);
        assert_eq!(f.forward, forward);
        assert_eq!(f.up, right.cross(forward) * (20f32.to_radians().tan()));
    }
}
