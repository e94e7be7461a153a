//! A cluster across hosts: each worker on a host of its own, the scheduler and
//! the client on another, hosts being network namespaces this test makes (a
//! bridge, a veth pair per host, addresses of its own choosing), so what crosses
//! a network is tested on one machine. The graphs give the thread scheduler's
//! bits; a link cut mid-compute loses nothing and its worker, back, starts
//! anew; slow links change nothing; a token or certificates are required off
//! loopback, and calls without them are refused.
//!
//! Needs root and `ip` (iproute2): elsewhere it says why and skips. Its own
//! `main`: the processes on the hosts are this program, re-executed in a role.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brisk::core::{OpRegistry, Value};
use brisk::distributed::{Remote, SchedulerServer, Security, WorkerOptions};
use brisk::prelude::*;

mod cluster;
use cluster::{Mix, children, fast, layered_dag};

/// The role a re-executed copy of this program plays, and its arguments.
const ROLE: &str = "BRISK_HOSTS_TEST_ROLE";

fn program_ops(registry: &mut OpRegistry) {
    registry.register::<Mix>();
}

/// A fingerprint of values' bytes (FNV-1a), as text.
fn fingerprint(values: &[Value]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for byte in v.encode().unwrap() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The graphs every cluster must answer as the thread scheduler does, each
/// answer as `name fingerprint`: a delayed DAG (`sleep_ms` per task), array
/// reductions whose chunks cross hosts, a CSV group-by and a sort.
fn answers(scheduler: &Scheduler, sleep_ms: u64) -> Vec<String> {
    let mut lines = Vec::new();
    let (graph, outputs) = layered_dag(7, 6, 12, sleep_ms);
    let values = scheduler.clone().fuse(false).run(graph, &outputs).unwrap();
    lines.push(format!("dag {}", fingerprint(&values)));
    let x = random(&[600, 500], &[100, 125], 7).unwrap();
    let mean: f64 = scheduler.compute(&x.mean(Axes::all())).unwrap();
    lines.push(format!("mean {:016x}", mean.to_bits()));
    let sums = scheduler.compute(&x.sum(Axes::from([0])).unwrap()).unwrap();
    lines.push(format!("sums {}", fingerprint(&[Value::from(brisk::core::ArrayChunk::F64(sums))])));
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/frame/tests/data/g_nulls.csv");
    let frame = read_csv(fixture, CsvOptions::default().blocksize(12_000)).unwrap();
    let grouped = scheduler.compute(&frame.groupby(["id1", "id2"]).unwrap().mean().unwrap());
    lines.push(format!("groupby {}", fingerprint(&[Value::Batch(grouped.unwrap().to_batch())])));
    let sorted = scheduler.compute(&frame.sort_values(["v3"], true).unwrap()).unwrap();
    lines.push(format!("sort {}", fingerprint(&[Value::Batch(sorted.to_batch())])));
    lines
}

/// The security a role's argument names: `-` none, `token:T`, `tls:DIR:NAME`
/// (certificates `ca.pem`, `NAME.pem`, `NAME.key` in DIR).
fn security(arg: &str) -> Security {
    match arg.split_once(':') {
        None => Security::none(),
        Some(("token", token)) => Security::none().token(token).unwrap(),
        Some(("tls", rest)) => {
            let (dir, name) = rest.split_once(':').unwrap();
            let dir = std::path::Path::new(dir);
            Security::none()
                .tls_files(
                    &dir.join("ca.pem"),
                    &dir.join(format!("{name}.pem")),
                    &dir.join(format!("{name}.key")),
                )
                .unwrap()
                .server_name("brisk-cluster")
        }
        Some(_) => panic!("no security {arg}"),
    }
}

/// Plays a role until its standard input closes:
/// - `scheduler LISTEN SECURITY`: prints its address;
/// - `worker SCHEDULER LISTEN SECURITY`: prints its address;
/// - `client SCHEDULER SECURITY SLEEP_MS`: prints `computing`, then the
///   answers, then `done` (or `error: ...`).
/// - `fetch WORKER`: a Flight `DoGet` with no token; prints what came of it.
fn play(role: &str) -> ! {
    let words: Vec<&str> = role.split(' ').collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_on_eof = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        stop_on_eof.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let wait = || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    match words[..] {
        ["scheduler", listen, sec] => {
            match SchedulerServer::start(listen.parse().unwrap(), fast(), &security(sec)) {
                Ok(server) => {
                    say(&server.addr().to_string());
                    wait();
                }
                Err(e) => say(&format!("error: {e}")),
            }
        }
        ["worker", scheduler, listen, sec] => {
            let mut options = WorkerOptions::new(listen.parse().unwrap(), 1, 1 << 30);
            options.security = security(sec);
            let said = brisk::distributed::serve_worker(
                scheduler.parse().unwrap(),
                &options,
                brisk::ops(),
                &stop,
                |addr| say(&addr.to_string()),
            );
            if let Err(e) = said {
                say(&format!("error: {e}"));
            }
        }
        ["client", scheduler, sec, sleep_ms] => {
            match Remote::connect_with(
                scheduler.parse().unwrap(),
                &brisk::ops(),
                fast(),
                security(sec),
            ) {
                Ok(remote) => {
                    say("computing");
                    let scheduler = Scheduler::backend(Arc::new(remote));
                    let answers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        answers(&scheduler, sleep_ms.parse().unwrap())
                    }));
                    match answers {
                        Ok(lines) => lines.iter().for_each(|l| say(l)),
                        Err(_) => say("error: a compute failed"),
                    }
                    say("done");
                }
                Err(e) => say(&format!("error: {e}")),
            }
        }
        ["fetch", worker] => {
            let worker: SocketAddr = worker.parse().unwrap();
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let outcome = runtime.block_on(async {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{worker}"))
                    .unwrap()
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                let mut client = arrow_flight::FlightClient::new(channel);
                let ticket = arrow_flight::Ticket { ticket: b"anything".to_vec().into() };
                client.do_get(ticket).await.map(|_| ()).map_err(|e| e.to_string())
            });
            say(&format!("{outcome:?}"));
        }
        _ => panic!("no role '{role}'"),
    }
    std::process::exit(0)
}

