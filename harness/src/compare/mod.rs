//! `bnh compare OLD.csv NEW.csv`: did a change make things faster or slower?
//! critcmp for bnh's bench CSV.
//!
//! Rows of the two runs are matched on (impl, op, dtype, layout, shape,
//! threads). Each match gets the change of its median and a verdict that
//! accounts for noise ([`Verdict`]); [`render`] turns the comparison into a
//! terminal table, markdown or CSV, and [`Comparison::regressions`] is the
//! CI gate of `--fail-above`.

pub mod render;

use crate::bench::{Op, Record};
use std::collections::BTreeMap;

/// A change smaller than this (relative, either way) is never called a
/// change: run-to-run drift of a quiet machine (frequency, page placement)
/// is about this size even when each run's own p10–p90 spread is tight.
pub const DEFAULT_NOISE: f64 = 0.03;

/// What a row's change means once noise is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// NEW's p90 is below OLD's p10 and the median fell by more than the noise floor.
    Faster,
    /// The p10–p90 ranges overlap, or the change is under the noise floor.
    WithinNoise,
    /// NEW's p10 is above OLD's p90 and the median rose by more than the noise floor.
    Slower,
}

impl Verdict {
    /// The spelling in tables and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::WithinNoise => "within noise",
            Verdict::Slower => "slower",
        }
    }

    /// Judge one pair of rows: a change is real when the two runs' p10–p90
    /// ranges do not overlap (each range holds 80 % of a run's samples, so
    /// disjoint ranges are far outside either run's spread) and the medians
    /// differ by more than `noise` (relative).
    pub fn judge(old: &Record, new: &Record, noise: f64) -> Verdict {
        let change = new.median_ns / old.median_ns - 1.0;
        if new.p10_ns > old.p90_ns && change > noise {
            Verdict::Slower
        } else if new.p90_ns < old.p10_ns && change < -noise {
            Verdict::Faster
        } else {
            Verdict::WithinNoise
        }
    }
}

/// The identity of a measurement across runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub imp: String,
    pub op: Op,
    /// [`bn_impls::DType::name`].
    pub dtype: &'static str,
    /// [`bn_impls::Layout::name`].
    pub layout: &'static str,
    pub shape: String,
    pub threads: usize,
}

impl Key {
    fn of(r: &Record) -> Key {
        Key {
            imp: r.imp.clone(),
            op: r.op,
            dtype: r.dtype.name(),
            layout: r.layout.name(),
            shape: r.shape.clone(),
            threads: r.threads,
        }
    }

    /// `IMPL OP DTYPE LAYOUT SHAPE tTHREADS`, for messages.
    pub fn label(&self) -> String {
        format!(
            "{} {} {} {} {} t{}",
            self.imp, self.op, self.dtype, self.layout, self.shape, self.threads
        )
    }
}

/// One matched row.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: Key,
    pub old: Record,
    pub new: Record,
    /// `new median / old median − 1`.
    pub change: f64,
    pub verdict: Verdict,
}

/// Two runs side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Matched rows, in key order.
    pub changes: Vec<Change>,
    /// Measurements only OLD has.
    pub only_old: Vec<Key>,
    /// Measurements only NEW has.
    pub only_new: Vec<Key>,
    /// The noise floor the verdicts used.
    pub noise: f64,
}

/// Index rows by key; a key twice in one run (two CSVs concatenated, or a
/// merged report input) makes the comparison ambiguous, so it is an error.
fn index(rows: &[Record], what: &str) -> Result<BTreeMap<Key, Record>, String> {
    let mut out = BTreeMap::new();
    for r in rows {
        if r.median_ns.is_nan() || r.median_ns <= 0.0 {
            return Err(format!(
                "{what}: {} has median_ns {}; a time must be positive",
                Key::of(r).label(),
                r.median_ns
            ));
        }
        if out.insert(Key::of(r), r.clone()).is_some() {
            return Err(format!(
                "{what}: {} appears twice; compare two single runs (one `bnh bench --csv` each)",
                Key::of(r).label()
            ));
        }
    }
    Ok(out)
}

impl Comparison {
    /// Match `old` and `new` (named `old_name`/`new_name` in messages).
    /// Errors: a duplicated key or a non-positive time in either run, or no
    /// measurement in common.
    pub fn new(
        old: &[Record],
        new: &[Record],
        (old_name, new_name): (&str, &str),
        noise: f64,
    ) -> Result<Comparison, String> {
        let old = index(old, old_name)?;
        let mut new = index(new, new_name)?;
        let mut changes = Vec::new();
        let mut only_old = Vec::new();
        for (key, o) in old {
            match new.remove(&key) {
                Some(n) => changes.push(Change {
                    change: n.median_ns / o.median_ns - 1.0,
                    verdict: Verdict::judge(&o, &n, noise),
                    key,
                    old: o,
                    new: n,
                }),
                None => only_old.push(key),
            }
        }
        if changes.is_empty() {
            return Err(format!(
                "{old_name} and {new_name} have no measurement in common (same impl, op, dtype, \
                 layout, shape and threads); run both with the same `bnh bench` options"
            ));
        }
        Ok(Comparison {
            changes,
            only_old,
            only_new: new.into_keys().collect(),
            noise,
        })
    }

