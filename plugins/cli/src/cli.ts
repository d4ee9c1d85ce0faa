import { run } from './program.js';

// No MIKRO_ORM_* variable or .env in an application's folder can move --db elsewhere: the storage adapters open
// their MikroORM without reading them (see initOwnOrm in @tidings/adapter-mikro-orm).

// A promise rather than top-level await, so the same entry also builds as CommonJS.
void run(process.argv).then((code) => {
  process.exitCode = code;
});