/// Hosts made for one test: a hub (scheduler and client) and workers, each a
/// network namespace, joined by a bridge in the hub. Dropped: every process
/// started in them is killed and every namespace deleted.
struct Hosts {
    prefix: String,
    subnet: String,
    workers: usize,
    children: Vec<Proc>,
}

/// A process started on a host: what it printed after its first line, and to
/// stderr.
struct Proc {
    child: Child,
    out: Arc<Mutex<String>>,
    log: Arc<Mutex<String>>,
}

/// Runs `ip ARGS`, failing the test (or returning the error) when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => {
            Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }
}

/// Our namespaces still present.
fn namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

impl Hosts {
    /// A hub and `workers` worker hosts, case `case` of this run.
    fn new(case: u32, workers: usize) -> Result<Hosts, String> {
        let pid = std::process::id();
        let prefix = format!("brisk{pid}c{case}");
        let subnet = format!("10.{}.{}", 100 + pid % 100, (pid / 100 + case) % 250);
        let hosts = Hosts { prefix, subnet, workers, children: Vec::new() };
        let hub = hosts.hub();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        ip(&["-n", &hub, "addr", "add", &format!("{}/24", hosts.hub_ip()), "dev", "br0"])?;
        for w in 0..workers {
            let ns = hosts.worker(w);
            let port = format!("v{w}");
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "link", "add", &port, "netns", &hub, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", hosts.worker_ip(w)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(hosts)
    }

    fn hub(&self) -> String {
        format!("{}h", self.prefix)
    }

    fn worker(&self, w: usize) -> String {
        format!("{}w{w}", self.prefix)
    }

    fn hub_ip(&self) -> String {
        format!("{}.1", self.subnet)
    }

    fn worker_ip(&self, w: usize) -> String {
        format!("{}.{}", self.subnet, w + 2)
    }

    /// Cuts (or heals) worker `w`'s link: it can reach no one, no one it.
    fn link(&self, w: usize, up: bool) {
        ip(&["-n", &self.hub(), "link", "set", &format!("v{w}"), if up { "up" } else { "down" }])
            .unwrap();
    }

    /// Starts this program in `role` on host `ns`: its first line of output,
    /// and the index of the process (for [`output`](Self::output)).
    fn start(&mut self, ns: &str, role: &str) -> (String, usize) {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, log) = (Arc::<Mutex<String>>::default(), Arc::<Mutex<String>>::default());
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let into = out.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = first_tx.send(first);
            }
            for line in lines.map_while(Result::ok) {
                into.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let into = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                into.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let first = first_rx.recv_timeout(Duration::from_secs(30));
        self.children.push(Proc { child, out, log });
        let i = self.children.len() - 1;
        let first = first.unwrap_or_else(|_| {
            panic!("'{role}' on {ns} said nothing in 30 s; its stderr: {}", self.log(i))
        });
        (first, i)
    }

