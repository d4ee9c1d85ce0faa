// The scenario as an ES module application runs it: every package through import().
import { fileURLToPath } from 'node:url';
import scenario from './scenario.cjs';

await scenario.run(
  (name) => import(name),
  (name) => fileURLToPath(import.meta.resolve(name)),
  process.argv.slice(2),
);