    /// Rows judged slower whose median rose by more than `limit` (relative):
    /// what `--fail-above` fails on.
    pub fn regressions(&self, limit: f64) -> Vec<&Change> {
        self.changes
            .iter()
            .filter(|c| c.verdict == Verdict::Slower && c.change > limit)
            .collect()
    }

    /// How many rows got each verdict: (faster, within noise, slower).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |v| self.changes.iter().filter(|c| c.verdict == v).count();
        (
            n(Verdict::Faster),
            n(Verdict::WithinNoise),
            n(Verdict::Slower),
        )
    }

    /// Geometric mean of `new / old` over the matched rows.
    pub fn geomean_ratio(&self) -> f64 {
        let logs: f64 = self.changes.iter().map(|c| (1.0 + c.change).ln()).sum();
        (logs / self.changes.len() as f64).exp()
    }

    /// One line: counts, geometric mean and unmatched rows.
    pub fn summary(&self) -> String {
        let (f, w, s) = self.counts();
        let mut line = format!(
            "{} measurements compared: {f} faster, {s} slower, {w} within noise \
             (noise floor {:.0} %); geometric mean new/old {:.3}",
            self.changes.len(),
            self.noise * 100.0,
            self.geomean_ratio()
        );
        if !self.only_old.is_empty() || !self.only_new.is_empty() {
            line += &format!(
                "; {} only in OLD, {} only in NEW (not compared)",
                self.only_old.len(),
                self.only_new.len()
            );
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bn_impls::{DType, Layout};

    fn row(imp: &str, median: f64, p10: f64, p90: f64) -> Record {
        Record {
            imp: imp.into(),
            op: Op::Train,
            dtype: DType::F32,
            layout: Layout::Contiguous,
            shape: "2x3".into(),
            n: 2,
            c: 3,
            spatial: 1,
            threads: 1,
            bytes: 24,
            median_ns: median,
            p10_ns: p10,
            p90_ns: p90,
            memcpy_ns: 1.0,
            ratio_to_memcpy: median,
            gb_per_s: 1.0,
            samples: 10,
            roofline: String::new(),
            read_ns: 0.0,
            source: "bnh".into(),
            run_id: "r".into(),
        }
    }

    #[test]
    fn verdicts_need_disjoint_ranges_and_a_change_above_the_floor() {
        let old = row("a", 100.0, 95.0, 105.0);
        let judge = |n: &Record| Verdict::judge(&old, n, DEFAULT_NOISE);
        assert_eq!(judge(&row("a", 150.0, 140.0, 160.0)), Verdict::Slower);
        assert_eq!(judge(&row("a", 60.0, 55.0, 65.0)), Verdict::Faster);
        // Overlapping ranges: noise, however large the median moved.
        assert_eq!(judge(&row("a", 150.0, 100.0, 200.0)), Verdict::WithinNoise);
        // Disjoint but tiny: under the floor.
        let tight = row("a", 100.0, 99.9, 100.1);
        assert_eq!(
            Verdict::judge(&tight, &row("a", 101.0, 100.9, 101.1), DEFAULT_NOISE),
            Verdict::WithinNoise
        );
    }

    #[test]
    fn rows_match_by_key_and_the_gate_sees_only_real_regressions() {
        let old = [row("a", 100.0, 95.0, 105.0), row("b", 100.0, 95.0, 105.0)];
        let new = [row("a", 300.0, 290.0, 310.0), row("c", 1.0, 1.0, 1.0)];
        let c = Comparison::new(&old, &new, ("old", "new"), DEFAULT_NOISE).unwrap();
        assert_eq!(c.changes.len(), 1);
        assert_eq!(c.only_old.len(), 1);
        assert_eq!(c.only_new.len(), 1);
        assert_eq!(c.regressions(0.5).len(), 1);
        assert!(c.regressions(2.5).is_empty());
        assert!((c.geomean_ratio() - 3.0).abs() < 1e-12);
        assert!(c.summary().contains("1 slower"), "{}", c.summary());
    }

    #[test]
    fn ambiguous_or_disjoint_runs_are_refused_with_a_reason() {
        let a = row("a", 100.0, 95.0, 105.0);
        let e = Comparison::new(
            &[a.clone(), a.clone()],
            std::slice::from_ref(&a),
            ("x.csv", "y.csv"),
            0.03,
        )
        .unwrap_err();
        assert!(e.contains("x.csv") && e.contains("twice"), "{e}");
        let e = Comparison::new(
            std::slice::from_ref(&a),
            &[row("b", 1.0, 1.0, 1.0)],
            ("x", "y"),
            0.03,
        )
        .unwrap_err();
        assert!(e.contains("no measurement in common"), "{e}");
        let e = Comparison::new(&[row("a", 0.0, 0.0, 0.0)], &[a], ("x", "y"), 0.03).unwrap_err();
        assert!(e.contains("positive"), "{e}");
    }
}
