import { run } from './program.js';

// MikroORM lets MIKRO_ORM_* variables, from the environment or a .env file in the working folder, override
// the database it is given; in an application's folder that would point tidings at another database than --db.
for (const key of Object.keys(process.env)) if (key.startsWith('MIKRO_ORM_')) delete process.env[key];
process.env.MIKRO_ORM_ENV = '/dev/null';

// A promise rather than top-level await, so the same entry also builds as CommonJS.
void run(process.argv).then((code) => {
  process.exitCode = code;
});
