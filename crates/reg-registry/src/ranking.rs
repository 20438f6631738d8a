//! Ranking versions by a monitored score: the one rule behind `@best`,
//! `prune --keep-best` and the web page's best score.
//!
//! - **Which metric**: the one asked for, else the monitor of the newest
//!   version whose ModelCheckpoint monitors a metric it scores (a run that
//!   changed monitors is ranked by the current one), else the first metric
//!   any version scores.
//! - **Which direction**: the one asked for, else the mode recorded with
//!   the newest score of that metric (`min` unless it says `max`).
//! - **Which versions**: those with a score of that metric that is not
//!   NaN. A NaN score (a diverged epoch) is never ranked, so never best;
//!   infinities are ordinary values (`-inf` is the best loss there is).
//! - **Ties** (equal scores, `0.0` and `-0.0` included): the newer
//!   version ranks first, as it has trained longer for the same score.
//!
//! ```
//! use reg_registry::ranking::{rank, ScoredVersion};
//! use reg_ckpt::meta::Score;
//! let score = |v: f64| [("val_loss".to_string(), Score { value: v, mode: "min".into() })].into();
//! let runs = [score(0.5), score(f64::NAN), score(0.3), score(0.3)];
//! let versions: Vec<ScoredVersion> = runs
//!     .iter()
//!     .enumerate()
//!     .map(|(i, s)| ScoredVersion { number: i as u32 + 1, monitor: Some("val_loss"), scores: s })
//!     .collect();
//! let numbers = rank(&versions, None, None).map(|r| r.numbers());
//! assert_eq!(numbers, Some(vec![4, 3, 1])); // v2 (NaN) is not ranked; v4 ties v3 and is newer
//! ```

use reg_ckpt::meta::Score;
use reg_format::refs::ScoreMode;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// What ranking needs to know of one version.
#[derive(Clone, Copy, Debug)]
pub struct ScoredVersion<'a> {
    /// Its number.
    pub number: u32,
    /// The metric its ModelCheckpoint monitors, if any.
    pub monitor: Option<&'a str>,
    /// The scores it carries, by metric.
    pub scores: &'a BTreeMap<String, Score>,
}

impl<'a> ScoredVersion<'a> {
    /// The ranking facts of a version's metadata.
    pub fn of(number: u32, meta: &'a reg_ckpt::meta::CheckpointMeta) -> ScoredVersion<'a> {
        ScoredVersion {
            number,
            monitor: meta.model_checkpoint.as_ref().and_then(|mc| mc.monitor.as_deref()),
            scores: &meta.scores,
        }
    }
}

/// Versions ranked by one metric, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranking {
    /// The metric ranked by.
    pub metric: String,
    /// The direction that is better.
    pub mode: ScoreMode,
    /// `(version number, score)`, best first; versions without a score of
    /// the metric, or with a NaN one, are absent.
    pub ranked: Vec<(u32, f64)>,
}

impl Ranking {
    /// The best version and its score.
    pub fn best(&self) -> Option<(u32, f64)> {
        self.ranked.first().copied()
    }

    /// The ranked version numbers, best first.
    pub fn numbers(&self) -> Vec<u32> {
        self.ranked.iter().map(|(n, _)| *n).collect()
    }
}

/// Every metric some version scores, in order of first appearance.
pub fn scored_metrics(versions: &[ScoredVersion<'_>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in versions {
        for k in v.scores.keys() {
            if !out.contains(k) {
                out.push(k.clone());
            }
        }
    }
    out
}

