import { runtimeV2ConfigSchema, runtimeV2ConfigSchemaWith } from './config';

describe('runtime v2 config', () => {
  it('has containerd-like defaults', () => {
    expect(runtimeV2ConfigSchema.parse({})).toEqual({
      default_runtime: 'io.containerd.runc.v2',
      shim_debug: false,
      publish_binary: '',
      runtimes: {},
    });
  });

  it('accepts named runtimes with an absolute shim and an OCI runtime binary', () => {
    const parsed = runtimeV2ConfigSchema.parse({
      runtimes: { crun: { shim: '/usr/bin/containerd-shim-runc-v2', binary_name: 'crun' }, plain: {} },
    });
    expect(parsed.runtimes.crun).toEqual({ shim: '/usr/bin/containerd-shim-runc-v2', binary_name: 'crun' });
    expect(parsed.runtimes.plain).toEqual({});
  });

  it.each([
    [{ runtimes: { x: { shim: 'relative/shim' } } }, /absolute/],
    [{ runtimes: { x: { binary: 'typo' } } }, /binary/],
    [{ unknown_key: 1 }, /unknown_key/],
    [{ shim_debug: 'yes' }, /boolean/],
  ])('rejects %j', (input, message) => {
    const result = runtimeV2ConfigSchema.safeParse(input);
    expect(result.success).toBe(false);
    expect(JSON.stringify(result.error?.issues)).toMatch(message);
  });

  it('lets a host set the publish binary default, still overridable and still strict', () => {
    const schema = runtimeV2ConfigSchemaWith({ publishBinary: '/usr/bin/berthd' });
    expect(schema.parse({}).publish_binary).toBe('/usr/bin/berthd');
    expect(schema.parse({ publish_binary: '/opt/other' }).publish_binary).toBe('/opt/other');
    expect(schema.safeParse({ nope: true }).success).toBe(false);
  });
});
