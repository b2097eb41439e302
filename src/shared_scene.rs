//! One scene per node: the glue between the tracer's flat geometry and the engines'
//! node-shared arrays.
//!
//! The root builds (or loads from a cache) the scene; its geometry — BVH nodes and triangles
//! in plain arrays — is copied as bytes into one node-shared segment per node, and every rank
//! reads the same pages through [`Geometry::from_bytes`]. The small parts (camera, materials,
//! background) are broadcast. N ranks on a node therefore hold one copy of a large mesh, not N
//! (the memory concern of Raysect PR #442's review).

use prism_comm::Communicator;
use prism_engines::NodeShared;
use prism_tracer::{ByteSource, Geometry};
use prism_tracer::{Camera, Material, Rgb, Scene};
use std::sync::Arc;

/// Node-shared bytes seen by the tracer as the backing store of a [`Geometry`].
struct NodeSharedBytes(NodeShared<u8>);

impl ByteSource for NodeSharedBytes {
    fn bytes(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// The part of a scene that every rank receives by broadcast.
type SmallParts = (Camera, Vec<Material>, Rgb);

/// Shares the root's scene with every rank of `comm`, one geometry copy per node.
///
/// Collective over `comm`. `make` runs on the root only; if it fails, every rank returns its
/// error. With one process the root's scene is returned as it is.
pub fn share_scene(
    comm: &Communicator,
    make: impl FnOnce() -> Result<Scene, String>,
) -> Result<Scene, String> {
    if comm.size() == 1 {
        let scene = make();
        // What reading and building the scene freed (a mesh file's text, build temporaries).
        prism_comm::release_free_heap();
        return scene;
    }
    let mut root_scene: Option<Result<Scene, String>> = comm.is_root().then(make);
    // Everyone learns whether the root has a scene, and its small parts.
    let parts: Option<Result<SmallParts, String>> = root_scene.as_ref().map(|r| {
        r.as_ref()
            .map(|s| (s.camera, s.materials.clone(), s.background()))
            .map_err(Clone::clone)
    });
    let (camera, materials, background) = comm.broadcast(0, parts).map_err(|e| e.to_string())??;
    let shared = NodeShared::<u8>::build_once(comm, 0, || match root_scene.take() {
        Some(Ok(scene)) => Ok(scene.geometry.to_bytes()),
        Some(Err(e)) => Err(e),
        None => Err("the root has no scene".to_string()),
    })
    .map_err(|e| e.to_string())?;
    let geometry =
        Geometry::from_bytes(Arc::new(NodeSharedBytes(shared))).map_err(|e| e.to_string())?;
    // The root's own copies of the scene are gone: the node holds it once, in `shared`.
    prism_comm::release_free_heap();
    Scene::new(geometry, materials, camera)
        .and_then(|s| s.with_background(background))
        .map_err(|e| e.to_string())
}
