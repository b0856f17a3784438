//! The memory budget: what rows may hold in memory at once, in bytes.
//!
//! A cap on rows in flight alone does not bound memory: three 98-megapixel
//! JPEGs need gigabytes. So every large holding is leased from one budget first: a download's body (its
//! announced length), a conversion's estimated pixel cache (from the header,
//! before any decoding), an output waiting for its upload. A lease waits for
//! room in FIFO order, so a big image is not starved by small ones, and one
//! larger than the whole budget is clamped to it: it runs alone.
//!
//! A row never waits for a lease while holding another one it could give up
//! (the convert stage drops its source lease before it waits), so leases
//! cannot deadlock: every holder is either working or waiting for a stage
//! slot that a working row frees.
//!
//! The default budget is a fraction of the container's memory limit (cgroup
//! v2 `memory.max`, cgroup v1 `memory.limit_in_bytes`), else of physical
//! memory: the rest is for the process itself, the allocator's slack and the
//! page cache.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Leases are counted in KiB, so a `u32` permit count covers 4 TiB.
const UNIT: u64 = 1024;
/// Share of the memory limit that the budget takes by default.
pub const DEFAULT_SHARE: f64 = 0.5;

/// The budget, shared by every stage.
#[derive(Clone)]
pub struct Budget {
    sem: Arc<Semaphore>,
    units: u32,
}

/// Bytes held against the budget; returned on drop.
pub struct Lease {
    sem: Arc<Semaphore>,
    units: u32,
}

impl Budget {
    pub fn new(bytes: u64) -> Budget {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        Budget {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.units) * UNIT
    }

    /// Bytes leased right now.
    pub fn in_use(&self) -> u64 {
        (u64::from(self.units) - self.sem.available_permits() as u64) * UNIT
    }

    fn units_for(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.units)
    }

    /// Waits until `bytes` (at most the whole budget) are free, and takes them.
    pub async fn lease(&self, bytes: u64) -> Lease {
        let units = self.units_for(bytes);
        let permit = Arc::clone(&self.sem)
            .acquire_many_owned(units)
            .await
            .expect("never closed");
        permit.forget();
        Lease {
            sem: Arc::clone(&self.sem),
            units,
        }
    }

    /// Takes `bytes` if they are free now and nobody is waiting.
    pub fn try_lease(&self, bytes: u64) -> Option<Lease> {
        let units = self.units_for(bytes);
        let permit = Arc::clone(&self.sem).try_acquire_many_owned(units).ok()?;
        permit.forget();
        Some(Lease {
            sem: Arc::clone(&self.sem),
            units,
        })
    }
}

impl Lease {
    /// Keeps only `bytes` of the lease, returning the rest at once.
    pub fn shrink_to(&mut self, bytes: u64) {
        let keep = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.units);
        self.sem.add_permits((self.units - keep) as usize);
        self.units = keep;
    }

    /// Adds another lease of the same budget to this one.
    pub fn absorb(&mut self, mut other: Lease) {
        self.units += other.units;
        other.units = 0;
    }

    pub fn bytes(&self) -> u64 {
        u64::from(self.units) * UNIT
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.sem.add_permits(self.units as usize);
    }
}

/// The memory budget in force: `configured` (`--memory-budget`), else
/// [`DEFAULT_SHARE`] of the memory limit (the container's, else physical
/// memory), decided on the machine the run or resume runs on.
pub fn budget_bytes(configured: Option<u64>) -> u64 {
    configured.unwrap_or_else(|| {
        let limit = memory_limit().unwrap_or(2 << 30);
        (limit as f64 * DEFAULT_SHARE) as u64
    })
}

/// The memory this process may use: the container's limit, else physical memory.
pub fn memory_limit() -> Option<u64> {
    let physical = physical_memory();
    let cgroup = cgroup_limit(Path::new("/sys/fs/cgroup"), Path::new("/proc/self/cgroup"));
    match (cgroup, physical) {
        (Some(c), Some(p)) => Some(c.min(p)),
        (c, p) => c.or(p),
    }
}

fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// This process's memory limit from its cgroup: v2's `memory.max` or v1's
/// `memory.limit_in_bytes`, the lowest along the path to the root (a parent's
/// limit binds a child too). `None` when unlimited or unreadable.
fn cgroup_limit(root: &Path, self_cgroup: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(self_cgroup).ok()?;
    let mut lowest: Option<u64> = None;
    for line in text.lines() {
        // `0::/path` (v2) or `4:memory:/path` (v1).
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let (base, file) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut dir = base.join(path.trim_start_matches('/'));
        loop {
            if let Some(limit) = read_limit(&dir.join(file)) {
                lowest = Some(lowest.map_or(limit, |l| l.min(limit)));
            }
            if dir == base || !dir.pop() {
                break;
            }
        }
    }
    lowest
}

fn read_limit(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let value: u64 = text.trim().parse().ok()?;
    // cgroup v1 says "no limit" with a huge number near i64::MAX.
    (value < 1 << 60).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leases_wait_in_order_and_a_big_one_is_clamped_to_run_alone() {
        let budget = Budget::new(10 * 1024 * 1024);
        let small = budget.lease(4 * 1024 * 1024).await;
        assert_eq!(budget.in_use(), 4 * 1024 * 1024);
        // Larger than the whole budget: clamped, so it can run once alone.
        assert!(budget.try_lease(50 * 1024 * 1024).is_none());
        let big = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.lease(50 * 1024 * 1024).await })
        };
        tokio::task::yield_now().await;
        // Someone is waiting: a newcomer does not jump the queue.
        assert!(budget.try_lease(1024).is_none());
        drop(small);
        let big = big.await.unwrap();
        assert_eq!(big.bytes(), budget.total());
        drop(big);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn a_lease_shrinks_to_what_it_still_holds() {
        let budget = Budget::new(8 * 1024 * 1024);
        let mut lease = budget.try_lease(6 * 1024 * 1024).unwrap();
        lease.shrink_to(1024 * 1024);
        assert_eq!(budget.in_use(), 1024 * 1024);
        drop(lease);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn cgroup_limits_are_read_for_v1_and_v2_and_the_lowest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // v2: a limit on the pod and a lower one on the container.
        std::fs::create_dir_all(root.join("kubepods/pod1/ctr")).unwrap();
        std::fs::write(root.join("kubepods/pod1/memory.max"), "2147483648\n").unwrap();
        std::fs::write(root.join("kubepods/pod1/ctr/memory.max"), "1073741824\n").unwrap();
        std::fs::write(root.join("memory.max"), "max\n").unwrap();
        let me = root.join("self");
        std::fs::write(&me, "0::/kubepods/pod1/ctr\n").unwrap();
        assert_eq!(cgroup_limit(root, &me), Some(1 << 30));
        // v1: the memory controller's hierarchy, "unlimited" as a huge number.
        std::fs::create_dir_all(root.join("memory/batch")).unwrap();
        std::fs::write(
            root.join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        std::fs::write(
            root.join("memory/batch/memory.limit_in_bytes"),
            "536870912\n",
        )
        .unwrap();
        std::fs::write(&me, "12:cpu,cpuacct:/batch\n4:memory:/batch\n").unwrap();
        assert_eq!(cgroup_limit(root, &me), Some(512 << 20));
        // No limit anywhere.
        std::fs::write(&me, "0::/\n").unwrap();
        assert_eq!(cgroup_limit(root, &me), None);
    }
}
