//! What the numbers were measured on: date, cores, CPU, memory, kernel, and the disk and
//! filesystem the stores live on.

use std::fmt;
use std::path::Path;

pub struct Info {
    pub date: String,
    pub cores: usize,
    pub cpu: String,
    pub memory: String,
    pub kernel: String,
    /// `ext4 on /dev/vda (mounted at /)`.
    pub filesystem: String,
}

impl Info {
    pub fn short(&self) -> String {
        format!("{} cores, {}, {}", self.cores, self.cpu, self.filesystem)
    }
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "date: {}", self.date)?;
        writeln!(
            f,
            "machine: {} cores (nproc), {}, {} RAM, Linux {}",
            self.cores, self.cpu, self.memory, self.kernel
        )?;
        write!(f, "stores on: {}", self.filesystem)
    }
}

pub fn describe(dir: &Path) -> Info {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown date".to_owned());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown CPU".to_owned(), |(_, v)| v.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or_else(
            || "unknown".to_owned(),
            |kb| format!("{} GiB", (kb + (1 << 19)) >> 20),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    Info {
        date,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        memory,
        kernel,
        filesystem: filesystem_of(dir),
    }
}

/// The mount (from /proc/self/mountinfo) with the longest mount point containing `dir`.
fn filesystem_of(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split_whitespace().nth(4) else {
            continue;
        };
        let mut r = right.split_whitespace();
        let (Some(fstype), Some(source)) = (r.next(), r.next()) else {
            continue;
        };
        if dir.starts_with(mount_point)
            && best
                .as_ref()
                .is_none_or(|(len, _)| mount_point.len() >= *len)
        {
            best = Some((
                mount_point.len(),
                format!(
                    "{fstype} on {source} (mounted at {mount_point}), {}",
                    dir.display()
                ),
            ));
        }
    }
    best.map_or_else(
        || format!("unknown filesystem, {}", dir.display()),
        |(_, s)| s,
    )
}
