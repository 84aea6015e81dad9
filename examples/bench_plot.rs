//! Renders the load comparison of `benches/compare.sh` as SVG plots and a
//! Markdown table.
//!
//! ```text
//! cargo run --release --example bench_plot -- --input target/bench/compare --out docs/img
//! ```
//!
//! Reads every `*.json` report `loadgen --json` wrote in `--input` (one
//! target at one concurrency each), writes `throughput.svg` (requests/s
//! against connections), `latency_p99.svg` (p99 against connections) and
//! `latency_percentiles.svg` (p50 to p99.9 at the reference concurrency) to
//! `--out`, and prints the table, with each target's ratio to the
//! `--baseline` target, to stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use plotters::prelude::*;
use serde_json::Value;

#[derive(Parser, Debug)]
struct Args {
    /// Folder of loadgen JSON reports.
    #[arg(long)]
    input: PathBuf,
    /// Folder to write the SVG files to.
    #[arg(long)]
    out: PathBuf,
    /// The target the others are compared with (its label).
    #[arg(long, default_value = "node")]
    baseline: String,
    /// The concurrency of the percentile plot and of the ratios.
    #[arg(long, default_value_t = 8)]
    reference_connections: u64,
}

/// One run: a target at one concurrency (the mean over its rounds).
#[derive(Debug, Clone, Copy)]
struct Point {
    connections: u64,
    rps: f64,
    /// p50, p90, p99, p99.9, max, in milliseconds.
    latency_ms: [f64; 5],
}

const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];
const COLORS: [RGBColor; 5] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
];

/// Draws one labelled line with a dot at each point (a macro: plotters'
/// chart types differ with the axes' scales).
macro_rules! labelled_line {
    ($chart:expr, $label:expr, $line:expr, $color:expr) => {{
        let color = $color;
        $chart
            .draw_series(LineSeries::new($line.clone(), color.stroke_width(2)))?
            .label($label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        $chart.draw_series(
            $line
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
        )?;
    }};
}

/// The legend, top left.
macro_rules! legend {
    ($chart:expr) => {
        $chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?
    };
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let series = read_reports(&args.input)?;
    if series.is_empty() {
        return Err(format!("no loadgen reports in {}", args.input.display()).into());
    }
    std::fs::create_dir_all(&args.out)?;
    plot_lines(
        &args.out.join("throughput.svg"),
        "Throughput (higher is better)",
        "requests/s",
        &series,
        |p| p.rps,
        false,
    )?;
    plot_lines(
        &args.out.join("latency_p99.svg"),
        "p99 latency (lower is better)",
        "p99 latency, ms (log scale)",
        &series,
        |p| p.latency_ms[2],
        true,
    )?;
    plot_percentiles(
        &args.out.join("latency_percentiles.svg"),
        &series,
        args.reference_connections,
    )?;
    print!(
        "{}",
        table(&series, &args.baseline, args.reference_connections)
    );
    Ok(())
}

/// label → points sorted by connections.
fn read_reports(
    dir: &std::path::Path,
) -> Result<BTreeMap<String, Vec<Point>>, Box<dyn std::error::Error>> {
    let mut series: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let label = doc["label"]
            .as_str()
            .ok_or("report without label")?
            .to_owned();
        let rounds = doc["rounds"].as_array().ok_or("report without rounds")?;
        let n = rounds.len().max(1) as f64;
        let mean = |f: &dyn Fn(&Value) -> f64| rounds.iter().map(f).sum::<f64>() / n;
        let mut latency_ms = [0.0; 5];
        for (slot, name) in latency_ms.iter_mut().zip(PERCENTILES) {
            *slot = mean(&|r| r["latency_us"][name].as_f64().unwrap_or(0.0) / 1000.0);
        }
        series.entry(label).or_default().push(Point {
            connections: doc["connections"].as_u64().ok_or("no connections")?,
            rps: mean(&|r| r["requests_per_second"].as_f64().unwrap_or(0.0)),
            latency_ms,
        });
    }
    for points in series.values_mut() {
        points.sort_by_key(|p| p.connections);
    }
    Ok(series)
}

