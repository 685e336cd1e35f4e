//! Live updates: in the browser, one `EventSource` on the server's SSE stream bumps a counter that
//! the pages' resources depend on, so status changes and new metric points appear without a
//! reload. Bursts (an RL run logs every step) are coalesced into one refresh per half second.

use leptos::prelude::*;

/// The connection's state and the counter pages refetch on.
#[derive(Clone, Copy)]
pub struct Live {
    /// Bumped (at most every 500 ms) after events arrive.
    pub tick: ReadSignal<u64>,
    /// `connecting`, `live`, `reconnecting` or `offline` (refused, as when signed out); shown in
    /// the navigation bar.
    pub state: ReadSignal<&'static str>,
}

/// Creates the live context for the app (the connection opens once hydrated).
pub fn provide() -> Live {
    let (tick, set_tick) = signal(0u64);
    let (state, set_state) = signal("connecting");
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| browser::connect(set_tick, set_state));
    #[cfg(not(feature = "hydrate"))]
    let _ = (set_tick, set_state);
    let live = Live { tick, state };
    provide_context(live);
    live
}

/// The live context (every page is inside [`crate::App`], which provides it).
pub fn use_live() -> Live {
    expect_context::<Live>()
}

#[cfg(feature = "hydrate")]
mod browser {
    use leptos::prelude::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;
    use web_sys::EventSource;

    /// Opens the stream; the browser reconnects by itself after errors.
    pub fn connect(set_tick: WriteSignal<u64>, set_state: WriteSignal<&'static str>) {
        let Ok(source) = EventSource::new("/api/v1/events") else {
            set_state.set("offline");
            return;
        };
        let pending = Rc::new(Cell::new(false));
        let on_event = Closure::<dyn Fn()>::new(move || {
            if pending.replace(true) {
                return;
            }
            let pending = pending.clone();
            set_timeout(
                move || {
                    pending.set(false);
                    set_tick.update(|t| *t += 1);
                },
                Duration::from_millis(500),
            );
        });
        for kind in ["run_updated", "metrics_logged"] {
            let _ =
                source.add_event_listener_with_callback(kind, on_event.as_ref().unchecked_ref());
        }
        let on_open = Closure::<dyn Fn()>::new(move || set_state.set("live"));
        // The browser retries a dropped stream by itself, but closes one the server refused (a
        // signed-out visitor's 401) for good: that one is offline, not reconnecting.
        let errored = source.clone();
        let on_error = Closure::<dyn Fn()>::new(move || {
            set_state.set(if errored.ready_state() == EventSource::CLOSED {
                "offline"
            } else {
                "reconnecting"
            })
        });
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        // Close the stream when the page goes away: browsers allow six connections per host over
        // HTTP/1.1, and streams left open by earlier page loads would starve the next ones.
        let closing = source.clone();
        let on_hide = Closure::<dyn Fn()>::new(move || closing.close());
        if let Some(window) = web_sys::window() {
            let _ = window
                .add_event_listener_with_callback("pagehide", on_hide.as_ref().unchecked_ref());
        }
        // The stream lives as long as the page: hand the callbacks to JavaScript for good.
        on_event.forget();
        on_open.forget();
        on_error.forget();
        on_hide.forget();
    }
}
