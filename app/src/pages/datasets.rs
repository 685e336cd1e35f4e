//! Datasets (versions, row counts, a row preview) and models (where their weights are).

use super::Pager;
use super::parsed;
use crate::api::{DATASET_PAGE, fetch_dataset, fetch_datasets, fetch_models};
use crate::components::{ErrorBox, Loading, when};
use crucible_types::ModelSource;
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use uuid::Uuid;

/// `/datasets`.
#[component]
pub fn DatasetsPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| fetch_datasets());
    view! {
        <h1>"Datasets"</h1>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                    Ok(sets) if sets.is_empty() => view! {
                        <p class="empty">"No datasets yet: "<code>"crucible dataset import FILE.jsonl --name NAME --kind math"</code></p>
                    }.into_any(),
                    Ok(sets) => view! {
                        <table class="grid-table" id="datasets">
                            <thead><tr><th>"Name"</th><th>"Version"</th><th>"Kind"</th><th>"Rows"</th><th>"Content hash"</th><th>"Source"</th><th>"Created"</th></tr></thead>
                            <tbody>
                                {sets.into_iter().map(|d| view! {
                                    <tr>
                                        <td><A href=format!("/datasets/{}", d.id)>{d.name}</A></td>
                                        <td>{format!("v{}", d.version)}</td>
                                        <td>{d.kind.to_string()}</td>
                                        <td>{d.row_count}</td>
                                        <td class="mono">{d.content_hash.chars().take(12).collect::<String>()}</td>
                                        <td>{d.source.unwrap_or_default()}</td>
                                        <td>{when(&d.created_at)}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// `/datasets/:id[?page=n]`: rows as JSON.
#[component]
pub fn DatasetPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let page = move || parsed::<i64>(&query.get(), "page").unwrap_or(0).max(0);
    let data = Resource::new(
        move || {
            (
                params.get().get("id").and_then(|v| v.parse::<Uuid>().ok()),
                page(),
            )
        },
        |(id, page)| async move {
            match id {
                Some(id) => fetch_dataset(id, page * DATASET_PAGE).await,
                None => Err(ServerFnError::new("the address does not name a dataset id")),
            }
        },
    );
    view! {
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                let q = query.get_untracked();
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                    Ok(v) => {
                        let d = v.dataset;
                        let first = v.rows.offset;
                        view! {
                            <h1>{format!("{} v{}", d.name, d.version)}</h1>
                            <p class="muted">{format!("{} · {} rows · sha256 {}", d.kind, d.row_count, d.content_hash)}</p>
                            <ol class="rows" start=first + 1 id="dataset-rows">
                                {v.rows.rows.into_iter().map(|r| view! {
                                    <li><pre>{serde_json::to_string_pretty(&r).unwrap_or_default()}</pre></li>
                                }).collect_view()}
                            </ol>
                            <Pager q total=v.rows.total page=first / DATASET_PAGE per_page=DATASET_PAGE/>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// Where a model's weights are, in one line.
fn source_text(s: &ModelSource) -> String {
    match s {
        ModelSource::HfLocal { path } => format!("HF folder {path}"),
        ModelSource::Openai { base_url, model } => {
            format!("OpenAI-compatible {base_url} ({model})")
        }
        ModelSource::Checkpoint { path, step, .. } => format!("checkpoint {path} (step {step})"),
        ModelSource::HfHub { repo, revision } => {
            format!(
                "Hugging Face {repo}@{}",
                revision.as_deref().unwrap_or("main")
            )
        }
    }
}

/// `/models`.
#[component]
pub fn ModelsPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| fetch_models());
    view! {
        <h1>"Models"</h1>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                    Ok(models) => view! {
                        <table class="grid-table" id="models">
                            <thead><tr><th>"Name"</th><th>"Source"</th><th>"Architecture"</th><th>"Training data"</th><th>"Registered"</th></tr></thead>
                            <tbody>
                                {models.into_iter().map(|m| {
                                    let run = match &m.source {
                                        ModelSource::Checkpoint { run_id, .. } => Some(*run_id),
                                        _ => None,
                                    };
                                    view! {
                                        <tr>
                                            <td>{m.name.clone()}</td>
                                            <td>{source_text(&m.source)}
                                                {run.map(|r| view! { " · " <A href=format!("/runs/{r}")>"training run"</A> })}
                                            </td>
                                            <td>{m.architecture.clone().unwrap_or_default()}</td>
                                            <td>{format!("{} datasets", m.training_datasets.len())}</td>
                                            <td>{when(&m.created_at)}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
