import { pluginUri, z } from '@berth/core';
import { BERTHD_BINARY, builtinPlugins, withConfigDefaults } from './builtins';

describe('berthd builtins', () => {
  const runtime = builtinPlugins.find((r) => pluginUri(r.type, r.id) === 'io.berth.runtime.v2.task')!;

  it('gives the runtime v2 plugin berthd itself as its publish binary', () => {
    expect(BERTHD_BINARY).toMatch(/cmd\/berthd\/bin\/berthd\.js$/);
    expect(runtime.config!.parse({})).toMatchObject({ publish_binary: BERTHD_BINARY });
    expect(runtime.config!.parse(undefined)).toMatchObject({ publish_binary: BERTHD_BINARY });
  });

  it('lets the config file override it, and still validates the table', () => {
    expect(runtime.config!.parse({ publish_binary: '/usr/local/bin/berthd' })).toMatchObject({ publish_binary: '/usr/local/bin/berthd' });
    expect(runtime.config!.safeParse({ no_such_key: 1 }).success).toBe(false);
    expect(runtime.config!.safeParse('not a table').success).toBe(false);
  });

  it('leaves schema-less registrations alone', () => {
    const reg = { type: 'io.example.v1', id: 'x', init: () => undefined };
    expect(withConfigDefaults(reg, { a: 1 })).toBe(reg);
    const schema = z.object({ a: z.number().default(0), b: z.string().default('') });
    expect(withConfigDefaults({ ...reg, config: schema }, { a: 5 }).config!.parse({ b: 'x' })).toEqual({ a: 5, b: 'x' });
  });
});
