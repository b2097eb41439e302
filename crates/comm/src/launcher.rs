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
    /// The number of processes, when the launcher said so, or a lower bound (this rank + 1)
    /// when only a rank above 0 was seen.
    pub size: Option<usize>,
    /// `size` is only a lower bound.
    pub at_least: bool,
}

/// Variables holding the number of processes (Open MPI, MPICH/Hydra/Slurm PMI, PMIx launchers).
const SIZE_VARS: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"];
/// Variables holding this process's rank: a rank above 0 proves there are several.
const RANK_VARS: &[&str] = &["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"];
/// Slurm's own variables for a task of an `srun` step. They are the last resort: a PMIx
/// launch gives no size, and `srun --mpi=none` gives nothing else at all. A batch script sets
/// `SLURM_PROCID=0` and `SLURM_NTASKS` for itself too, although it is one process, so only a
/// step (`SLURM_STEP_NUM_TASKS`, set by `srun` alone) counts.
const SLURM_STEP_SIZE: &str = "SLURM_STEP_NUM_TASKS";
const SLURM_STEP_RANK: &str = "SLURM_PROCID";

fn parse_in(get: &impl Fn(&str) -> Option<String>, var: &str) -> Option<usize> {
    get(var).and_then(|s| s.trim().parse::<usize>().ok())
}

/// Looks for a launcher through `get` (the process environment in production, a map in tests).
pub(crate) fn detect(get: impl Fn(&str) -> Option<String>) -> Option<Launch> {
    let found = |var: &str, size, at_least| {
        Some(Launch {
            variable: var.to_string(),
            size,
            at_least,
        })
    };
    if let Some((var, size)) = SIZE_VARS
        .iter()
        .find_map(|v| parse_in(&get, v).map(|n| (*v, n)))
    {
        return found(var, Some(size), false);
    }
    let rank = RANK_VARS
        .iter()
        .find_map(|v| parse_in(&get, v).map(|r| (*v, r)));
    if let Some(size) = parse_in(&get, SLURM_STEP_SIZE) {
        return found(SLURM_STEP_SIZE, Some(size), false);
    }
    match rank {
        Some((var, 0)) => found(var, None, false),
        Some((var, r)) => found(var, Some(r + 1), true),
        None => None,
    }
}

/// The launcher of this process, from its environment.
pub(crate) fn detect_env() -> Option<Launch> {
    detect(|v| std::env::var(v).ok())
}

/// This process's rank in `get`'s launcher variables, if a launcher set one.
pub(crate) fn rank_in(get: impl Fn(&str) -> Option<String>) -> Option<usize> {
    RANK_VARS
        .iter()
        .find_map(|v| parse_in(&get, v))
        .or_else(|| parse_in(&get, SLURM_STEP_SIZE).and_then(|_| parse_in(&get, SLURM_STEP_RANK)))
}

/// This process's rank in its job as the launcher's environment gives it, without MPI: for
/// work before MPI is up or after it is gone, such as deciding which process of a job prints
/// an error that every process holds (rank 0, or a process with no launcher). `None` when no
/// launcher set a rank, and for a rank above 0 when no launcher variable gives the job's size:
/// such a rank may be a stray variable in a lone process (left by a wrapping job step), which
/// must still print its errors since no rank 0 will.
pub fn launcher_rank() -> Option<usize> {
    reporting_rank(|v| std::env::var(v).ok())
}

/// Whether a launcher started this process as part of a parallel job, by its environment:
/// `mpirun`/`mpiexec` (even with one process), or an `srun` step of several tasks. A step of
/// one task with no MPI variables does not count: it is also what every command typed in an
/// interactive `srun --pty bash` shell sees.
pub fn launched_as_job() -> bool {
    launched_as_job_in(|v| std::env::var(v).ok())
}

/// How many processes the launcher that started this process says its job has, by its
/// environment: `None` without a launcher or when it gives no number. A lower bound when only
/// this process's rank (above 0) shows that there are several. For code that runs in one
/// process to notice that it has been started N times (prism-engines' single-process engines
/// warn that each of N processes running them would run every task).
pub fn launched_processes() -> Option<usize> {
    launched_processes_in(|v| std::env::var(v).ok())
}

fn launched_processes_in(get: impl Fn(&str) -> Option<String>) -> Option<usize> {
    detect(get).and_then(|l| l.size)
}

