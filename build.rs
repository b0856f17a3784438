//! Build facts for `--version`: the git commit, and the libjpeg-turbo that
//! turbojpeg-sys bundles (it has no run-time version call).
//!
//! The commit comes from `BATCHIMG_COMMIT` when set (the Dockerfile passes it
//! as a build argument: the image is built without `.git`), else from `git`,
//! else it is "unknown": a source tarball or a build without git still builds.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-env-changed=BATCHIMG_COMMIT");
    let commit = std::env::var("BATCHIMG_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=BATCHIMG_COMMIT={commit}");
    let turbojpeg = locked_version("turbojpeg-sys").unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=BATCHIMG_TURBOJPEG_SYS={turbojpeg}");
}

/// The short commit of HEAD; `None` without git or outside a repository.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Rebuild when HEAD moves: its reflog changes with every commit and
    // checkout (in a worktree too, where `.git` is a file).
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    Some(commit)
}

/// The version of `package` that Cargo.lock pins.
fn locked_version(package: &str) -> Option<String> {
    let lock = std::fs::read_to_string("Cargo.lock").ok()?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{package}\"") {
            let version = lines.next()?.trim().strip_prefix("version = ")?;
            return Some(version.trim_matches('"').to_string());
        }
    }
    None
}
