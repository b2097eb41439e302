//! The shape of the run: ranks, nodes, ranks per node and the threads each rank should use.

use crate::cli::CliError;
use prism::comm::Universe;

#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub world_size: usize,
    pub nodes: usize,
    pub ranks_per_node: usize,
    /// Cores available to this process shared among the ranks of its node (at least 1).
    pub threads_per_rank: usize,
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
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Layout {
            world_size: world.size(),
            nodes,
            ranks_per_node: node.size(),
            threads_per_rank: (cores / node.size()).max(1),
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
