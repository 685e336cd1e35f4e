//! Evals: the list with each eval's headline score, and one eval's scores with intervals plus the
//! sample browser (each problem's n completions, filtered by all wrong / all right / mixed).

use super::{param, parsed, with_param};
use crate::api::{SAMPLE_PAGE, fetch_eval, fetch_evals, fetch_samples};
use crate::components::{
    Badge, CompletionCells, CompletionTable, ErrorBox, Loading, score_with_ci, when,
};
use crate::live::use_live;
use crucible_types::{EvalScore, SampleFilter};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use uuid::Uuid;

/// The score a list shows first: pass@1 when there is one.
fn headline(scores: &[EvalScore]) -> Option<&EvalScore> {
    scores
        .iter()
        .find(|s| s.metric == "pass@1")
        .or_else(|| scores.first())
}

/// `/evals`.
#[component]
pub fn EvalsPage() -> impl IntoView {
    let live = use_live();
    let data = Resource::new(move || live.tick.get(), |_| fetch_evals());
    view! {
        <h1>"Evals"</h1>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                    Ok(evals) if evals.is_empty() => view! {
                        <p class="empty">"No evals yet. "<A href="/jobs/new">"Submit one"</A>"."</p>
                    }.into_any(),
                    Ok(evals) => view! {
                        <table class="grid-table" id="evals">
                            <thead><tr><th>"Model"</th><th>"Benchmark"</th><th>"Status"</th><th>"Score"</th>
                                <th>"Problems"</th><th>"n"</th><th>"Created"</th></tr></thead>
                            <tbody>
                                {evals.into_iter().map(|v| {
                                    let e = v.eval;
                                    let score = headline(&e.scores).map(|s| format!("{} {}", s.metric,
                                        score_with_ci(s.value, s.ci_low, s.ci_high))).unwrap_or_default();
                                    view! {
                                        <tr>
                                            <td><A href=format!("/evals/{}", e.id)>{v.model_name}</A></td>
                                            <td>{e.benchmark}</td>
                                            <td><Badge text=e.status.to_string()/></td>
                                            <td>{score}</td>
                                            <td>{e.problems.map(|p| p.to_string()).unwrap_or_default()}</td>
                                            <td>{e.n_samples}</td>
                                            <td>{when(&e.created_at)}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The filters of the sample browser, as written in the URL.
const FILTERS: [(&str, SampleFilter, &str); 4] = [
    ("all", SampleFilter::All, "all"),
    ("all_wrong", SampleFilter::AllWrong, "all wrong"),
    ("all_right", SampleFilter::AllRight, "all right"),
    ("mixed", SampleFilter::Mixed, "mixed"),
];

/// `/evals/:id[?filter=all_wrong|all_right|mixed][&offset=n]`.
#[component]
pub fn EvalPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let live = use_live();
    let id = move || params.get().get("id").and_then(|v| v.parse::<Uuid>().ok());
    let filter_name = move || param(&query.get(), "filter").unwrap_or_else(|| "all".into());
    let offset = move || parsed::<i64>(&query.get(), "offset").unwrap_or(0).max(0);
    let head = Resource::new(
        move || (id(), live.tick.get()),
        |(id, _)| async move {
            match id {
                Some(id) => fetch_eval(id).await,
                None => Err(ServerFnError::new("the address does not name an eval id")),
            }
        },
    );
    let samples = Resource::new(
        move || (id(), filter_name(), offset()),
        |(id, f, offset)| async move {
            let filter = FILTERS
                .iter()
                .find(|(n, _, _)| *n == f)
                .map_or(SampleFilter::All, |x| x.1);
            match id {
                Some(id) => fetch_samples(id, filter, offset).await,
                None => Ok(Vec::new()),
            }
        },
    );
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match head.await {
                    Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                    Ok(v) => {
                        let e = v.eval;
                        view! {
                            <h1>{format!("{} on {}", v.model_name, e.benchmark)} " " <Badge text=e.status.to_string()/></h1>
                            <p class="muted">{format!("{} problems · {} samples each · temperature {} · max {} tokens · created {}",
                                e.problems.unwrap_or(0), e.n_samples, e.sampling.temperature, e.sampling.max_new_tokens, when(&e.created_at))}
                                {e.run_id.map(|r| view! { " · " <A href=format!("/runs/{r}")>"run"</A> })}
                            </p>
                            <table class="grid-table" id="scores">
                                <thead><tr><th>"Metric"</th><th>"Value"</th><th>"95% interval"</th><th>"n"</th></tr></thead>
                                <tbody>
                                    {e.scores.into_iter().map(|s| view! {
                                        <tr data-metric=s.metric.clone()>
                                            <td>{s.metric.clone()}</td>
                                            <td>{format!("{:.3}", s.value)}</td>
                                            <td>{match (s.ci_low, s.ci_high) {
                                                (Some(l), Some(h)) => format!("[{l:.3}, {h:.3}]"),
                                                _ => String::new(),
                                            }}</td>
                                            <td>{s.n}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any()
                    }
                }
            })}
        </Transition>
        <h2>"Samples"</h2>
        <div class="tabs" id="sample-filters">
            {move || {
                let q = query.get();
                let current = filter_name();
                FILTERS.iter().map(|(name, _, label)| view! {
                    <A href=with_param(&q, "filter", name, &["offset"]) attr:class=if *name == current { "tab active" } else { "tab" }>{*label}</A>
                }).collect_view()
            }}
        </div>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let q = query.get_untracked();
                let off = offset();
                match samples.await {
                    Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                    Ok(problems) => {
                        let more = problems.len() as i64 == SAMPLE_PAGE;
                        view! {
                            {problems.is_empty().then(|| view! { <p class="empty">"No problems match."</p> })}
                            <div id="problems">
                            {problems.into_iter().map(|p| {
                                let n = p.samples.len();
                                let class = if p.correct == 0 { "problem wrong" } else if p.correct as usize == n { "problem right" } else { "problem mixed" };
                                let prompt = p.samples.first().map(|s| s.prompt.clone()).unwrap_or_default();
                                view! {
                                    <details class=class data-problem=p.problem_id.clone()>
                                        <summary>{format!("#{} {} · {}/{n} correct", p.problem_idx, p.problem_id, p.correct)}</summary>
                                        <pre class="prompt">{prompt}</pre>
                                        <CompletionTable show_extracted=true rows=p.samples.into_iter().map(|s| CompletionCells {
                                            idx: s.sample_idx,
                                            extracted: s.extracted,
                                            verdict: s.verdict,
                                            reward: Some(s.reward),
                                            correct: Some(s.correct),
                                            tokens: s.tokens,
                                            truncated: s.truncated,
                                            completion: s.completion,
                                        }).collect()/>
                                    </details>
                                }
                            }).collect_view()}
                            </div>
                            <div class="pager">
                                {(off > 0).then(|| view! { <A href=with_param(&q, "offset", &(off - SAMPLE_PAGE).max(0).to_string(), &[])>"← previous"</A> })}
                                {more.then(|| view! { <A href=with_param(&q, "offset", &(off + SAMPLE_PAGE).to_string(), &[])>"next →"</A> })}
                            </div>
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }
}
