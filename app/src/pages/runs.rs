//! The runs table: filters by project, kind, status and tag, a name search, sortable columns and
//! pages, all in the URL so a view can be shared; refreshed live.

use super::{Pager, param, parsed, with_param};
use crate::api::fetch_runs;
use crate::components::{Badge, ErrorBox, Loading, when};
use crate::live::use_live;
use crucible_types::{RunFilter, RunKind, RunStatus};
use leptos::prelude::*;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;

/// Runs per page.
const PAGE: i64 = 50;

/// `/`: every run, newest first.
#[component]
pub fn RunsPage() -> impl IntoView {
    let query = use_query_map();
    let live = use_live();
    let filter = move || {
        let q = query.get();
        let page = parsed::<i64>(&q, "page").unwrap_or(0).max(0);
        RunFilter {
            project_id: parsed(&q, "project"),
            kind: parsed(&q, "kind"),
            status: parsed(&q, "status"),
            tag: param(&q, "tag"),
            q: param(&q, "q"),
            sort: param(&q, "sort"),
            limit: Some(PAGE),
            offset: Some(page * PAGE),
            ..RunFilter::default()
        }
    };
    let data = Resource::new(move || (filter(), live.tick.get()), |(f, _)| fetch_runs(f));
    view! {
        <h1>"Runs"</h1>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                let q = query.get_untracked();
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                    Ok(v) => {
                        let project_name = {
                            let projects = v.projects.clone();
                            move |id| projects.iter().find(|p| p.id == id).map(|p| p.name.clone()).unwrap_or_default()
                        };
                        let page = parsed::<i64>(&q, "page").unwrap_or(0).max(0);
                        let total = v.page.total;
                        view! {
                            <Filters q=q.clone() projects=v.projects.clone()/>
                            <p class="muted" id="run-count">{if total == 1 { "1 run".to_string() } else { format!("{total} runs") }}</p>
                            <table class="grid-table" id="runs">
                                <thead><tr>
                                    <SortHeader q=q.clone() column="name" label="Name"/>
                                    <th>"Project"</th>
                                    <SortHeader q=q.clone() column="kind" label="Kind"/>
                                    <SortHeader q=q.clone() column="status" label="Status"/>
                                    <th>"Tags"</th>
                                    <SortHeader q=q.clone() column="created_at" label="Created"/>
                                    <SortHeader q=q.clone() column="updated_at" label="Updated"/>
                                </tr></thead>
                                <tbody>
                                    {v.page.runs.into_iter().map(|r| {
                                        let tags = r.tags.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ");
                                        view! {
                                            <tr data-run=r.id.to_string()>
                                                <td><A href=format!("/runs/{}", r.id)>{r.name.clone()}</A></td>
                                                <td>{project_name(r.project_id)}</td>
                                                <td>{r.kind.to_string()}</td>
                                                <td><Badge text=r.status.to_string()/></td>
                                                <td class="tags">{tags}</td>
                                                <td>{when(&r.created_at)}</td>
                                                <td>{when(&r.updated_at)}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <Pager q=q total=total page=page per_page=PAGE/>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// The filter bar: a plain GET form, so it works before hydration too.
#[component]
fn Filters(
    q: leptos_router::params::ParamsMap,
    projects: Vec<crucible_types::Project>,
) -> impl IntoView {
    let current = move |k: &str| param(&q, k).unwrap_or_default();
    let (project, kind, status) = (current("project"), current("kind"), current("status"));
    view! {
        <Form method="GET" action="">
            <div class="filters">
                <input type="search" name="q" placeholder="search names" value=current("q")/>
                <select name="project">
                    <option value="">"all projects"</option>
                    {projects.into_iter().map(|p| {
                        let id = p.id.to_string();
                        view! { <option selected=id == project value=id.clone()>{p.name}</option> }
                    }).collect_view()}
                </select>
                <select name="kind">
                    <option value="">"all kinds"</option>
                    {RunKind::ALL.iter().map(|k| view! {
                        <option selected=k.as_str() == kind value=k.as_str()>{k.as_str()}</option>
                    }).collect_view()}
                </select>
                <select name="status">
                    <option value="">"all statuses"</option>
                    {RunStatus::ALL.iter().map(|s| view! {
                        <option selected=s.as_str() == status value=s.as_str()>{s.as_str()}</option>
                    }).collect_view()}
                </select>
                <input type="text" name="tag" placeholder="tag key:value" value=current("tag")/>
                <input type="hidden" name="sort" value=current("sort")/>
                <button type="submit">"Filter"</button>
            </div>
        </Form>
    }
}

/// A column header that sorts by its column, flipping direction when already sorted by it.
#[component]
fn SortHeader(
    q: leptos_router::params::ParamsMap,
    column: &'static str,
    label: &'static str,
) -> impl IntoView {
    let sort = param(&q, "sort").unwrap_or_else(|| "-created_at".to_string());
    let (next, arrow) = if sort == column {
        (format!("-{column}"), " ▲")
    } else if sort == format!("-{column}") {
        (column.to_string(), " ▼")
    } else {
        (column.to_string(), "")
    };
    view! { <th><A href=with_param(&q, "sort", &next, &["page"])>{format!("{label}{arrow}")}</A></th> }
}
