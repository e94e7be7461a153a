//! The performance report: one HTML file, charts inline as SVG, no script and
//! nothing fetched — it opens anywhere, without a network.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use plotters::prelude::*;

use super::{MemorySample, Profile, ResourceSample, TaskRecord};

/// What a performance report shows; [`write`](Self::write) makes the file.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Its title.
    pub title: String,
    /// The tasks, memory and spills of the computes.
    pub profile: Profile,
    /// The process's memory and CPU over time.
    pub resources: Vec<ResourceSample>,
    /// How long it all took.
    pub elapsed: Duration,
    /// The plan's summary (`--explain`'s), when known.
    pub plan: Option<String>,
    /// Facts of the environment, in order: name, value.
    pub environment: Vec<(String, String)>,
}

/// Brisk's version, this machine's cores and its default memory budget: the
/// start of a report's environment.
pub fn environment() -> Vec<(String, String)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    vec![
        ("Brisk".into(), env!("CARGO_PKG_VERSION").into()),
        ("cores".into(), cores.to_string()),
        ("memory budget (default)".into(), mib(brisk_scheduler::default_memory_budget())),
    ]
}

pub(super) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A colour per op, the same for the same name in every report.
fn colour(op: &str) -> String {
    const PALETTE: [&str; 10] = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
        "#9c755f", "#bab0ac",
    ];
    let hash = op
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    PALETTE[(hash % PALETTE.len() as u64) as usize].to_string()
}

/// One op's row of the per-op table: its tasks done (and planned, when
/// known), their time and bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct OpRow {
    pub(super) op: String,
    pub(super) tasks: usize,
    pub(super) planned: Option<usize>,
    pub(super) seconds: f64,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
}

impl OpRow {
    /// The rows of `tasks`, by op name.
    fn of(tasks: &[TaskRecord]) -> Vec<OpRow> {
        let mut ops: BTreeMap<&str, OpRow> = BTreeMap::new();
        for t in tasks {
            let o =
                ops.entry(&t.op).or_insert_with(|| OpRow { op: t.op.clone(), ..OpRow::default() });
            o.add(t);
        }
        ops.into_values().collect()
    }

    /// Counts `t` in.
    pub(super) fn add(&mut self, t: &TaskRecord) {
        self.tasks += 1;
        self.seconds += (t.end - t.start).as_secs_f64();
        self.bytes_in += t.bytes_in;
        self.bytes_out += t.bytes_out;
    }
}

