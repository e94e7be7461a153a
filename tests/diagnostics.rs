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
