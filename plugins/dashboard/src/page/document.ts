import type { Lifecycle } from '@tidings/core';
import type { MonitorMode } from '../monitor.js';
import { DOM_SCRIPT } from './dom.js';
import { LIVE_SCRIPT } from './live.js';
import { MACHINES_SCRIPT } from './machines.js';
import { MESSAGE_SCRIPT } from './message.js';
import { OVERVIEW_SCRIPT } from './overview.js';
import { STYLE } from './style.js';
import { SUBSCRIPTION_SCRIPT } from './subscription.js';

/** Text safe inside HTML. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// Plain browser JavaScript, no build step and no network: the page must work where the dashboard runs offline.
const SCRIPT = DOM_SCRIPT + OVERVIEW_SCRIPT + SUBSCRIPTION_SCRIPT + MESSAGE_SCRIPT + MACHINES_SCRIPT + LIVE_SCRIPT;

/** The views the hash routes show; the script fills them. */
const BODY = `<section id="overview" class="panel" aria-labelledby="overview-title">
<h2 class="view" id="overview-title" tabindex="-1">Topics and subscriptions <small id="overview-at"></small></h2>
<p class="note" id="rates-note"></p>
<div class="scroll"><table class="overview"><thead></thead><tbody></tbody></table></div>
<p id="empty" class="empty">No topics yet: declare one (tidings.topic) and it appears here.</p>
</section>
<section id="subscription" class="panel" hidden>
<h2 class="view" tabindex="-1"><span class="name"></span> <small></small></h2>
<p class="note links"></p>
<div class="actions" aria-label="Actions"><span id="run-state" class="state badge"></span><button type="button" id="pause"></button><button type="button" id="retry-all">Retry delayed now</button><button type="button" id="redrive-all"></button><button type="button" id="empty-btn" class="danger"></button><button type="button" id="discard-all" class="danger"></button></div>
<div role="tablist" class="views" aria-label="Messages by state"></div>
<form class="search" role="search"><label for="search-value">Find</label><select id="search-by" aria-label="Search by"><option value="id">by id</option><option value="key">by key</option></select><input id="search-value" type="search" placeholder="order-42" autocomplete="off"><button type="submit">Search</button><button type="button" id="search-clear">Clear</button></form>
<div class="selection actions"></div>
<div class="scroll"><table class="messages"></table></div>
<div class="pager"><button type="button" id="prev">← Previous</button><span id="page-info"></span><button type="button" id="next">Next →</button></div>
</section>
<section id="message" class="panel" hidden></section>
<h2 id="machines-title" class="view">Machines <small>each topic's lifecycle with its live counts</small></h2>
<div id="cards" style="display:grid;gap:16px"></div>`;

/** The dialog every destructive action opens, stating what it is about to do to how many messages. */
const CONFIRM = `<dialog id="confirm" aria-labelledby="confirm-text"><form method="dialog"><p id="confirm-text"></p><div class="actions"><button value="cancel">Cancel</button><button value="ok" class="danger">OK</button></div></form></dialog>`;

/** The dashboard page: every byte inline (styles, script, diagrams), so it works with no network at all. */
export function dashboardPage(o: { title: string; mode: MonitorMode; latency: boolean; diagrams: Array<[Lifecycle, string]> }): string {
  const note =
    o.mode === 'in-process'
      ? `Live from this process: counts from storage each second; throughput and recent transitions from its events${
          o.latency
            ? ', latency from its handler hook.'
            : '. End-to-end latency needs the handler hook: pass metricsPlugin() to Tidings.create({ plugins }) and to createDashboard({ metrics }).'
        }`
      : 'Standalone on a database other processes use: every figure comes from counts polled each second. Throughput is the net change of waiting and in-flight messages, latency the age of the oldest waiting message, and transitions are not visible from here.';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(o.title)}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body data-mode="${o.mode}">
<header><h1>${escapeHtml(o.title)}</h1><span class="mode">${escapeHtml(note)}</span><nav aria-label="Dashboard"><a href="#/">Overview</a><a href="metrics">/metrics</a></nav></header>
<div id="status" role="status" hidden></div>
<main>
<div id="act-notice" class="notice" role="status" aria-live="polite"></div>
${BODY}
</main>
${CONFIRM}
${o.diagrams.map(([lifecycle, svg]) => `<template id="diagram-${lifecycle}">${svg}</template>`).join('\n')}
<script>const TITLE = ${JSON.stringify(o.title).replace(/</g, '\\u003c')};${SCRIPT}</script>
</body>
</html>
`;
}

/** The page a browser gets without the token: a form that sets the login cookie. */
export function loginPage(o: { title: string; failed: boolean; reason?: string }): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(o.title)}: sign in</title><link rel="icon" href="data:,">
<style>${STYLE} form { max-width: 380px; margin: 12vh auto; background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 20px; display: grid; gap: 10px; } input { font: inherit; padding: 6px 8px; border: 1px solid #d0d5dd; border-radius: 6px; } .failed { color: var(--red); }</style>
</head>
<body>
<form method="post" action="login">
<h1 style="font-size:18px;margin:0">${escapeHtml(o.title)}</h1>
<label for="token">This dashboard needs its token.</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
${o.failed ? `<p class="failed">${escapeHtml(o.reason ?? 'That is not the token.')}</p>` : ''}
<button type="submit">Sign in</button>
</form>
</body>
</html>
`;
}
