//! `cohort bench all --report DIR`: a Markdown report with OTP figures
//! beside Cohort's (measured in the same run with `--vs-otp`, else the OTP 25
//! figures of docs/BENCHMARKS.md), and SVG plots written as text.

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::summary::{advantage, show, Summary};

/// What the report says about the run itself.
pub struct Meta {
    /// When the run started.
    pub started: SystemTime,
    /// 1-minute load average before and after.
    pub load_before: Option<f64>,
    /// After.
    pub load_after: Option<f64>,
    /// Repetitions per configuration.
    pub reps: usize,
    /// Small sizes.
    pub quick: bool,
    /// Configurations that failed.
    pub failures: Vec<String>,
    /// OTP release of the side-by-side runs (`--vs-otp`), if any.
    pub otp_release: Option<String>,
}

/// OTP 25 figure for a metric: (scenario, metric, required fields, value).
/// From docs/BENCHMARKS.md (`global` for locked, syn 3.4.1 for eventual).
fn otp_refs() -> Vec<(&'static str, &'static str, Value, f64)> {
    let pj = json!({"n": 100000});
    let single = json!({"variant": "single", "n": 10000});
    let batch = json!({"variant": "batch1000", "n": 100000});
    let locked = json!({"mode": "locked", "n": 10000});
    let eventual = json!({"mode": "eventual", "n": 10000});
    let mut v = vec![
        ("pg_join", "join_ops_per_s", pj.clone(), 46682.0),
        ("pg_join", "conv_lag_after_last_join_ms", pj.clone(), 2.45),
        ("pg_join", "mem_bytes_per_member_local", pj.clone(), 244.0),
        ("pg_join", "mem_bytes_per_member_remote", pj.clone(), 173.0),
        ("pg_join", "members_ns_local", pj.clone(), 581.0),
        ("pg_join", "members_ns_remote", pj.clone(), 886.0),
        ("pg_join", "members_missing_ns", pj, 228.0),
        ("pg_join_shared", "join_ops_per_s", single.clone(), 5215.0),
        (
            "pg_join_shared",
            "conv_lag_after_last_join_ms",
            single.clone(),
            940.0,
        ),
        (
            "pg_join_shared",
            "members_ns_local",
            single.clone(),
            88_000.0,
        ),
        ("pg_join_shared", "members_ns_remote", single, 619_000.0),
        ("pg_join_shared", "join_ops_per_s", batch.clone(), 125_589.0),
        (
            "pg_join_shared",
            "conv_lag_after_last_join_ms",
            batch.clone(),
            107.0,
        ),
        (
            "pg_join_shared",
            "members_ns_local",
            batch.clone(),
            2_400_000.0,
        ),
        (
            "pg_join_shared",
            "members_ns_remote",
            batch.clone(),
            6_200_000.0,
        ),
        (
            "pg_join_shared",
            "mem_bytes_per_member_local",
            batch.clone(),
            211.0,
        ),
        (
            "pg_join_shared",
            "mem_bytes_per_member_remote",
            batch,
            115.0,
        ),
        ("global_reg", "reg_seq_ops_per_s", locked.clone(), 275.0),
        ("global_reg", "reg_conc10_ops_per_s", locked.clone(), 294.0),
        (
            "global_reg",
            "reg_1proc_per_node_ops_per_s",
            locked.clone(),
            420.0,
        ),
        ("global_reg", "unreg_seq_ops_per_s", locked.clone(), 295.0),
        ("global_reg", "whereis_ns_local", locked.clone(), 647.0),
        ("global_reg", "whereis_ns_remote", locked.clone(), 585.0),
        ("global_reg", "whereis_missing_ns", locked.clone(), 229.0),
        (
            "global_reg",
            "mem_bytes_per_name_local",
            locked.clone(),
            576.0,
        ),
        ("global_reg", "mem_bytes_per_name_remote", locked, 696.0),
        (
            "global_reg",
            "reg_seq_ops_per_s",
            eventual.clone(),
            55_449.0,
        ),
        (
            "global_reg",
            "reg_conc10_ops_per_s",
            eventual.clone(),
            51_648.0,
        ),
        (
            "global_reg",
            "visible_lag_after_last_return_ms",
            eventual.clone(),
            8.6,
        ),
        ("global_reg", "whereis_ns_local", eventual.clone(), 875.0),
        (
            "global_reg",
            "mem_bytes_per_name_local",
            eventual.clone(),
            384.0,
        ),
        ("global_reg", "mem_bytes_per_name_remote", eventual, 336.0),
    ];
    for (nodes, k, cut, heal, pg) in [
        (3, 1000, 57.0, 676.0, 14.0),
        (5, 1000, 125.0, 1010.0, 23.0),
        (3, 10000, 4800.0, 29800.0, 75.0),
        (5, 10000, 7900.0, 37500.0, 106.0),
    ] {
        let f = json!({"nodes": nodes, "k": k});
        v.push(("netsplit", "split_cleanup_ms", f.clone(), cut));
        v.push(("netsplit", "heal_full_convergence_ms", f.clone(), heal));
        v.push(("netsplit", "heal_names_convergence_ms", f.clone(), heal));
        v.push(("netsplit", "heal_pg_convergence_ms", f.clone(), pg));
        v.push(("netsplit", "clash_nodes_disagreeing", f.clone(), 0.0));
        v.push(("netsplit", "clash_losers_still_running", f, 0.0));
    }
    for (x, all, names, pg) in [(1000, 58.0, 58.0, 19.0), (10000, 3300.0, 3300.0, 110.0)] {
        let f = json!({"names": x, "members": 10 * x});
        v.push(("nodedown", "cleanup_all_survivors_ms", f.clone(), all));
        v.push(("nodedown", "cleanup_names_ms", f.clone(), names));
        v.push(("nodedown", "cleanup_pg_ms", f, pg));
    }
    v
}