fn launched_as_job_in(get: impl Fn(&str) -> Option<String>) -> bool {
    detect(get).is_some_and(|l| !(l.variable == SLURM_STEP_SIZE && l.size == Some(1)))
}

fn reporting_rank(get: impl Fn(&str) -> Option<String>) -> Option<usize> {
    let rank = rank_in(&get)?;
    let sized = detect(&get).is_some_and(|l| l.size.is_some() && !l.at_least);
    (rank == 0 || sized).then_some(rank)
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
    fn the_number_of_processes_is_the_launchers_or_a_lower_bound() {
        assert_eq!(launched_processes_in(env(&[])), None);
        assert_eq!(
            launched_processes_in(env(&[("OMPI_COMM_WORLD_SIZE", "4")])),
            Some(4)
        );
        assert_eq!(
            launched_processes_in(env(&[("SLURM_STEP_NUM_TASKS", "1"), ("SLURM_PROCID", "0")])),
            Some(1)
        );
        // PMIx gives only a rank: rank 2 shows at least 3 processes; rank 0 shows nothing.
        assert_eq!(launched_processes_in(env(&[("PMIX_RANK", "2")])), Some(3));
        assert_eq!(launched_processes_in(env(&[("PMIX_RANK", "0")])), None);
    }

    #[test]
    fn an_srun_step_of_one_task_is_not_a_job_but_mpirun_with_one_process_is() {
        assert!(!launched_as_job_in(env(&[])));
        assert!(!launched_as_job_in(env(&[
            ("SLURM_STEP_NUM_TASKS", "1"),
            ("SLURM_PROCID", "0")
        ])));
        assert!(launched_as_job_in(env(&[
            ("SLURM_STEP_NUM_TASKS", "2"),
            ("SLURM_PROCID", "0")
        ])));
        assert!(launched_as_job_in(env(&[("OMPI_COMM_WORLD_SIZE", "1")])));
        assert!(launched_as_job_in(env(&[
            ("SLURM_STEP_NUM_TASKS", "1"),
            ("PMI_SIZE", "1")
        ])));
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
        let l = detect(env(&[("PMIX_RANK", "2")])).unwrap();
        assert_eq!((l.size, l.at_least), (Some(3), true));
    }

    #[test]
    fn slurm_step_gives_the_size_a_pmix_launch_lacks() {
        let l = detect(env(&[("PMIX_RANK", "0"), ("SLURM_STEP_NUM_TASKS", "4")])).unwrap();
        assert_eq!((l.size, l.at_least), (Some(4), false));
        assert_eq!(l.variable, "SLURM_STEP_NUM_TASKS");
        // srun --mpi=none sets nothing but Slurm's own variables.
        let step = env(&[("SLURM_STEP_NUM_TASKS", "2"), ("SLURM_PROCID", "1")]);
        assert_eq!(detect(&step).unwrap().size, Some(2));
        assert_eq!(rank_in(&step), Some(1));
        // Open MPI's own variables win over the step of `orted` that mpirun ran under Slurm.
        let under_mpirun = env(&[
            ("OMPI_COMM_WORLD_SIZE", "8"),
            ("OMPI_COMM_WORLD_RANK", "5"),
            ("SLURM_STEP_NUM_TASKS", "2"),
            ("SLURM_PROCID", "1"),
        ]);
        assert_eq!(detect(&under_mpirun).unwrap().size, Some(8));
        assert_eq!(rank_in(&under_mpirun), Some(5));
    }

    #[test]
    fn a_stray_rank_without_a_size_reports_its_own_errors() {
        assert_eq!(reporting_rank(env(&[("PMI_RANK", "1")])), None);
        assert_eq!(reporting_rank(env(&[("PMIX_RANK", "0")])), Some(0));
        let sized = env(&[("PMI_RANK", "1"), ("PMI_SIZE", "2")]);
        assert_eq!(reporting_rank(&sized), Some(1));
        let step = env(&[("SLURM_STEP_NUM_TASKS", "3"), ("SLURM_PROCID", "2")]);
        assert_eq!(reporting_rank(&step), Some(2));
    }

    #[test]
    fn a_batch_script_is_not_a_launch() {
        // sbatch sets these for the script itself, which is one process.
        let batch = env(&[
            ("SLURM_NTASKS", "4"),
            ("SLURM_PROCID", "0"),
            ("SLURM_JOB_ID", "7"),
        ]);
        assert_eq!(detect(&batch), None);
        assert_eq!(rank_in(&batch), None);
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