impl Report {
    /// Writes the report to `path`, whole or not at all (written to a
    /// temporary name beside it, then renamed).
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        let html = self.html();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(".".as_ref());
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, html.as_bytes())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// The report as one HTML document.
    pub fn html(&self) -> String {
        let p = &self.profile;
        let mut h = String::new();
        let title = escape(&self.title);
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
        );
        let peak = p.memory.iter().map(|m| m.held).max().unwrap_or(0);
        let spilled: u64 = p.spills.iter().map(|s| s.1).sum();
        let read_back: u64 = p.read_backs.iter().map(|s| s.1).sum();
        let _ = write!(
            h,
            "<p id=\"summary\">{} compute{}, <span id=\"tasks\">{}</span> tasks in {:.3} s; peak memory held <span id=\"peak\">{}</span>; spilled <span id=\"spilled\">{}</span>, read back {}.</p>",
            p.computes.len(),
            if p.computes.len() == 1 { "" } else { "s" },
            p.tasks.len(),
            self.elapsed.as_secs_f64(),
            mib(peak),
            mib(spilled),
            mib(read_back)
        );
        h.push_str("\n<h2>Task stream</h2>\n");
        h.push_str(&task_stream(&p.tasks, Duration::ZERO));
        h.push_str("\n<h2>Memory held</h2>\n");
        h.push_str(&memory_chart(&p.memory, &p.spills));
        if !self.resources.is_empty() {
            h.push_str("<h2>Process memory and CPU</h2>\n");
            h.push_str(&self.resource_chart());
        }
        h.push_str("<h2>Per operation</h2>\n");
        h.push_str(&op_table(&OpRow::of(&p.tasks)));
        if let Some(plan) = &self.plan {
            let _ = write!(h, "<h2>Plan</h2>\n<pre id=\"plan\">{}</pre>\n", escape(plan));
        }
        h.push_str("<h2>Environment</h2>\n<table id=\"environment\">");
        for (name, value) in &self.environment {
            let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(name), escape(value));
        }
        h.push_str("</table>\n</body></html>\n");
        h
    }

    /// Resident memory and CPU of the process over time.
    fn resource_chart(&self) -> String {
        let r = &self.resources;
        let end = r.iter().map(|s| s.at).max().unwrap_or_default().as_secs_f64().max(1e-6);
        let top = r.iter().map(|s| s.rss).max().unwrap_or(1) as f64 / (1u64 << 20) as f64;
        let cpu_top = r.iter().map(|s| s.cpu).fold(100.0, f64::max);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (1000, 240)).into_drawing_area();
            let _ = root.fill(&WHITE);
            let (left, right) = root.split_horizontally(500);
            let rss = r.iter().map(|s| (s.at.as_secs_f64(), s.rss as f64 / (1u64 << 20) as f64));
            let cpu = r.iter().map(|s| (s.at.as_secs_f64(), s.cpu));
            if let Ok(mut chart) = ChartBuilder::on(&left)
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .caption("RSS (MiB)", ("sans-serif", 14))
                .build_cartesian_2d(0.0..end, 0.0..top * 1.05)
            {
                let _ = chart.configure_mesh().draw();
                let _ = chart.draw_series(LineSeries::new(rss, &BLUE));
            }
            if let Ok(mut chart) = ChartBuilder::on(&right)
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .caption("CPU (% of a core)", ("sans-serif", 14))
                .build_cartesian_2d(0.0..end, 0.0..cpu_top * 1.05)
            {
                let _ = chart.configure_mesh().draw();
                let _ = chart.draw_series(LineSeries::new(cpu, &GREEN));
            }
            let _ = root.present();
        }
        format!("<div id=\"resources\">{svg}</div>\n")
    }
}

/// One lane per worker, one bar per task coloured by its op, its key and
/// figures on hover.
pub(super) fn task_stream(tasks: &[TaskRecord], origin: Duration) -> String {
    let lanes: Vec<usize> = {
        let mut w: Vec<usize> = tasks.iter().map(|t| t.worker).collect();
        w.sort_unstable();
        w.dedup();
        w
    };
    let since = |at: Duration| at.saturating_sub(origin).as_secs_f64();
    let end = tasks.iter().map(|t| since(t.end)).fold(1e-6, f64::max);
    let (left, width, lane_h) = (90.0, 900.0, 24.0);
    let height = lane_h * lanes.len().max(1) as f64 + 30.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"task-stream\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\">",
        left + width + 10.0
    );
    for (i, w) in lanes.iter().enumerate() {
        let y = i as f64 * lane_h;
        let _ = write!(
            s,
            "<g class=\"lane\" data-worker=\"{w}\"><text x=\"4\" y=\"{}\" font-size=\"12\">worker {w}</text>",
            y + 16.0
        );
        for t in tasks.iter().filter(|t| t.worker == *w) {
            let x = left + width * since(t.start) / end;
            let wd = (width * (t.end - t.start).as_secs_f64() / end).max(0.5);
            let _ = write!(
                s,
                "<rect class=\"task\" data-op=\"{op}\" x=\"{x:.2}\" y=\"{:.1}\" width=\"{wd:.2}\" height=\"{:.1}\" fill=\"{}\"><title>{key} ({op}): {:.3} ms, in {} B, out {} B</title></rect>",
                y + 3.0,
                lane_h - 6.0,
                colour(&t.op),
                (t.end - t.start).as_secs_f64() * 1e3,
                t.bytes_in,
                t.bytes_out,
                op = escape(&t.op),
                key = escape(&t.key.to_string()),
            );
        }
        s.push_str("</g>");
    }
    let _ = write!(
        s,
        "<text x=\"{left}\" y=\"{}\" font-size=\"11\">0 s</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{end:.3} s</text></svg>",
        height - 6.0,
        left + width,
        height - 6.0
    );
    s
}

