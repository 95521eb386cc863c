//! `tessera eval --report out.html`: one self-contained HTML file (inline SVG drawn by
//! `plotters`' SVG backend, no script, nothing fetched) with the metrics table, the
//! latency histogram, per-stage recall when measured, the `--sweep` latency/recall curve
//! when run, and a per-query nDCG@10 scatter of two modes (`--compare MODE`).
//!
//! Every number a table shows is also in a `data-value` attribute at full precision, so a
//! test (or a script) can read the report back and compare it with `--json`.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::{EvalReport, Latency, SweepRow};
use crate::{Error, Result};

/// What goes into a report besides the main evaluation.
pub struct ReportExtras<'a> {
    /// `--sweep`: the rows and exhaustive search's latency in the same run.
    pub sweep: Option<(&'a [SweepRow], Latency)>,
    /// `--compare MODE`: the other mode's evaluation.
    pub compare: Option<&'a EvalReport>,
}

/// Write the report to `path`.
pub fn write_html(path: &Path, report: &EvalReport, extras: &ReportExtras<'_>) -> Result<()> {
    let html = render(report, extras)?;
    std::fs::write(path, html).map_err(|e| Error::Io {
        what: format!("writing the report {}", path.display()),
        source: e,
    })
}

/// The report as a string.
pub fn render(report: &EvalReport, extras: &ReportExtras<'_>) -> Result<String> {
    let mut h = String::new();
    let title = format!("{} ({}) · {}", report.dataset, report.split, report.mode);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tessera eval: {}</title>\
         <style>{STYLE}</style></head><body>\n<h1>Tessera evaluation</h1>\n<p class=\"sub\">{} · {} queries · {} threads · {} kernel · index {} ({} docs, {} vectors)</p>\n",
        esc(&title),
        esc(&title),
        report.num_queries,
        report.threads,
        esc(&report.kernel),
        esc(&report.index.display().to_string()),
        report.num_docs,
        report.num_vectors
    );

    h.push_str("<h2>Metrics</h2>\n<table id=\"metrics\"><tr><th>metric</th><th>");
    h.push_str(&esc(&report.mode));
    if let Some(c) = extras.compare {
        let _ = write!(h, "</th><th>{}", esc(&c.mode));
    }
    h.push_str("</th></tr>\n");
    for (name, value) in &report.metrics {
        let _ = write!(
            h,
            "<tr><td>{}</td>{}",
            esc(name),
            cell("metric", name, *value, 4)
        );
        if let Some(c) = extras.compare {
            let v = c.metrics.get(name).copied().unwrap_or(f64::NAN);
            h.push_str(&cell("compare-metric", name, v, 4));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");

    h.push_str("<h2>Search latency</h2>\n<table id=\"latency\"><tr><th></th><th>p50 ms</th><th>p95 ms</th><th>mean ms</th></tr>\n");
    for (label, l) in [
        ("search", &report.latency_ms),
        ("query encoding", &report.query_encode_ms),
    ] {
        let _ = writeln!(
            h,
            "<tr><td>{label}</td>{}{}{}</tr>",
            cell("latency", &format!("{label}.p50"), l.p50, 2),
            cell("latency", &format!("{label}.p95"), l.p95, 2),
            cell("latency", &format!("{label}.mean"), l.mean, 2)
        );
    }
    h.push_str("</table>\n");
    h.push_str(&figure(
        "latency-histogram",
        &latency_histogram(&report.latency_samples_ms)?,
    ));

    if let Some(stages) = &report.stages {
        h.push_str("<h2>Per-stage recall against the exhaustive top-k</h2>\n<table id=\"stages\"><tr><th>stage</th><th>own top-k</th><th>candidates</th><th>mean candidates</th><th>p50 ms</th></tr>\n");
        for s in stages {
            let _ = writeln!(
                h,
                "<tr><td>{}</td>{}{}{}{}</tr>",
                esc(&s.stage),
                cell("stage-top-k", &s.stage, s.top_k_recall, 4),
                cell("stage-candidates", &s.stage, s.candidates_recall, 4),
                cell("stage-mean-candidates", &s.stage, s.mean_candidates, 1),
                cell("stage-p50", &s.stage, s.latency_ms.p50, 2)
            );
        }
        h.push_str("</table>\n");
    }

    if let Some((rows, exhaustive)) = extras.sweep {
        let _ = write!(
            h,
            "<h2>PLAID latency/recall sweep</h2>\n<p>Exhaustive search in the same run: p50 {:.2} ms, p95 {:.2} ms.</p>\n",
            exhaustive.p50, exhaustive.p95
        );
        h.push_str(&figure("sweep-curve", &sweep_curve(rows, exhaustive)?));
        h.push_str("<table id=\"sweep\"><tr><th>ncells</th><th>threshold</th><th>ndocs</th><th>share of exhaustive top-k</th><th>nDCG@10</th><th>p50 ms</th><th>p95 ms</th></tr>\n");
        for (i, r) in rows.iter().enumerate() {
            let key = i.to_string();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}{}{}</tr>",
                r.params.ncells,
                r.params.centroid_score_threshold,
                r.params.ndocs,
                cell("sweep-share", &key, r.recall_vs_exhaustive, 4),
                cell(
                    "sweep-ndcg",
                    &key,
                    r.metrics.get("ndcg@10").copied().unwrap_or(f64::NAN),
                    4
                ),
                cell("sweep-p50", &key, r.latency_ms.p50, 2),
                cell("sweep-p95", &key, r.latency_ms.p95, 2)
            );
        }
        h.push_str("</table>\n");
    }

    if let Some(c) = extras.compare {
        h.push_str("<h2>Per-query nDCG@10</h2>\n");
        h.push_str(&figure("ndcg-scatter", &scatter(report, c)?));
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d232a;max-width:60rem}\
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border-bottom:1px solid #dde3e8;padding:.25rem .8rem;text-align:right}\
td:first-child,th:first-child{text-align:left}.sub{color:#5f6b76}figure{margin:0 0 1rem}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn cell(kind: &str, key: &str, value: f64, digits: usize) -> String {
    format!(
        "<td data-kind=\"{}\" data-key=\"{}\" data-value=\"{value:?}\">{value:.digits$}</td>",
        esc(kind),
        esc(key)
    )
}

