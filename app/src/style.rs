//! The dashboard's stylesheet, inlined in the document head so a page is styled on first paint
//! without another request.

/// All of the dashboard's CSS.
pub const CSS: &str = r#"
:root { --fg:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f9fafb; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif; color:var(--fg); background:var(--bg); }
nav.top { display:flex; gap:1.1rem; align-items:center; padding:.6rem 1.2rem; background:#111827; }
nav.top a { color:#d1d5db; text-decoration:none; }
nav.top a[aria-current] { color:#fff; font-weight:600; }
nav.top .brand { color:#fff; font-weight:700; margin-right:.8rem; }
nav.top .live { margin-left:auto; font-size:12px; color:#9ca3af; }
nav.top .live[data-state=live] { color:#4ade80; }
nav.top .viewer { font-size:12px; color:#d1d5db; display:flex; gap:.6rem; align-items:center; }
nav.top .viewer form.signout { margin:0; }
nav.top .viewer button { font-size:12px; padding:.15rem .5rem; }
main { padding:1rem 1.4rem 3rem; max-width:1400px; }
h1 { font-size:1.4rem; margin:.4rem 0 .6rem; } h2 { font-size:1.1rem; margin:1.2rem 0 .5rem; }
a { color:var(--accent); }
.muted { color:var(--muted); } .empty { color:var(--muted); font-style:italic; }
.mono, code, pre { font-family: ui-monospace,SFMono-Regular,Menlo,monospace; font-size:12.5px; }
pre { white-space:pre-wrap; word-break:break-word; margin:0; }
.error, .error-text { color:#b91c1c; } .ok { color:#166534; }
table.grid-table { border-collapse:collapse; width:100%; background:#fff; }
.grid-table th, .grid-table td { border-bottom:1px solid var(--line); padding:.35rem .55rem; text-align:left; vertical-align:top; }
.grid-table th { font-weight:600; background:#f3f4f6; white-space:nowrap; }
.grid-table th a { color:inherit; text-decoration:none; }
.grid-table tr.wrong td:first-child { border-left:3px solid #dc2626; } .grid-table tr.right td:first-child { border-left:3px solid #16a34a; }
table.kv th { text-align:left; padding-right:1rem; font-weight:500; color:var(--muted); }
.leaderboard td.cell { white-space:nowrap; } .ci { color:var(--muted); font-size:11.5px; }
.badge { display:inline-block; padding:0 .45rem; border-radius:9px; font-size:12px; background:#e5e7eb; }
.badge.running, .badge.leased { background:#dbeafe; color:#1e40af; }
.badge.online { background:#dcfce7; color:#166534; } .badge.offline { background:#f3f4f6; color:#6b7280; }
.badge.finished, .badge.succeeded { background:#dcfce7; color:#166534; }
.badge.failed { background:#fee2e2; color:#991b1b; } .badge.killed, .badge.cancelled { background:#fef3c7; color:#92400e; }
.filters { display:flex; flex-wrap:wrap; gap:.5rem; margin:.4rem 0 .6rem; }
input, select, button { font:inherit; padding:.3rem .5rem; border:1px solid #d1d5db; border-radius:5px; background:#fff; }
button { background:var(--accent); color:#fff; border-color:var(--accent); cursor:pointer; }
.pager { display:flex; gap:1rem; margin:.6rem 0; }
.two-col { display:grid; grid-template-columns:1fr 1fr; gap:1.5rem; }
.chart-controls { display:flex; gap:1.2rem; align-items:center; }
.chart-grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(420px,1fr)); gap:.8rem; }
figure.chart { margin:0; background:#fff; border:1px solid var(--line); border-radius:6px; padding:.4rem .5rem; }
figure.chart figcaption { font-weight:600; font-size:13px; }
figure.chart svg { width:100%; height:auto; display:block; }
svg .grid { stroke:#eef0f3; } svg .tick { fill:var(--muted); font-size:10px; }
svg .band { opacity:.13; stroke:none; } svg .raw, svg .smooth { fill:none; stroke-width:1.6; }
svg .raw.faint { opacity:.28; stroke-width:1; }
.tabs { display:flex; gap:.3rem; margin-bottom:.5rem; }
.tab { padding:.2rem .7rem; border:1px solid var(--line); border-radius:14px; text-decoration:none; background:#fff; }
.tab.active { background:var(--accent); color:#fff; border-color:var(--accent); }
details.problem, details.group { background:#fff; border:1px solid var(--line); border-radius:5px; margin:.3rem 0; padding:.3rem .6rem; }
details.problem.wrong { border-left:4px solid #dc2626; } details.problem.right { border-left:4px solid #16a34a; } details.problem.mixed { border-left:4px solid #f59e0b; }
pre.prompt { background:#f3f4f6; padding:.4rem; margin:.4rem 0; } pre.completion { max-height:16rem; overflow:auto; }
pre.command { background:#f3f4f6; padding:.4rem .6rem; }
img.artifact-preview { max-width:240px; max-height:160px; border:1px solid #e5e7eb; }
ol.rows li { margin:.3rem 0; } ol.rows pre { background:#fff; border:1px solid var(--line); padding:.4rem; }
form.form { display:grid; gap:.7rem; max-width:34rem; } form.form label { display:grid; gap:.2rem; font-weight:500; }
.field-error { color:#b91c1c; font-weight:400; font-size:13px; }
label.check { display:inline-flex; gap:.3rem; align-items:center; margin-right:1rem; }
.legend span { margin-right:.8rem; }
"#;