    /// What process `i` printed after its first line so far.
    fn output(&self, i: usize) -> String {
        self.children[i].out.lock().unwrap().clone()
    }

    /// What process `i` wrote to stderr so far.
    fn log(&self, i: usize) -> String {
        self.children[i].log.lock().unwrap().clone()
    }

    /// Waits until process `i` has printed `line` (or `error: ...`), within `timeout`.
    fn wait_for(&self, i: usize, line: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.output(i);
            if out.lines().any(|l| l == line || l.starts_with("error:")) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "no '{line}' in {timeout:?}: {out}\nstderr: {}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A scheduler on the hub and a worker on each worker host, all with
    /// `sec`: the scheduler's address and the workers' processes' indexes.
    fn cluster(&mut self, sec: &str) -> (String, Vec<usize>) {
        let (scheduler, _) =
            self.start(&self.hub(), &format!("scheduler {}:0 {sec}", self.hub_ip()));
        assert!(scheduler.parse::<SocketAddr>().is_ok(), "scheduler: {scheduler}");
        let workers = (0..self.workers)
            .map(|w| {
                let role = format!("worker {scheduler} {}:0 {sec}", self.worker_ip(w));
                let (addr, i) = self.start(&self.worker(w), &role);
                assert!(addr.parse::<SocketAddr>().is_ok(), "worker {w}: {addr}");
                i
            })
            .collect();
        (scheduler, workers)
    }

    /// Runs the graphs from a client on the hub: the answers.
    fn answers(&mut self, scheduler: &str, sec: &str, sleep_ms: u64) -> Vec<String> {
        let (first, i) = self.start(&self.hub(), &format!("client {scheduler} {sec} {sleep_ms}"));
        assert_eq!(first, "computing");
        let out = self.wait_for(i, "done", Duration::from_secs(120));
        out.lines().filter(|l| *l != "done").map(str::to_string).collect()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for p in &mut self.children {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        for w in 0..self.workers {
            let _ = ip(&["netns", "del", &self.worker(w)]);
        }
        let _ = ip(&["netns", "del", &self.hub()]);
    }
}

/// The thread scheduler's answers.
fn threads(sleep_ms: u64) -> Vec<String> {
    answers(&Scheduler::threads(2), sleep_ms)
}

fn graphs_on_other_hosts_give_the_thread_schedulers_bits(case: u32) {
    let mut hosts = Hosts::new(case, 2).unwrap();
    let (scheduler, _) = hosts.cluster("token:s3cret-for-tests");
    assert_eq!(hosts.answers(&scheduler, "token:s3cret-for-tests", 0), threads(0));
}

fn a_cut_link_loses_nothing_and_the_worker_back_starts_anew(case: u32) {
    let mut hosts = Hosts::new(case, 3).unwrap();
    let sec = "token:test-token-0123456789";
    let (scheduler, workers) = hosts.cluster(sec);
    let (first, client) = hosts.start(&hosts.hub(), &format!("client {scheduler} {sec} 40"));
    assert_eq!(first, "computing");
    // Mid-compute: the first graph (72 tasks of 40 ms on 3 threads) is running.
    std::thread::sleep(Duration::from_millis(400));
    assert!(!hosts.output(client).contains("dag "), "the compute ended before the cut");
    hosts.link(0, false);
    let out = hosts.wait_for(client, "done", Duration::from_secs(120));
    let got: Vec<String> = out.lines().filter(|l| *l != "done").map(str::to_string).collect();
    assert_eq!(got, threads(40), "the answers after a cut link");
    let scheduler_log = hosts.log(0);
    assert!(scheduler_log.contains("declared dead"), "scheduler: {scheduler_log}");
    // Healed: the worker comes back, is refused as the one declared dead, drops
    // what it held and joins again as new.
    hosts.link(0, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !hosts.log(workers[0]).contains("registers anew") {
        assert!(Instant::now() < deadline, "worker: {}", hosts.log(workers[0]));
        std::thread::sleep(Duration::from_millis(100));
    }
    let scheduler_log = hosts.log(0);
    assert!(
        scheduler_log.contains(&format!("worker {}", hosts.worker_ip(0)))
            && scheduler_log.contains("came back after it was declared dead"),
        "scheduler: {scheduler_log}"
    );
    // And computes again, with the same answers.
    assert_eq!(hosts.answers(&scheduler, sec, 0), threads(0));
}

fn a_link_cut_between_two_workers_only_loses_nothing(case: u32) {
    let mut hosts = Hosts::new(case, 3).unwrap();
    let sec = "token:test-token-0123456789";
    let (scheduler, _) = hosts.cluster(sec);
    let (first, client) = hosts.start(&hosts.hub(), &format!("client {scheduler} {sec} 40"));
    assert_eq!(first, "computing");
    std::thread::sleep(Duration::from_millis(400));
    assert!(!hosts.output(client).contains("dag "), "the compute ended before the cut");
    // Workers 0 and 1 can no longer reach each other; both still reach the
    // scheduler and worker 2 (isolated ports of the bridge).
    for w in 0..2 {
        let port = format!("v{w}");
        ip(&[
            "-n",
            &hosts.hub(),
            "link",
            "set",
            "dev",
            &port,
            "type",
            "bridge_slave",
            "isolated",
            "on",
        ])
        .unwrap();
    }
    let out = hosts.wait_for(client, "done", Duration::from_secs(120));
    let got: Vec<String> = out.lines().filter(|l| *l != "done").map(str::to_string).collect();
    assert_eq!(got, threads(40), "the answers across a cut between two workers");
    // Nobody died: the tasks went where their inputs could be had.
    assert!(!hosts.log(0).contains("declared dead"), "scheduler: {}", hosts.log(0));
    // A new compute, with the link cut from the start.
    assert_eq!(hosts.answers(&scheduler, sec, 0), threads(0));
}

fn slow_links_change_nothing(case: u32) {
    let mut hosts = Hosts::new(case, 2).unwrap();
    // A slow link everywhere a worker sends: 20 Mbit/s.
    for w in 0..2 {
        let ns = hosts.worker(w);
        let slow = [
            "-n", &ns, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "20mbit", "burst",
            "32kbit", "latency", "400ms",
        ];
        let out = Command::new("tc").args(slow).output().unwrap();
        assert!(out.status.success(), "tc: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Latency and loss where the kernel has netem.
    let netem = Command::new("tc")
        .args([
            "-n",
            &hosts.hub(),
            "qdisc",
            "add",
            "dev",
            "br0",
            "root",
            "netem",
            "delay",
            "5ms",
            "1ms",
            "loss",
            "1%",
        ])
        .output()
        .unwrap();
    if !netem.status.success() {
        eprintln!(
            "  latency and loss skipped: no netem in this kernel ({}); a rate-limited link only",
            String::from_utf8_lossy(&netem.stderr).trim()
        );
    }
    let (scheduler, _) = hosts.cluster("token:test-token-0123456789");
    assert_eq!(hosts.answers(&scheduler, "token:test-token-0123456789", 0), threads(0));
}

fn calls_without_the_token_are_refused(case: u32) {
    let mut hosts = Hosts::new(case, 2).unwrap();
    // No token, off loopback: the scheduler will not start, and says how.
    let (said, _) = hosts.start(&hosts.hub(), &format!("scheduler {}:0 -", hosts.hub_ip()));
    assert!(said.starts_with("error:") && said.contains("--token"), "{said}");
    let (said, _) = hosts.start(
        &hosts.worker(0),
        &format!("worker {}:1 {}:0 -", hosts.hub_ip(), hosts.worker_ip(0)),
    );
    assert!(said.starts_with("error:") && said.contains("BRISK_TOKEN"), "{said}");

    let (scheduler, _) = hosts.start(
        &hosts.hub(),
        &format!("scheduler {}:0 token:right-token-0123456789", hosts.hub_ip()),
    );
    let (worker, _) = hosts.start(
        &hosts.worker(0),
        &format!("worker {scheduler} {}:0 token:right-token-0123456789", hosts.worker_ip(0)),
    );
    // A client with no token, or a wrong one.
    let (said, _) = hosts.start(&hosts.hub(), &format!("client {scheduler} - 0"));
    assert!(said.starts_with("error:") && said.contains("no token"), "{said}");
    let (said, _) =
        hosts.start(&hosts.hub(), &format!("client {scheduler} token:wrong-token-0123456789 0"));
    assert!(said.starts_with("error:") && said.contains("wrong token"), "{said}");
    // A worker with a wrong token: refused at once.
    let (said, _) = hosts.start(
        &hosts.worker(1),
        &format!("worker {scheduler} {}:0 token:wrong-token-0123456789", hosts.worker_ip(1)),
    );
    assert!(said.starts_with("error:") && said.contains("refused this worker"), "{said}");
    // Data too: a Flight DoGet without the token.
    let (said, _) = hosts.start(&hosts.hub(), &format!("fetch {worker}"));
    assert!(said.contains("authentication credentials") && said.contains("no token"), "{said}");
    // Each refusal logged with the caller's address.
    let logs: String = (0..hosts.children.len()).map(|i| hosts.log(i)).collect();
    assert!(logs.contains(&format!("refused a call from {}", hosts.hub_ip())), "{logs}");
    assert!(logs.contains(&format!("refused a call from {}", hosts.worker_ip(1))), "{logs}");
    // The right token computes.
    assert_eq!(hosts.answers(&scheduler, "token:right-token-0123456789", 0), threads(0));
}

/// Writes a cluster's certificates to `dir`: `ca.pem`, the authority; `node.pem`
/// and `node.key`, one certificate for every node (named `brisk-cluster`,
/// for servers and clients); `stranger.pem` and `stranger.key`, the same but
/// signed by another authority.
fn certificates(dir: &std::path::Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let authority = || {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let (ca, other) = (authority(), authority());
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, issuer) in [("node", &ca), ("stranger", &other)] {
        let mut params = CertificateParams::new(vec!["brisk-cluster".to_string()]).unwrap();
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

/// Removes a directory when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mutual_tls_admits_the_clusters_certificates_only(case: u32) {
    let dir =
        Scratch(std::env::temp_dir().join(format!("brisk-tls-{}-{case}", std::process::id())));
    certificates(&dir.0);
    let mut hosts = Hosts::new(case, 2).unwrap();
    let tls = |name: &str| format!("tls:{}:{name}", dir.0.display());
    let (scheduler, _) = hosts.cluster(&tls("node"));
    assert_eq!(hosts.answers(&scheduler, &tls("node"), 0), threads(0));
    // A certificate of another authority, or none: refused at the handshake.
    for sec in [tls("stranger"), "-".into(), "token:test-token-0123456789".into()] {
        let (said, _) = hosts.start(&hosts.hub(), &format!("client {scheduler} {sec} 0"));
        eprintln!("  {sec}: {said}");
        assert!(said.starts_with("error:"), "{sec}: {said}");
    }
    // Each refused handshake logged by the scheduler with the caller's address.
    let log = hosts.log(0);
    let refusals = format!("refused a connection from {}:", hosts.hub_ip());
    assert!(log.matches(&refusals).count() >= 3, "scheduler: {log}");
}

/// A test: its name, and the function taking its case number.
type Case = (&'static str, fn(u32));

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        brisk::worker_if_asked_with(program_ops);
        play(&role);
    }
    brisk::worker_if_asked_with(program_ops);
    let probe = format!("brisk{}probe", std::process::id());
    if let Err(e) = ip(&["netns", "add", &probe]) {
        println!(
            "hosts: skipped, this machine cannot make network namespaces ({e}): needs root and iproute2"
        );
        println!("0 passed, 0 failed");
        return;
    }
    let _ = ip(&["netns", "del", &probe]);
    let cases: &[Case] = &[
        (
            "graphs_on_other_hosts_give_the_thread_schedulers_bits",
            graphs_on_other_hosts_give_the_thread_schedulers_bits,
        ),
        (
            "a_cut_link_loses_nothing_and_the_worker_back_starts_anew",
            a_cut_link_loses_nothing_and_the_worker_back_starts_anew,
        ),
        (
            "a_link_cut_between_two_workers_only_loses_nothing",
            a_link_cut_between_two_workers_only_loses_nothing,
        ),
        ("slow_links_change_nothing", slow_links_change_nothing),
        ("calls_without_the_token_are_refused", calls_without_the_token_are_refused),
        (
            "mutual_tls_admits_the_clusters_certificates_only",
            mutual_tls_admits_the_clusters_certificates_only,
        ),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let (mut passed, mut failed) = (0, 0);
    for (case, (name, test)) in cases.iter().enumerate() {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        eprintln!("test {name} ...");
        let outcome = std::panic::catch_unwind(|| test(case as u32));
        let prefix = format!("brisk{}c{case}", std::process::id());
        let mut left = namespaces(&prefix);
        left.extend(children().iter().map(|pid| format!("process {pid}")));
        match (outcome, left.is_empty()) {
            (Ok(()), true) => {
                passed += 1;
                eprintln!("test {name} ... ok ({:?})", started.elapsed());
            }
            (Ok(()), false) => {
                failed += 1;
                eprintln!("test {name} ... FAILED: left behind: {left:?}");
            }
            (Err(_), _) => {
                failed += 1;
                eprintln!("test {name} ... FAILED");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
