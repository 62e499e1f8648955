//! The results of `offlinectl bench`: a table, CSV and an SVG plot.

use std::path::Path;
use std::time::Duration;

use offline_benches::{BoxError, Report};
use plotters::prelude::*;

/// One run's results.
pub(crate) struct Row {
    report: Report,
    /// This run's throughput over the baseline's at the same client count.
    ratio: Option<f64>,
}

impl Row {
    /// A row for `report`, beside the baseline's throughput if there is one.
    pub(crate) fn new(report: Report, baseline: Option<f64>) -> Self {
        let ratio = baseline.map(|baseline| report.throughput() / baseline);
        Self { report, ratio }
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Prints the rows as an aligned table.
pub(crate) fn print_table(rows: &[Row]) {
    println!(
        "{:<28} {:>7} {:>11} {:>11} {:>11} {:>11} {:>11} {:>8} {:>7}",
        "store",
        "clients",
        "ops/s",
        "write p50",
        "write p99",
        "pop p50",
        "pop p99",
        "refused",
        "ratio"
    );
    for row in rows {
        let r = &row.report;
        println!(
            "{:<28} {:>7} {:>11.0} {:>9.1}µs {:>9.1}µs {:>9.1}µs {:>9.1}µs {:>8} {:>7}",
            r.label,
            r.clients,
            r.throughput(),
            micros(r.writes.quantile(0.5)),
            micros(r.writes.quantile(0.99)),
            micros(r.pops.quantile(0.5)),
            micros(r.pops.quantile(0.99)),
            r.refused,
            row.ratio
                .map_or_else(String::new, |ratio| format!("{ratio:.2}x")),
        );
    }
    println!(
        "ratio: throughput over the baseline's (the row below each store) at the same client count"
    );
}

/// Writes the rows as CSV, one line per run.
pub(crate) fn write_csv(path: &Path, rows: &[Row]) -> Result<(), BoxError> {
    let mut out = csv::Writer::from_path(path)?;
    out.write_record([
        "store",
        "clients",
        "operations",
        "seconds",
        "ops_per_second",
        "write_p50_us",
        "write_p99_us",
        "pop_p50_us",
        "pop_p99_us",
        "refused",
        "ratio_to_baseline",
    ])?;
    for row in rows {
        let r = &row.report;
        out.write_record([
            r.label.clone(),
            r.clients.to_string(),
            r.operations.to_string(),
            format!("{:.6}", r.elapsed.as_secs_f64()),
            format!("{:.1}", r.throughput()),
            format!("{:.1}", micros(r.writes.quantile(0.5))),
            format!("{:.1}", micros(r.writes.quantile(0.99))),
            format!("{:.1}", micros(r.pops.quantile(0.5))),
            format!("{:.1}", micros(r.pops.quantile(0.99))),
            r.refused.to_string(),
            row.ratio
                .map_or_else(String::new, |ratio| format!("{ratio:.3}")),
        ])?;
    }
    out.flush()?;
    Ok(())
}

/// Plots throughput by client count, one line per store, as SVG.
pub(crate) fn write_plot(path: &Path, title: &str, rows: &[Row]) -> Result<(), BoxError> {
    let mut labels: Vec<&str> = Vec::new();
    for row in rows {
        if !labels.contains(&row.report.label.as_str()) {
            labels.push(&row.report.label);
        }
    }
    let mut clients: Vec<usize> = rows.iter().map(|row| row.report.clients).collect();
    clients.sort_unstable();
    clients.dedup();
    let top = rows
        .iter()
        .map(|row| row.report.throughput())
        .fold(0.0, f64::max)
        * 1.1;
    // Client counts are evenly spaced on the x axis, whatever their values.
    let position = |clients_of: usize| clients.iter().position(|&c| c == clients_of).unwrap_or(0);

    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.25f64..(clients.len() as f64 - 0.75), 0.0..top.max(1.0))?;
    chart
        .configure_mesh()
        .x_labels(clients.len())
        .x_label_formatter(&|x| {
            let index = x.round();
            if (x - index).abs() < 0.01 && index >= 0.0 {
                clients
                    .get(index as usize)
                    .map_or_else(String::new, ToString::to_string)
            } else {
                String::new()
            }
        })
        .x_desc("clients")
        .y_desc("operations per second")
        .draw()?;
    for (n, label) in labels.iter().enumerate() {
        let color = Palette99::pick(n).to_rgba();
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|row| row.report.label == *label)
            .map(|row| (position(row.report.clients) as f64, row.report.throughput()))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
