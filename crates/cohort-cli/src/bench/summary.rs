//! The summary of a bench run: each metric's median, min and max over the
//! repetitions, beside the OTP figure of the same run, and how values are
//! shown.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::scenarios::Sample;

/// Median, min and max of one metric over the repetitions.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Scenario.
    pub scenario: String,
    /// Metric key.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// Extra fields.
    pub fields: Map<String, Value>,
    /// Median.
    pub value: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Repetitions.
    pub reps: usize,
    /// The same metric measured on OTP in the same run (`--vs-otp`).
    pub otp: Option<OtpFigure>,
}

/// An OTP figure measured in the same run: median, min, max.
#[derive(Clone, Copy, Debug)]
pub struct OtpFigure {
    /// Median.
    pub value: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Repetitions.
    pub reps: usize,
}

/// How many times better `cohort` is than `otp` (> 1 is better): Cohort/OTP
/// for rates, OTP/Cohort for times and bytes; `None` for other units.
pub fn advantage(unit: &str, cohort: f64, otp: f64) -> Option<f64> {
    let (a, b) = match unit {
        "ops/s" => (cohort, otp),
        "ms" | "ns" | "B" => (otp, cohort),
        _ => return None,
    };
    (b > 0.0 && a >= 0.0).then_some(a / b)
}

impl Summary {
    /// The JSON line.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("scenario".into(), json!(self.scenario));
        o.insert("metric".into(), json!(self.metric));
        o.insert("value".into(), json!(round(self.value)));
        o.insert("unit".into(), json!(self.unit));
        o.insert("min".into(), json!(round(self.min)));
        o.insert("max".into(), json!(round(self.max)));
        o.insert("reps".into(), json!(self.reps));
        for (k, v) in &self.fields {
            o.insert(k.clone(), v.clone());
        }
        if let Some(otp) = &self.otp {
            o.insert("otp".into(), json!(round(otp.value)));
            o.insert("otp_min".into(), json!(round(otp.min)));
            o.insert("otp_max".into(), json!(round(otp.max)));
            o.insert("otp_reps".into(), json!(otp.reps));
            if let Some(r) = self.ratio() {
                o.insert("ratio".into(), json!(round(r)));
            }
        }
        Value::Object(o)
    }

    /// Cohort's advantage over the OTP figure of the same run, if any.
    pub fn ratio(&self) -> Option<f64> {
        advantage(&self.unit, self.value, self.otp?.value)
    }

    /// The extra fields as `k=v ...`.
    pub fn fields_text(&self) -> String {
        self.fields
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                v => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn round(x: f64) -> f64 {
    if x.abs() >= 100.0 {
        x.round()
    } else {
        (x * 1000.0).round() / 1000.0
    }
}

/// Human form of a value with its unit.
pub fn show(v: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{v:.2} ms"),
        "ns" if v >= 1e6 => format!("{:.2} ms", v / 1e6),
        "ns" if v >= 1e3 => format!("{:.2} µs", v / 1e3),
        "ns" => format!("{v:.0} ns"),
        "B" if v >= 1e6 => format!("{:.1} MB", v / 1e6),
        "B" => format!("{v:.0} B"),
        "fraction" => format!("{:.0} %", v * 100.0),
        "ops/s" => format!("{v:.0} ops/s"),
        u => format!("{v} {u}"),
    }
}

/// One summary per metric (and extra fields) of a scenario's repetitions,
/// in the metric order of the first repetition.
pub fn summarize(scenario: &str, reps: &[Vec<Sample>]) -> Vec<Summary> {
    // Keep the metric order of the first repetition.
    let mut order: Vec<(String, String)> = Vec::new();
    let mut by: BTreeMap<(String, String), (Sample, Vec<f64>)> = BTreeMap::new();
    for rep in reps {
        for s in rep {
            let key = (
                s.metric.to_string(),
                Value::Object(s.fields.clone()).to_string(),
            );
            by.entry(key.clone())
                .or_insert_with(|| {
                    order.push(key.clone());
                    (s.clone(), Vec::new())
                })
                .1
                .push(s.value);
        }
    }
    order
        .into_iter()
        .filter_map(|k| by.remove(&k))
        .map(|(s, mut vals)| {
            vals.sort_by(f64::total_cmp);
            let mid = vals.len() / 2;
            let median = if vals.len() % 2 == 1 {
                vals[mid]
            } else {
                (vals[mid - 1] + vals[mid]) / 2.0
            };
            Summary {
                scenario: scenario.to_string(),
                metric: s.metric.to_string(),
                unit: s.unit.to_string(),
                fields: s.fields,
                value: median,
                min: vals[0],
                max: vals[vals.len() - 1],
                reps: vals.len(),
                otp: None,
            }
        })
        .collect()
}
