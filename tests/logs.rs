//! herald's logs on stderr, through the binary: plain text without ANSI escapes when stderr is a
//! pipe (a file, journald, a container runtime), one JSON object per line with
//! `log.format = "json"`, and colours on a terminal unless `NO_COLOR` is set. The terminal is a
//! pty from util-linux `script`, which also proves that the escape check can see colours.
//! Each run gets SIGTERM as soon as herald logs that it listens, and must still shut down
//! gracefully: its signal handlers are installed before it listens.

// A test crate: panicking on an unexpected `Err` is how a test (or its helpers) fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// Configured secrets: no development banner, only log lines on stderr.
const CONFIG: &str = "[public]\nhost = \"127.0.0.1\"\nport = 0\n\
                      [private]\nkey = \"0123456789\"\n[auth.jwt]\nsecret = \"s3cret-s3cret\"\n";

/// The start of every ANSI escape sequence tracing-subscriber writes (CSI).
const ESC: &str = "\x1b[";

/// Bound on each phase: startup, and shutdown after SIGTERM.
const WAIT: Duration = Duration::from_secs(10);

/// Where herald's stderr goes.
#[derive(Clone, Copy, Debug)]
enum Stderr {
    /// A pipe read by this test.
    Pipe,
    /// A pseudo-terminal made by `script`; its output is what herald wrote to the terminal.
    Terminal,
}

/// The process this test started (herald, or `script` running herald) and herald's pid once
/// known; both are killed when dropped while running, so a failing test leaves nothing behind.
struct Guard {
    child: Child,
    herald: Option<u32>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let (Ok(None), Some(pid)) = (self.child.try_wait(), self.herald) {
            let _ = signal(pid, "KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `SIG<name>` to `pid` with the shell's builtin kill (no signal crate for this).
fn signal(pid: u32, name: &str) -> std::io::Result<std::process::ExitStatus> {
    Command::new("sh")
        .args([
            "-c",
            &format!("kill -{name} \"$1\""),
            "sh",
            &pid.to_string(),
        ])
        .status()
}

/// Reads `output` line by line in a thread and sends each line (without `\r`) to the channel.
fn lines_of(output: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim_end_matches('\r').to_owned()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs herald on the config file `toml` (with exactly the environment `env`) until it listens,
/// stops it with SIGTERM and returns everything it wrote to stderr, line by line.
fn herald_stderr(toml: &str, args: &[&str], env: &[(&str, &str)], stderr: Stderr) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("herald.toml");
    std::fs::write(&config, toml).expect("write the config");
    let config = config.to_str().expect("UTF-8 path");
    let bin = env!("CARGO_BIN_EXE_herald");
    let mut argv = vec!["--config", config, "--port", "0"];
    argv.extend_from_slice(args);

    let (mut command, pid_from_output) = match stderr {
        Stderr::Pipe => {
            let mut command = Command::new(bin);
            command
                .args(&argv)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            (command, false)
        }
        Stderr::Terminal => {
            // The shell prints its pid, then becomes herald: that is the pid to signal.
            let quoted: Vec<String> = std::iter::once(bin)
                .chain(argv.iter().copied())
                .map(|arg| format!("'{arg}'"))
                .collect();
            let mut command = Command::new("script");
            command
                .arg("-qec")
                .arg(format!("echo herald-pid $$; exec {}", quoted.join(" ")))
                .arg("/dev/null")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            (command, true)
        }
    };
    command
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let mut child = command.spawn().unwrap_or_else(|err| {
        panic!("could not start herald ({stderr:?}): {err} (the terminal case needs util-linux `script`)")
    });
    let output = match stderr {
        Stderr::Pipe => lines_of(child.stderr.take().expect("stderr")),
        Stderr::Terminal => lines_of(child.stdout.take().expect("stdout")),
    };
    let mut guard = Guard {
        herald: (!pid_from_output).then(|| child.id()),
        child,
    };

    let mut lines = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !lines
        .iter()
        .any(|l: &String| l.contains("herald listening"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match output.recv_timeout(left) {
            Ok(line) => {
                if let Some(p) = line
                    .strip_prefix("herald-pid ")
                    .filter(|_| guard.herald.is_none())
                {
                    guard.herald = Some(p.trim().parse().expect("the shell's pid"));
                } else {
                    lines.push(line);
                }
            }
            Err(_) => panic!(
                "herald ({stderr:?}) logged no \"herald listening\" within {WAIT:?}; it wrote:\n{}",
                lines.join("\n")
            ),
        }
    }
    let pid = guard.herald.expect("herald's pid");
    let killed = signal(pid, "TERM").expect("run sh");
    assert!(killed.success(), "could not SIGTERM herald (pid {pid})");

    // The output ends when herald (and `script`) exit.
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match output.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "herald ({stderr:?}) did not exit within {WAIT:?} of SIGTERM; it wrote:\n{}",
                lines.join("\n")
            ),
        }
    }
    let status = guard.child.wait().expect("wait for herald");
    assert!(
        status.success(),
        "herald ({stderr:?}) exited with {status} after SIGTERM; it wrote:\n{}",
        lines.join("\n")
    );
    drop(guard); // exited: nothing to kill
    assert!(
        lines.iter().any(|l| l.contains("shutdown complete")),
        "herald ({stderr:?}) did not log its shutdown; it wrote:\n{}",
        lines.join("\n")
    );
    lines
}

/// The lines carrying an ANSI escape, for failure messages.
fn with_escapes(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.contains(ESC)).collect()
}

