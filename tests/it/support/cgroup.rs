//! A real memory limit for one process: a cgroup of its own (v1 or v2), as
//! the Kubernetes and AWS Batch containers `deploy/` ships have.

use std::path::PathBuf;

/// A memory cgroup with a limit; removed on drop (once its processes are gone).
pub struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    /// Creates `name` with `limit` bytes, or `None` (saying why) where this
    /// machine or user cannot.
    pub fn create(name: &str, limit: u64) -> Option<MemoryCgroup> {
        let v2_root = PathBuf::from("/sys/fs/cgroup");
        let v2 = std::fs::read_to_string(v2_root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let (dir, limit_file) = if v2 {
            let _ = std::fs::write(v2_root.join("cgroup.subtree_control"), "+memory");
            (v2_root.join(name), "memory.max")
        } else if PathBuf::from("/sys/fs/cgroup/memory/cgroup.procs").exists() {
            (
                PathBuf::from("/sys/fs/cgroup/memory").join(name),
                "memory.limit_in_bytes",
            )
        } else {
            eprintln!("skipped: no memory cgroup controller (v1 or v2) here");
            return None;
        };
        let _ = std::fs::remove_dir(&dir);
        if let Err(e) = std::fs::create_dir(&dir)
            .and_then(|()| std::fs::write(dir.join(limit_file), limit.to_string()))
        {
            eprintln!("skipped: cannot create a memory cgroup ({e}); run the tests as root");
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        // No swap to hide in: the limit is the memory there is.
        let swap = if v2 {
            "memory.swap.max"
        } else {
            "memory.memsw.limit_in_bytes"
        };
        let _ = std::fs::write(
            dir.join(swap),
            if v2 {
                "0".to_string()
            } else {
                limit.to_string()
            },
        );
        Some(MemoryCgroup { dir, v2 })
    }

    /// `env`'s command for the binary, started inside this cgroup: a shell
    /// moves itself in, then execs the binary.
    pub fn command(&self, env: &super::Env) -> tokio::process::Command {
        let script = format!(
            "echo $$ > {} && exec \"$@\"",
            self.dir.join("cgroup.procs").display()
        );
        env.command_via(&["sh", "-c", &script, "sh"])
    }

    /// The cgroup's peak memory use, page cache included, in bytes.
    pub fn peak(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the kernel OOM-killed a process in it.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}
