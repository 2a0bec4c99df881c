//! A cluster of real Kafka brokers: N KRaft brokers in combined mode (each broker and
//! controller in one JVM, `live/.../BrokerMain.java`), on 127.0.0.1 only, each with its
//! own log directory under the cluster's directory. Started by [`Cluster::start`],
//! stopped cleanly by [`Cluster::stop`] (or halted when dropped).

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use super::java::{JavaProc, Toolchain};
use super::LiveError;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cluster id every broker is formatted with: 16 bytes ("oversell-live-01"), base64.
const CLUSTER_ID: &str = "b3ZlcnNlbGwtbGl2ZS0wMQ";

pub struct Cluster {
    /// Node `i + 1`'s JVM (`None` while it is crashed) and its arguments.
    brokers: Vec<Option<JavaProc>>,
    args: Vec<Vec<String>>,
    tc: Toolchain,
    /// How often each broker was started (its stderr file's number).
    starts: Vec<u32>,
    /// `127.0.0.1:port,...`
    pub bootstrap: String,
    pub dir: PathBuf,
    pub size: u32,
}

impl Cluster {
    /// Start `size` brokers; ports from `base_port` on (two per broker: client and
    /// controller), or free ones the system picks. Returns once every broker accepts
    /// connections on its client port.
    pub fn start(
        tc: &Toolchain,
        size: u32,
        dir: &Path,
        base_port: Option<u16>,
    ) -> Result<Cluster, LiveError> {
        if !(1..=5).contains(&size) {
            return Err(LiveError::Setup(format!(
                "--brokers {size}: a live cluster has 1 to 5 brokers"
            )));
        }
        let ports = ports(2 * size as usize, base_port)?;
        let voters: Vec<String> = (0..size as usize)
            .map(|i| format!("{}@127.0.0.1:{}", i + 1, ports[2 * i + 1]))
            .collect();
        let replication = size.min(3);
        let mut brokers = Vec::new();
        let mut all_args = Vec::new();
        for i in 0..size as usize {
            let bdir = dir.join(format!("broker-{}", i + 1));
            std::fs::create_dir_all(&bdir).map_err(|e| LiveError::io(&bdir, e))?;
            let args = vec![
                format!("dir={}", bdir.display()),
                format!("node={}", i + 1),
                format!("port={}", ports[2 * i]),
                format!("controller={}", ports[2 * i + 1]),
                format!("voters={}", voters.join(",")),
                format!("replication={replication}"),
                format!("cluster={CLUSTER_ID}"),
            ];
            let name = format!("broker-{}", i + 1);
            brokers.push(Some(JavaProc::spawn(tc, &name, 512, "broker", &args, dir)?));
            all_args.push(args);
        }
        let mut cluster = Cluster {
            brokers,
            args: all_args,
            tc: tc.clone(),
            starts: vec![1; size as usize],
            bootstrap: (0..size as usize)
                .map(|i| format!("127.0.0.1:{}", ports[2 * i]))
                .collect::<Vec<_>>()
                .join(","),
            dir: dir.to_path_buf(),
            size,
        };
        // On a loaded machine a first broker start can take minutes (JIT, formatting).
        cluster.await_listening(&ports, Duration::from_secs(180))?;
        Ok(cluster)
    }

    /// Every broker's client port accepts connections (or a broker died: an error).
    fn await_listening(&mut self, ports: &[u16], timeout: Duration) -> Result<(), LiveError> {
        let deadline = Instant::now() + timeout;
        for (i, broker) in self.brokers.iter_mut().enumerate() {
            let Some(broker) = broker else { continue };
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, ports[2 * i]));
            loop {
                if !broker.alive() {
                    return Err(broker.failure("exited while starting"));
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(broker.failure(&format!(
                        "did not listen on {addr} within {} s",
                        timeout.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// Every broker's log directory (its `log.dirs`), node 1 first.
    pub fn log_dirs(&self) -> Vec<PathBuf> {
        (1..=self.size)
            .map(|n| self.dir.join(format!("broker-{n}")).join("data"))
            .collect()
    }

    /// Whether every broker is running (a crashed one is not).
    pub fn alive(&mut self) -> bool {
        self.brokers
            .iter_mut()
            .all(|b| b.as_mut().is_some_and(JavaProc::alive))
    }

    /// SIGKILL broker `node` (1-based): a broker crash.
    pub fn kill(&mut self, node: u32) -> Result<(), LiveError> {
        let slot = self.slot(node)?;
        let Some(mut broker) = slot.take() else {
            return Err(LiveError::Process(format!("broker-{node} is already down")));
        };
        broker.signal("KILL")?;
        broker.reap();
        Ok(())
    }

    /// Start broker `node` again on its log directory and ports (not formatted again).
    pub fn restart(&mut self, node: u32) -> Result<(), LiveError> {
        let i = node as usize - 1;
        if self.slot(node)?.is_some() {
            return Err(LiveError::Process(format!("broker-{node} is already up")));
        }
        self.starts[i] += 1;
        let name = format!("broker-{node}.{}", self.starts[i]);
        let proc = JavaProc::spawn(&self.tc, &name, 512, "broker", &self.args[i], &self.dir)?;
        self.brokers[i] = Some(proc);
        Ok(())
    }

    fn slot(&mut self, node: u32) -> Result<&mut Option<JavaProc>, LiveError> {
        let size = self.size;
        self.brokers
            .get_mut((node as usize).wrapping_sub(1))
            .ok_or_else(|| LiveError::Setup(format!("no broker {node}: brokers 1..={size}")))
    }

    /// Stop every broker cleanly (Kafka's controlled shutdown), halting any that takes
    /// longer than 20 s.
    pub fn stop(mut self) {
        for b in self.brokers.iter_mut().flatten() {
            let _ = b.send("stop");
        }
        for b in self.brokers.drain(..).flatten() {
            b.finish(Duration::from_secs(20));
        }
    }
}

/// `n` ports on 127.0.0.1: `base..base+n`, each checked free, or free ones the system
/// picks (held together while picking, so they are distinct).
fn ports(n: usize, base: Option<u16>) -> Result<Vec<u16>, LiveError> {
    match base {
        Some(base) => {
            let ports: Vec<u16> = (0..n)
                .map(|i| base.checked_add(i as u16))
                .collect::<Option<_>>()
                .ok_or_else(|| LiveError::Setup(format!("--base-port {base}: too high")))?;
            for &p in &ports {
                if let Err(e) = TcpListener::bind((Ipv4Addr::LOCALHOST, p)) {
                    return Err(LiveError::PortInUse {
                        port: p,
                        why: e.to_string(),
                    });
                }
            }
            Ok(ports)
        }
        None => {
            let held: Vec<TcpListener> = (0..n)
                .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    LiveError::Setup(format!("cannot find a free port on 127.0.0.1: {e}"))
                })?;
            held.iter()
                .map(|l| l.local_addr().map(|a| a.port()))
                .collect::<Result<_, _>>()
                .map_err(|e| LiveError::Setup(format!("cannot find a free port on 127.0.0.1: {e}")))
        }
    }
}