#[test]
fn text_logs_to_a_pipe_have_no_escapes() {
    let lines = herald_stderr(CONFIG, &[], &[], Stderr::Pipe);
    assert_eq!(with_escapes(&lines), Vec::<&String>::new(), "{lines:#?}");
    // Plain text, not JSON by accident.
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" INFO ") && l.contains("herald listening addr=127.0.0.1:")),
        "{lines:#?}"
    );
}

#[test]
fn text_logs_to_a_terminal_are_coloured_unless_no_color_is_set() {
    let lines = herald_stderr(CONFIG, &[], &[], Stderr::Terminal);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("herald listening") && l.contains(ESC)),
        "no colours on a terminal: {lines:#?}"
    );
    // https://no-color.org: an empty NO_COLOR is as if it were unset.
    let lines = herald_stderr(CONFIG, &[], &[("NO_COLOR", "")], Stderr::Terminal);
    assert!(
        !with_escapes(&lines).is_empty(),
        "an empty NO_COLOR turned colours off: {lines:#?}"
    );
    for stderr in [Stderr::Terminal, Stderr::Pipe] {
        let lines = herald_stderr(CONFIG, &[], &[("NO_COLOR", "1")], stderr);
        assert_eq!(
            with_escapes(&lines),
            Vec::<&String>::new(),
            "NO_COLOR=1, {stderr:?}: {lines:#?}"
        );
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let json_config = format!("{CONFIG}[log]\nformat = \"json\"\n");
    let flag: &[&str] = &["--log-format", "json"];
    // Each way of asking for JSON, and on a terminal too (no colours inside JSON).
    let runs = [
        ("--log-format json", CONFIG, flag, None, Stderr::Pipe),
        (
            "HERALD_LOG__FORMAT=json",
            CONFIG,
            &[],
            Some(("HERALD_LOG__FORMAT", "json")),
            Stderr::Pipe,
        ),
        (
            "log.format = \"json\"",
            json_config.as_str(),
            &[],
            None,
            Stderr::Pipe,
        ),
        ("--log-format json", CONFIG, flag, None, Stderr::Terminal),
    ];
    for (how, toml, args, env, stderr) in runs {
        let lines = herald_stderr(toml, args, env.as_slice(), stderr);
        let mut messages = Vec::new();
        for line in &lines {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|err| {
                panic!("{how}, {stderr:?}: not a JSON line ({err}): {line:?}")
            });
            assert!(
                entry["level"].is_string(),
                "{how}, {stderr:?}: no level: {line}"
            );
            messages.push(entry["message"].as_str().unwrap_or_default().to_owned());
        }
        assert!(
            messages.iter().any(|m| m == "herald listening"),
            "{how}, {stderr:?}: {lines:#?}"
        );
    }
}
