import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startApp, waitFor } from './support';

/** Under Jest, `@tidings/*` resolve through their `require` exports: the CommonJS builds in dist/. */
describe('examples/nest-app under Jest (CommonJS)', () => {
  let app: Awaited<ReturnType<typeof startApp>>;
  beforeAll(async () => {
    app = await startApp();
  });
  afterAll(() => app.app.close());

  it('loads every Tidings package from its CommonJS build', () => {
    for (const name of ['@tidings/core', '@tidings/nest', '@tidings/adapter-sqlite', '@tidings/faults'])
      expect(require.resolve(name)).toMatch(/[/\\]dist[/\\]index\.cjs$/);
  });

  it('turns one order into one payment, and the same order again into none', async () => {
    await app.http().post('/orders').send({ id: 'j-1', amount: 4200 }).expect(201);
    expect((await app.http().post('/orders').send({ id: 'j-1', amount: 4200 }).expect(200)).body).toEqual({ id: 'j-1', duplicate: true });
    await waitFor(app.drained);
    expect(await app.payments()).toEqual([{ id: 1, order: 'j-1', amount: 4200, charge: 'ch_j-1' }]);
    expect(app.logger.errors).toEqual([]);
  });
});
