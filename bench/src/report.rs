//! Results: every measurement is a [`Metric`] of one run (scenario, server, round); the table
//! gives, per scenario and metric, each server's median and min–max over the rounds and the
//! herald/reference ratio of the medians.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::servers::Kind;

/// Which direction is good, for reading the ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Better {
    Lower,
    Higher,
    /// A count to read, not to compare (admitted, failures).
    Neither,
}

/// One number of one run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Metric {
    pub(crate) name: String,
    pub(crate) unit: &'static str,
    pub(crate) better: Better,
    /// `None`: not measurable in this run (e.g. no events arrived).
    pub(crate) value: Option<f64>,
}

impl Metric {
    pub(crate) fn new(
        name: impl Into<String>,
        unit: &'static str,
        better: Better,
        value: f64,
    ) -> Self {
        Self {
            name: name.into(),
            unit,
            better,
            value: value.is_finite().then_some(value),
        }
    }

    pub(crate) fn maybe(
        name: impl Into<String>,
        unit: &'static str,
        better: Better,
        value: Option<f64>,
    ) -> Self {
        Self {
            name: name.into(),
            unit,
            better,
            value: value.filter(|v| v.is_finite()),
        }
    }
}

#[derive(Debug, Serialize)]
struct Sample {
    scenario: String,
    server: Kind,
    round: usize,
    metric: Metric,
}

/// Everything measured in one driver run.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Results {
    samples: Vec<Sample>,
    /// Runs that failed, with why.
    pub(crate) failures: Vec<String>,
}

impl Results {
    pub(crate) fn add(&mut self, scenario: &str, server: Kind, round: usize, metrics: Vec<Metric>) {
        self.samples
            .extend(metrics.into_iter().map(|metric| Sample {
                scenario: scenario.to_owned(),
                server,
                round,
                metric,
            }));
    }

    /// Scenarios that lack a number from one of `kinds`.
    pub(crate) fn incomplete(&self, scenarios: &[&str], kinds: &[Kind]) -> Vec<String> {
        let mut missing = Vec::new();
        for scenario in scenarios {
            for &kind in kinds {
                let has = self.samples.iter().any(|s| {
                    s.scenario.starts_with(scenario) && s.server == kind && s.metric.value.is_some()
                });
                if !has {
                    missing.push(format!("{scenario} {}", kind.name()));
                }
            }
        }
        missing
    }

    /// The Markdown table.
    pub(crate) fn table(&self) -> String {
        // (scenario, metric) in first-seen order, values per server.
        let mut order: Vec<(String, String)> = Vec::new();
        let mut values: BTreeMap<(String, String, Kind), Vec<f64>> = BTreeMap::new();
        let mut meta: BTreeMap<(String, String), (&'static str, Better)> = BTreeMap::new();
        for s in &self.samples {
            let key = (s.scenario.clone(), s.metric.name.clone());
            if !order.contains(&key) {
                order.push(key.clone());
            }
            meta.insert(key, (s.metric.unit, s.metric.better));
            if let Some(v) = s.metric.value {
                values
                    .entry((s.scenario.clone(), s.metric.name.clone(), s.server))
                    .or_default()
                    .push(v);
            }
        }
        let mut out = String::from(
            "| scenario | metric | herald median (min–max) | reference median (min–max) | herald/reference |\n\
             |---|---|---|---|---|\n",
        );
        for (scenario, name) in order {
            let (unit, better) = meta[&(scenario.clone(), name.clone())];
            let get = |kind| values.get(&(scenario.clone(), name.clone(), kind));
            let cell = |vs: Option<&Vec<f64>>| match vs.and_then(|v| spread(v)) {
                Some((med, lo, hi)) if lo == hi => format!("{} {unit}", fmt(med)),
                Some((med, lo, hi)) => format!("{} {unit} ({}–{})", fmt(med), fmt(lo), fmt(hi)),
                None => "—".to_owned(),
            };
            let (h, r) = (get(Kind::Herald), get(Kind::Reference));
            let ratio = match (h.and_then(|v| spread(v)), r.and_then(|v| spread(v))) {
                (Some((hm, ..)), Some((rm, ..))) if rm != 0.0 && better != Better::Neither => {
                    let hint = if better == Better::Lower {
                        "lower is better"
                    } else {
                        "higher is better"
                    };
                    format!("{} ({hint})", fmt(hm / rm))
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {scenario} | {name} | {} | {} | {ratio} |",
                cell(h),
                cell(r)
            );
        }
        out
    }
}

/// Median, min, max.
fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((median, v[0], v[n - 1]))
}

/// Three significant digits, no exponent.
fn fmt(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ranges_and_ratios() {
        let mut results = Results::default();
        for (round, (h, r)) in [(1.0, 10.0), (3.0, 30.0), (2.0, 20.0)]
            .into_iter()
            .enumerate()
        {
            let m = |v| vec![Metric::new("rss", "KB", Better::Lower, v)];
            results.add("S1", Kind::Herald, round, m(h));
            results.add("S1", Kind::Reference, round, m(r));
        }
        let table = results.table();
        assert!(
            table.contains(
                "| S1 | rss | 2.00 KB (1.00–3.00) | 20.0 KB (10.0–30.0) | 0.100 (lower is better) |"
            ),
            "{table}"
        );
        let both = [Kind::Herald, Kind::Reference];
        assert!(results.incomplete(&["S1"], &both).is_empty());
        assert_eq!(results.incomplete(&["S2"], &both).len(), 2);
    }
}
