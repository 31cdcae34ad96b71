//! Results: every measurement is a [`Metric`] of one run (scenario, server, round); the table
//! gives, per scenario and metric, each server's median and min–max over the rounds and the
//! ratios of the medians ([`ratios`]): herald/reference, candidate/herald when two herald builds
//! are compared, herald/socketioxide when bare socketioxide runs.

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

    /// The Markdown table: a column per server of `kinds` (median and min–max), then a column
    /// per ratio of medians ([`ratios`]).
    pub(crate) fn table(&self, kinds: &[Kind]) -> String {
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
        let ratios = ratios(kinds);
        let mut out = String::from("| scenario | metric |");
        for kind in kinds {
            let _ = write!(out, " {} median (min–max) |", kind.name());
        }
        for (kind, base) in &ratios {
            let _ = write!(out, " {}/{} |", kind.name(), base.name());
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---|".repeat(kinds.len() + ratios.len()));
        out.push('\n');
        for (scenario, name) in order {
            let (unit, better) = meta[&(scenario.clone(), name.clone())];
            let median = |kind| {
                values
                    .get(&(scenario.clone(), name.clone(), kind))
                    .and_then(|v| spread(v))
            };
            let _ = write!(out, "| {scenario} | {name} |");
            for &kind in kinds {
                let cell = match median(kind) {
                    Some((med, lo, hi)) if lo == hi => format!("{} {unit}", fmt(med)),
                    Some((med, lo, hi)) => {
                        format!("{} {unit} ({}–{})", fmt(med), fmt(lo), fmt(hi))
                    }
                    None => "—".to_owned(),
                };
                let _ = write!(out, " {cell} |");
            }
            for &(kind, base) in &ratios {
                let ratio = match (median(kind), median(base)) {
                    (Some((km, ..)), Some((bm, ..))) if bm != 0.0 && better != Better::Neither => {
                        let hint = if better == Better::Lower {
                            "lower is better"
                        } else {
                            "higher is better"
                        };
                        format!("{} ({hint})", fmt(km / bm))
                    }
                    _ => String::new(),
                };
                let _ = write!(out, " {ratio} |");
            }
            out.push('\n');
        }
        out
    }
}

/// The ratios of the table, (numerator, denominator), in the order of `kinds`: every server
/// against the baseline (the reference when it runs, else herald), and every herald build
/// against bare socketioxide when it runs (its overhead over the library). Bare socketioxide
/// is not divided by herald: herald/socketioxide says it. None for a single server.
fn ratios(kinds: &[Kind]) -> Vec<(Kind, Kind)> {
    if kinds.len() < 2 {
        return Vec::new();
    }
    let mut ratios = Vec::new();
    if let Some(base) = [Kind::Reference, Kind::Herald]
        .into_iter()
        .find(|kind| kinds.contains(kind))
    {
        ratios.extend(
            kinds
                .iter()
                .filter(|&&kind| {
                    kind != base && !(base == Kind::Herald && kind == Kind::Socketioxide)
                })
                .map(|&kind| (kind, base)),
        );
    }
    if kinds.contains(&Kind::Socketioxide) {
        ratios.extend(
            kinds
                .iter()
                .filter(|&&kind| matches!(kind, Kind::Herald | Kind::Candidate))
                .map(|&kind| (kind, Kind::Socketioxide)),
        );
    }
    ratios
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
        let both = [Kind::Herald, Kind::Reference];
        let table = results.table(&both);
        assert!(
            table.contains(
                "| S1 | rss | 2.00 KB (1.00–3.00) | 20.0 KB (10.0–30.0) | 0.100 (lower is better) |"
            ),
            "{table}"
        );
        assert!(table.contains("| herald/reference |"), "{table}");
        assert!(results.incomplete(&["S1"], &both).is_empty());
        assert_eq!(results.incomplete(&["S2"], &both).len(), 2);
    }

    #[test]
    fn a_candidate_is_compared_with_herald_or_the_reference() {
        let mut results = Results::default();
        let m = |v| vec![Metric::new("rss", "KB", Better::Lower, v)];
        results.add("S1", Kind::Herald, 0, m(20.0));
        results.add("S1", Kind::Candidate, 0, m(15.0));
        results.add("S1", Kind::Reference, 0, m(40.0));

        let ab = results.table(&[Kind::Herald, Kind::Candidate]);
        assert!(ab.contains("| candidate/herald |"), "{ab}");
        assert!(
            ab.contains("| S1 | rss | 20.0 KB | 15.0 KB | 0.750 (lower is better) |"),
            "{ab}"
        );

        let all = results.table(&[Kind::Herald, Kind::Reference, Kind::Candidate]);
        assert!(
            all.contains("| herald/reference | candidate/reference |"),
            "{all}"
        );
        assert!(
            all.contains("| 0.500 (lower is better) | 0.375 (lower is better) |"),
            "{all}"
        );

        let alone = results.table(&[Kind::Herald]);
        assert!(
            alone.starts_with("| scenario | metric | herald median (min–max) |\n|---|---|---|\n"),
            "{alone}"
        );
    }

    #[test]
    fn herald_builds_are_divided_by_bare_socketioxide() {
        let mut results = Results::default();
        let m = |v| vec![Metric::new("cpu", "µs", Better::Lower, v)];
        results.add("S5", Kind::Herald, 0, m(3.0));
        results.add("S5", Kind::Reference, 0, m(30.0));
        results.add("S5", Kind::Socketioxide, 0, m(2.0));

        let three = results.table(&[Kind::Herald, Kind::Reference, Kind::Socketioxide]);
        assert!(
            three.contains(
                "| herald/reference | socketioxide/reference | herald/socketioxide |\n\
                 |---|---|---|---|---|---|---|---|\n"
            ),
            "{three}"
        );
        assert!(
            three.contains(
                "| 0.100 (lower is better) | 0.067 (lower is better) | 1.50 (lower is better) |"
            ),
            "{three}"
        );

        let bare = results.table(&[Kind::Herald, Kind::Socketioxide]);
        assert!(bare.contains("| herald/socketioxide |\n"), "{bare}");
        assert!(!bare.contains("socketioxide/herald"), "{bare}");
        assert!(bare.contains("| 1.50 (lower is better) |\n"), "{bare}");
    }
}
