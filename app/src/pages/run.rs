//! A run: status, params, tags, live metric charts (several runs overlaid, by step or time, with
//! smoothing) and, for RL and generate runs, the stored completions of each step.

use super::parsed;
use crate::api::{RunDetail, fetch_charts, fetch_completions, fetch_run};
use crate::chart::{Line, LineChart, PALETTE, XAxis};
use crate::components::{
    Badge, CompletionCells, CompletionTable, ErrorBox, Loading, when, when_opt,
};
use crate::live::use_live;
use leptos::prelude::*;
use leptos_router::components::{A, Form};
use leptos_router::hooks::{use_params_map, use_query_map};
use uuid::Uuid;

/// `/runs/:id[?compare=<id>&compare=<id>][&step=<n>]`.
#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let live = use_live();
    let id = move || params.get().get("id").and_then(|v| v.parse::<Uuid>().ok());
    let compare = move || -> Vec<Uuid> {
        query
            .get()
            .get_all("compare")
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let detail = Resource::new(
        move || (id(), compare(), live.tick.get()),
        |(id, compare, _)| async move {
            match id {
                Some(id) => fetch_run(id, compare).await,
                None => Err(ServerFnError::new("the address does not name a run id")),
            }
        },
    );
    let charts = Resource::new(
        move || {
            let mut runs: Vec<Uuid> = id().into_iter().collect();
            runs.extend(compare());
            (runs, live.tick.get())
        },
        |(runs, _)| fetch_charts(runs),
    );
    let rollouts = Resource::new(
        move || (id(), parsed::<i64>(&query.get(), "step"), live.tick.get()),
        |(id, step, _)| async move {
            match id {
                Some(id) => fetch_completions(id, step).await.map(Some),
                None => Ok(None),
            }
        },
    );
    let (axis, set_axis) = signal(XAxis::Step);
    let (smoothing, set_smoothing) = signal(0.0f64);
    view! {
        <Transition fallback=Loading>
            {move || detail.get().map(|r| match r {
                Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                Ok(d) => view! { <RunHeader d/> }.into_any(),
            })}
        </Transition>
        <section class="charts">
            <div class="chart-controls">
                <h2>"Metrics"</h2>
                <label>"x-axis "
                    <select id="x-axis" on:change=move |ev| set_axis.set(
                        if event_target_value(&ev) == "time" { XAxis::Time } else { XAxis::Step })>
                        <option value="step">"step"</option>
                        <option value="time">"time"</option>
                    </select>
                </label>
                <label>"smoothing "
                    <input id="smoothing" type="range" min="0" max="0.99" step="0.01" value="0"
                        on:input=move |ev| set_smoothing.set(event_target_value(&ev).parse().unwrap_or(0.0))/>
                    <span>{move || format!("{:.2}", smoothing.get())}</span>
                </label>
            </div>
            <Transition fallback=Loading>
                {move || charts.get().map(|result| {
                    let runs: Vec<Uuid> = id().into_iter().chain(compare()).collect();
                    match result {
                        Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                        Ok(charts) if charts.is_empty() => view! {
                            <p class="empty">"No metrics logged yet; charts appear as points arrive."</p>
                        }.into_any(),
                        Ok(charts) => view! {
                            <div class="chart-grid">
                                {move || charts.iter().map(|c| {
                                    let lines = c.lines.iter().map(|(run, series)| Line {
                                        color: PALETTE[runs.iter().position(|r| r == run).unwrap_or(0) % PALETTE.len()],
                                        series: series.clone(),
                                    }).collect();
                                    view! { <LineChart title=c.key.clone() lines axis=axis.get() smoothing=smoothing.get()/> }
                                }).collect_view()}
                            </div>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
        <Transition fallback=Loading>
            {move || rollouts.get().map(|r| match r {
                Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                Ok(Some(r)) if r.step.is_some() => view! { <Rollouts view=r/> }.into_any(),
                Ok(_) => ().into_any(),
            })}
        </Transition>
    }
}

/// Name, status, params, tags and the compare picker.
#[component]
fn RunHeader(d: RunDetail) -> impl IntoView {
    let run = d.run;
    let compared: Vec<Uuid> = d.compare.iter().map(|r| r.id).collect();
    let compare_runs = d.compare.clone();
    let siblings = d.siblings.clone();
    let name = run.name.clone();
    view! {
        <h1>{run.name.clone()} " " <Badge text=run.status.to_string()/></h1>
        <p class="muted">
            {format!("{} run in ", run.kind)}
            <A href=format!("/?project={}", d.project.id)>{d.project.name.clone()}</A>
            {format!(" · created {} · started {} · finished {}", when(&run.created_at),
                when_opt(&run.started_at), when_opt(&run.finished_at))}
        </p>
        {(!compare_runs.is_empty()).then(move || view! {
            <p class="legend">
                <span style=format!("color:{}", PALETTE[0])>"■ "{name}</span>
                {compare_runs.into_iter().enumerate().map(|(i, r)| view! {
                    <span style=format!("color:{}", PALETTE[(i + 1) % PALETTE.len()])>
                        " ■ "<A href=format!("/runs/{}", r.id)>{r.name}</A>
                    </span>
                }).collect_view()}
            </p>
        })}
        {run.command.clone().map(|c| view! { <pre class="command">{c}</pre> })}
        <div class="two-col">
            <KeyValues title="Params" map=run.params.clone()/>
            <KeyValues title="Tags" map=run.tags.clone()/>
        </div>
        <Artifacts run_id=run.id files=d.artifacts.clone()/>
        {(!siblings.is_empty()).then(move || view! {
            <details class="compare">
                <summary>"Compare with other runs of this project"</summary>
                <Form method="GET" action="">
                    {siblings.into_iter().map(|r| {
                        let id = r.id.to_string();
                        view! {
                            <label class="check">
                                <input type="checkbox" name="compare" value=id.clone() checked=compared.contains(&r.id)/>
                                {r.name.clone()}" "<Badge text=r.status.to_string()/>
                            </label>
                        }
                    }).collect_view()}
                    <button type="submit">"Overlay"</button>
                </Form>
            </details>
        })}
    }
}

/// The files the run logged: each links to its download (the REST API reads the dashboard's
/// session), images are shown inline.
#[component]
fn Artifacts(run_id: Uuid, files: Vec<crucible_types::ArtifactInfo>) -> impl IntoView {
    let is_image = |p: &str| {
        let p = p.to_ascii_lowercase();
        [".png", ".jpg", ".jpeg", ".gif", ".webp"]
            .iter()
            .any(|e| p.ends_with(e))
    };
    view! {
        <section id="artifacts">
            <h2>"Artifacts"</h2>
            {if files.is_empty() {
                view! { <p class="muted">"none (log them with mlflow.log_artifact)"</p> }.into_any()
            } else {
                view! {
                    // An explicit <tbody>, as in KeyValues: hydration must find what the parser built.
                    <table class="kv"><tbody>
                        {files.into_iter().map(|f| {
                            let href = format!("/api/v1/runs/{run_id}/artifacts/{}", f.path);
                            let preview = is_image(&f.path).then(|| view! {
                                <img class="artifact-preview" src=href.clone() alt=f.path.clone()/>
                            });
                            view! {
                                <tr>
                                    <th><a href=href.clone() target="_blank">{f.path.clone()}</a></th>
                                    <td>{human_bytes(f.size)}</td>
                                    <td>{preview}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody></table>
                }.into_any()
            }}
        </section>
    }
}

/// A size as people read it.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A two-column table of a string map.
#[component]
fn KeyValues(title: &'static str, map: crucible_types::StringMap) -> impl IntoView {
    view! {
        <section>
            <h2>{title}</h2>
            {if map.is_empty() {
                view! { <p class="muted">"none"</p> }.into_any()
            } else {
                view! {
                    // An explicit <tbody>: the browser's parser inserts one, and hydration must find
                    // the same tree the server rendered.
                    <table class="kv"><tbody>
                        {map.into_iter().map(|(k, v)| view! { <tr><th>{k}</th><td>{v}</td></tr> }).collect_view()}
                    </tbody></table>
                }.into_any()
            }}
        </section>
    }
}

/// The rollouts of one step, grouped by prompt, with a step picker.
#[component]
fn Rollouts(view: crate::api::RolloutsView) -> impl IntoView {
    let query = use_query_map();
    let step = view.step.unwrap_or_default();
    let mut groups: Vec<(i32, Vec<crucible_types::CompletionRecord>)> = Vec::new();
    for c in view.completions {
        match groups.last_mut() {
            Some((g, items)) if *g == c.group_idx => items.push(c),
            _ => groups.push((c.group_idx, vec![c])),
        }
    }
    let compare = query.get_untracked().get_all("compare").unwrap_or_default();
    view! {
        <section id="rollouts">
            <h2>{format!("Completions at step {step}")}</h2>
            <Form method="GET" action="">
                {compare.into_iter().map(|c| view! { <input type="hidden" name="compare" value=c/> }).collect_view()}
                <select name="step">
                    {view.steps.iter().rev().map(|s| view! {
                        <option value=s.to_string() selected=*s == step>{format!("step {s}")}</option>
                    }).collect_view()}
                </select>
                <button type="submit">"Show"</button>
            </Form>
            {groups.into_iter().map(|(g, items)| {
                let rewards: Vec<f64> = items.iter().filter_map(|c| c.reward).collect();
                let mean = if rewards.is_empty() { 0.0 } else { rewards.iter().sum::<f64>() / rewards.len() as f64 };
                let prompt = items[0].prompt.clone();
                let problem = items[0].problem_id.clone();
                view! {
                    <details class="group">
                        <summary>{format!("group {g} · {problem} · {} completions · mean reward {mean:.3}", items.len())}</summary>
                        <pre class="prompt">{prompt}</pre>
                        <CompletionTable show_extracted=false rows=items.into_iter().map(|c| CompletionCells {
                            idx: c.sample_idx,
                            extracted: None,
                            verdict: c.verdict.unwrap_or_default(),
                            reward: c.reward,
                            correct: None,
                            tokens: c.tokens,
                            truncated: c.truncated,
                            completion: c.completion,
                        }).collect()/>
                    </details>
                }
            }).collect_view()}
        </section>
    }
}
