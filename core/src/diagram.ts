import { LIFECYCLE_EVENTS } from './lifecycle.js';
import type { TransitionTable } from './table.js';

/** A Mermaid state diagram of a lifecycle, drawn from its transition table (so it cannot drift from the machine). */
export function lifecycleDiagram(table: TransitionTable): string {
  const lines = ['stateDiagram-v2', '  [*] --> sent'];
  for (const from of table.states) {
    const out = LIFECYCLE_EVENTS.flatMap((event) => table.rulesFor(from, event).map((r) => ({ event, ...r })));
    for (const r of out) lines.push(`  ${from} --> ${r.target}: ${r.event}${r.guard ? ` if ${r.guard}` : ''}`);
    if (out.length === 0) lines.push(`  ${from} --> [*]`);
  }
  return lines.join('\n');
}
