import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Container } from 'inversify';
import { errorKind } from '../errdefs';
import { silentLogger } from '../log';
import type { InitContext, PluginMeta } from '../plugin/types';
import { METADATA_SCHEMA_VERSION } from './db';
import { SqliteMetadataStore, metadataPlugin } from './metadata-store';
import { useTempDir } from './test-fixtures/temp-dir';
import { MetadataStore, NamespaceStore } from './types';

describe('SqliteMetadataStore', () => {
  const tempDir = useTempDir();

  it('persists namespaces and labels across close and reopen', async () => {
    const path = join(tempDir(), 'meta.db');
    const first = new SqliteMetadataStore(path);
    await first.namespaces.create('default', { team: 'a' });
    await first.namespaces.create('k8s.io');
    await first.namespaces.setLabel('k8s.io', 'x', 'y');
    first.close();
    first.close(); // idempotent

    const second = new SqliteMetadataStore(path);
    try {
      expect(await second.namespaces.list()).toEqual([
        { name: 'default', labels: { team: 'a' } },
        { name: 'k8s.io', labels: { x: 'y' } },
      ]);
      expect(second.db.pragma('user_version', { simple: true })).toBe(METADATA_SCHEMA_VERSION);
    } finally {
      second.close();
    }
  });

  it('passes usage checks to namespace delete', async () => {
    const store = new SqliteMetadataStore(join(tempDir(), 'meta.db'));
    try {
      await store.namespaces.create('busy');
      store.addNamespaceUsageCheck((ns) => (ns === 'busy' ? 'leases' : undefined));
      let caught: unknown;
      await store.namespaces.delete('busy').catch((err: unknown) => (caught = err));
      expect(errorKind(caught)).toBe('failed-precondition');
      expect((caught as Error).message).toBe('namespace "busy" must be empty, but it still has leases');
    } finally {
      store.close();
    }
  });

  it('sees commits made by another connection to the same file', async () => {
    const path = join(tempDir(), 'meta.db');
    const a = new SqliteMetadataStore(path);
    const b = new SqliteMetadataStore(path);
    try {
      await a.namespaces.create('shared');
      expect(await b.namespaces.labels('shared')).toEqual({});
      await b.namespaces.setLabel('shared', 'k', 'v');
      expect(await a.namespaces.labels('shared')).toEqual({ k: 'v' });
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('metadataPlugin', () => {
  const tempDir = useTempDir();

  function initContext(root: string, container: Container): { ctx: InitContext; meta: PluginMeta } {
    const meta: PluginMeta = { platforms: [], exports: {}, capabilities: [] };
    const unused = (): never => {
      throw new Error('not used by the metadata plugin');
    };
    const ctx: InitContext = {
      type: metadataPlugin.type,
      id: metadataPlugin.id,
      uri: `${metadataPlugin.type}.${metadataPlugin.id}`,
      root,
      state: join(root, 'state'),
      config: undefined,
      address: '',
      ttrpcAddress: '',
      logger: silentLogger(),
      container,
      meta,
      getSingle: unused,
      getById: unused,
      getByType: unused,
    };
    return { ctx, meta };
  }

  it('is io.berth.metadata.v1.sqlite and requires nothing', () => {
    expect(metadataPlugin.type).toBe('io.berth.metadata.v1');
    expect(metadataPlugin.id).toBe('sqlite');
    expect(metadataPlugin.requires).toEqual([]);
  });

  it('opens <root>/meta.db in WAL mode, exports its path and binds the tokens', async () => {
    const container = new Container();
    const { ctx, meta } = initContext(tempDir(), container);
    const store = await metadataPlugin.init(ctx);
    try {
      const path = join(tempDir(), 'meta.db');
      expect(store.path).toBe(path);
      expect(existsSync(path)).toBe(true);
      expect(meta.exports.path).toBe(path);
      expect(container.get<MetadataStore>(MetadataStore)).toBe(store);
      expect(container.get<NamespaceStore>(NamespaceStore)).toBe(store.namespaces);
      await store.namespaces.create('default');
    } finally {
      store.close();
    }
    const check = new Database(join(tempDir(), 'meta.db'), { readonly: true });
    try {
      expect(check.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(check.prepare('SELECT name FROM namespaces').pluck().all()).toEqual(['default']);
    } finally {
      check.close();
    }
  });

  it('leaves existing bindings alone', async () => {
    const container = new Container();
    const other = { marker: true };
    container.bind(MetadataStore).toConstantValue(other);
    const store = await metadataPlugin.init(initContext(tempDir(), container).ctx);
    try {
      expect(container.get(MetadataStore)).toBe(other);
      expect(container.get<NamespaceStore>(NamespaceStore)).toBe(store.namespaces);
    } finally {
      store.close();
    }
  });
});
