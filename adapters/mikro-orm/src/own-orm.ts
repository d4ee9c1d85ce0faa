import { MikroORM, type IDatabaseDriver, type Options } from '@mikro-orm/core';

/**
 * Opens a MikroORM instance from exactly `options`, as `MikroORM.init` does, except that no `MIKRO_ORM_*`
 * variable and no `.env` file can change them; for the ORM a Tidings adapter opens (and closes) itself.
 */
export async function initOwnOrm<D extends IDatabaseDriver>(options: Options<D> & Required<Pick<Options<D>, 'driver'>>): Promise<MikroORM<D>> {
  // MikroORM 6 has no switch for this: `init` copies MIKRO_ORM_* lines of the working folder's .env (or of the file
  // MIKRO_ORM_ENV names) into process.env, then merges every MIKRO_ORM_* variable over its options. An application's
  // own MIKRO_ORM_DB_NAME would point Tidings at the application's database. So these are `init`'s steps without those.
  const orm = new MikroORM<D>(options);
  // Discovery needs the global EntityManager, as in `init`.
  const allowGlobalContext = orm.config.get('allowGlobalContext');
  orm.config.set('allowGlobalContext', true);
  await orm.discoverEntities();
  orm.config.set('allowGlobalContext', allowGlobalContext);
  orm.config.getPlatform().init(orm);
  if (orm.config.get('connect')) await orm.connect();
  for (const extension of orm.config.get('extensions')) extension.register(orm);
  return orm;
}
