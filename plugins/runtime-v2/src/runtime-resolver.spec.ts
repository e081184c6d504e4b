import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { packAny, runcOptionsV1, unpackAny } from '@berth/proto';
import { RuntimeResolver, shimBinaryName, withBinaryName } from './runtime-resolver';

describe('shimBinaryName', () => {
  it.each([
    ['io.containerd.runc.v2', 'containerd-shim-runc-v2'],
    ['io.containerd.runsc.v1', 'containerd-shim-runsc-v1'],
    ['example.kata.v2', 'containerd-shim-kata-v2'],
  ])('%s → %s', (runtime, binary) => {
    expect(shimBinaryName(runtime)).toBe(binary);
  });

  it.each(['runc', 'io.containerd..v2', 'io.containerd.runc.', 'a b.c'])('rejects %j', (runtime) => {
    expect(() => shimBinaryName(runtime)).toThrow(expect.objectContaining({ kind: 'invalid-argument' }));
  });
});

describe('RuntimeResolver', () => {
  let dir: string;
  let bin: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-rtv2-resolve-'));
    bin = join(dir, 'bin');
    mkdirSync(bin);
    for (const name of ['containerd-shim-fake-v2', 'my-shim']) {
      writeFileSync(join(bin, name), '#!/bin/sh\n');
      chmodSync(join(bin, name), 0o755);
    }
    writeFileSync(join(bin, 'containerd-shim-noexec-v2'), '');
    chmodSync(join(bin, 'containerd-shim-noexec-v2'), 0o644);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function resolver(runtimes = {}) {
    return new RuntimeResolver({ defaultRuntime: 'io.containerd.fake.v2', runtimes, searchPath: `relative/dir::${bin}` });
  }

  it('finds the shim of a runtime name on the search path, and uses the default for an empty name', async () => {
    expect(await resolver().resolve('io.containerd.fake.v2')).toEqual({
      name: 'io.containerd.fake.v2',
      shimPath: join(bin, 'containerd-shim-fake-v2'),
      binaryName: undefined,
    });
    expect((await resolver().resolve('')).name).toBe('io.containerd.fake.v2');
    expect((await resolver().resolve(undefined)).shimPath).toBe(join(bin, 'containerd-shim-fake-v2'));
  });

  it('uses an absolute path as is', async () => {
    expect((await resolver().resolve(join(bin, 'my-shim'))).shimPath).toBe(join(bin, 'my-shim'));
  });

  it('uses the runtimes table: its shim and its OCI runtime binary', async () => {
    const resolved = await resolver({ fast: { shim: join(bin, 'my-shim'), binary_name: '/usr/bin/crun' } }).resolve('fast');
    expect(resolved).toEqual({ name: 'fast', shimPath: join(bin, 'my-shim'), binaryName: '/usr/bin/crun' });
    const derived = await resolver({ 'io.containerd.fake.v2': { binary_name: 'runc' } }).resolve('io.containerd.fake.v2');
    expect(derived).toEqual({ name: 'io.containerd.fake.v2', shimPath: join(bin, 'containerd-shim-fake-v2'), binaryName: 'runc' });
  });

  it('names what is missing', async () => {
    await expect(resolver().resolve('io.containerd.nosuch.v2')).rejects.toMatchObject({
      kind: 'not-found',
      message: 'runtime io.containerd.nosuch.v2: shim binary containerd-shim-nosuch-v2 not found in PATH',
    });
    await expect(resolver().resolve('io.containerd.noexec.v2')).rejects.toMatchObject({ kind: 'not-found' });
    await expect(resolver().resolve(join(dir, 'missing'))).rejects.toMatchObject({ kind: 'not-found' });
    await expect(resolver().resolve(bin)).rejects.toMatchObject({ kind: 'not-found' });
    await expect(resolver().resolve('relative/shim')).rejects.toMatchObject({ kind: 'invalid-argument' });
    await expect(resolver().resolve('runc')).rejects.toMatchObject({ kind: 'invalid-argument' });
    await expect(resolver({ bad: { shim: join(dir, 'gone') } }).resolve('bad')).rejects.toMatchObject({ kind: 'not-found' });
  });
});

describe('withBinaryName', () => {
  const decode = (any: { typeUrl: string; value: Uint8Array } | undefined) =>
    unpackAny({ typeUrl: any!.typeUrl, value: Buffer.from(any!.value) }, runcOptionsV1.Options);

  it('leaves options alone without a configured binary', () => {
    const options = packAny(runcOptionsV1.Options, runcOptionsV1.Options.fromPartial({ systemdCgroup: true }));
    expect(withBinaryName(options, undefined)).toBe(options);
    expect(withBinaryName(undefined, undefined)).toBeUndefined();
  });

  it('makes runc options naming the binary when there are none', () => {
    const made = withBinaryName(undefined, '/usr/bin/crun');
    expect(made?.typeUrl).toBe('containerd.runc.v1.Options');
    expect(decode(made).binaryName).toBe('/usr/bin/crun');
  });

  it('fills an empty binary_name and keeps the other fields; a set one wins', () => {
    const options = packAny(runcOptionsV1.Options, runcOptionsV1.Options.fromPartial({ systemdCgroup: true, root: '/r' }));
    expect(decode(withBinaryName(options, 'crun'))).toMatchObject({ binaryName: 'crun', systemdCgroup: true, root: '/r' });
    const named = packAny(runcOptionsV1.Options, runcOptionsV1.Options.fromPartial({ binaryName: 'runc' }));
    expect(decode(withBinaryName(named, 'crun')).binaryName).toBe('runc');
  });

  it('leaves options of other types alone', () => {
    const other = { typeUrl: 'example.Options', value: new Uint8Array([1, 2]) };
    expect(withBinaryName(other, 'crun')).toBe(other);
  });
});
