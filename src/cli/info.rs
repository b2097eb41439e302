//! `prism info`: what this run has — process sets, nodes, ranks per node, threads per rank —
//! and which engine `--engine auto` would pick.

use crate::cli::layout::Layout;
use crate::cli::{say, with_universe, CliError};
use prism::comm::Universe;

pub fn run() -> Result<(), CliError> {
    with_universe(Ok(()), report)
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
    // Each rank's host and what huge pages its node gives, one gather for both.
    let nodes = world.gather(0, &(universe.processor_name(), huge_pages()))?;
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
        if let Some(mut nodes) = nodes {
            nodes.sort();
            nodes.dedup();
            let mut hosts: Vec<&str> = nodes.iter().map(|(host, _)| host.as_str()).collect();
            hosts.dedup();
            text.push_str(&format!("hosts: {}\n", hosts.join(", ")));
            let mut kinds: Vec<&String> = nodes.iter().map(|(_, h)| h).collect();
            kinds.sort();
            kinds.dedup();
            if kinds.len() == 1 {
                text.push_str(&format!(
                    "huge pages for scenes of 2 MiB or more:\n{}",
                    kinds[0]
                ));
            } else {
                for (host, h) in &nodes {
                    text.push_str(&format!("huge pages on {host}:\n{h}"));
                }
            }
        }
        text.push_str(&format!("engine auto: {}", layout.auto_engine()));
        say(&text)?;
    }
    Ok(())
}

/// Whether this node gives a large scene the huge pages prism asks for (see
/// docs/running-on-clusters.md, "Huge pages"): a scene built or loaded by one process, and
/// a scene shared by the processes of a node through /dev/shm.
fn huge_pages() -> String {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let anon = read("/sys/kernel/mm/transparent_hugepage/enabled");
    let shmem = read("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
    let mounts = read("/proc/mounts");
    describe_huge_pages(anon.as_deref(), shmem.as_deref(), mounts.as_deref())
}

/// The bracketed choice of a /sys/kernel/mm/transparent_hugepage setting ("always [madvise]
/// never" → "madvise").
fn selected(setting: &str) -> Option<&str> {
    let start = setting.find('[')? + 1;
    let end = start + setting[start..].find(']')?;
    Some(&setting[start..end])
}

/// The `huge=` option of the tmpfs mounted last on /dev/shm (tmpfs's default: "never").
fn dev_shm_huge(mounts: &str) -> Option<&str> {
    // The last mount on a mount point hides the earlier ones.
    let options = mounts.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() >= 4 && fields[1] == "/dev/shm" && fields[2] == "tmpfs").then_some(fields[3])
    })?;
    Some(
        options
            .split(',')
            .find_map(|o| o.strip_prefix("huge="))
            .unwrap_or("never"),
    )
}

fn describe_huge_pages(anon: Option<&str>, shmem: Option<&str>, mounts: Option<&str>) -> String {
    let built = match anon.and_then(selected) {
        Some(mode @ ("always" | "madvise")) => format!("yes (transparent_hugepage {mode})"),
        Some(mode) => format!("no (transparent_hugepage {mode})"),
        None => "no (no transparent huge pages here)".to_string(),
    };
    let shared = match (shmem.and_then(selected), mounts.and_then(dev_shm_huge)) {
        (Some("force"), _) => "yes (shmem_enabled force)".to_string(),
        (Some("deny"), _) => "no (shmem_enabled deny)".to_string(),
        (None, _) if anon.is_none() => "no (no transparent huge pages here)".to_string(),
        (_, None) => "no (no tmpfs on /dev/shm)".to_string(),
        (_, Some(h @ ("always" | "within_size" | "advise"))) => format!("yes (/dev/shm huge={h})"),
        (_, Some(h)) => {
            format!("no (/dev/shm huge={h}; an administrator can remount it huge=advise)")
        }
    };
    format!("  built or cached: {built}\n  node-shared:     {shared}\n")
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
    use super::{describe_huge_pages, mpi_absent_reason};

    #[test]
    fn an_mpi_build_without_a_launcher_is_not_told_to_rebuild() {
        assert!(mpi_absent_reason(true).contains("mpirun"));
        assert!(!mpi_absent_reason(true).contains("rebuild"));
        assert!(mpi_absent_reason(false).contains("--features mpi"));
    }

    #[test]
    fn huge_pages_are_read_off_the_kernel_settings_and_the_dev_shm_mount() {
        let mounts = "proc /proc proc rw 0 0\n\
                      tmpfs /dev/shm tmpfs rw,nosuid,size=65536k 0 0\n\
                      /dev/vda / ext4 rw 0 0\n";
        let remounted = format!("{mounts}tmpfs /dev/shm tmpfs rw,size=65536k,huge=advise 0 0\n");
        let anon = Some("always [madvise] never\n");
        let shmem = Some("always within_size advise [never] deny force\n");
        let lines = |anon, shmem, mounts| {
            let t = describe_huge_pages(anon, shmem, mounts);
            let l: Vec<String> = t.lines().map(|l| l.trim().to_string()).collect();
            assert_eq!(l.len(), 2, "{t}");
            (l[0].clone(), l[1].clone())
        };
        let (built, shared) = lines(anon, shmem, Some(mounts));
        assert_eq!(built, "built or cached: yes (transparent_hugepage madvise)");
        assert!(
            shared.starts_with("node-shared:     no (/dev/shm huge=never;"),
            "{shared}"
        );
        let (_, shared) = lines(anon, shmem, Some(&remounted));
        assert_eq!(shared, "node-shared:     yes (/dev/shm huge=advise)");
        let (built, _) = lines(Some("always madvise [never]"), shmem, Some(mounts));
        assert_eq!(built, "built or cached: no (transparent_hugepage never)");
        let (_, shared) = lines(anon, Some("always [force]"), Some(mounts));
        assert_eq!(shared, "node-shared:     yes (shmem_enabled force)");
        let (_, shared) = lines(anon, shmem, Some("/dev/vda / ext4 rw 0 0\n"));
        assert_eq!(shared, "node-shared:     no (no tmpfs on /dev/shm)");
        let (built, shared) = lines(None, None, Some(mounts));
        assert_eq!(
            built,
            "built or cached: no (no transparent huge pages here)"
        );
        assert_eq!(
            shared,
            "node-shared:     no (no transparent huge pages here)"
        );
    }
}
