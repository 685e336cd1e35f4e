//! Submit an eval job from a form, as the signed-in team. The server validates it (the same rules
//! as `POST /api/v1/jobs`) and answers with the queued job or the field at fault, shown beside
//! that field.

use crate::api::{SubmitEval, SubmitOutcome, fetch_submit_choices};
use crate::components::{ErrorBox, Loading};
use leptos::prelude::*;
use leptos_router::components::A;

/// `/jobs/new`.
#[component]
pub fn SubmitPage() -> impl IntoView {
    let choices = Resource::new(|| (), |_| fetch_submit_choices());
    let submit = ServerAction::<SubmitEval>::new();
    let outcome = submit.value();
    let field_error = move |field: &'static str| {
        move || match outcome.get() {
            Some(Ok(SubmitOutcome::Invalid { field: f, message })) if f == field => Some(view! {
                <span class="field-error" data-field=field>{message}</span>
            }),
            _ => None,
        }
    };
    view! {
        <h1>"Submit an eval"</h1>
        <Suspense fallback=Loading>
            {move || Suspend::new(async move {
                match choices.await {
                    Err(e) => view! { <ErrorBox message=e.to_string()/> }.into_any(),
                    Ok(c) => view! {
                        <ActionForm action=submit attr:id="submit-eval" attr:class="form">
                            {field_error("authorization")}
                            <label>"Model"
                                <select name="form[model_id]">
                                    <option value="">"choose a model"</option>
                                    {c.models.into_iter().map(|m| view! { <option value=m.id.to_string()>{m.name}</option> }).collect_view()}
                                </select>
                                {field_error("model_id")}
                            </label>
                            <label>"Benchmark"
                                <select name="form[benchmark]">
                                    <option value="">"choose a benchmark"</option>
                                    {c.benchmarks.into_iter().map(|b| view! { <option value=b.clone()>{b.clone()}</option> }).collect_view()}
                                </select>
                                {field_error("benchmark")}
                            </label>
                            <label>"Samples per problem"
                                <input type="text" name="form[n_samples]" placeholder="1"/>
                                {field_error("n_samples")}
                            </label>
                            <label>"Problems (empty: all)"
                                <input type="text" name="form[limit]" placeholder="all"/>
                                {field_error("limit")}
                            </label>
                            <label>"Temperature"
                                <input type="text" name="form[temperature]" placeholder="1.0"/>
                                {field_error("temperature")}
                            </label>
                            <label>"Max new tokens"
                                <input type="text" name="form[max_tokens]" placeholder="256"/>
                                {field_error("max_tokens")}
                            </label>
                            <button type="submit" id="submit-button">"Queue eval"</button>
                        </ActionForm>
                    }.into_any(),
                }
            })}
        </Suspense>
        <div id="submit-result">
            {move || match outcome.get() {
                Some(Ok(SubmitOutcome::Queued { job_id })) => Some(view! {
                    <p class="ok" data-job=job_id.to_string()>"Queued job "{job_id.to_string()}". "<A href="/jobs">"See the queue"</A></p>
                }.into_any()),
                Some(Ok(SubmitOutcome::Invalid { message, .. })) => Some(view! {
                    <p class="error">"Not queued: "{message}</p>
                }.into_any()),
                Some(Err(e)) => Some(view! { <ErrorBox message=e.to_string()/> }.into_any()),
                None => None,
            }}
        </div>
    }
}
