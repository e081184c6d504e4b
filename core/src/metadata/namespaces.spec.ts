import { join } from 'node:path';
import { errorKind } from '../errdefs';
import { openMetadataDb, type MetadataDb } from './db';
import { SqliteNamespaceStore } from './namespaces';
import { useTempDir } from './test-fixtures/temp-dir';

async function rejection(promise: Promise<unknown>): Promise<{ kind: string; message: string }> {
  try {
    await promise;
  } catch (err) {
    return { kind: errorKind(err), message: (err as Error).message };
  }
  throw new Error('expected a rejection');
}

describe('SqliteNamespaceStore', () => {
  const tempDir = useTempDir();
  let db: MetadataDb;
  let store: SqliteNamespaceStore;
  beforeEach(() => {
    db = openMetadataDb(join(tempDir(), 'meta.db'));
    store = new SqliteNamespaceStore(db);
  });
  afterEach(() => {
    if (db.open) db.close();
  });

  describe('create', () => {
    it('creates with and without labels', async () => {
      await store.create('default');
      await store.create('k8s.io', { 'containerd.io/defaults/runtime': 'io.containerd.runc.v2' });
      expect(await store.labels('default')).toEqual({});
      expect(await store.labels('k8s.io')).toEqual({ 'containerd.io/defaults/runtime': 'io.containerd.runc.v2' });
    });

    it('refuses a duplicate with AlreadyExists', async () => {
      await store.create('dup', { a: '1' });
      expect(await rejection(store.create('dup', { b: '2' }))).toEqual({
        kind: 'already-exists',
        message: 'namespace "dup": already exists',
      });
      expect(await store.labels('dup')).toEqual({ a: '1' });
    });

    it('refuses a bad name with InvalidArgument and stores nothing', async () => {
      expect(await rejection(store.create('../x'))).toEqual({
        kind: 'invalid-argument',
        message: 'namespace "../x": must match ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$',
      });
      expect(await store.list()).toEqual([]);
    });

    it('refuses a bad label with InvalidArgument and stores nothing', async () => {
      const { kind, message } = await rejection(store.create('ok', { huge: 'x'.repeat(5000) }));
      expect(kind).toBe('invalid-argument');
      expect(message).toMatch(/^label "huge"/);
      expect(await store.list()).toEqual([]);
    });

    it('drops labels with empty values', async () => {
      await store.create('ns', { keep: 'v', drop: '' });
      expect(await store.labels('ns')).toEqual({ keep: 'v' });
    });
  });

  it('labels of a missing namespace is NotFound', async () => {
    expect(await rejection(store.labels('nope'))).toEqual({
      kind: 'not-found',
      message: 'namespace "nope": not found',
    });
  });

  it('lists namespaces sorted by name with their labels', async () => {
    await store.create('zeta', { z: '1' });
    await store.create('alpha');
    await store.create('mid', { b: '2', a: '1' });
    expect(await store.list()).toEqual([
      { name: 'alpha', labels: {} },
      { name: 'mid', labels: { a: '1', b: '2' } },
      { name: 'zeta', labels: { z: '1' } },
    ]);
  });

  it('keeps a __proto__ label as an ordinary label', async () => {
    await store.create('ns', JSON.parse('{"__proto__": "x"}') as Record<string, string>);
    const labels = await store.labels('ns');
    expect(Object.keys(labels)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(labels)).toBe(Object.prototype);
    expect((await store.list())[0].labels).toEqual(labels);
  });

  describe('setLabel', () => {
    it('adds, replaces and, with an empty value, removes a label', async () => {
      await store.create('ns', { a: '1' });
      await store.setLabel('ns', 'b', '2');
      await store.setLabel('ns', 'a', 'one');
      expect(await store.labels('ns')).toEqual({ a: 'one', b: '2' });
      await store.setLabel('ns', 'a', '');
      expect(await store.labels('ns')).toEqual({ b: '2' });
      await store.setLabel('ns', 'never-set', '');
      expect(await store.labels('ns')).toEqual({ b: '2' });
    });

    it('is NotFound for a missing namespace', async () => {
      expect((await rejection(store.setLabel('nope', 'a', '1'))).kind).toBe('not-found');
    });

    it('validates the label', async () => {
      await store.create('ns');
      expect((await rejection(store.setLabel('ns', '', 'v'))).kind).toBe('invalid-argument');
      const tooBig = await rejection(store.setLabel('ns', 'k', 'v'.repeat(4096)));
      expect(tooBig).toEqual({
        kind: 'invalid-argument',
        message: 'label "k": key and value length (4097 bytes) greater than maximum size (4096 bytes)',
      });
      expect(await store.labels('ns')).toEqual({});
    });
  });

  describe('setLabels', () => {
    it('replaces every label', async () => {
      await store.create('ns', { a: '1', b: '2' });
      await store.setLabels('ns', { b: 'two', c: '3', d: '' });
      expect(await store.labels('ns')).toEqual({ b: 'two', c: '3' });
      await store.setLabels('ns', {});
      expect(await store.labels('ns')).toEqual({});
    });

    it('is NotFound for a missing namespace', async () => {
      expect((await rejection(store.setLabels('nope', { a: '1' }))).kind).toBe('not-found');
    });

    it('leaves the old labels when one new label is invalid', async () => {
      await store.create('ns', { a: '1' });
      expect((await rejection(store.setLabels('ns', { b: '2', '': 'x' }))).kind).toBe('invalid-argument');
      expect(await store.labels('ns')).toEqual({ a: '1' });
    });
  });

  describe('delete', () => {
    it('removes the namespace and its labels', async () => {
      await store.create('gone', { a: '1' });
      await store.create('stays');
      await store.delete('gone');
      expect(await store.list()).toEqual([{ name: 'stays', labels: {} }]);
      expect(db.prepare('SELECT count(*) FROM namespace_labels').pluck().get()).toBe(0);
      // The name is free again.
      await store.create('gone');
    });

    it('is NotFound for a missing namespace', async () => {
      expect(await rejection(store.delete('nope'))).toEqual({
        kind: 'not-found',
        message: 'namespace "nope": not found',
      });
    });

    it('is FailedPrecondition while a usage check reports use, naming every kind', async () => {
      await store.create('busy');
      await store.create('idle');
      const seen: string[] = [];
      store.addUsageCheck((ns) => {
        seen.push(ns);
        return ns === 'busy' ? 'images' : undefined;
      });
      store.addUsageCheck((ns) => (ns === 'busy' ? 'containers' : undefined));
      expect(await rejection(store.delete('busy'))).toEqual({
        kind: 'failed-precondition',
        message: 'namespace "busy" must be empty, but it still has images, containers',
      });
      expect(await store.labels('busy')).toEqual({});
      await store.delete('idle');
      expect(seen).toEqual(['busy', 'idle']);
    });

    it('runs usage checks inside the transaction, against the same db', async () => {
      db.exec(`CREATE TABLE widgets (
        namespace TEXT NOT NULL REFERENCES namespaces (name), id TEXT NOT NULL) STRICT`);
      await store.create('ns');
      db.prepare("INSERT INTO widgets VALUES ('ns', 'w1')").run();
      const countWidgets = db.prepare('SELECT count(*) FROM widgets WHERE namespace = ?').pluck();
      store.addUsageCheck((ns) => {
        expect(db.inTransaction).toBe(true);
        return (countWidgets.get(ns) as number) > 0 ? 'widgets' : undefined;
      });
      expect((await rejection(store.delete('ns'))).message).toMatch(/still has widgets$/);
      db.prepare('DELETE FROM widgets').run();
      await store.delete('ns');
    });

    it('falls back to FailedPrecondition when a referencing table has no usage check', async () => {
      db.exec(`CREATE TABLE widgets (
        namespace TEXT NOT NULL REFERENCES namespaces (name), id TEXT NOT NULL) STRICT`);
      await store.create('ns', { a: '1' });
      db.prepare("INSERT INTO widgets VALUES ('ns', 'w1')").run();
      expect(await rejection(store.delete('ns'))).toEqual({
        kind: 'failed-precondition',
        message: 'namespace "ns" must be empty, but it still has resources',
      });
      expect(await store.labels('ns')).toEqual({ a: '1' });
    });

    it('propagates a throwing usage check and keeps the namespace', async () => {
      await store.create('ns');
      store.addUsageCheck(() => {
        throw new Error('check broke');
      });
      await expect(store.delete('ns')).rejects.toThrow('check broke');
      expect(await store.list()).toHaveLength(1);
    });
  });

  it('records created_at and bumps updated_at on label changes', async () => {
    const row = db.prepare('SELECT created_at, updated_at FROM namespaces WHERE name = ?');
    const before = Date.now();
    await store.create('ns');
    const created = row.get('ns') as { created_at: number; updated_at: number };
    expect(created.created_at).toBeGreaterThanOrEqual(before);
    expect(created.updated_at).toBe(created.created_at);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await store.setLabel('ns', 'a', '1');
    const updated = row.get('ns') as { created_at: number; updated_at: number };
    expect(updated.created_at).toBe(created.created_at);
    expect(updated.updated_at).toBeGreaterThan(created.updated_at);
  });

  it('rejects with Unavailable once the db is closed', async () => {
    db.close();
    expect((await rejection(store.list())).kind).toBe('unavailable');
    expect((await rejection(store.create('ns'))).kind).toBe('unavailable');
  });
});
