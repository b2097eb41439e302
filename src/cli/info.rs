//! `prism info`: what this run has — process sets, nodes, ranks per node, threads per rank —
//! and which engine `--engine auto` would pick.

use crate::cli::layout::Layout;
use crate::cli::CliError;

pub fn run() -> Result<(), CliError> {
    let universe = prism::comm::init()?;
    universe.abort_on_panic();
    let layout = Layout::discover(&universe)?;
    let world = universe.world();
    // Every rank opens every set (opening is collective); the root reports.
    let mut sets = Vec::new();
    for name in universe.process_set_names() {
        let comm = universe.open(&name)?;
        let members = world.all_gather(&comm.as_ref().map(|c| c.size()))?;
        let size = members.iter().flatten().copied().max().unwrap_or(0);
        let holders = members.iter().filter(|m| m.is_some()).count();
        sets.push((name, size, holders));
    }
    let hosts = world.gather(0, &universe.processor_name())?;
    if world.is_root() {
        println!("prism {}", env!("CARGO_PKG_VERSION"));
        println!(
            "mpi: {}",
            if universe.is_mpi() {
                format!("yes (thread level {:?})", universe.thread_level())
            } else {
                "no (one-process build; rebuild with --features mpi for MPI)".to_string()
            }
        );
        println!("process sets:");
        for (name, size, holders) in &sets {
            println!("  {name:<22} {size} process(es) per set, held by {holders} rank(s)");
        }
        println!("ranks: {}", layout.world_size);
        println!("nodes: {}", layout.nodes);
        println!("ranks per node: {}", layout.ranks_per_node);
        println!("threads per rank: {}", layout.threads_per_rank);
        if let Some(hosts) = hosts {
            let mut hosts = hosts;
            hosts.sort();
            hosts.dedup();
            println!("hosts: {}", hosts.join(", "));
        }
        println!("engine auto: {}", layout.auto_engine());
    }
    Ok(())
}
