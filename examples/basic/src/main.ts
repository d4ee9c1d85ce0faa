import { runBasic } from './run.js';

const reports = await runBasic();
for (const r of reports) {
  console.log(
    `${r.label.padEnd(26)} sent ${r.sent}  delivered ${r.delivered}  distinct ${r.distinct}  duplicates dropped ${r.duplicates}  ${r.path.join(' -> ')}`,
  );
}
