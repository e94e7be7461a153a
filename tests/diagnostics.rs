//! The performance report and the profilers: what a person would look at,
//! checked against what the scheduler itself counted.

use std::sync::Arc;

use brisk::diagnostics::{Profiler, performance_report};
use brisk::prelude::*;
use brisk::scheduler::ComputeStats;

/// A callback keeping each compute's statistics.
#[derive(Default)]
struct Stats(std::sync::Mutex<Vec<ComputeStats>>);

impl brisk::scheduler::Callback for Stats {
    fn finish(&self, stats: &ComputeStats, _: Option<&brisk::scheduler::Error>) {
        self.0.lock().unwrap().push(stats.clone());
    }
}

/// `performance_report` watches every compute of the process: the tests that
/// make one take turns.
static REPORTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn count(html: &str, needle: &str) -> usize {
    html.matches(needle).count()
}

#[test]
fn the_report_of_a_spilling_compute_shows_its_tasks_memory_and_spills() {
    let _turn = REPORTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    let stats = Arc::new(Stats::default());
    // The whole array as the output: 18 MB of chunks held to the end, past a
    // 4 MiB budget.
    let scheduler = Scheduler::threads(2).memory_limit(4 << 20).callback_arc(stats.clone());
    let x = random(&[1_500, 1_500], &[250, 250], 3).unwrap().exp();
    let want = Scheduler::threads(2).compute(&x).unwrap();
    let got = performance_report(&path, || scheduler.compute(&x)).unwrap().unwrap();
    assert_eq!(got, want);
    let stats = stats.0.lock().unwrap()[0].clone();
    assert!(stats.spilled_bytes > 0, "the compute spilled: {stats:?}");
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    // Self-contained: nothing fetched.
    assert!(!html.contains("src=") && !html.contains("href="), "nothing fetched");
    assert!(!html.contains("<script"), "no script");
    // One bar per task run, in lanes of the pool's workers.
    assert_eq!(count(&html, "class=\"task\""), stats.tasks_run);
    let lanes = count(&html, "class=\"lane\"");
    assert!((1..=2).contains(&lanes), "{lanes} lanes");
    // The per-op table adds up to the tasks run.
    let table = &html[html.find("id=\"ops\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    let tasks: usize = table
        .split("class=\"tasks\">")
        .skip(1)
        .map(|cell| cell[..cell.find('<').unwrap()].parse::<usize>().unwrap())
        .sum();
    assert_eq!(tasks, stats.tasks_run);
    // The memory chart, with a mark per spill.
    let memory = &html[html.find("id=\"memory\"").unwrap()..];
    let spills: usize =
        memory["id=\"memory\" data-spills=\"".len()..].split('"').next().unwrap().parse().unwrap();
    assert!(spills > 0, "spills marked");
    assert!(memory.contains("<svg"), "drawn");
}

#[test]
fn the_profiler_records_every_task_with_its_bytes() {
    let _turn = REPORTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let profiler = Arc::new(Profiler::new());
    let scheduler = Scheduler::threads(2).callback_arc(profiler.clone());
    let x = random(&[400, 300], &[100, 100], 9).unwrap();
    let total: f64 = scheduler.compute(&x.sum(Axes::all())).unwrap();
    assert!(total > 0.0);
    let profile = profiler.profile();
    let stats = &profile.computes[0];
    assert_eq!(profile.tasks.len(), stats.tasks_run);
    // Every task's times in order; the roots read nothing and made a chunk's
    // partial sum, the combining tasks took what the others made.
    for t in &profile.tasks {
        assert!(t.start <= t.end, "{t:?}");
        assert!(t.worker < 2, "{t:?}");
    }
    let made: u64 = profile.tasks.iter().map(|t| t.bytes_out).sum();
    let taken: u64 = profile.tasks.iter().map(|t| t.bytes_in).sum();
    let output: u64 = 8;
    assert_eq!(taken + output, made, "every result but the output is taken once");
    assert!(!profile.memory.is_empty());
}

/// The text of every element of an SVG document, which must parse as XML.
fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("the picture parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).map(str::to_string).collect()
}

fn square(x: i64) -> i64 {
    x * x
}

fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[test]
fn graph_pictures_are_drawn_without_graphviz_and_name_every_layer() {
    use brisk::graph::Collection;
    // The seed's delayed example.
    let total = delayed!(add(delayed!(square(2)), delayed!(square(3))));
    let (graph, _) = total.graph().unwrap();
    let texts = svg_texts(&graph.to_svg().unwrap()).join(" ");
    for layer in ["square-", "add-"] {
        assert!(texts.contains(layer), "{layer} not named in {texts}");
    }
    let tasks = svg_texts(&graph.to_tasks_svg().unwrap()).join(" ");
    assert_eq!(tasks.matches("square-").count(), 2, "{tasks}");
    // A CSV group-by: every layer of its graph is named, with its task count.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/frame/tests/data/g_plain.csv");
    let frame = read_csv(fixture, CsvOptions::default().blocksize(3_000)).unwrap();
    let means = frame.groupby(["id1"]).unwrap().mean().unwrap();
    let (graph, _) = means.graph().unwrap();
    let texts = svg_texts(&graph.to_svg().unwrap()).join(" ");
    let layers: std::collections::BTreeSet<String> =
        graph.tasks().map(|t| t.key.name().to_string()).collect();
    for layer in &layers {
        assert!(texts.contains(layer.as_str()), "layer {layer} not named");
    }
    // A 10,000-task array graph: a handful of layers, drawn at once.
    let big = random(&[10_000, 10_000], &[100, 100], 1).unwrap().mean(Axes::all());
    let (graph, _) = big.graph().unwrap();
    assert!(graph.len() > 10_000, "{}", graph.len());
    let svg = graph.to_svg().unwrap();
    assert!(svg.len() < 100_000, "{} bytes", svg.len());
    assert!(svg_texts(&svg).join(" ").contains("10000 tasks"));
    assert!(graph.to_tasks_svg().unwrap_err().contains("too many"));
    // Written by extension; an unknown one is refused, naming what works.
    let dir = tempfile::tempdir().unwrap();
    graph.visualize(dir.path().join("g.svg")).unwrap();
    svg_texts(&std::fs::read_to_string(dir.path().join("g.svg")).unwrap());
    graph.visualize(dir.path().join("g.dot")).unwrap();
    let err = graph.visualize(dir.path().join("g.jpg")).unwrap_err().to_string();
    assert!(err.contains(".svg, .png or .dot"), "{err}");
}

/// A headless Chromium, if this machine has one (`.ci/run` installs it).
fn chromium() -> Option<std::path::PathBuf> {
    ["chromium", "chromium-browser", "google-chrome", "chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|dir| std::path::Path::new(dir).join(name))
            .find(|p| p.is_file())
    })
}

/// Runs headless Chromium on `args`, at most a minute: its standard output.
fn headless(browser: &std::path::Path, args: &[&str]) -> String {
    use std::io::Read;
    let mut child = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser did not finish within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    reader.join().unwrap()
}

#[test]
fn the_report_renders_in_a_headless_browser() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no Chromium here (.ci/run installs it)");
        return;
    };
    let _turn = REPORTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mean.html");
    let stats = Arc::new(Stats::default());
    let scheduler = Scheduler::threads(2).memory_limit(4 << 20).callback_arc(stats.clone());
    let x = random(&[1_500, 1_500], &[250, 250], 5).unwrap().exp();
    performance_report(&path, || scheduler.compute(&x)).unwrap().unwrap();
    let stats = stats.0.lock().unwrap()[0].clone();
    let url = format!("file://{}", path.display());
    // The DOM as the browser built it: the lanes, a bar per task, the chart.
    let dom = headless(&browser, &["--dump-dom", &url]);
    let lanes = dom.matches("class=\"lane\"").count();
    assert!((1..=2).contains(&lanes), "{lanes} lanes");
    assert_eq!(dom.matches("class=\"task\"").count(), stats.tasks_run);
    assert!(dom.contains(&format!("<span id=\"tasks\">{}</span>", stats.tasks_run)));
    assert!(dom.contains("id=\"memory\"") && dom.contains("spills"));
    // And a picture of it, kept beside it for people to look at.
    let shot = dir.join("mean.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    headless(&browser, &[&shot_arg, "--window-size=1200,1600", &url]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    eprintln!("  screenshot: {}", shot.display());
}

