//! The team leaderboard: models × benchmarks, each cell the best finished eval with its interval,
//! linking to that eval; sortable by any benchmark or the mean, filterable by team.

use super::{Pager, param, parsed, with_param};
use crate::api::{LEADERBOARD_PAGE, fetch_leaderboard};
use crate::components::{ErrorBox, Loading};
use crate::live::use_live;
use leptos::prelude::*;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;
use uuid::Uuid;

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
