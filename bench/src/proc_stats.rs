//! What the kernel says about a process: CPU time from `/proc/<pid>/stat` (user + system, all
//! threads) and resident memory from `/proc/<pid>/status` (`VmRSS`).

use std::time::Duration;

use anyhow::{Context as _, bail};

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux).
pub(crate) fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// CPU time used so far by process `pid` (all threads).
///
/// # Errors
/// The process is gone or the file is unreadable.
pub(crate) fn cpu_time(pid: u32, ticks_per_s: u64) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("read stat")?;
    // Fields after the command name (which may contain spaces) start at the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        bail!("unreadable /proc/{pid}/stat");
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let tick = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short stat")?.parse::<u64>()?)
    };
    let ticks = tick(11)? + tick(12)?;
    Ok(Duration::from_micros(ticks * 1_000_000 / ticks_per_s))
}

/// Resident memory of process `pid`, in KiB.
///
/// # Errors
/// The process is gone or the file is unreadable.
pub(crate) fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("read status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// Busy and total time of one CPU so far, in ticks (`/proc/stat`): busy is everything but
/// idle and iowait, whoever ran (the server, other processes, interrupts, ksoftirqd).
///
/// # Errors
/// The file is unreadable or has no such CPU.
pub(crate) fn cpu_busy(cpu: &str) -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let label = format!("cpu{cpu}");
    let Some(line) = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))
    else {
        bail!("no {label} in /proc/stat");
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// The machine's `TcpExt` `ListenOverflows` counter (`/proc/net/netstat`): connections the
/// kernel could not queue because a listener's accept queue was full.
///
/// # Errors
/// The file is unreadable or lacks the counter.
pub(crate) fn listen_overflows() -> anyhow::Result<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").context("read netstat")?;
    let mut tcp_ext = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (tcp_ext.next(), tcp_ext.next()) else {
        bail!("no TcpExt in /proc/net/netstat");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, value)| value.parse().ok())
        .context("no ListenOverflows")
}

/// How many files (sockets included) `pid` has open (`/proc/<pid>/fd`).
///
/// # Errors
/// The process is gone or its fd directory is unreadable.
pub(crate) fn open_files(pid: u32) -> anyhow::Result<u64> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).context("read fd directory")?;
    Ok(entries.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_kb(pid).unwrap() > 0);
        cpu_time(pid, clock_ticks()).unwrap();
        listen_overflows().unwrap();
        let (busy, total) = cpu_busy("0").unwrap();
        assert!(busy <= total);
    }
}
