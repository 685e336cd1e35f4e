//! The queue and the workers: who holds which lease, how old its heartbeat is, progress, and why
//! a job failed; which workers are online (heard from within a lease) and which went silent.
//! Jobs emit no live events, so the page refreshes itself every few seconds.

use crate::api::fetch_jobs;
use crate::components::{Badge, ErrorBox, Loading, age, short, when};
use leptos::prelude::*;
use leptos_router::components::A;

/// `/jobs`.
#[component]
pub fn JobsPage() -> impl IntoView {
    let (tick, set_tick) = signal(0u64);
    Effect::new(move |_| {
        set_interval(
            move || set_tick.update(|t| *t += 1),
            std::time::Duration::from_secs(3),
        )
    });
    let data = Resource::new(move || tick.get(), |_| fetch_jobs());
    view! {
        <h1>"Jobs"</h1>
        <p><A href="/jobs/new">"Submit an eval job"</A></p>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                    Ok(v) => {
                        let now = v.now;
                        let workers = v.workers.clone();
                        let worker_name = move |id: Option<uuid::Uuid>| id.map(|id| {
                            workers.iter().find(|w| w.id == id).map_or_else(|| short(&id), |w| w.name.clone())
                        }).unwrap_or_default();
                        view! {
                            <h2>"Queue"</h2>
                            <table class="grid-table" id="jobs">
                                <thead><tr><th>"Job"</th><th>"Kind"</th><th>"Status"</th><th>"Priority"</th><th>"Attempts"</th>
                                    <th>"Lease holder"</th><th>"Heartbeat"</th><th>"Progress"</th><th>"Run"</th><th>"Created"</th><th>"Failure"</th></tr></thead>
                                <tbody>
                                    {v.jobs.into_iter().map(|j| {
                                        let progress = j.progress.as_ref().map(|p| {
                                            if p.total > 0 { format!("{}/{} {}", p.done, p.total, p.message) } else { p.message.clone() }
                                        }).unwrap_or_default();
                                        view! {
                                            <tr data-job=j.id.to_string()>
                                                <td class="mono">{short(&j.id)}</td>
                                                <td>{j.kind.to_string()}</td>
                                                <td><Badge text=j.status.to_string()/></td>
                                                <td>{j.priority}</td>
                                                <td>{format!("{}/{}", j.attempts, j.max_attempts)}</td>
                                                <td>{worker_name(j.worker_id)}</td>
                                                <td>{j.heartbeat_at.map(|h| format!("{} ago", age(&now, &h))).unwrap_or_default()}</td>
                                                <td>{progress}</td>
                                                <td>{j.run_id.map(|r| view! { <A href=format!("/runs/{r}")>"run"</A> })}</td>
                                                <td>{when(&j.created_at)}</td>
                                                <td class="error-text">{j.error.clone().unwrap_or_default()}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <h2>"Workers"</h2>
                            <table class="grid-table" id="workers">
                                <thead><tr><th>"Name"</th><th>"Status"</th><th>"Devices"</th><th>"Memory"</th><th>"Job kinds"</th><th>"Last seen"</th><th>"Registered"</th></tr></thead>
                                <tbody>
                                    {v.workers.into_iter().map(|w| view! {
                                        <tr data-worker=w.id.to_string()>
                                            <td>{w.name}</td>
                                            <td><Badge text=(if w.online { "online" } else { "offline" }).to_string()/></td>
                                            <td>{w.capabilities.devices.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")}</td>
                                            <td>{format!("{:.0} GB", w.capabilities.memory_gb)}</td>
                                            <td>{w.capabilities.kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ")}</td>
                                            <td>{format!("{} ago", age(&now, &w.last_seen_at))}</td>
                                            <td>{when(&w.registered_at)}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }
}
