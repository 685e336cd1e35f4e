//! Crucible's dashboard: leptos pages that the server renders (feature `ssr`) and the browser
//! hydrates (feature `hydrate`). Every page reads through the server functions in [`api`]; on the
//! server their bodies call a [`api::DashboardSource`] that the server provides as context, so this
//! crate depends on neither the server nor the database.
#![recursion_limit = "512"]

pub mod api;
mod chart;
mod components;
mod live;
mod pages;
#[cfg(feature = "ssr")]
mod style;

use leptos::prelude::*;
use leptos_meta::{Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::path;

/// The HTML document around the app: the server renders it for every page, with the scripts that
/// load the hydration bundle from `/pkg`.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    use leptos_meta::MetaTags;
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <style>{style::CSS}</style>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The dashboard: navigation, the live-update connection and one route per page.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let live = live::provide();
    view! {
        <Title text="Crucible"/>
        <Router>
            <nav class="top">
                <span class="brand">"Crucible"</span>
                <A href="/">"Runs"</A>
                <A href="/evals">"Evals"</A>
                <A href="/leaderboard">"Leaderboard"</A>
                <A href="/datasets">"Datasets"</A>
                <A href="/models">"Models"</A>
                <A href="/jobs">"Jobs"</A>
                <A href="/jobs/new">"Submit"</A>
                <span class="live" id="live" data-state=move || live.state.get() data-ticks=move || live.tick.get()>
                    {move || live.state.get()}
                </span>
                <pages::signin::ViewerBadge/>
            </nav>
            <main>
                <Routes fallback=|| view! { <p class="empty">"No such page."</p> }>
                    <Route path=path!("/") view=pages::runs::RunsPage/>
                    <Route path=path!("/runs/:id") view=pages::run::RunPage/>
                    <Route path=path!("/evals") view=pages::evals::EvalsPage/>
                    <Route path=path!("/evals/:id") view=pages::evals::EvalPage/>
                    <Route path=path!("/leaderboard") view=pages::leaderboard::LeaderboardPage/>
                    <Route path=path!("/datasets") view=pages::datasets::DatasetsPage/>
                    <Route path=path!("/datasets/:id") view=pages::datasets::DatasetPage/>
                    <Route path=path!("/models") view=pages::datasets::ModelsPage/>
                    <Route path=path!("/jobs") view=pages::jobs::JobsPage/>
                    <Route path=path!("/jobs/new") view=pages::submit::SubmitPage/>
                    <Route path=path!("/signin") view=pages::signin::SignInPage/>
                </Routes>
            </main>
        </Router>
    }
}

/// Entry point of the wasm bundle: attaches the app to the server-rendered HTML.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
