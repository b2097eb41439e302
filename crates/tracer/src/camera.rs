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
        if !(self.position.is_finite() && self.look_at.is_finite() && self.up.is_finite()) {
            return Err(format!(
                "camera position, look_at and up must be finite (got {:?}, {:?}, {:?})",
                self.position.to_array(),
                self.look_at.to_array(),
                self.up.to_array()
            ));
        }
        let forward = self.look_at - self.position;
        // Finite inputs (checked above) give a finite length.
        if forward.length() <= 1e-6 * self.position.abs().max_component().max(1.0) {
            return Err(format!(
                "camera look_at {:?} coincides with its position",
                self.look_at.to_array()
            ));
        }
        let f = forward.normalize();
        let u = self.up.normalize();
        if u == Vec3::ZERO || f.cross(u).length() < 1e-4 {
            return Err(format!(
                "camera up {:?} is zero or parallel to the view direction {:?}",
                self.up.to_array(),
                f.to_array()
            ));
        }
        if !(self.vfov_degrees > 0.0 && self.vfov_degrees < 180.0) {
            return Err(format!(
                "camera vfov_degrees is {}; it must be in (0, 180)",
                self.vfov_degrees
            ));
        }
        Ok(())
    }

    /// The camera's view of a `width` x `height` image, to generate rays from.
    pub fn frame(&self, width: u32, height: u32) -> CameraFrame {
        let forward = (self.look_at - self.position).normalize();
        let right = forward.cross(self.up).normalize();
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
}
