//! The shape of the run: ranks, nodes, ranks per node and the threads each rank should use.

use crate::cli::CliError;
use prism::comm::cpus::{allowed_cpus, parse_cpu_list, sharing_ranks, usable_cores};
use prism::comm::Universe;

#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub world_size: usize,
    pub nodes: usize,
    pub ranks_per_node: usize,
    /// Cores available to this process, shared with the ranks of its node that may run on
    /// the same CPUs (at least 1).
    pub threads_per_rank: usize,
    /// CPUs this process may run on (its affinity mask and CPU quota; at least 1).
    pub cpus: usize,
    /// Ranks of its node that may run on its CPUs, itself included (all the node's ranks
    /// where a CPU set is unknown).
    pub sharing: usize,
    /// CPUs of the node, whatever this process's binding (at least `cpus`).
    pub node_cpus: usize,
}

impl Layout {
    /// Collective over the world: every rank must call it.
    pub fn discover(universe: &Universe) -> Result<Layout, CliError> {
        let world = universe.world();
        let node = universe
            .open("prism://node")?
            .ok_or_else(|| CliError::Msg("this rank is in no node set".into()))?;
        let leaders = universe.open("prism://node-leaders")?;
        // Only leaders know how many leaders there are; tell everyone.
        let nodes = world
            .all_gather(&leaders.as_ref().map(|l| l.size()))?
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(1);
        // Affinity- and quota-aware: a rank that Slurm (`--cpus-per-task`) or mpirun
        // (`--bind-to`) confined sees only its own CPUs here.
        let cores = usable_cores();
        let mine = allowed_cpus();
        let all = node.all_gather(&mine)?;
        let sharing = sharing_ranks(mine.as_deref(), &all);
        let node_cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|list| parse_cpu_list(list.trim()))
            .map_or(cores, |cpus| cpus.len().max(cores));
        Ok(Layout {
            world_size: world.size(),
            nodes,
            ranks_per_node: node.size(),
            threads_per_rank: (cores / sharing).max(1),
            cpus: cores,
            sharing,
            node_cpus,
        })
    }

    /// The engine `--engine auto` runs with the default threads per rank.
    pub fn auto_engine(&self) -> &'static str {
        self.auto_engine_for(self.threads_per_rank)
    }

    /// The engine `--engine auto` runs with `threads` per rank: threads in one process, else
    /// hybrid (or mpi with one thread per rank).
    pub fn auto_engine_for(&self, threads: usize) -> &'static str {
        if self.world_size == 1 {
            "threads"
        } else if threads > 1 {
            "hybrid"
        } else {
            "mpi"
        }
    }
}
