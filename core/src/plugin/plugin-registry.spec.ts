import { errorKind } from '../errdefs';
import { PluginCycleError, PluginRegistry } from './plugin-registry';
import type { PluginRegistration } from './types';

function plugin(type: string, id: string, requires?: string[]): PluginRegistration {
  return { type, id, requires, init: () => ({}) };
}

const uris = (regs: PluginRegistration[]) => regs.map((r) => `${r.type}.${r.id}`);

describe('PluginRegistry.register', () => {
  it('accepts berth and third-party reverse-DNS types', () => {
    const registry = new PluginRegistry();
    registry.register(plugin('io.berth.snapshotter.v1', 'overlayfs'));
    registry.register(plugin('com.example.widget.v2beta1', 'my-widget_1'));
    expect(registry.uris()).toEqual(['io.berth.snapshotter.v1.overlayfs', 'com.example.widget.v2beta1.my-widget_1']);
  });

  it.each([
    ['empty type', plugin('', 'x'), /type is empty/],
    ['empty id', plugin('io.berth.snapshotter.v1', ''), /id is empty/],
    ['type without version', plugin('io.berth.snapshotter', 'x'), /reverse-DNS name with a version/],
    ['type without prefix', plugin('snapshotter.v1', 'x'), /reverse-DNS/],
    ['upper-case type', plugin('io.Berth.snapshotter.v1', 'x'), /reverse-DNS/],
    ['id with a slash', plugin('io.berth.snapshotter.v1', '../etc'), /id "..\/etc"/],
    ['own type required', plugin('io.berth.snapshotter.v1', 'x', ['io.berth.snapshotter.v1']), /requires its own type/],
    ['"*" with others', plugin('io.berth.grpc.v1', 'x', ['*', 'io.berth.content.v1']), /"\*" must be its only requirement/],
    ['malformed requirement', plugin('io.berth.grpc.v1', 'x', ['content']), /requires "content", which is not a plugin type/],
  ])('rejects %s', (_name, reg, message) => {
    const registry = new PluginRegistry();
    expect(() => registry.register(reg)).toThrow(message);
    try {
      registry.register(reg);
    } catch (err) {
      expect(errorKind(err)).toBe('invalid-argument');
    }
  });

  it('rejects a second plugin with the same URI as AlreadyExists', () => {
    const registry = PluginRegistry.from([plugin('io.berth.content.v1', 'local')]);
    let caught: unknown;
    try {
      registry.register(plugin('io.berth.content.v1', 'local'));
    } catch (err) {
      caught = err;
    }
    expect(errorKind(caught)).toBe('already-exists');
    expect((caught as Error).message).toContain('io.berth.content.v1.local');
  });
});

describe('PluginRegistry.graph', () => {
  it('puts every plugin after all plugins of the types it requires, else keeping registration order', () => {
    const registry = PluginRegistry.from([
      plugin('io.berth.grpc.v1', 'snapshots', ['io.berth.service.v1']),
      plugin('io.berth.service.v1', 'snapshots', ['io.berth.snapshotter.v1', 'io.berth.metadata.v1']),
      plugin('io.berth.snapshotter.v1', 'overlayfs'),
      plugin('io.berth.metadata.v1', 'sqlite', ['io.berth.content.v1']),
      plugin('io.berth.snapshotter.v1', 'native'),
      plugin('io.berth.content.v1', 'local'),
    ]);
    expect(uris(registry.graph())).toEqual([
      'io.berth.snapshotter.v1.overlayfs',
      'io.berth.content.v1.local',
      'io.berth.metadata.v1.sqlite',
      'io.berth.snapshotter.v1.native',
      'io.berth.service.v1.snapshots',
      'io.berth.grpc.v1.snapshots',
    ]);
  });

  it('puts "*" plugins after every other plugin, in registration order among themselves', () => {
    const registry = PluginRegistry.from([
      plugin('io.berth.internal.v1', 'last-a', ['*']),
      plugin('io.berth.content.v1', 'local'),
      plugin('io.berth.internal.v1', 'last-b', ['*']),
      plugin('io.berth.grpc.v1', 'content', ['io.berth.content.v1']),
    ]);
    expect(uris(registry.graph())).toEqual([
      'io.berth.content.v1.local',
      'io.berth.grpc.v1.content',
      'io.berth.internal.v1.last-a',
      'io.berth.internal.v1.last-b',
    ]);
  });

  it('leaves out disabled plugins, and does not fail on a type nobody provides', () => {
    const registry = PluginRegistry.from([
      plugin('io.berth.content.v1', 'local'),
      plugin('io.berth.metadata.v1', 'sqlite', ['io.berth.content.v1']),
      plugin('io.berth.grpc.v1', 'cri', ['io.berth.runtime.v2']),
    ]);
    expect(uris(registry.graph(new Set(['io.berth.content.v1.local'])))).toEqual([
      'io.berth.metadata.v1.sqlite',
      'io.berth.grpc.v1.cri',
    ]);
  });

  it('names the cycle in the error', () => {
    const registry = PluginRegistry.from([
      plugin('io.berth.content.v1', 'local'),
      plugin('io.berth.service.v1', 'a', ['io.berth.grpc.v1']),
      plugin('io.berth.grpc.v1', 'b', ['io.berth.snapshotter.v1']),
      plugin('io.berth.snapshotter.v1', 'c', ['io.berth.service.v1']),
    ]);
    let caught: unknown;
    try {
      registry.graph();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PluginCycleError);
    expect(errorKind(caught)).toBe('invalid-argument');
    expect((caught as Error).message).toBe(
      'plugin dependency cycle: io.berth.service.v1.a -> io.berth.grpc.v1.b -> io.berth.snapshotter.v1.c -> io.berth.service.v1.a',
    );
    expect((caught as PluginCycleError).cycle).toHaveLength(4);
  });

  it('reports a plugin that requires the type of a "*" plugin as a cycle', () => {
    const registry = PluginRegistry.from([
      plugin('io.berth.internal.v1', 'all', ['*']),
      plugin('io.berth.grpc.v1', 'x', ['io.berth.internal.v1']),
    ]);
    expect(() => registry.graph()).toThrow(
      'plugin dependency cycle: io.berth.internal.v1.all -> io.berth.grpc.v1.x -> io.berth.internal.v1.all',
    );
  });

  it('breaks a cycle when one of its plugins is disabled', () => {
    const registry = PluginRegistry.from([
      plugin('io.berth.service.v1', 'a', ['io.berth.grpc.v1']),
      plugin('io.berth.grpc.v1', 'b', ['io.berth.service.v1']),
    ]);
    expect(uris(registry.graph(new Set(['io.berth.grpc.v1.b'])))).toEqual(['io.berth.service.v1.a']);
  });
});
