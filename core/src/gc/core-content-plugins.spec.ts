import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corePlugins, PluginRecords } from '../builtins';
import { NamespacedContentStore, type ContentStore } from '../content/types';
import { ImageStore } from '../images/types';
import { GarbageCollector, LeaseManager } from '../leases/types';
import { commit } from '../metadata/test-fixtures/content-stack';
import { MemoryContentStore } from '../metadata/test-fixtures/memory-content-store';
import { createContainer } from '../plugin/container';
import { loadPlugins } from '../plugin/load-plugins';
import type { PluginSet } from '../plugin/plugin-set';
import { PluginType, type PluginRegistration } from '../plugin/types';
import { MetadataGarbageCollector } from './collector';
import { coreContentPlugins } from './core-content-plugins';

const memoryContentPlugin: PluginRegistration<unknown, ContentStore> = {
  type: PluginType.Content,
  id: 'memory',
  init: () => new MemoryContentStore(),
};

describe('coreContentPlugins', () => {
  let dir: string;
  let plugins: PluginSet | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-plugins-'));
  });
  afterEach(async () => {
    await plugins?.closeAll();
    plugins = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function load(pluginConfigs: Record<string, unknown> = {}, withContent = true): Promise<PluginSet> {
    await plugins?.closeAll();
    const container = createContainer();
    container.bind(PluginRecords).toConstantValue(() => []);
    plugins = await loadPlugins({
      registrations: [...corePlugins, ...(withContent ? [memoryContentPlugin as PluginRegistration] : []), ...coreContentPlugins],
      root: join(dir, 'root'),
      state: join(dir, 'state'),
      container,
      pluginConfigs,
    });
    return plugins;
  }

  it('load after a content plugin and bind the shared tokens', async () => {
    const set = await load();
    const status = Object.fromEntries(set.records().map((r) => [r.uri, r.status]));
    expect(status).toMatchObject({
      'io.berth.gc.v1.scheduler': 'ok',
      'io.berth.lease.v1.manager': 'ok',
      'io.berth.service.v1.content': 'ok',
      'io.berth.service.v1.images': 'ok',
      'io.berth.service.v1.leases': 'ok',
    });
    const { container } = set;
    expect(container.get(GarbageCollector)).toBe(set.getById(PluginType.GC, 'scheduler'));
    expect(container.get(LeaseManager)).toBe(set.getById(PluginType.Lease, 'manager'));
    expect(container.get(LeaseManager)).toBe(set.getById(PluginType.Service, 'leases'));
    expect(container.get(ImageStore)).toBe(set.getById(PluginType.Service, 'images'));
    expect(container.get(NamespacedContentStore)).toBe(set.getById(PluginType.Service, 'content'));
  });

  it('work together: a lease keeps content, deleting it with sync collects', async () => {
    const set = await load();
    const leases = set.container.get<LeaseManager>(LeaseManager);
    const content = set.container.get<NamespacedContentStore>(NamespacedContentStore);
    await leases.create('default', { id: 'l' });
    const digest = await commit(content.forNamespace('default', { lease: 'l' }), 'through the plugins');
    await leases.delete('default', 'l', { sync: true });
    const raw = set.getSingle<MemoryContentStore>(PluginType.Content);
    expect(raw.blobs.has(digest)).toBe(false);
  });

  it('take the collector settings from the gc plugin table', async () => {
    const set = await load({ 'io.berth.gc.v1.scheduler': { schedule_delay_ms: 5, interval_ms: 0 } });
    expect(set.getById(PluginType.GC, 'scheduler')).toBeInstanceOf(MetadataGarbageCollector);
    const bad = await load({ 'io.berth.gc.v1.scheduler': { interval_ms: -1 } });
    expect(bad.record('io.berth.gc.v1.scheduler')?.status).toBe('error');
  });

  it('report an error, not a crash, without a content plugin', async () => {
    const set = await load({}, false);
    expect(set.record('io.berth.gc.v1.scheduler')?.status).toBe('error');
    expect(set.record('io.berth.service.v1.images')?.status).toBe('error');
    expect(set.record('io.berth.service.v1.namespaces')?.status).toBe('ok');
  });
});
