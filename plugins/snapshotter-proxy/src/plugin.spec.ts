import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthConfigSchema, createContainer, loadPlugins, PluginType, Snapshotter, type PluginSet } from '@berth/core';
import { proxySnapshotterPlugins } from './plugin';
import { ProxySnapshotter } from './proxy-snapshotter';
import { serveSnapshotters, type SnapshottersServer } from './serve';

let dir: string;
let server: SnapshottersServer | undefined;
let set: PluginSet | undefined;

beforeEach(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'berth-proxy-plugin-'));
});
afterEach(async () => {
  await set?.closeAll();
  set = undefined;
  await server?.stop();
  server = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

function configWith(proxyPlugins: Record<string, { type: string; address: string }>) {
  return BerthConfigSchema.parse({ root: join(dir, 'root'), state: join(dir, 'state'), proxy_plugins: proxyPlugins });
}

describe('proxySnapshotterPlugins', () => {
  it('registers one snapshotter plugin per snapshot proxy, named by its key', () => {
    const regs = proxySnapshotterPlugins(
      configWith({
        ext: { type: 'snapshot', address: '/run/ext.sock' },
        store: { type: 'content', address: '/run/store.sock' },
        stargz: { type: 'snapshot', address: 'unix:///run/stargz.sock' },
      }),
    );
    expect(regs.map((r) => [r.type, r.id])).toEqual([
      [PluginType.Snapshotter, 'ext'],
      [PluginType.Snapshotter, 'stargz'],
    ]);
    expect(proxySnapshotterPlugins(configWith({}))).toEqual([]);
  });

  it('loads as a snapshotter bound under its name, talking to the server with its name', async () => {
    const names: string[] = [];
    const backend = {
      stat: async (key: string) => ({ kind: 'committed' as const, name: key, parent: '', labels: {}, createdAt: new Date(), updatedAt: new Date() }),
    } as unknown as Snapshotter;
    server = await serveSnapshotters(join(dir, 'ext.sock'), (name) => (names.push(name), backend));
    const config = configWith({ ext: { type: 'snapshot', address: `unix://${server.socket}` } });
    const container = createContainer();
    set = await loadPlugins({ registrations: proxySnapshotterPlugins(config), config, container });

    const record = set.record(`${PluginType.Snapshotter}.ext`);
    expect(record).toMatchObject({ status: 'ok', meta: { exports: { address: `unix://${server.socket}` }, capabilities: ['proxy'] } });
    const bound = container.getNamed<Snapshotter>(Snapshotter, 'ext');
    expect(bound).toBeInstanceOf(ProxySnapshotter);
    expect(set.getByType<Snapshotter>(PluginType.Snapshotter).get('ext')).toBe(bound);
    expect((await bound.stat('k')).name).toBe('k');
    expect(names).toEqual(['ext']);
  });

  it('fails init naming the address when nothing answers there, without stopping other plugins', async () => {
    const missing = join(dir, 'missing.sock');
    const config = configWith({ gone: { type: 'snapshot', address: missing } });
    const other = { type: 'io.berth.internal.v1', id: 'other', init: () => ({}) };
    const started = Date.now();
    set = await loadPlugins({
      registrations: [...proxySnapshotterPlugins(config, { dialTimeoutMs: 300 }), other],
      config,
      container: createContainer(),
    });
    expect(Date.now() - started).toBeLessThan(3000);
    const record = set.record(`${PluginType.Snapshotter}.gone`);
    expect(record?.status).toBe('error');
    expect(record?.error).toContain(`cannot connect to snapshotter "gone" at ${missing} within 300 ms`);
    expect(set.record('io.berth.internal.v1.other')?.status).toBe('ok');
  });
});
