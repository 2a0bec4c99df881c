//! The Java half: finding Java and Maven, building `live/` when needed, and running its
//! programs as child processes.
//!
//! Every child reads its standard input from a pipe held by this process: a line is a
//! command (`stop`, `play`), and the end of the input — this process exited, whichever
//! way, Ctrl-C included — halts the child at once (`live/.../Commands.java`). So no JVM
//! outlives the command that started it. A child's standard output carries its one-word
//! reports (`RUNNING`, `TOPICS`, `SETTLED`, `DONE`, ...); its standard error goes to a file in the
//! run's directory, whose tail is quoted when the child fails.

// Live runs are real processes on the real clock: wall-clock time is what they measure.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use super::LiveError;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Java, and the built module's class path.
#[derive(Clone, Debug)]
pub struct Toolchain {
    pub java: PathBuf,
    pub classpath: String,
}

/// The `live/` module of this source tree.
pub fn module_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("live")
}

/// Find a program on `PATH`.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Java, and `live/` built (by `scripts/live-setup`, when the build is missing or older
/// than its sources). Java missing, or Maven missing when a build is needed: an error.
pub fn toolchain() -> Result<Toolchain, LiveError> {
    let java = find("java").ok_or(LiveError::Missing {
        tool: "java",
        why: "the live mode runs real Kafka brokers and Kafka Streams (Java 17 or newer)",
    })?;
    let dir = module_dir();
    if !dir.join("pom.xml").is_file() {
        return Err(LiveError::Setup(format!(
            "{} has no pom.xml: the live mode needs this source tree's live/ module",
            dir.display()
        )));
    }
    let classpath_file = dir.join("target/classpath.txt");
    if stale(&dir, &classpath_file) {
        build(&dir)?;
    }
    let deps = std::fs::read_to_string(&classpath_file)
        .map_err(|e| LiveError::Setup(format!("{}: {e}", classpath_file.display())))?;
    let classes = dir.join("target/classes");
    Ok(Toolchain {
        java,
        classpath: format!("{}:{}", classes.display(), deps.trim()),
    })
}

/// Whether `live/` must be built (with Maven) before a live run.
pub fn needs_build() -> bool {
    let dir = module_dir();
    stale(&dir, &dir.join("target/classpath.txt"))
}

/// Whether the build output is missing or older than a source file.
fn stale(dir: &Path, built: &Path) -> bool {
    let Ok(built_at) = std::fs::metadata(built).and_then(|m| m.modified()) else {
        return true;
    };
    let mut newest = std::fs::metadata(dir.join("pom.xml"))
        .and_then(|m| m.modified())
        .ok();
    let mut pending = vec![dir.join("src")];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                pending.push(p);
            } else if let Ok(t) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(Some(t));
            }
        }
    }
    newest.is_some_and(|n| n > built_at)
}

fn build(dir: &Path) -> Result<(), LiveError> {
    if find("mvn").is_none() {
        return Err(LiveError::Missing {
            tool: "mvn",
            why:
                "live/ must be built (Maven fetches the pinned Kafka jars): run scripts/live-setup",
        });
    }
    eprintln!("live: building live/ (scripts/live-setup) ...");
    let script = dir.join("../scripts/live-setup");
    let status = Command::new("bash")
        .arg(&script)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| LiveError::Setup(format!("{}: {e}", script.display())))?;
    if !status.success() {
        return Err(LiveError::Setup(format!(
            "scripts/live-setup failed ({status}): see its messages above"
        )));
    }
    Ok(())
}

/// A running Java program of `live/`.
pub struct JavaProc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: PathBuf,
}

impl JavaProc {
    /// Start `oversell.live.Main <command> args...`, nice'd, with a small heap; its
    /// standard error goes to `<dir>/<name>.err`.
    pub fn spawn(
        tc: &Toolchain,
        name: &str,
        heap_mb: u32,
        command: &str,
        args: &[String],
        dir: &Path,
    ) -> Result<JavaProc, LiveError> {
        let stderr = dir.join(format!("{name}.err"));
        let err_file = std::fs::File::create(&stderr).map_err(|e| LiveError::io(&stderr, e))?;
        let mut cmd = match find("nice") {
            Some(nice) => {
                let mut c = Command::new(nice);
                c.args(["-n", "10"]).arg(&tc.java);
                c
            }
            None => Command::new(&tc.java),
        };
        cmd.arg(format!("-Xmx{heap_mb}m"))
            .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k"])
            .arg("-cp")
            .arg(&tc.classpath)
            .arg("oversell.live.Main")
            .arg(command)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err_file);
        let mut child = cmd
            .spawn()
            .map_err(|e| LiveError::Setup(format!("cannot start {}: {e}", tc.java.display())))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(JavaProc {
            name: name.into(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        })
    }

    /// Send a command line.
    pub fn send(&mut self, line: &str) -> Result<(), LiveError> {
        let ok = self
            .stdin
            .as_mut()
            .is_some_and(|s| writeln!(s, "{line}").and_then(|()| s.flush()).is_ok());
        if ok {
            Ok(())
        } else {
            Err(self.failure(&format!("could not be sent {line:?}")))
        }
    }

    /// Wait for the report `word` on standard output.
    pub fn expect(&mut self, word: &str, timeout: Duration) -> Result<(), LiveError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == word => return Ok(()),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!(
                        "did not report {word} within {} s",
                        timeout.as_secs()
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    return Err(self.failure(&format!("exited before it reported {word}")));
                }
            }
        }
    }

    /// The next line it reported within `timeout`, if any; its end is an error.
    pub fn next_line(&mut self, timeout: Duration) -> Result<Option<String>, LiveError> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                let _ = self.child.wait();
                Err(self.failure("exited"))
            }
        }
    }

    /// A line it already reported, if any (never waits; `None` also once it ended).
    pub fn try_line(&mut self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// Send a signal (`KILL`, `STOP`, `CONT`) to the process, by its id, with the
    /// system's `kill` command; a process that has already exited is left alone.
    pub fn signal(&mut self, name: &str) -> Result<(), LiveError> {
        if !self.alive() {
            return Err(self.failure(&format!("was not running when sent SIG{name}")));
        }
        if name == "KILL" {
            return self
                .child
                .kill()
                .map_err(|e| LiveError::Process(format!("SIGKILL {}: {e}", self.name)));
        }
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .map_err(|e| LiveError::Process(format!("kill -{name} {}: {e}", self.name)))?;
        if status.success() {
            Ok(())
        } else {
            Err(LiveError::Process(format!(
                "kill -{name} {} ({}) failed: {status}",
                self.name,
                self.child.id()
            )))
        }
    }

    /// Wait until the process has exited (after a SIGKILL: at once).
    pub fn reap(mut self) {
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait up to `timeout` for it to exit by itself; then kill it.
    pub fn finish(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An error naming this process, with the end of its standard error.
    pub fn failure(&mut self, what: &str) -> LiveError {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => format!(" ({s})"),
            _ => String::new(),
        };
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        LiveError::Process(format!(
            "{} {what}{status}; the end of {}:\n    {}",
            self.name,
            self.stderr.display(),
            tail.join("\n    ")
        ))
    }
}

impl Drop for JavaProc {
    fn drop(&mut self) {
        // The end of its input: it halts. A stopped JVM cannot read it, but the kill
        // below ends it all the same (SIGKILL needs no cooperation).
        self.stdin.take();
        if self.alive() {
            std::thread::sleep(Duration::from_millis(200));
        }
        if self.alive() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