/// The OTP figure of a result: measured in the same run (`--vs-otp`), else
/// the reference of docs/BENCHMARKS.md if it has one.
pub fn otp_for(s: &Summary) -> Option<f64> {
    if let Some(o) = s.otp {
        return Some(o.value);
    }
    otp_refs().into_iter().find_map(|(sc, m, f, v)| {
        let fields_match = f
            .as_object()
            .is_some_and(|o| o.iter().all(|(k, want)| s.fields.get(k) == Some(want)));
        (sc == s.scenario && m == s.metric && fields_match).then_some(v)
    })
}

fn date(t: SystemTime) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Writes `report.md` and the SVG plots into `dir`.
pub fn write(dir: &Path, results: &[Summary], meta: &Meta) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut md = String::new();
    let load = |l: Option<f64>| l.map(|v| format!("{v:.2}")).unwrap_or("?".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let _ = writeln!(md, "# Cohort benchmark report\n");
    let _ = writeln!(
        md,
        "Run {} on {cores} cores; load average (1 min) {} before, {} after; {} repetition(s) per \
         configuration, medians with min–max; {}. Nodes are separate OS processes on loopback TCP. \
         {} \
         \"Cohort better\" is OTP/Cohort for times, sizes and bytes, Cohort/OTP for rates.\n",
        date(meta.started),
        load(meta.load_before),
        load(meta.load_after),
        meta.reps,
        match &meta.otp_release {
            Some(r) => format!(
                "OTP figures (`pg`, `global`) were measured in this run on Erlang/OTP {r} nodes, \
                 right before each Cohort repetition at the same sizes (`--vs-otp`; medians of \
                 as many repetitions); figures without one are the OTP 25 references of \
                 docs/BENCHMARKS.md (syn 3.4.1 for the eventual mode)"
            ),
            None => "OTP 25 figures are those of docs/BENCHMARKS.md (`pg`, `global`; \
                     syn 3.4.1 for the eventual mode), not measured in this run"
                .to_string(),
        },
        if meta.quick {
            "Quick sizes (`--quick`): figures not comparable with those of the reference sizes \
             (OTP figures measured in this run are at the same quick sizes)."
        } else {
            "Reference sizes."
        },
    );
    if !meta.failures.is_empty() {
        let _ = writeln!(md, "**Failed runs:**\n");
        for f in &meta.failures {
            let _ = writeln!(md, "- {f}");
        }
        let _ = writeln!(md);
    }
    let mut scenario = "";
    for s in results {
        if s.scenario != scenario {
            scenario = &s.scenario;
            let _ = writeln!(
                md,
                "\n## {scenario}\n\n| metric | configuration | Cohort (median) | min – max | OTP | Cohort better |\n|---|---|---:|---:|---:|---:|"
            );
        }
        let otp = otp_for(s);
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} – {} | {} | {} |",
            s.metric,
            s.fields_text(),
            show(s.value, &s.unit),
            show(s.min, &s.unit),
            show(s.max, &s.unit),
            match (s.otp, otp) {
                (Some(o), _) => format!("{} (this run)", show(o.value, &s.unit)),
                (None, Some(o)) => format!("{} (reference)", show(o, &s.unit)),
                (None, None) => "—".into(),
            },
            otp.and_then(|o| advantage(&s.unit, s.value, o))
                .map(|r| format!("{r:.1}×"))
                .unwrap_or("—".into()),
        );
    }
    let _ = writeln!(
        md,
        "\n## Plots\n\n![throughput](throughput.svg)\n\n![convergence against node count](convergence_nodes.svg)\n\n![convergence against entry count](convergence_entries.svg)\n"
    );
    std::fs::write(dir.join("report.md"), md)?;
    std::fs::write(dir.join("throughput.svg"), throughput_svg(results))?;
    std::fs::write(
        dir.join("convergence_nodes.svg"),
        line_svg(
            "Convergence time against node count",
            "nodes",
            &series(
                results,
                &[
                    ("netsplit", "heal_full_convergence_ms", "k", "nodes"),
                    ("netsplit", "split_cleanup_ms", "k", "nodes"),
                    ("scale", "mesh_formed_ms", "", "nodes"),
                    ("scale", "name_visible_all_ms", "", "nodes"),
                ],
            ),
        ),
    )?;
    std::fs::write(
        dir.join("convergence_entries.svg"),
        line_svg(
            "Convergence time against entry count",
            "entries (K names per side / X names)",
            &series(
                results,
                &[
                    ("netsplit", "heal_full_convergence_ms", "nodes", "k"),
                    ("netsplit", "split_cleanup_ms", "nodes", "k"),
                    ("nodedown", "cleanup_all_survivors_ms", "", "names"),
                ],
            ),
        ),
    )?;
    Ok(())
}

