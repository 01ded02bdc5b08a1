//! CPU time and peak memory of a process, read from `/proc` (Linux).

use std::sync::OnceLock;

/// CPU seconds (user + system) and peak RSS of a process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu_secs: f64,
    pub peak_rss_kib: u64,
    pub rss_kib: u64,
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` once the process is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Usage {
        cpu_secs: parse_cpu(&stat)? / clock_ticks(),
        peak_rss_kib: kib(&status, "VmHWM:")?,
        rss_kib: kib(&status, "VmRSS:")?,
    })
}

/// utime + stime in clock ticks, from the fields after the `(comm)`.
fn parse_cpu(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "(comm) ", field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
}

fn kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let u = usage(std::process::id()).expect("own /proc");
        assert!(u.peak_rss_kib >= u.rss_kib && u.rss_kib > 0);
        assert_eq!(
            parse_cpu("1 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0"),
            Some(300.0)
        );
    }
}
