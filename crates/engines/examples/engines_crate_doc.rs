// The crate-level example of prism-engines (its lib.rs shows this file): run by `cargo test
// --doc` in one process and by CI under `mpirun -n 1..4`.
use prism_engines::{Engine, HybridEngine};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let universe = prism_comm::init()?;
    let engine = HybridEngine::new(&universe.world(), 2)?;
    let mut seen = 0;
    engine.run(
        (0..50u32).collect(),
        |x: &u32| Ok::<_, String>(x * 2),
        |_: u32| {
            seen += 1;
            Ok(())
        },
    )?;
    if engine.is_root() {
        assert_eq!(seen, 50);
    }
    Ok(())
}
