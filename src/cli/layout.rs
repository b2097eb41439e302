//! The shape of the run: ranks, nodes, ranks per node and the threads each rank should use.

use crate::cli::CliError;
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
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
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

/// How many ranks of a node share the cores of a rank with CPU set `mine`, given the CPU sets
/// of every rank of its node (`all`, itself included): the ranks whose sets overlap its own.
/// Ranks confined to CPUs of their own (Slurm's `--cpus-per-task`) share with no one, so a
/// rank's threads get all its cores; unbound ranks, which all see every core, split them.
/// Where a set is unknown, all the node's ranks are counted.
fn sharing_ranks(mine: Option<&[u32]>, all: &[Option<Vec<u32>>]) -> usize {
    let sharing = match mine {
        Some(mine) if all.iter().all(Option::is_some) => all
            .iter()
            .flatten()
            .filter(|other| other.iter().any(|c| mine.binary_search(c).is_ok()))
            .count(),
        _ => all.len(),
    };
    sharing.max(1)
}

/// Threads for a rank with `cores` usable cores: its cores split among the ranks that share
/// them ([`sharing_ranks`]).
#[cfg(test)]
fn threads_per_rank(cores: usize, mine: Option<&[u32]>, all: &[Option<Vec<u32>>]) -> usize {
    (cores / sharing_ranks(mine, all)).max(1)
}

/// The CPUs this process may run on, sorted (Linux: `Cpus_allowed_list` of /proc/self/status);
/// `None` where that is not known.
fn allowed_cpus() -> Option<Vec<u32>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    parse_cpu_list(list.trim())
}

/// A Linux CPU list such as `0-3,8,10-11`, sorted.
fn parse_cpu_list(list: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    (!cpus.is_empty()).then_some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_linux_writes_them() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert!(allowed_cpus().is_some_and(|c| !c.is_empty()) || !cfg!(target_os = "linux"));
    }

    #[test]
    fn confined_ranks_keep_their_cores_and_unbound_ranks_split_them() {
        let set = |r: std::ops::Range<u32>| Some(r.collect::<Vec<u32>>());
        // Slurm, 2 ranks × --cpus-per-task=16 on a 32-core node: disjoint sets.
        let all = [set(0..16), set(16..32)];
        assert_eq!(threads_per_rank(16, all[0].as_deref(), &all), 16);
        // Unbound: both see all 32 cores.
        let all = [set(0..32), set(0..32)];
        assert_eq!(threads_per_rank(32, all[0].as_deref(), &all), 16);
        // Bound to sockets, two ranks per socket.
        let all = [set(0..8), set(0..8), set(8..16), set(8..16)];
        assert_eq!(threads_per_rank(8, all[2].as_deref(), &all), 4);
        // A set unknown somewhere: split among all the node's ranks.
        let all = [set(0..16), None];
        assert_eq!(threads_per_rank(16, all[0].as_deref(), &all), 8);
        // Never zero.
        let all = [set(0..1), set(0..1), set(0..1)];
        assert_eq!(threads_per_rank(1, all[0].as_deref(), &all), 1);
    }
}