fn figure(id: &str, svg: &str) -> String {
    format!("<figure id=\"{id}\">{svg}</figure>\n")
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Usage(format!("drawing the report: {e}"))
}

/// Histogram of per-query search latency, 30 bins.
fn latency_histogram(samples: &[f64]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let max = samples.iter().copied().fold(0f64, f64::max).max(1e-3);
        let bins = 30usize;
        let width = max / bins as f64;
        let mut counts = vec![0u32; bins];
        for &s in samples {
            counts[((s / width) as usize).min(bins - 1)] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption("search latency per query", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..max * 1.02, 0u32..top + top / 10 + 1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("ms")
            .y_desc("queries")
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let x0 = i as f64 * width;
                Rectangle::new([(x0, 0), (x0 + width * 0.95, c)], BLUE.mix(0.6).filled())
            }))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// p50 latency (log x) against the share of the exhaustive top-k, one point per setting.
fn sweep_curve(rows: &[SweepRow], exhaustive: Latency) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let lo = rows
            .iter()
            .map(|r| r.latency_ms.p50)
            .fold(f64::INFINITY, f64::min)
            .min(exhaustive.p50);
        let hi = rows
            .iter()
            .map(|r| r.latency_ms.p50)
            .fold(0f64, f64::max)
            .max(exhaustive.p50);
        let y_lo = rows
            .iter()
            .map(|r| r.recall_vs_exhaustive)
            .fold(1f64, f64::min)
            .min(0.99);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "PLAID: p50 latency against share of the exhaustive top-k",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(
                (lo * 0.8..hi * 1.25).log_scale(),
                (y_lo - 0.02).max(0.0)..1.005,
            )
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("p50 ms (log)")
            .y_desc("share of exhaustive top-k")
            .draw()
            .map_err(plot_err)?;
        let mut pts: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.latency_ms.p50, r.recall_vs_exhaustive))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
            .map_err(plot_err)?
            .label("PLAID settings")
            .legend(|(x, y)| Circle::new((x, y), 4, BLUE.filled()));
        chart
            .draw_series(std::iter::once(Circle::new(
                (exhaustive.p50, 1.0),
                5,
                RED.filled(),
            )))
            .map_err(plot_err)?
            .label("exhaustive")
            .legend(|(x, y)| Circle::new((x, y), 5, RED.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Each query's nDCG@10 in `a` (x) against `b` (y), with the diagonal.
fn scatter(a: &EvalReport, b: &EvalReport) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (480, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("nDCG@10 per query: {} vs {}", a.mode, b.mode),
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..1.02, 0f64..1.02)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(a.mode.clone())
            .y_desc(b.mode.clone())
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
            .map_err(plot_err)?;
        let points: Vec<(f64, f64)> = a
            .per_query
            .iter()
            .filter_map(|(q, m)| Some((*m.get("ndcg@10")?, *b.per_query.get(q)?.get("ndcg@10")?)))
            .collect();
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 3, BLUE.mix(0.5).filled())),
            )
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}
