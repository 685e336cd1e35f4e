//! The team leaderboard: models × benchmarks, each cell the best finished eval with its interval,
//! linking to that eval; sortable by any benchmark or the mean, filterable by team.

use super::{param, parsed, with_param};
use crate::api::{LEADERBOARD_PAGE, fetch_leaderboard};
use crate::components::{ErrorBox, Loading};
use crate::live::use_live;
use crate::pages::runs::Pager;
#[cfg(any(feature = "ssr", test))]
use crucible_types::LeaderboardRow;
use leptos::prelude::*;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;
#[cfg(any(feature = "ssr", test))]
use std::collections::BTreeMap;
use uuid::Uuid;

/// One model's row: its cells by benchmark.
#[cfg(any(feature = "ssr", test))]
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// Model id.
    pub model_id: Uuid,
    /// Model name.
    pub name: String,
    /// Cells by benchmark.
    pub cells: BTreeMap<String, LeaderboardRow>,
}

#[cfg(any(feature = "ssr", test))]
impl ModelRow {
    /// Mean score over the benchmarks it has.
    pub fn mean(&self) -> f64 {
        if self.cells.is_empty() {
            return 0.0;
        }
        self.cells.values().map(|c| c.score).sum::<f64>() / self.cells.len() as f64
    }
}

#[cfg(any(feature = "ssr", test))]
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

/// `/leaderboard[?team=<id>][&sort=<benchmark>|mean|model][&page=n]`.
#[component]
pub fn LeaderboardPage() -> impl IntoView {
    let query = use_query_map();
    let live = use_live();
    let data = Resource::new(
        move || {
            let q = query.get();
            let sort = param(&q, "sort").unwrap_or_else(|| "mean".into());
            let page = parsed::<i64>(&q, "page").unwrap_or(0).max(0);
            (parsed::<Uuid>(&q, "team"), sort, page, live.tick.get())
        },
        |(team, sort, page, _)| fetch_leaderboard(team, sort, page),
    );
    view! {
        <h1>"Leaderboard"</h1>
        <Transition fallback=Loading>
            {move || data.get().map(|result| {
                let q = query.get_untracked();
                let sort = param(&q, "sort").unwrap_or_else(|| "mean".into());
                let team = param(&q, "team").unwrap_or_default();
                let page = parsed::<i64>(&q, "page").unwrap_or(0).max(0);
                match result {
                    Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                    Ok(v) => {
                        let sorted_by = sort.clone();
                        let header = |col: String, label: String| {
                            let arrow = if col == sorted_by { " ▼" } else { "" };
                            view! { <th><A href=with_param(&q, "sort", &col, &["page"])>{format!("{label}{arrow}")}</A></th> }
                        };
                        view! {
                            <Form method="GET" action="">
                                <div class="filters">
                                    <select name="team">
                                        <option value="">"all teams"</option>
                                        {v.teams.into_iter().map(|t| {
                                            let id = t.id.to_string();
                                            view! { <option selected=id == team value=id.clone()>{t.name}</option> }
                                        }).collect_view()}
                                    </select>
                                    <input type="hidden" name="sort" value=sort.clone()/>
                                    <button type="submit">"Filter"</button>
                                </div>
                            </Form>
                            <p class="muted">{format!("{} models × {} benchmarks · pass@1 (avg@n) with 95% bootstrap intervals · ⚠ = benchmark overlaps the model's training data", v.total_models, v.benchmarks.len())}</p>
                            <table class="grid-table leaderboard" id="leaderboard">
                                <thead><tr>
                                    {header("model".into(), "Model".into())}
                                    {header("mean".into(), "Mean".into())}
                                    {v.benchmarks.iter().map(|b| header(b.clone(), b.clone())).collect_view()}
                                </tr></thead>
                                <tbody>
                                    {v.rows.into_iter().map(|m| view! {
                                        <tr data-model=m.model_id.to_string()>
                                            <td>{m.name}</td>
                                            <td>{format!("{:.3}", m.mean)}</td>
                                            {m.cells.into_iter().map(|cell| match cell {
                                                None => view! { <td class="muted">"–"</td> }.into_any(),
                                                Some(c) => view! {
                                                    <td class="cell">
                                                        <A href=format!("/evals/{}", c.eval_id)>{format!("{:.3}", c.score)}</A>
                                                        {c.contaminated.then_some(" ⚠")}
                                                        {c.ci.map(|(l, h)| view! { <span class="ci">{format!(" [{l:.2}, {h:.2}]")}</span> })}
                                                    </td>
                                                }.into_any(),
                                            }).collect_view()}
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <Pager q=q.clone() total=v.total_models page=page per_page=LEADERBOARD_PAGE/>
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }
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
