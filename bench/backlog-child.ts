// One step of the backlog scenario (bench/backlog.ts) in a fresh process, started by bench/processes.ts from a
// plain-JavaScript bundle (bench/bundle.ts), so its peak RSS is the step's own. Reports progress, then
// `{ type: 'result', result }` over IPC, and exits when told to stop.
import { backlogStep, type BacklogResult, type BacklogStep } from './backlog.js';

const req = JSON.parse(process.argv[2]!) as BacklogStep;
// Should the parent die, this step ends with it.
process.on('disconnect', () => process.exit(process.exitCode ?? 0));
const send = (m: object) => process.send?.(m);
let peakRss = process.memoryUsage.rss();
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 20);
let last = 0;
const progress = () => {
  if (Date.now() - last < 1000) return;
  last = Date.now();
  send({ type: 'progress' });
};
try {
  const figures = await backlogStep(req, progress);
  clearInterval(sampler);
  const result: BacklogResult = { ...figures, peakRss: Math.max(peakRss, process.memoryUsage.rss()) };
  send({ type: 'result', result });
  process.on('message', (m: { type?: string }) => m.type === 'stop' && process.disconnect?.());
} catch (error) {
  clearInterval(sampler);
  send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  process.exitCode = 1;
  process.disconnect?.();
}
