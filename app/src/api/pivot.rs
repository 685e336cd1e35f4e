//! The leaderboard pivoted on the server: best-eval cells into one row per model and one column
//! per benchmark, sorted by a column, the mean, or the model's name.

use std::collections::BTreeMap;

use crucible_types::LeaderboardRow;
use uuid::Uuid;

/// One model's row: its cells by benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// Model id.
    pub model_id: Uuid,
    /// Model name.
    pub name: String,
    /// Cells by benchmark.
    pub cells: BTreeMap<String, LeaderboardRow>,
}

impl ModelRow {
    /// Mean score over the benchmarks it has.
    pub fn mean(&self) -> f64 {
        if self.cells.is_empty() {
            return 0.0;
        }
        self.cells.values().map(|c| c.score).sum::<f64>() / self.cells.len() as f64
    }
}

/// Pivots cells into rows and columns, sorted by `sort` (a benchmark, `mean`, or `model`), best
/// first; a model without a score on the sort column goes last.
pub fn pivot(rows: Vec<LeaderboardRow>, sort: &str) -> (Vec<String>, Vec<ModelRow>) {
    let mut benchmarks: Vec<String> = rows.iter().map(|r| r.benchmark.clone()).collect();
    benchmarks.sort();
    benchmarks.dedup();
    let mut models: BTreeMap<Uuid, ModelRow> = BTreeMap::new();
    for r in rows {
        models
            .entry(r.model_id)
            .or_insert_with(|| ModelRow {
                model_id: r.model_id,
                name: r.model_name.clone(),
                cells: BTreeMap::new(),
            })
            .cells
            .insert(r.benchmark.clone(), r);
    }
    let mut models: Vec<ModelRow> = models.into_values().collect();
    let key = |m: &ModelRow| -> f64 {
        match sort {
            "mean" => m.mean(),
            b => m.cells.get(b).map_or(f64::NEG_INFINITY, |c| c.score),
        }
    };
    if sort == "model" {
        models.sort_by(|a, b| a.name.cmp(&b.name));
    } else {
        models.sort_by(|a, b| key(b).total_cmp(&key(a)).then_with(|| a.name.cmp(&b.name)));
    }
    (benchmarks, models)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crucible_types::SamplingParams;

    fn cell(model: u128, name: &str, bench: &str, score: f64) -> LeaderboardRow {
        LeaderboardRow {
            team_id: Uuid::nil(),
            model_id: Uuid::from_u128(model),
            model_name: name.into(),
            benchmark: bench.into(),
            score,
            ci_low: None,
            ci_high: None,
            n_samples: 1,
            problems: 10,
            eval_id: Uuid::from_u128(model * 100),
            finished_at: None,
            sampling: SamplingParams::default(),
            contaminated: false,
        }
    }

    #[test]
    fn pivot_sorts_by_column_with_missing_cells_last() {
        let rows = vec![
            cell(1, "a", "gsm8k", 0.2),
            cell(2, "b", "gsm8k", 0.6),
            cell(2, "b", "math500", 0.1),
            cell(3, "c", "math500", 0.9),
        ];
        let (benches, by_gsm) = pivot(rows.clone(), "gsm8k");
        assert_eq!(benches, vec!["gsm8k", "math500"]);
        let names: Vec<&str> = by_gsm.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["b", "a", "c"]);
        let (_, by_mean) = pivot(rows.clone(), "mean");
        let names: Vec<&str> = by_mean.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["c", "b", "a"]);
        let (_, by_model) = pivot(rows, "model");
        assert_eq!(by_model[0].name, "a");
        assert!((by_model[1].mean() - 0.35).abs() < 1e-12);
    }
}
