import { run } from './program.js';

// MikroORM lets MIKRO_ORM_* variables, from the environment or a .env file in the working folder, override
// the database it is given; in an application's folder that would point tidings at another database than --db.
for (const key of Object.keys(process.env)) if (key.startsWith('MIKRO_ORM_')) delete process.env[key];
process.env.MIKRO_ORM_ENV = '/dev/null';

process.exitCode = await run(process.argv);