/// A plotted series: label and (x, y) points.
type Series = (String, Vec<(f64, f64)>);

/// Series of `metric` over field `x`, one per value of field `split`.
fn series(results: &[Summary], specs: &[(&str, &str, &str, &str)]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for &(sc, metric, split, x) in specs {
        for s in results
            .iter()
            .filter(|s| s.scenario == sc && s.metric == metric)
        {
            let Some(xv) = s.fields.get(x).and_then(Value::as_f64) else {
                continue;
            };
            let label = match s.fields.get(split) {
                Some(v) if !split.is_empty() => format!("{sc} {metric} {split}={v}"),
                _ => format!("{sc} {metric}"),
            };
            let mut add = |label: String, y: f64| match out.iter_mut().find(|(l, _)| *l == label) {
                Some((_, pts)) => pts.push((xv, y)),
                None => out.push((label, vec![(xv, y)])),
            };
            if let Some(o) = s.otp {
                add(format!("{label} (OTP)"), o.value);
            }
            add(label, s.value);
        }
    }
    for (_, pts) in &mut out {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Horizontal bars of every ops/s result, Cohort beside OTP, log scale.
fn throughput_svg(results: &[Summary]) -> String {
    let rows: Vec<(String, f64, Option<f64>)> = results
        .iter()
        .filter(|s| s.unit == "ops/s")
        .map(|s| {
            (
                format!("{} {} {}", s.scenario, s.metric, s.fields_text()),
                s.value,
                otp_for(s),
            )
        })
        .collect();
    let (w, left, row_h) = (980.0, 430.0, 34.0);
    let h = 60.0 + row_h * rows.len().max(1) as f64 + 30.0;
    let max = rows
        .iter()
        .flat_map(|r| [Some(r.1), r.2])
        .flatten()
        .fold(10.0f64, f64::max);
    let lmax = max.log10().ceil();
    let xpos = |v: f64| left + (w - left - 20.0) * (v.max(1.0).log10() / lmax);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"15\">Throughput (ops/s, log scale): Cohort (blue) and OTP (grey)</text>\n"
    );
    for e in 0..=(lmax as i32) {
        let x = xpos(10f64.powi(e));
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"40\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">1e{e}</text>",
            h - 25.0,
            h - 10.0
        );
    }
    for (i, (label, v, otp)) in rows.iter().enumerate() {
        let y = 45.0 + row_h * i as f64;
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 14.0,
            esc(label)
        );
        let _ = writeln!(
            svg,
            "<rect x=\"{left}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"13\" fill=\"#1f77b4\"/><text x=\"{:.1}\" y=\"{:.1}\">{v:.0}</text>",
            xpos(*v) - left,
            xpos(*v) + 4.0,
            y + 11.0
        );
        if let Some(o) = otp {
            let _ = writeln!(
                svg,
                "<rect x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"13\" fill=\"#999\"/><text x=\"{:.1}\" y=\"{:.1}\">{o:.0}</text>",
                y + 15.0,
                xpos(*o) - left,
                xpos(*o) + 4.0,
                y + 26.0
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// A line chart, log-scaled y (ms).
fn line_svg(title: &str, xlabel: &str, series: &[Series]) -> String {
    let (w, h, l, r, t, b) = (900.0, 480.0, 70.0, 330.0, 40.0, 50.0);
    let pts = series.iter().flat_map(|s| s.1.iter());
    let xmax = pts.clone().map(|p| p.0).fold(1.0f64, f64::max);
    let ymin = pts
        .clone()
        .map(|p| p.1)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let ymax = pts.map(|p| p.1).fold(1.0f64, f64::max);
    let lo = if ymin.is_finite() {
        ymin.log10().floor().min(0.0)
    } else {
        -1.0
    };
    let hi = ymax.log10().ceil().max(lo + 1.0);
    let xp = |x: f64| l + (w - l - r) * x / xmax;
    let yp = |y: f64| {
        let v = y.max(10f64.powf(lo)).log10();
        h - b - (h - t - b) * (v - lo) / (hi - lo)
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\">{} (ms, log scale)</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
        esc(title),
        l + (w - l - r) / 2.0,
        h - 10.0,
        esc(xlabel)
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{l}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/><line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{:.1}\" stroke=\"black\"/>",
        h - b,
        w - r,
        h - b,
        h - b
    );
    for e in (lo as i32)..=(hi as i32) {
        let y = yp(10f64.powi(e));
        let _ = writeln!(
            svg,
            "<line x1=\"{l}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - r,
            l - 5.0,
            y + 4.0,
            10f64.powi(e)
        );
    }
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for x in xs {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{x}</text>",
            xp(x),
            h - b + 15.0
        );
    }
    for (i, (label, pts)) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", xp(p.0), yp(p.1)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"/>",
            path.join(" ")
        );
        for p in pts {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"><title>{:.2} ms</title></circle>",
                xp(p.0),
                yp(p.1),
                p.1
            );
        }
        let ly = t + 16.0 * i as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"4\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            w - r + 10.0,
            ly,
            w - r + 26.0,
            ly + 5.0,
            esc(label)
        );
    }
    if series.is_empty() {
        svg.push_str("<text x=\"200\" y=\"200\">no data</text>\n");
    }
    svg.push_str("</svg>\n");
    svg
}