/// The metric versions are ranked by when none is asked for: the monitor
/// of the newest version that scores its own monitor, else the first
/// metric any version scores.
pub fn monitored_metric(versions: &[ScoredVersion<'_>]) -> Option<String> {
    versions
        .iter()
        .rev()
        .find_map(|v| v.monitor.filter(|m| v.scores.contains_key(*m)))
        .map(String::from)
        .or_else(|| scored_metrics(versions).into_iter().next())
}

/// Rank `versions` (in version order) by `metric` in direction `mode`,
/// each defaulting as the module docs say. `None` when no metric can be
/// chosen or no version has a score of it that is not NaN.
pub fn rank(versions: &[ScoredVersion<'_>], metric: Option<&str>, mode: Option<ScoreMode>) -> Option<Ranking> {
    let metric = match metric {
        Some(m) => m.to_string(),
        None => monitored_metric(versions)?,
    };
    let mode = mode.unwrap_or_else(|| {
        let recorded = versions.iter().rev().find_map(|v| v.scores.get(&metric));
        match recorded {
            Some(s) if s.mode == "max" => ScoreMode::Max,
            _ => ScoreMode::Min,
        }
    });
    let mut ranked: Vec<(u32, f64)> = versions
        .iter()
        .filter_map(|v| Some((v.number, v.scores.get(&metric)?.value)))
        .filter(|(_, value)| !value.is_nan())
        .collect();
    ranked.sort_by(|a, b| {
        // No NaN is left, so partial_cmp always answers.
        let by_value = a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal);
        let better_first = match mode {
            ScoreMode::Min => by_value,
            ScoreMode::Max => by_value.reverse(),
        };
        better_first.then(b.0.cmp(&a.0))
    });
    if ranked.is_empty() {
        return None;
    }
    Some(Ranking { metric, mode, ranked })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(values: &[(&str, f64, &str)]) -> BTreeMap<String, Score> {
        values
            .iter()
            .map(|(k, v, m)| {
                (
                    k.to_string(),
                    Score {
                        value: *v,
                        mode: m.to_string(),
                    },
                )
            })
            .collect()
    }

    fn ranked(all: &[BTreeMap<String, Score>], monitor: Option<&str>, mode: Option<ScoreMode>) -> Option<Vec<u32>> {
        let versions: Vec<ScoredVersion> = all
            .iter()
            .enumerate()
            .map(|(i, s)| ScoredVersion {
                number: i as u32 + 1,
                monitor,
                scores: s,
            })
            .collect();
        rank(&versions, None, mode).map(|r| r.numbers())
    }

    #[test]
    fn nan_is_never_ranked_and_infinities_are_values() {
        let run = [
            scores(&[("loss", f64::NAN, "min")]),
            scores(&[("loss", f64::INFINITY, "min")]),
            scores(&[("loss", 0.2, "min")]),
            scores(&[("loss", f64::NEG_INFINITY, "min")]),
            scores(&[("loss", -f64::NAN, "min")]),
        ];
        assert_eq!(ranked(&run, Some("loss"), None), Some(vec![4, 3, 2]));
        assert_eq!(ranked(&run, Some("loss"), Some(ScoreMode::Max)), Some(vec![2, 3, 4]));
        let all_nan = [scores(&[("loss", f64::NAN, "min")])];
        assert_eq!(ranked(&all_nan, Some("loss"), None), None);
    }

    #[test]
    fn ties_rank_the_newer_version_first_in_both_directions() {
        let run = [
            scores(&[("acc", 0.9, "max")]),
            scores(&[("acc", 0.0, "max")]),
            scores(&[("acc", 0.9, "max")]),
            scores(&[("acc", -0.0, "max")]),
        ];
        assert_eq!(ranked(&run, Some("acc"), None), Some(vec![3, 1, 4, 2]));
        assert_eq!(ranked(&run, Some("acc"), Some(ScoreMode::Min)), Some(vec![4, 2, 3, 1]));
    }

    #[test]
    fn the_newest_monitor_and_mode_decide_without_a_metric() {
        let versions_scores = [
            scores(&[("a", 1.0, "min")]),
            scores(&[("a", 2.0, "max"), ("b", 5.0, "min")]),
        ];
        let versions = [
            ScoredVersion {
                number: 1,
                monitor: Some("a"),
                scores: &versions_scores[0],
            },
            ScoredVersion {
                number: 2,
                monitor: Some("b"),
                scores: &versions_scores[1],
            },
        ];
        let r = rank(&versions, None, None).expect("ranked");
        assert_eq!((r.metric.as_str(), r.mode, r.numbers()), ("b", ScoreMode::Min, vec![2]));
        let r = rank(&versions, Some("a"), None).expect("ranked");
        assert_eq!((r.mode, r.numbers()), (ScoreMode::Max, vec![2, 1]));
        let unmonitored = [ScoredVersion {
            number: 1,
            monitor: None,
            scores: &versions_scores[1],
        }];
        assert_eq!(rank(&unmonitored, None, None).map(|r| r.metric), Some("a".into()));
    }
}