/// Opens while the dashboard test wants its tasks to wait.
static GATE: (std::sync::Mutex<bool>, std::sync::Condvar) =
    (std::sync::Mutex::new(false), std::sync::Condvar::new());

/// `i`, at once for 0, else once the gate opens (or after 20 s, so a failing
/// test cannot hang).
fn gated(i: i64) -> i64 {
    if i > 0 {
        let (open, opened) = &GATE;
        let open = open.lock().unwrap();
        let _ = opened.wait_timeout_while(open, std::time::Duration::from_secs(20), |o| !*o);
    }
    i
}

/// The `update` events of a dashboard's event stream, one HTML text each.
struct Updates(std::io::BufReader<std::net::TcpStream>);

impl Updates {
    fn open(addr: std::net::SocketAddr) -> Updates {
        use std::io::{BufRead, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        write!(stream, "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
            .unwrap();
        let mut reader = std::io::BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains("200"), "{status}");
        Updates(reader)
    }

    /// Whether the stream ends (the server closed it) within its read timeout.
    fn ended(&mut self) -> bool {
        use std::io::BufRead;
        loop {
            let mut line = String::new();
            match self.0.read_line(&mut line) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
    }

    /// The next update (the chunked encoding's size lines skipped).
    fn next(&mut self) -> String {
        use std::io::BufRead;
        let (mut event, mut data) = (String::new(), Vec::new());
        loop {
            let mut line = String::new();
            assert!(self.0.read_line(&mut line).unwrap() > 0, "the event stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(text) = line.strip_prefix("data: ") {
                data.push(text.to_string());
            } else if line.is_empty() && event == "update" && !data.is_empty() {
                return data.join("\n");
            }
        }
    }
}

/// The value of `attribute` on the element with `id` in `html`.
fn attribute(html: &str, id: &str, attribute: &str) -> usize {
    let at = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {html}"));
    let element = &html[html[..at].rfind('<').unwrap()..];
    let element = &element[..element.find('>').unwrap()];
    let start = element.find(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
    element[start..start + element[start..].find('"').unwrap()].parse().unwrap()
}

#[test]
fn the_dashboard_shows_a_compute_live_as_it_runs() {
    let _turn = REPORTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dashboard = brisk::diagnostics::Dashboard::serve("127.0.0.1:0").unwrap();
    assert!(dashboard.addr().ip().is_loopback());
    let mut page = String::new();
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(dashboard.addr()).unwrap();
        write!(s, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        s.read_to_string(&mut page).unwrap();
    }
    assert!(page.contains("<div id=\"live\">") && page.contains("new EventSource('events')"));
    // A request naming another host (DNS rebinding) is refused.
    let mut refused = String::new();
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(dashboard.addr()).unwrap();
        write!(s, "GET /events HTTP/1.1\r\nHost: rebound.example:80\r\nConnection: close\r\n\r\n")
            .unwrap();
        s.read_to_string(&mut refused).unwrap();
    }
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    let mut updates = Updates::open(dashboard.addr());
    let idle = updates.next();
    assert_eq!(attribute(&idle, "summary", "data-running"), 0, "{idle}");
    // Four waiting tasks but one on four threads, summed in pairs.
    let scheduler = Scheduler::threads(4).callback_arc(dashboard.callback());
    let total = delayed!(add(
        delayed!(add(delayed!(gated(0)), delayed!(gated(1)))),
        delayed!(add(delayed!(gated(2)), delayed!(gated(3))))
    ));
    let running = std::thread::spawn(move || scheduler.compute(&total));
    // Live: one task done of seven, the compute running.
    let partial = loop {
        let update = updates.next();
        if attribute(&update, "summary", "data-done") >= 1 {
            break update;
        }
    };
    *GATE.0.lock().unwrap() = true;
    GATE.1.notify_all();
    assert_eq!(attribute(&partial, "summary", "data-running"), 1, "{partial}");
    assert_eq!(attribute(&partial, "summary", "data-planned"), 7, "{partial}");
    assert_eq!(attribute(&partial, "summary", "data-done"), 1, "{partial}");
    assert!(partial.contains("data-done=\"1\" data-planned=\"4\""), "{partial}");
    assert!(partial.contains("<progress value=\"1\" max=\"4\">"), "{partial}");
    // Then the end: every task, per op, one bar each in the stream.
    let done = loop {
        let update = updates.next();
        if attribute(&update, "summary", "data-running") == 0 {
            break update;
        }
    };
    assert_eq!(running.join().unwrap().unwrap(), 6);
    assert_eq!(attribute(&done, "summary", "data-done"), 7, "{done}");
    assert!(done.contains("data-done=\"4\" data-planned=\"4\""), "{done}");
    assert!(done.contains("data-done=\"3\" data-planned=\"3\""), "{done}");
    assert_eq!(done.matches("class=\"task\"").count(), 7);
    assert!(done.contains("id=\"memory\"") && done.contains("id=\"workers\""), "{done}");
    // Dropped, it stops serving: the open stream ends, the port is closed.
    let addr = dashboard.addr();
    drop(dashboard);
    assert!(updates.ended(), "the event stream goes on");
    assert!(std::net::TcpStream::connect(addr).is_err(), "still listening");
}

/// Headless Chromium driven over its DevTools protocol: a page that stays
/// open (the dashboard's event stream never ends, so `--dump-dom` cannot
/// tell when it is done), asked what its DOM holds while it lives.
struct Devtools {
    browser: std::process::Child,
    socket: tungstenite::WebSocket<std::net::TcpStream>,
    calls: u64,
    _profile: tempfile::TempDir,
}

impl Devtools {
    /// Starts `browser` on a blank page and connects to that page.
    fn start(browser: &std::path::Path) -> Devtools {
        use std::io::{BufRead, Read, Write};
        let profile = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(browser)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            .args([
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .args(["--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--window-size=1200,1600", "about:blank"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // It says where its DevTools listen on stderr.
        let stderr = child.stderr.take().unwrap();
        let (said, heard) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = said.send(line[at..].trim().to_string());
                }
            }
        });
        let Ok(endpoint) = heard.recv_timeout(std::time::Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser did not say where its DevTools listen");
        };
        let port = endpoint["ws://127.0.0.1:".len()..].split('/').next().unwrap().to_string();
        // The blank page's own socket, from the target list.
        // (It keeps the connection open: the body is read by its length.)
        let mut http = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        http.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        write!(http, "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut reply = std::io::BufReader::new(http);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reply.read_line(&mut line).unwrap();
            if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = n.trim().parse().unwrap();
            }
            if line.trim().is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        reply.read_exact(&mut body).unwrap();
        let targets: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap()
            .to_string();
        let stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        let (socket, _) = tungstenite::client(page.as_str(), stream).unwrap();
        Devtools { browser: child, socket, calls: 0, _profile: profile }
    }

    /// Calls `method`: its result.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.calls += 1;
        let id = self.calls;
        let call = serde_json::json!({"id": id, "method": method, "params": params});
        self.socket.send(tungstenite::Message::text(call.to_string())).unwrap();
        loop {
            let message = self.socket.read().unwrap();
            let Ok(text) = message.to_text() else { continue };
            let reply: serde_json::Value = serde_json::from_str(text).unwrap();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The value of the JavaScript `expression` in the page.
    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let params = serde_json::json!({"expression": expression, "returnByValue": true});
        self.call("Runtime.evaluate", params)["result"]["value"].clone()
    }

    /// Waits (at most 30 s) until `expression` is true in the page.
    fn wait_for(&mut self, expression: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.eval(expression) != serde_json::Value::Bool(true) {
            assert!(std::time::Instant::now() < deadline, "the page never had {expression}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Devtools {
    fn drop(&mut self) {
        let _ = self.browser.kill();
        let _ = self.browser.wait();
    }
}

#[test]
fn the_dashboard_renders_in_a_headless_browser() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no Chromium here (.ci/run installs it)");
        return;
    };
    let _turn = REPORTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dashboard = brisk::diagnostics::Dashboard::serve("127.0.0.1:0").unwrap();
    let mut page = Devtools::start(&browser);
    page.call("Page.navigate", serde_json::json!({"url": dashboard.url()}));
    // Open before the compute: idle, then the compute arrives live.
    page.wait_for("Number(document.body.dataset.updates) >= 1");
    assert_eq!(page.eval("document.getElementById('connection').textContent"), "live");
    assert_eq!(page.eval("document.getElementById('summary').dataset.planned"), "0");
    let stats = Arc::new(Stats::default());
    let scheduler = Scheduler::threads(2)
        .memory_limit(4 << 20)
        .callback_arc(stats.clone())
        .callback_arc(dashboard.callback());
    let x = random(&[1_500, 1_500], &[250, 250], 5).unwrap().exp().mean(Axes::all());
    let _: f64 = scheduler.compute(&x).unwrap();
    let stats = stats.0.lock().unwrap()[0].clone();
    let done = format!("{} of {}", stats.tasks_run, stats.tasks);
    page.wait_for(&format!("document.getElementById('tasks').textContent == '{done}'"));
    // The DOM as the browser built it from the updates: a lane per thread, a
    // bar per task, a full progress bar per op, the memory chart, the workers.
    let dom = page.eval("document.documentElement.outerHTML").as_str().unwrap().to_string();
    let lanes = dom.matches("class=\"lane\"").count();
    assert!((1..=2).contains(&lanes), "{lanes} lanes");
    assert_eq!(dom.matches("class=\"task\"").count(), stats.tasks_run);
    assert!(dom.contains("id=\"memory\"") && dom.contains("class=\"worker\""), "{dom}");
    // Every op's progress bar full, the ops' counts adding up to the plan.
    let rows = page.eval(
        "[...document.querySelectorAll('#ops .progress')].map(p => [p.parentElement.dataset.op, Number(p.dataset.done), Number(p.dataset.planned)])",
    );
    let rows = rows.as_array().unwrap();
    assert!(rows.len() >= 2, "{rows:?}");
    let mut planned = 0;
    for row in rows {
        assert_eq!(row[1], row[2], "{row}: not all done");
        planned += row[2].as_u64().unwrap() as usize;
    }
    assert_eq!(planned, stats.tasks);
    // And a picture of it, kept for people to look at.
    let shot = page.call("Page.captureScreenshot", serde_json::json!({"format": "png"}));
    use base64::Engine as _;
    let png =
        base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    let path = dir.join("dashboard.png");
    std::fs::write(&path, png).unwrap();
    eprintln!("  screenshot: {}", path.display());
}

/// A writer into a buffer the test keeps.
#[derive(Clone, Default)]
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_progress_bar_counts_the_tasks_and_the_bytes_really_read() {
    let _turn = REPORTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/frame/tests/data/g_plain.csv");
    let size = std::fs::metadata(fixture).unwrap().len();
    let frame = read_csv(fixture, CsvOptions::default().blocksize(3_000)).unwrap();
    let means = frame.groupby(["id1"]).unwrap().mean().unwrap();
    let out = Shared::default();
    let bar = brisk::diagnostics::ProgressBar::to_writer(Some(size), Box::new(out.clone()));
    let stats = Arc::new(Stats::default());
    let scheduler = Scheduler::threads(2).callback_arc(Arc::new(bar)).callback_arc(stats.clone());
    scheduler.compute(&means).unwrap();
    let tasks = stats.0.lock().unwrap()[0].tasks;
    assert!(tasks > 4, "{tasks} tasks");
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let last = text.lines().last().unwrap_or_default();
    let expected =
        format!("done: {tasks}/{tasks} tasks, {} read, in ", brisk::core::text::bytes(size));
    assert!(last.starts_with(&expected), "{last:?} is not {expected:?}... in {text:?}");
}
