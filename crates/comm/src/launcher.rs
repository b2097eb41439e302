//! Recognising that an MPI launcher started this process, from the environment it sets.
//!
//! A build without MPI that was started by `mpirun -n 4` must refuse to run: four copies each
//! doing all the work and overwriting each other's output is the worst failure. A build with
//! MPI that was *not* started by a launcher runs as a one-process world without touching MPI,
//! so unit tests (many threads, many `init` calls) work in both builds.

/// What the environment says about a launcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Launch {
    /// The variable that revealed the launcher.
    pub variable: String,
    /// The number of processes, when the launcher said so (at least 2 when only a rank > 0
    /// was seen).
    pub size: Option<usize>,
}

/// Variables holding the number of processes (Open MPI, MPICH/Hydra/Slurm PMI, PMIx launchers).
const SIZE_VARS: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"];
/// Variables holding this process's rank: a rank above 0 proves there are several.
const RANK_VARS: &[&str] = &["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"];

/// Looks for a launcher through `get` (the process environment in production, a map in tests).
pub(crate) fn detect(get: impl Fn(&str) -> Option<String>) -> Option<Launch> {
    let parse = |v: &str| get(v).and_then(|s| s.trim().parse::<usize>().ok());
    for var in SIZE_VARS {
        if let Some(size) = parse(var) {
            return Some(Launch {
                variable: (*var).to_string(),
                size: Some(size),
            });
        }
    }
    for var in RANK_VARS {
        if let Some(rank) = parse(var) {
            return Some(Launch {
                variable: (*var).to_string(),
                size: if rank > 0 { Some(rank + 1) } else { None },
            });
        }
    }
    None
}

/// The launcher of this process, from its environment.
pub(crate) fn detect_env() -> Option<Launch> {
    detect(|v| std::env::var(v).ok())
}

/// This process's rank in `get`'s launcher variables, if a launcher set one.
pub(crate) fn rank_in(get: impl Fn(&str) -> Option<String>) -> Option<usize> {
    RANK_VARS
        .iter()
        .find_map(|v| get(v).and_then(|s| s.trim().parse::<usize>().ok()))
}

/// This process's rank in its job as the launcher's environment gives it, without MPI: for
/// work before MPI is up or after it is gone, such as deciding which process of a job prints
/// an error that every process holds (rank 0, or a process with no launcher). `None` when no
/// launcher set a rank.
pub fn launcher_rank() -> Option<usize> {
    rank_in(|v| std::env::var(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn no_launcher() {
        assert_eq!(detect(env(&[("PATH", "/bin")])), None);
    }

    #[test]
    fn open_mpi_size() {
        let l = detect(env(&[
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_RANK", "0"),
        ]))
        .unwrap();
        assert_eq!(l.size, Some(4));
        assert_eq!(l.variable, "OMPI_COMM_WORLD_SIZE");
    }

    #[test]
    fn pmi_size() {
        assert_eq!(detect(env(&[("PMI_SIZE", "3")])).unwrap().size, Some(3));
    }

    #[test]
    fn pmix_rank_only() {
        assert_eq!(detect(env(&[("PMIX_RANK", "0")])).unwrap().size, None);
        assert_eq!(detect(env(&[("PMIX_RANK", "2")])).unwrap().size, Some(3));
    }

    #[test]
    fn rank_from_any_launcher() {
        assert_eq!(rank_in(env(&[("PATH", "/bin")])), None);
        assert_eq!(rank_in(env(&[("OMPI_COMM_WORLD_RANK", "3")])), Some(3));
        assert_eq!(rank_in(env(&[("PMI_RANK", " 1 ")])), Some(1));
        assert_eq!(
            rank_in(env(&[("PMIX_RANK", "x"), ("PMI_RANK", "2")])),
            Some(2)
        );
    }

    #[test]
    fn garbage_is_ignored() {
        assert_eq!(detect(env(&[("PMI_SIZE", "many")])), None);
    }
}
