//! Kernel benchmarks: BVH build time and single-thread traversal throughput of prism's
//! two-level BVH4 against obvhs 0.4 (CWBVH and BVH2) on the same meshes and the same rays.
//!
//! Meshes: the vendored Stanford bunny (75,408 triangles, a real scan) and a procedural
//! 1,310,720-triangle "asteroid". Rays: 100k primary camera rays and 100k incoherent diffuse
//! rays per mesh (see `prism_tracer::bench`). Throughput is reported by criterion in
//! elements (rays) per second. Run with `cargo bench -p prism-tracer`; a full run takes a
//! few minutes.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use glam::Vec3A;
use obvhs::ray::{Ray as ORay, RayHit};
use obvhs::triangle::Triangle as OTri;
use obvhs::BvhBuildParams;
use prism_tracer::bench::{asteroid, diffuse_rays, primary_rays};
use prism_tracer::geometry::{Geometry, Instance};
use prism_tracer::math::{Ray, Transform};
use prism_tracer::mesh::Mesh;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const RAYS: usize = 100_000;

fn meshes() -> Vec<(&'static str, Mesh)> {
    let bunny = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bunny.ply");
    vec![
        (
            "bunny",
            prism_tracer::io::load_mesh(&bunny).expect("the vendored bunny loads"),
        ),
        ("asteroid_1.3M", asteroid(8)),
    ]
}

fn prism_build(mesh: &Mesh) -> Geometry {
    let inst = Instance {
        mesh: 0,
        material: 0,
        transform: Transform::IDENTITY,
    };
    Geometry::build(vec![mesh.clone()], vec![inst]).unwrap()
}

fn obvhs_tris(mesh: &Mesh) -> Vec<OTri> {
    (0..mesh.triangle_count())
        .map(|i| {
            let [a, b, c] = mesh.triangle(i).map(|p| Vec3A::new(p.x, p.y, p.z));
            OTri {
                v0: a,
                v1: b,
                v2: c,
            }
        })
        .collect()
}

fn obvhs_ray(r: &Ray) -> ORay {
    ORay::new(
        Vec3A::new(r.origin.x, r.origin.y, r.origin.z),
        Vec3A::new(r.dir.x, r.dir.y, r.dir.z),
        r.tmin,
        r.tmax,
    )
}

fn build(c: &mut Criterion, name: &str, mesh: &Mesh, tris: &[OTri]) {
    let mut g = c.benchmark_group(format!("build/{name}"));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("prism_bvh4_sah", |b| {
        b.iter_batched(
            || mesh.clone(),
            |m| black_box(prism_build(&m)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("obvhs_cwbvh_medium", |b| {
        b.iter(|| {
            black_box(obvhs::cwbvh::builder::build_cwbvh_from_tris(
                tris,
                BvhBuildParams::medium_build(),
                &mut Duration::default(),
            ))
        })
    });
    g.finish();
}

fn trace(c: &mut Criterion, name: &str, mesh: &Mesh, tris: &[OTri]) {
    let geometry = prism_build(mesh);
    let cw = obvhs::cwbvh::builder::build_cwbvh_from_tris(
        tris,
        BvhBuildParams::medium_build(),
        &mut Duration::default(),
    );
    // Triangles in leaf order, as obvhs's own examples do, so obvhs skips an indirection.
    let cw_tris: Vec<OTri> = cw
        .primitive_indices
        .iter()
        .map(|&i| tris[i as usize])
        .collect();
    let b2 = obvhs::bvh2::builder::build_bvh2_from_tris(
        tris,
        BvhBuildParams::medium_build(),
        &mut Duration::default(),
    );
    let b2_tris: Vec<OTri> = b2
        .primitive_indices
        .iter()
        .map(|&i| tris[i as usize])
        .collect();

    let sets = [
        ("primary", primary_rays(mesh.bounds().unwrap(), RAYS, 1)),
        ("diffuse", diffuse_rays(mesh, RAYS, 2)),
    ];
    for (kind, rays) in &sets {
        let orays: Vec<ORay> = rays.iter().map(obvhs_ray).collect();
        // Both libraries must do the same work: compare hit counts before timing.
        let ours = rays
            .iter()
            .filter(|r| geometry.intersect(r).is_some())
            .count();
        let theirs = orays
            .iter()
            .filter(|r| {
                let mut hit = RayHit::none();
                cw.ray_traverse(**r, &mut hit, |r, id| cw_tris[id].intersect(r))
            })
            .count();
        eprintln!("{name}/{kind}: prism hits {ours}, obvhs hits {theirs} of {RAYS}");

        let mut g = c.benchmark_group(format!("trace/{name}/{kind}"));
        g.sample_size(10);
        g.warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(2));
        g.throughput(Throughput::Elements(rays.len() as u64));
        // One query per batch, as a render loop traces a tile.
        g.bench_function("prism_closest", |b| {
            b.iter(|| {
                let mut q = geometry.query();
                rays.iter().filter(|r| q.intersect(r).is_some()).count()
            })
        });
        g.bench_function("obvhs_cwbvh_closest", |b| {
            b.iter(|| {
                orays
                    .iter()
                    .filter(|r| {
                        let mut hit = RayHit::none();
                        cw.ray_traverse(**r, &mut hit, |r, id| cw_tris[id].intersect(r))
                    })
                    .count()
            })
        });
        g.bench_function("obvhs_bvh2_closest", |b| {
            b.iter(|| {
                orays
                    .iter()
                    .filter(|r| {
                        let mut hit = RayHit::none();
                        b2.ray_traverse(**r, &mut hit, |r, id| b2_tris[id].intersect(r))
                    })
                    .count()
            })
        });
        g.bench_function("prism_occluded", |b| {
            b.iter(|| {
                let mut q = geometry.query();
                rays.iter().filter(|r| q.occluded(r)).count()
            })
        });
        g.bench_function("obvhs_cwbvh_occluded", |b| {
            b.iter(|| {
                orays
                    .iter()
                    .filter(|r| !cw.ray_traverse_miss(**r, |r, id| cw_tris[id].intersect(r)))
                    .count()
            })
        });
        g.finish();
    }
}

fn kernel(c: &mut Criterion) {
    for (name, mesh) in meshes() {
        let tris = obvhs_tris(&mesh);
        build(c, name, &mesh, &tris);
        trace(c, name, &mesh, &tris);
    }
}

criterion_group!(benches, kernel);
criterion_main!(benches);
