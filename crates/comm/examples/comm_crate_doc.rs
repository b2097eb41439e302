// The crate-level example of prism-comm (its lib.rs shows this file): run by `cargo test --doc`
// in one process and by CI under `mpirun -n 1..4`.
use prism_comm::{init, SharedArray, Source};

fn main() -> Result<(), prism_comm::CommError> {
    let universe = init()?;
    let world = universe.world();

    // Every rank sends its rank to rank 0; rank 0 adds them up.
    world.send(0, 1, &(world.rank() as u64))?;
    if world.is_root() {
        let mut total = 0;
        for _ in 0..world.size() {
            let (r, _status): (u64, _) = world.recv(Source::Any, 1)?;
            total += r;
        }
        assert_eq!(total as usize, world.size() * (world.size() - 1) / 2);
    }

    // The same sum as a collective.
    let mut sum = [world.rank() as f64];
    world.sum_to_all_f64(&mut sum)?;
    assert_eq!(sum[0] as usize, world.size() * (world.size() - 1) / 2);

    // An array with one copy per node, filled by rank 0.
    let mut table = SharedArray::<u32>::new(&world, 4)?;
    let data = [1, 2, 3];
    table.set(1, world.is_root().then_some(&data[..]), 0)?;
    assert_eq!(&table[..], &[0, 1, 2, 3]);
    Ok(())
}
