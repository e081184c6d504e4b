import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AlreadyExistsError,
  errorKind,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  type Labels,
  type Mount,
  type SnapshotInfo,
  type SnapshotOptions,
  type Snapshotter,
  type SnapshotUsage,
} from '@berth/core';
import * as grpc from '@grpc/grpc-js';
import { snapshotsV1 } from '@berth/proto';
import { ProxySnapshotter } from './proxy-snapshotter';
import { serveSnapshotters, type SnapshottersServer } from './serve';
import type { SnapshotterSource } from './snapshots-server';

/** Answers with canned data and records every call, to check what crosses the wire. */
class RecordingSnapshotter implements Snapshotter {
  calls: unknown[][] = [];
  infos: SnapshotInfo[] = [];
  fail?: Error;
  walked = 0;
  closed = false;

  private record(...call: unknown[]): void {
    this.calls.push(call);
    if (this.fail) throw this.fail;
  }

  async stat(key: string): Promise<SnapshotInfo> {
    this.record('stat', key);
    return info(key);
  }
  async update(i: { name: string; labels: Labels }, fieldpaths?: string[]): Promise<SnapshotInfo> {
    this.record('update', i, fieldpaths);
    return { ...info(i.name), labels: i.labels };
  }
  async usage(key: string): Promise<SnapshotUsage> {
    this.record('usage', key);
    return { size: 2 ** 40 + 3, inodes: 7 };
  }
  async mounts(key: string): Promise<Mount[]> {
    this.record('mounts', key);
    return [{ type: 'bind', source: `/s/${key}`, options: ['rbind', 'ro'] }];
  }
  async prepare(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    this.record('prepare', key, parent, options);
    return [
      { type: 'overlay', source: 'overlay', options: ['workdir=/w', 'upperdir=/u', 'lowerdir=/l'] },
      { type: 'bind', source: '/x', target: 'sub', options: [] },
    ];
  }
  async view(key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    this.record('view', key, parent, options);
    return [];
  }
  async commit(name: string, key: string, options?: SnapshotOptions): Promise<void> {
    this.record('commit', name, key, options);
  }
  async remove(key: string): Promise<void> {
    this.record('remove', key);
  }
  async *walk(filters?: string[]): AsyncIterable<SnapshotInfo> {
    this.record('walk', filters);
    for (const i of this.infos) {
      this.walked++;
      yield i;
    }
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

class CleaningSnapshotter extends RecordingSnapshotter {
  cleaned = 0;
  async cleanup(): Promise<void> {
    this.cleaned++;
  }
}

const created = new Date('2024-05-06T07:08:09.123Z');
const updated = new Date('2024-05-06T07:08:10.456Z');

function info(name: string, kind: SnapshotInfo['kind'] = 'committed'): SnapshotInfo {
  return { kind, name, parent: 'p', labels: { 'containerd.io/snapshot/x': 'y' }, createdAt: created, updatedAt: updated };
}

let dir: string;
let server: SnapshottersServer | undefined;
const clients: ProxySnapshotter[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'berth-proxy-'));
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await server?.stop();
  server = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

async function connect(source: SnapshotterSource, name: string): Promise<ProxySnapshotter> {
  server ??= await serveSnapshotters(join(dir, 'sn.sock'), source);
  const client = await ProxySnapshotter.connect(server.socket, name, { timeoutMs: 2000 });
  clients.push(client);
  return client;
}

describe('ProxySnapshotter over snapshotsServer', () => {
  it('carries every call and its fields to the snapshotter named in the request', async () => {
    const a = new RecordingSnapshotter();
    const b = new RecordingSnapshotter();
    const proxy = await connect(new Map([['a', a], ['b', b]]), 'b');

    expect(await proxy.prepare('k', 'p', { labels: { l: 'v' } })).toEqual([
      { type: 'overlay', source: 'overlay', options: ['workdir=/w', 'upperdir=/u', 'lowerdir=/l'] },
      { type: 'bind', source: '/x', target: 'sub', options: [] },
    ]);
    expect(await proxy.view('v', 'p')).toEqual([]);
    expect(await proxy.mounts('k')).toEqual([{ type: 'bind', source: '/s/k', options: ['rbind', 'ro'] }]);
    await proxy.commit('c', 'k', { labels: { m: 'n' } });
    expect(await proxy.stat('c')).toEqual(info('c'));
    expect(await proxy.update({ name: 'c', labels: { q: 'r' } }, ['labels.q'])).toEqual({ ...info('c'), labels: { q: 'r' } });
    await proxy.update({ name: 'c', labels: {} });
    expect(await proxy.usage('c')).toEqual({ size: 2 ** 40 + 3, inodes: 7 });
    await proxy.remove('c');

    expect(a.calls).toEqual([]);
    expect(b.calls).toEqual([
      ['prepare', 'k', 'p', { labels: { l: 'v' } }],
      ['view', 'v', 'p', { labels: {} }],
      ['mounts', 'k'],
      ['commit', 'c', 'k', { labels: { m: 'n' } }],
      ['stat', 'c'],
      ['update', { name: 'c', labels: { q: 'r' } }, ['labels.q']],
      ['update', { name: 'c', labels: {} }, undefined],
      ['usage', 'c'],
      ['remove', 'c'],
    ]);
  });

  it('answers NotFound naming the snapshotter when the map lacks it', async () => {
    const proxy = await connect(new Map([['a', new RecordingSnapshotter()]]), 'zzz');
    const err = await proxy.stat('k').catch((e: Error) => e);
    expect(errorKind(err)).toBe('not-found');
    expect((err as Error).message).toBe('snapshotter "zzz" not loaded (serving: "a")');
  });

  it('serves one snapshotter under any name with a function source', async () => {
    const one = new RecordingSnapshotter();
    const names: string[] = [];
    const proxy = await connect((name) => (names.push(name), one), 'whatever-containerd-calls-it');
    await proxy.remove('k');
    expect(names).toEqual(['whatever-containerd-calls-it']);
    expect(one.calls).toEqual([['remove', 'k']]);
  });

  it.each([
    [new NotFoundError('snapshot "k": not found'), 'not-found'],
    [new AlreadyExistsError('snapshot "k": already exists'), 'already-exists'],
    [new FailedPreconditionError('cannot remove snapshot "p": it has children'), 'failed-precondition'],
    [new InvalidArgumentError('parent "k" is not committed'), 'invalid-argument'],
    [new Error('EIO: disk on fire'), 'unknown'],
  ])('brings %p back as the same kind and message', async (thrown, kind) => {
    const sn = new RecordingSnapshotter();
    sn.fail = thrown;
    const proxy = await connect(() => sn, 'x');
    for (const op of [() => proxy.stat('k'), () => proxy.prepare('k', ''), () => proxy.remove('k'), () => proxy.commit('n', 'k')]) {
      const err = await op().catch((e: Error) => e);
      expect(errorKind(err)).toBe(kind);
      expect((err as Error).message).toBe(thrown.message);
    }
    const walkErr = await (async () => {
      for await (const _ of proxy.walk()) void _;
    })().catch((e: Error) => e);
    expect(errorKind(walkErr)).toBe(kind);
  });

  it('streams a listing in batches and passes the filters', async () => {
    const sn = new RecordingSnapshotter();
    sn.infos = Array.from({ length: 250 }, (_, i) => info(`s${i}`, i % 3 === 0 ? 'active' : i % 3 === 1 ? 'view' : 'committed'));
    const proxy = await connect(() => sn, 'x');
    const seen: SnapshotInfo[] = [];
    for await (const i of proxy.walk(['kind==active', 'labels."a"==b'])) seen.push(i);
    expect(seen).toEqual(sn.infos);
    expect(sn.calls).toEqual([['walk', ['kind==active', 'labels."a"==b']]]);

    // On the wire: containerd's batches of 100.
    const raw = new snapshotsV1.SnapshotsClient(`unix://${server!.socket}`, grpc.credentials.createInsecure());
    try {
      const sizes: number[] = [];
      for await (const res of raw.list({ snapshotter: 'x', filters: [] }) as AsyncIterable<snapshotsV1.ListSnapshotsResponse>) {
        sizes.push(res.info.length);
      }
      expect(sizes).toEqual([100, 100, 50]);
    } finally {
      raw.close();
    }
  });

  it('stops the server walking when the caller breaks out early', async () => {
    const sn = new RecordingSnapshotter();
    sn.infos = Array.from({ length: 5000 }, (_, i) => info(`s${i}`));
    const proxy = await connect(() => sn, 'x');
    let n = 0;
    for await (const _ of proxy.walk()) {
      void _;
      if (++n === 3) break;
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(sn.walked).toBeLessThan(5000);
    // The channel still works afterwards.
    expect((await proxy.stat('k')).name).toBe('k');
  });

  it('runs cleanup when the snapshotter has it and treats its absence as nothing to do', async () => {
    const cleaner = new CleaningSnapshotter();
    const plain = new RecordingSnapshotter();
    const withCleanup = await connect(new Map<string, Snapshotter>([['c', cleaner], ['p', plain]]), 'c');
    const without = await ProxySnapshotter.connect(server!.socket, 'p');
    clients.push(without);
    await withCleanup.cleanup();
    await without.cleanup();
    expect(cleaner.cleaned).toBe(1);
  });

  it('does not close the served snapshotters when the server stops', async () => {
    const sn = new RecordingSnapshotter();
    await connect(() => sn, 'x');
    await server!.stop();
    expect(sn.closed).toBe(false);
    expect(fs.existsSync(join(dir, 'sn.sock'))).toBe(false);
  });
});

describe('ProxySnapshotter.connect', () => {
  it('fails with Unavailable naming the address when nothing listens', async () => {
    const sock = join(dir, 'nobody.sock');
    const started = Date.now();
    const err = await ProxySnapshotter.connect(sock, 'ext', { timeoutMs: 300 }).catch((e: Error) => e);
    expect(errorKind(err)).toBe('unavailable');
    expect((err as Error).message).toContain(`cannot connect to snapshotter "ext" at ${sock} within 300 ms`);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

describe('serveSnapshotters socket', () => {
  it('listens with mode 0660', async () => {
    server = await serveSnapshotters(join(dir, 'a', 'sn.sock'), () => new RecordingSnapshotter());
    expect(fs.statSync(server.socket).mode & 0o777).toBe(0o660);
  });

  it('refuses a live socket and a file that is not a socket, and replaces a stale socket', async () => {
    const sock = join(dir, 'sn.sock');
    server = await serveSnapshotters(sock, () => new RecordingSnapshotter());
    const live = await serveSnapshotters(sock, () => new RecordingSnapshotter()).catch((e: Error) => e);
    expect(errorKind(live)).toBe('failed-precondition');
    expect((live as Error).message).toBe(`another server is already listening on ${sock}`);
    await server.stop();
    server = undefined;

    // A stale socket: left by a server that was killed.
    await makeDeadSocket(sock);
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
    server = await serveSnapshotters(sock, () => new RecordingSnapshotter());
    const proxy = await ProxySnapshotter.connect(sock, 'x', { timeoutMs: 2000 });
    clients.push(proxy);
    await proxy.remove('k');
    await server.stop();
    server = undefined;

    fs.writeFileSync(sock, 'not a socket');
    const file = await serveSnapshotters(sock, () => new RecordingSnapshotter()).catch((e: Error) => e);
    expect((file as Error).message).toBe(`${sock} exists and is not a socket; refusing to replace it`);
    expect(fs.readFileSync(sock, 'utf8')).toBe('not a socket');
  });
});

/** A socket file nobody listens on, as a killed server leaves behind. */
async function makeDeadSocket(sock: string): Promise<void> {
  // A child binds the path and is killed before it can unlink it.
  const script = `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`;
  spawnSync(process.execPath, ['-e', script]);
}
