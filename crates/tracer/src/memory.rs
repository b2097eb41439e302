//! The memory this process may use: the smaller of its cgroup's limit and the machine's.
//!
//! Allocation does not say when memory runs short: Linux overcommits, so a large allocation
//! succeeds and the process is killed later, without a message, when a batch job's cgroup
//! limit (Slurm's `--mem`) is reached as its pages are touched. Sizes that come from user input
//! are compared with this limit first.

/// A limit on the memory this process may use, and where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MemoryLimit {
    pub bytes: u64,
    /// Where the limit is set, for a message: "the limit of its cgroup, in
    /// /sys/fs/cgroup/…/memory.max", "the machine's memory, MemTotal in /proc/meminfo".
    pub origin: String,
}

/// The memory this process may use; `None` where no limit can be read (not Linux).
pub(crate) fn memory_limit() -> Option<MemoryLimit> {
    memory_limit_from(&|path| std::fs::read_to_string(path).ok())
}

/// cgroup v1 writes "no limit" as the largest page-aligned count of bytes; anything this
/// large is no limit.
const NO_LIMIT: u64 = 1 << 62;

/// [`memory_limit`], with the files read through `read` (a path to its contents, `None` where
/// it cannot be read): the smallest of MemTotal in /proc/meminfo and the memory limits of the
/// process's cgroups (from /proc/self/cgroup) and of the groups above them, which hold for it
/// too — Slurm, for one, limits a job's group and a step's, not the task's that the process
/// is in. cgroup v2 keeps the limit in `memory.max` under /sys/fs/cgroup ("max": none), v1 in
/// `memory.limit_in_bytes` under /sys/fs/cgroup/memory.
fn memory_limit_from(read: &dyn Fn(&str) -> Option<String>) -> Option<MemoryLimit> {
    let mut limits = Vec::new();
    let total = read("/proc/meminfo").and_then(|text| {
        let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
        line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
    });
    if let Some(kib) = total {
        limits.push(MemoryLimit {
            bytes: kib.saturating_mul(1024),
            origin: "the machine's memory, MemTotal in /proc/meminfo".to_string(),
        });
    }
    for line in read("/proc/self/cgroup").unwrap_or_default().lines() {
        // "hierarchy:controllers:path"; v2's single hierarchy lists no controllers.
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(group)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (root, file) = if controllers.is_empty() {
            ("/sys/fs/cgroup", "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut group = group.trim_end_matches('/');
        loop {
            let path = format!("{root}{group}/{file}");
            let bytes = read(&path).and_then(|text| text.trim().parse::<u64>().ok());
            if let Some(bytes) = bytes.filter(|&b| b < NO_LIMIT) {
                limits.push(MemoryLimit {
                    bytes,
                    origin: format!("the limit of its cgroup, in {path}"),
                });
            }
            let Some(up) = group.rfind('/') else { break };
            group = &group[..up];
        }
    }
    limits.into_iter().min_by_key(|l| l.bytes)
}

/// `bytes` for a message: "357.6 MiB", "2.5 GiB".
pub(crate) fn show_bytes(bytes: u64) -> String {
    let mib = bytes as f64 / f64::from(1 << 20);
    if mib < 1024.0 {
        format!("{mib:.1} MiB")
    } else {
        format!("{:.1} GiB", mib / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn limit(files: &[(&str, &str)]) -> Option<MemoryLimit> {
        let files: HashMap<&str, &str> = files.iter().copied().collect();
        memory_limit_from(&|path| files.get(path).map(|text| text.to_string()))
    }

    const MEMINFO: &str = "MemTotal:       24684068 kB\nMemFree:        17016948 kB\n";

    #[test]
    fn a_cgroup_v2_limit_up_the_tree_holds_and_max_is_none() {
        // Slurm: the job's group has the limit, the task's group the process is in has none.
        let cgroup = "0::/system.slice/slurmstepd.scope/job_7/step_0/user/task_0\n";
        let job = "/sys/fs/cgroup/system.slice/slurmstepd.scope/job_7/memory.max";
        let task =
            "/sys/fs/cgroup/system.slice/slurmstepd.scope/job_7/step_0/user/task_0/memory.max";
        let l = limit(&[
            ("/proc/meminfo", MEMINFO),
            ("/proc/self/cgroup", cgroup),
            (task, "max\n"),
            (job, "268435456\n"),
        ])
        .unwrap();
        assert_eq!(l.bytes, 256 << 20);
        assert_eq!(l.origin, format!("the limit of its cgroup, in {job}"));
        // No limit anywhere: the machine's memory.
        let l = limit(&[
            ("/proc/meminfo", MEMINFO),
            ("/proc/self/cgroup", cgroup),
            (task, "max\n"),
            (job, "max\n"),
        ])
        .unwrap();
        assert_eq!(l.bytes, 24684068 * 1024);
        assert_eq!(l.origin, "the machine's memory, MemTotal in /proc/meminfo");
        // A container's own group, mounted at the root (a cgroup namespace: path "/").
        let l = limit(&[
            ("/proc/self/cgroup", "0::/\n"),
            ("/sys/fs/cgroup/memory.max", "1073741824\n"),
        ])
        .unwrap();
        assert_eq!(l.bytes, 1 << 30);
    }

    #[test]
    fn a_cgroup_v1_limit_counts_unless_it_is_huge() {
        let cgroup = "12:cpu,cpuacct:/slurm/uid_1/job_5\n9:memory:/slurm/uid_1/job_5/step_0\n\
                      1:name=systemd:/user.slice\n";
        let step = "/sys/fs/cgroup/memory/slurm/uid_1/job_5/step_0/memory.limit_in_bytes";
        let job = "/sys/fs/cgroup/memory/slurm/uid_1/job_5/memory.limit_in_bytes";
        let root = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
        let unlimited = "9223372036854771712\n";
        let l = limit(&[
            ("/proc/meminfo", MEMINFO),
            ("/proc/self/cgroup", cgroup),
            (step, "536870912\n"),
            (job, "268435456\n"),
            (root, unlimited),
        ])
        .unwrap();
        assert_eq!(l.bytes, 256 << 20);
        assert_eq!(l.origin, format!("the limit of its cgroup, in {job}"));
        let l = limit(&[
            ("/proc/meminfo", MEMINFO),
            ("/proc/self/cgroup", cgroup),
            (step, unlimited),
            (root, unlimited),
        ])
        .unwrap();
        assert_eq!(l.bytes, 24684068 * 1024);
        // Nothing readable, or nonsense: no limit known.
        assert_eq!(limit(&[]), None);
        let nonsense = [
            ("/proc/meminfo", "MemTotal: lots\n"),
            ("/proc/self/cgroup", "garbage\n0::/a\n"),
            ("/sys/fs/cgroup/a/memory.max", "-1\n"),
        ];
        assert_eq!(limit(&nonsense), None);
    }

    #[test]
    fn sizes_read_in_mib_or_gib() {
        assert_eq!(show_bytes(375_000_000), "357.6 MiB");
        assert_eq!(show_bytes(256 << 20), "256.0 MiB");
        assert_eq!(show_bytes(5 << 29), "2.5 GiB");
    }
}