/// Held bytes over time against the budget, with a mark at each spill
/// (drawn with plotters' SVG backend).
pub(super) fn memory_chart(memory: &[MemorySample], spills: &[(Duration, u64)]) -> String {
    let start = memory.first().map_or(0.0, |m| m.at.as_secs_f64());
    let end = memory.iter().map(|m| m.at.as_secs_f64()).fold(start + 1e-6, f64::max);
    let mb = |b: u64| b as f64 / (1u64 << 20) as f64;
    let peak = mb(memory.iter().map(|m| m.held).max().unwrap_or(0));
    let budget = mb(memory.iter().map(|m| m.budget).max().unwrap_or(0));
    // The budget drawn when it is near what was held; far above, it would
    // flatten the line of what was held: then it is said, not drawn.
    let draw_budget = budget <= 4.0 * peak;
    let top = match draw_budget {
        true => budget.max(peak),
        false => peak,
    }
    .max(1e-3);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 300)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(start..end, 0.0..top * 1.05)
        else {
            return String::new();
        };
        let _ = chart.configure_mesh().x_desc("seconds").y_desc("MiB").draw();
        let held = memory.iter().map(|m| (m.at.as_secs_f64(), mb(m.held)));
        let _ = chart.draw_series(LineSeries::new(held, &BLUE));
        if draw_budget {
            let line = memory.iter().map(|m| (m.at.as_secs_f64(), mb(m.budget)));
            let _ = chart.draw_series(LineSeries::new(line, &RED));
        }
        let spills = spills.iter().map(|(at, _)| {
            Circle::new((at.as_secs_f64(), 0.0), 4, RGBColor(242, 142, 43).filled())
        });
        let _ = chart.draw_series(spills);
        let _ = root.present();
    }
    let legend = match draw_budget {
        true => format!("held (blue) against the budget (red, {budget:.1} MiB)"),
        false => format!("held (blue); the budget, {budget:.1} MiB, is far above"),
    };
    format!(
        "<div id=\"memory\" data-spills=\"{}\"><p>{legend}; orange marks: spills.</p>{svg}</div>\n",
        spills.len()
    )
}

/// Tasks, total and mean time, bytes in and out, per op.
/// With a progress column (done of planned) when any row knows its plan's
/// count.
pub(super) fn op_table(rows: &[OpRow]) -> String {
    let planned = rows.iter().any(|r| r.planned.is_some());
    let mut s = String::from("<table id=\"ops\"><tr><th>op</th><th>tasks</th>");
    if planned {
        s.push_str("<th>progress</th>");
    }
    s.push_str("<th>total s</th><th>mean ms</th><th>bytes in</th><th>bytes out</th></tr>");
    for o in rows {
        let op = escape(&o.op);
        let _ = write!(
            s,
            "<tr data-op=\"{op}\"><td><span style=\"color:{}\">&#9632;</span> {op}</td><td class=\"tasks\">{}</td>",
            colour(&o.op),
            o.tasks
        );
        if planned {
            let of = o.planned.unwrap_or(o.tasks).max(o.tasks);
            let _ = write!(
                s,
                "<td class=\"progress\" data-done=\"{}\" data-planned=\"{of}\"><progress value=\"{}\" max=\"{}\"></progress> {} of {of}</td>",
                o.tasks,
                o.tasks,
                of.max(1),
                o.tasks
            );
        }
        let _ = write!(
            s,
            "<td>{:.4}</td><td>{:.3}</td><td class=\"in\">{}</td><td class=\"out\">{}</td></tr>",
            o.seconds,
            o.seconds * 1e3 / o.tasks.max(1) as f64,
            o.bytes_in,
            o.bytes_out,
        );
    }
    s.push_str("</table>\n");
    s
}

pub(super) const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}pre{background:#f8f8f8;padding:1em}";
