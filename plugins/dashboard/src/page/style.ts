/** The page's styles: system fonts and no images, so the page needs nothing from the network. */
export const STYLE = `
:root { --ink: #101828; --muted: #667085; --line: #eaecf0; --blue: #175cd3; --green: #067647; --orange: #b54708; --red: #b42318; --bg: #f9fafb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink); background: var(--bg); }
header { padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header .mode { color: var(--muted); flex: 1; min-width: 300px; }
header a { color: var(--blue); }
#status { padding: 8px 24px; color: var(--red); display: none; }
main { padding: 16px 24px; display: grid; gap: 16px; min-width: 0; }
.empty { color: var(--muted); }
section.topic { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; display: grid; grid-template-columns: minmax(240px, 340px) 1fr; gap: 16px; }
section.topic > h2 { grid-column: 1 / -1; margin: 0; font-size: 16px; display: flex; gap: 10px; align-items: baseline; }
section.topic > h2 .lifecycle { font-weight: normal; color: var(--muted); font-size: 13px; }
.subs { grid-column: 1 / -1; display: flex; gap: 6px; flex-wrap: wrap; align-items: stretch; }
.subs > span { color: var(--muted); font-size: 12px; align-self: center; }
.subs button.sub { display: grid; gap: 1px; text-align: left; padding: 4px 10px; border-color: var(--line); color: var(--ink); }
.subs button.sub b { font-weight: 600; }
.subs button.sub small { color: var(--muted); font-size: 11.5px; }
.subs button.sub[aria-selected="true"] { border-color: var(--blue); box-shadow: inset 0 -2px 0 var(--blue); }
.subs button.sub .dead { color: var(--red); }
.diagram .caption { font-size: 12px; color: var(--muted); margin: 0 0 4px; }
.diagram svg { width: 100%; height: auto; max-height: 480px; }
.diagram .count rect { fill: #f2f4f7; stroke: #98a2b3; }
.diagram .count text { font: 600 13px system-ui, sans-serif; fill: var(--ink); }
.diagram .count.some rect { fill: var(--blue); stroke: var(--blue); }
.diagram .count.some text { fill: #fff; }
.diagram .count.dead.some rect { fill: var(--red); stroke: var(--red); }
.panels { display: grid; grid-template-columns: minmax(0, 1fr); gap: 12px; align-content: start; min-width: 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 12px; }
.chart h3, .panels h3 { margin: 0 0 4px; font-size: 13px; color: var(--muted); font-weight: 600; }
.chart svg { width: 100%; height: 90px; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; }
.legend { font-size: 12px; color: var(--muted); display: flex; gap: 12px; flex-wrap: wrap; }
.legend b { font-weight: 600; }
.s1 { color: var(--blue); stroke: var(--blue); } .s2 { color: var(--green); stroke: var(--green); } .s3 { color: var(--orange); stroke: var(--orange); }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.id, td.token { font-family: ui-monospace, Menlo, monospace; word-break: break-all; }
td.error { color: var(--red); max-width: 360px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
button { font: inherit; font-size: 12px; padding: 2px 10px; border-radius: 6px; border: 1px solid var(--blue); background: #fff; color: var(--blue); cursor: pointer; }
button:disabled { opacity: .5; cursor: default; }
.notice { font-size: 12px; color: var(--green); min-height: 1em; }
.notice.failed { color: var(--red); }
ol.transitions { margin: 0; padding: 0; list-style: none; font: 12px ui-monospace, Menlo, monospace; max-height: 170px; overflow: auto; }
.none { color: var(--muted); font-size: 12px; }
@media (max-width: 760px) { section.topic { grid-template-columns: 1fr; } }

header nav { display: flex; gap: 12px; }
h2.view { font-size: 16px; margin: 0; display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
h2.view small { font-weight: normal; color: var(--muted); font-size: 13px; }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; display: grid; gap: 10px; min-width: 0; }
.note { color: var(--muted); font-size: 12.5px; margin: 0; }
.scroll { overflow-x: auto; }
table.overview th button { all: unset; cursor: pointer; color: var(--muted); font-weight: 600; white-space: nowrap; }
table.overview th button:focus-visible, a:focus-visible, button:focus-visible, input:focus-visible, summary:focus-visible { outline: 2px solid var(--blue); outline-offset: 2px; border-radius: 3px; }
table.overview th[aria-sort="ascending"] button::after { content: " ▲"; }
table.overview th[aria-sort="descending"] button::after { content: " ▼"; }
table.overview td, table.overview th { white-space: nowrap; }
table.overview td.num, table.overview th.num, table.messages td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.overview td.some-dead { color: var(--red); font-weight: 600; }
a { color: var(--blue); }
.dlq { color: var(--muted); font-size: 12px; }
.badge { display: inline-block; font-size: 11.5px; padding: 0 7px; border-radius: 9px; background: #f2f4f7; color: var(--muted); }
.badge.paused { background: #fef0c7; color: var(--orange); font-weight: 600; }
.actions { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
.actions .state { font-size: 12.5px; }
button.danger { border-color: var(--red); color: var(--red); }
button { min-height: 28px; }
[role="tablist"].views { display: flex; gap: 4px; flex-wrap: wrap; border-bottom: 1px solid var(--line); }
[role="tablist"].views button { border: 0; border-radius: 6px 6px 0 0; color: var(--muted); padding: 4px 12px; }
[role="tablist"].views button[aria-selected="true"] { color: var(--blue); box-shadow: inset 0 -2px 0 var(--blue); font-weight: 600; }
form.search { display: flex; gap: 6px; flex-wrap: wrap; align-items: center; }
form.search input, form.search select { font: inherit; font-size: 13px; padding: 3px 6px; border: 1px solid #d0d5dd; border-radius: 6px; min-width: 0; }
form.search input { flex: 1 1 160px; max-width: 320px; }
table.messages td.id { max-width: 260px; }
.pager { display: flex; gap: 8px; align-items: center; font-size: 12.5px; color: var(--muted); }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0; font-size: 13px; }
dl.fields dt { color: var(--muted); }
dl.fields dd { margin: 0; word-break: break-all; }
pre.json, details pre { margin: 0; padding: 10px 12px; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; font: 12.5px/1.45 ui-monospace, Menlo, monospace; overflow: auto; max-height: 420px; white-space: pre-wrap; word-break: break-word; }
.error-line { color: var(--red); font-family: ui-monospace, Menlo, monospace; font-size: 12.5px; word-break: break-word; }
details summary { cursor: pointer; color: var(--muted); font-size: 12.5px; }
dialog { border: 1px solid var(--line); border-radius: 10px; padding: 18px; max-width: min(440px, 92vw); }
dialog::backdrop { background: rgba(16, 24, 40, .35); }
dialog p { margin: 0 0 14px; }
dialog .actions { justify-content: flex-end; }
[hidden] { display: none !important; }
#act-notice:empty { display: none; }
.panel h3 { margin: 6px 0 0; font-size: 14px; }
@media (max-width: 760px) { section.topic { grid-template-columns: minmax(0, 1fr); } .panels .body { overflow-x: auto; } td.error { max-width: 180px; } header, main { padding-left: 12px; padding-right: 12px; } header .mode { min-width: 0; flex-basis: 100%; order: 3; font-size: 12.5px; } table.overview [data-key="lifecycle"], table.overview [data-key="ordering"], table.overview [data-key="done"] { display: none; } table.overview td, table.overview th { padding: 4px 5px; } table.overview td[data-key="topic"] { white-space: normal; min-width: 110px; } dl.fields { grid-template-columns: 1fr; } dl.fields dd { margin-bottom: 6px; } }
`;