fn plot_lines(
    path: &std::path::Path,
    title: &str,
    y_desc: &str,
    series: &BTreeMap<String, Vec<Point>>,
    value: impl Fn(&Point) -> f64,
    log_y: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let all = || series.values().flatten();
    let x_max = all().map(|p| p.connections).max().unwrap_or(1).max(2) as f64;
    let y_max = all().map(&value).fold(0.0, f64::max) * 1.15;
    let y_min = all().map(&value).fold(f64::MAX, f64::min).max(0.001) / 1.5;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80);
    let x_range = (1.0..x_max).log_scale();
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("connections (log scale)")
                .y_desc(y_desc)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()?;
            for ((label, points), color) in series.iter().zip(COLORS.iter().cycle()) {
                let line: Vec<(f64, f64)> = points
                    .iter()
                    .map(|p| (p.connections as f64, value(p)))
                    .collect();
                labelled_line!(chart, label.as_str(), line, color);
            }
            legend!(chart);
        }};
    }
    if log_y {
        draw!(builder.build_cartesian_2d(x_range, (y_min..y_max).log_scale())?);
    } else {
        draw!(builder.build_cartesian_2d(x_range, 0.0..y_max)?);
    }
    root.present()?;
    Ok(())
}

fn plot_percentiles(
    path: &std::path::Path,
    series: &BTreeMap<String, Vec<Point>>,
    connections: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let at = |points: &Vec<Point>| {
        points
            .iter()
            .find(|p| p.connections == connections)
            .copied()
    };
    let picked: Vec<(&String, Point)> = series
        .iter()
        .filter_map(|(label, points)| Some((label, at(points)?)))
        .collect();
    let y_max = picked
        .iter()
        .flat_map(|(_, p)| p.latency_ms)
        .fold(0.0, f64::max)
        * 1.5;
    let y_min = picked
        .iter()
        .flat_map(|(_, p)| p.latency_ms)
        .fold(f64::MAX, f64::min)
        .max(0.001)
        / 1.5;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Latency percentiles at {connections} connections (lower is better)"),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(
            0.0..(PERCENTILES.len() as f64 - 1.0),
            (y_min..y_max).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_labels(PERCENTILES.len())
        .x_label_formatter(&|x| {
            PERCENTILES
                .get(x.round() as usize)
                .map_or(String::new(), |s| s.to_string())
        })
        .y_desc("latency, ms (log scale)")
        .draw()?;
    for ((label, point), color) in picked.iter().zip(COLORS.iter().cycle()) {
        let line: Vec<(f64, f64)> = point
            .latency_ms
            .iter()
            .enumerate()
            .map(|(i, ms)| (i as f64, *ms))
            .collect();
        labelled_line!(chart, label.as_str(), line, color);
    }
    legend!(chart);
    root.present()?;
    Ok(())
}

/// The Markdown table of every run, and each target's ratios to the
/// baseline at the reference concurrency.
fn table(series: &BTreeMap<String, Vec<Point>>, baseline: &str, reference: u64) -> String {
    let mut out = String::from(
        "| target | connections | requests/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (label, points) in series {
        for p in points {
            let l = p.latency_ms;
            out.push_str(&format!(
                "| {label} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                p.connections, p.rps, l[0], l[1], l[2], l[3], l[4]
            ));
        }
    }
    let at = |label: &str| {
        series
            .get(label)?
            .iter()
            .find(|p| p.connections == reference)
            .copied()
    };
    if let Some(base) = at(baseline) {
        out.push_str(&format!(
            "\nAt {reference} connections, against {baseline}:\n\n| target | throughput × {baseline} | p99 ÷ {baseline}'s p99 |\n|---|---:|---:|\n"
        ));
        for label in series.keys() {
            if let Some(p) = at(label) {
                out.push_str(&format!(
                    "| {label} | {:.1}× | {:.3} (1/{:.1}) |\n",
                    p.rps / base.rps,
                    p.latency_ms[2] / base.latency_ms[2],
                    base.latency_ms[2] / p.latency_ms[2]
                ));
            }
        }
    }
    out
}
