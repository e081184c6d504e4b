import { sha256Digest } from '../content/digest';
import { commit, failure, useContentStack } from './test-fixtures/content-stack';

describe('namespace delete while the namespace holds resources', () => {
  const stack = useContentStack();
  const namespaces = () => stack().metadata.namespaces;
  const refused = (what: string) => ({
    kind: 'failed-precondition',
    message: `namespace "ns" must be empty, but it still has ${what}`,
  });

  it('is refused for an image, until it is deleted', async () => {
    await stack().images.create('ns', {
      name: 'x:1',
      target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256Digest('x'), size: 1 },
    });
    expect(await failure(() => namespaces().delete('ns'))).toEqual(refused('images'));
    await stack().images.delete('ns', 'x:1');
    await namespaces().delete('ns');
  });

  it('is refused for content, until it is deleted', async () => {
    const digest = await commit(stack().content.forNamespace('ns'), 'blob');
    expect(await failure(() => namespaces().delete('ns'))).toEqual(refused('blobs'));
    await stack().content.forNamespace('ns').delete(digest);
    await namespaces().delete('ns');
  });

  it('is refused for a lease, until it is deleted', async () => {
    await stack().leases.create('ns', { id: 'l' });
    expect(await failure(() => namespaces().delete('ns'))).toEqual(refused('leases'));
    await stack().leases.delete('ns', 'l');
    await namespaces().delete('ns');
  });

  it('names everything that is left', async () => {
    await stack().leases.create('ns', { id: 'l' });
    await commit(stack().content.forNamespace('ns', { lease: 'l' }), 'blob');
    expect(await failure(() => namespaces().delete('ns'))).toEqual(refused('blobs, leases'));
  });

  it('is refused by SQLite itself when no usage check ran', async () => {
    const { metadata } = stack();
    await stack().leases.create('ns', { id: 'l' });
    let caught: unknown;
    try {
      metadata.db.prepare("DELETE FROM namespaces WHERE name = 'ns'").run();
    } catch (err) {
      caught = err;
    }
    expect((caught as { code?: string }).code).toBe('SQLITE_CONSTRAINT_FOREIGNKEY');
  });

  it('takes unfinished ingests with it; the collector aborts their raw data', async () => {
    const writer = await stack().content.forNamespace('ns').writer({ ref: 'partial' });
    await writer.write(Buffer.from('half'));
    await writer.close();
    await namespaces().delete('ns');
    expect(stack().metadata.db.prepare('SELECT count(*) FROM ingests').pluck().get()).toBe(0);
    await stack().gc.collect();
    expect(stack().raw.ingests.size).toBe(0);
  });
});
