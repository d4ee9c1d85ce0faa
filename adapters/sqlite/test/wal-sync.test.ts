import { mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WalSync } from '../src/wal-sync.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-wal-sync-'));
const db = join(dir, 'app.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every fdatasync of a file opened through `fs/promises`: the inode it synced; `hold` keeps the next ones waiting. */
const synced: number[] = [];
let hold: Promise<void> | undefined;
let proto: { datasync(this: FileHandle): Promise<void> };
let datasync: (this: FileHandle) => Promise<void>;
beforeAll(async () => {
  const probe = await open(join(dir, 'probe'), 'w');
  proto = Object.getPrototypeOf(probe) as typeof proto;
  await probe.close();
  datasync = proto.datasync;
  proto.datasync = async function (this: FileHandle) {
    synced.push((await this.stat()).ino);
    await hold;
    return datasync.call(this);
  };
});
afterAll(() => void (proto.datasync = datasync));
afterEach(() => {
  synced.length = 0;
  hold = undefined;
});

/** Puts a new log in place (a new file renamed over the path, so it cannot get the old one's inode). */
function newLog(): number {
  writeFileSync(`${db}-wal.new`, 'frames');
  renameSync(`${db}-wal.new`, `${db}-wal`);
  return statSync(`${db}-wal`).ino;
}

describe('WalSync', () => {
  it('syncs the log the path names, following a log started again, and nothing when there is none', async () => {
    const log = new WalSync(db);
    const first = newLog();
    await log.sync();
    expect(synced).toEqual([first]);
    const second = newLog();
    await log.sync();
    expect(synced).toEqual([first, second]);
    rmSync(`${db}-wal`);
    await log.sync();
    expect(synced).toEqual([first, second]);
    await log.close();
  });

  it('gives calls made while a sync runs one more sync, which starts after it', async () => {
    const log = new WalSync(db);
    newLog();
    let release!: () => void;
    hold = new Promise<void>((r) => (release = r));
    const running = log.sync();
    await new Promise((r) => setTimeout(r, 20));
    const later = [log.sync(), log.sync(), log.sync()];
    expect(synced).toHaveLength(1);
    release();
    await Promise.all([running, ...later]);
    expect(synced).toHaveLength(2);
    await log.close();
  });

  it('has nothing to sync before the log exists, and syncs it once it does', async () => {
    const log = new WalSync(join(dir, 'fresh.db'));
    await log.sync();
    expect(synced).toEqual([]);
    writeFileSync(join(dir, 'fresh.db-wal'), 'frames');
    await log.sync();
    expect(synced).toEqual([statSync(join(dir, 'fresh.db-wal')).ino]);
    await log.close();
  });
});
