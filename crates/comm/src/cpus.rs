//! The cores a rank may use, and how many ranks of its node share them.
//!
//! A rank that Slurm (`--cpus-per-task`) or mpirun (`--bind-to`) confined sees only its own
//! CPUs; unbound ranks all see every core of the node and must split them. What each rank may
//! run on (its affinity mask) tells the two apart: [`Communicator::cores_per_rank`] gives a
//! rank its cores divided among the ranks of its node whose CPU sets overlap its own, which
//! is the thread count that fills a node without oversubscribing it.

use crate::{Communicator, Result};

/// Cores this process may use: its affinity mask and CPU quota (at least 1).
pub fn usable_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPUs this process may run on, sorted (Linux: `Cpus_allowed_list` of /proc/self/status);
/// `None` where that is not known.
pub fn allowed_cpus() -> Option<Vec<u32>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    parse_cpu_list(list.trim())
}

/// A Linux CPU list such as `0-3,8,10-11`, sorted.
pub fn parse_cpu_list(list: &str) -> Option<Vec<u32>> {
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

/// How many ranks of a node share the cores of a rank with CPU set `mine`, given the CPU sets
/// of every rank of its node (`all`, itself included): the ranks whose sets overlap its own.
/// Ranks confined to CPUs of their own share with no one, so a rank's threads get all its
/// cores; unbound ranks, which all see every core, split them. Where a set is unknown, all
/// the node's ranks are counted. At least 1.
pub fn sharing_ranks(mine: Option<&[u32]>, all: &[Option<Vec<u32>>]) -> usize {
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
/// them ([`sharing_ranks`]); at least 1.
pub fn threads_per_rank(cores: usize, mine: Option<&[u32]>, all: &[Option<Vec<u32>>]) -> usize {
    (cores / sharing_ranks(mine, all)).max(1)
}

impl Communicator {
    /// This rank's share of its cores: [`usable_cores`] divided among the ranks of this
    /// communicator on the same node whose CPU sets overlap its own (see the module docs).
    /// Collective over this communicator.
    pub fn cores_per_rank(&self) -> Result<usize> {
        let node = self.split_shared()?;
        let mine = allowed_cpus();
        let all = node.all_gather(&mine)?;
        Ok(threads_per_rank(usable_cores(), mine.as_deref(), &all))
    }
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

    #[test]
    fn one_process_gets_all_its_cores() {
        let world = Communicator::local();
        assert_eq!(world.cores_per_rank().unwrap(), usable_cores());
    }
}
