//! `prism info`: what this run has — process sets, nodes, ranks per node, threads per rank —
//! and which engine `--engine auto` would pick.

use crate::cli::layout::Layout;
use crate::cli::{say, with_universe, CliError};
use prism::comm::Universe;

pub fn run() -> Result<(), CliError> {
    with_universe(report)
}

fn report(universe: &Universe) -> Result<(), CliError> {
    let layout = Layout::discover(universe)?;
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
        let mut text = format!("prism {}\n", env!("CARGO_PKG_VERSION"));
        let mpi = if universe.is_mpi() {
            format!("yes (thread level {:?})", universe.thread_level())
        } else {
            mpi_absent_reason(cfg!(feature = "mpi")).to_string()
        };
        text.push_str(&format!("mpi: {mpi}\nprocess sets:\n"));
        for (name, size, holders) in &sets {
            text.push_str(&format!(
                "  {name:<22} {size} process(es) per set, held by {holders} rank(s)\n"
            ));
        }
        text.push_str(&format!(
            "ranks: {}\nnodes: {}\nranks per node: {}\nthreads per rank: {}\n",
            layout.world_size, layout.nodes, layout.ranks_per_node, layout.threads_per_rank
        ));
        if let Some(mut hosts) = hosts {
            hosts.sort();
            hosts.dedup();
            text.push_str(&format!("hosts: {}\n", hosts.join(", ")));
        }
        text.push_str(&format!("engine auto: {}", layout.auto_engine()));
        say(&text)?;
    }
    Ok(())
}

/// Why a run is one process without MPI: an MPI build only initialises MPI when a launcher
/// started it, so the advice differs between the two builds.
fn mpi_absent_reason(built_with_mpi: bool) -> &'static str {
    if built_with_mpi {
        "no (built with MPI, but not started by a launcher: one process; \
         run it under mpirun or srun for more)"
    } else {
        "no (one-process build; rebuild with --features mpi for MPI)"
    }
}

#[cfg(test)]
mod tests {
    use super::mpi_absent_reason;

    #[test]
    fn an_mpi_build_without_a_launcher_is_not_told_to_rebuild() {
        assert!(mpi_absent_reason(true).contains("mpirun"));
        assert!(!mpi_absent_reason(true).contains("rebuild"));
        assert!(mpi_absent_reason(false).contains("--features mpi"));
    }
}
