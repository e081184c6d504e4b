import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { z } from 'zod';
import { errorKind } from '../errdefs';
import type { PluginRegistration } from '../plugin/types';
import {
  ConfigError,
  defaultConfig,
  loadConfigFile,
  parseConfig,
  pluginDefaults,
  renderConfig,
  resolveTtrpcAddress,
  validatePluginUris,
} from './index';

const FILE = '/etc/berth/config.toml';

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

const overlay: PluginRegistration = {
  type: 'io.berth.snapshotter.v1',
  id: 'overlayfs',
  config: z
    .object({
      upperdir_label: z.boolean().default(false),
      mount_options: z.array(z.string()).default([]),
      sync_remove: z.boolean().default(false),
      slow_chown: z.object({ enabled: z.boolean().default(false), limit: z.number().int().default(10) }).default({}),
      optional_note: z.string().optional(),
    })
    .strict(),
  init: () => ({}),
};
const cri: PluginRegistration = {
  type: 'io.berth.cri.v1',
  id: 'cri',
  config: z.object({ sandbox_image: z.string().default('registry.k8s.io/pause:3.10'), max_concurrent_downloads: z.number().default(3) }),
  init: () => ({}),
};
const noSchema: PluginRegistration = { type: 'io.berth.content.v1', id: 'local', init: () => ({}) };
const needsInput: PluginRegistration = {
  type: 'io.berth.snapshotter.v1',
  id: 'proxy',
  config: z.object({ address: z.string() }),
  init: () => ({}),
};

describe('defaultConfig', () => {
  it('has containerd-shaped defaults', () => {
    const config = defaultConfig();
    expect(config).toEqual({
      version: 2,
      root: '/var/lib/berth',
      state: '/run/berth',
      plugin_modules: [],
      disabled_plugins: [],
      required_plugins: [],
      grpc: { address: '/run/berth/berth.sock', uid: 0, gid: 0 },
      ttrpc: { address: '' },
      debug: { level: 'info' },
      plugins: {},
      proxy_plugins: {},
    });
    expect(resolveTtrpcAddress(config)).toBe('/run/berth/berth.sock.ttrpc');
  });

  it('is a fresh object each time', () => {
    const a = defaultConfig();
    a.disabled_plugins.push('x');
    expect(defaultConfig().disabled_plugins).toEqual([]);
  });
});

describe('renderConfig', () => {
  it('round-trips the defaults through render and parse', () => {
    const text = renderConfig(defaultConfig(), {});
    expect(parseConfig(text, 'rendered')).toEqual(defaultConfig());
  });

  it('renders each plugin default table under its URI, and they parse back', () => {
    const defaults = pluginDefaults([overlay, cri, noSchema, needsInput]);
    expect(Object.keys(defaults)).toEqual(['io.berth.snapshotter.v1.overlayfs', 'io.berth.cri.v1.cri']);
    const text = renderConfig(defaultConfig(), defaults);
    // Keys keep the schema's order; tables are sorted by URI.
    expect(text).toContain(
      '[plugins."io.berth.cri.v1.cri"]\nsandbox_image = "registry.k8s.io/pause:3.10"\nmax_concurrent_downloads = 3\n',
    );
    expect(text).toContain('[plugins."io.berth.snapshotter.v1.overlayfs".slow_chown]\nenabled = false\nlimit = 10');
    expect(text.indexOf('[grpc]')).toBeLessThan(text.indexOf('[ttrpc]'));
    expect(text.indexOf('[debug]')).toBeLessThan(text.indexOf('[plugins.'));
    expect(text.indexOf('io.berth.cri.v1.cri')).toBeLessThan(text.indexOf('io.berth.snapshotter.v1.overlayfs'));
    expect(text.startsWith('version = 2\nroot = "/var/lib/berth"\n')).toBe(true);

    const parsed = parseConfig(text, 'rendered');
    expect(parsed.plugins).toEqual(defaults);
    // Each plugin's schema accepts what was rendered for it.
    expect(overlay.config!.parse(parsed.plugins['io.berth.snapshotter.v1.overlayfs'])).toEqual(
      defaults['io.berth.snapshotter.v1.overlayfs'],
    );
  });

  it('merges the config file tables over the plugin tables and keeps proxy plugins', () => {
    const config = parseConfig(
      [
        'disabled_plugins = ["io.berth.cri.v1.cri"]',
        '[plugins."io.berth.snapshotter.v1.overlayfs".slow_chown]',
        'limit = 99',
        '[proxy_plugins.stargz]',
        'type = "snapshot"',
        'address = "/run/stargz.sock"',
      ].join('\n'),
      FILE,
    );
    const text = renderConfig(config, pluginDefaults([overlay]));
    const parsed = parseConfig(text, 'rendered');
    expect(parsed.plugins['io.berth.snapshotter.v1.overlayfs']).toMatchObject({
      sync_remove: false,
      slow_chown: { enabled: false, limit: 99 },
    });
    expect(parsed.proxy_plugins).toEqual({ stargz: { type: 'snapshot', address: '/run/stargz.sock' } });
    expect(parsed.disabled_plugins).toEqual(['io.berth.cri.v1.cri']);
  });
});

describe('parseConfig', () => {
  it('fills defaults around what the file sets', () => {
    const config = parseConfig(
      ['version = 2', 'root = "/data/berth"', '[grpc]', 'gid = 1000', '[debug]', 'level = "debug"'].join('\n'),
      FILE,
    );
    expect(config.root).toBe('/data/berth');
    expect(config.state).toBe('/run/berth');
    expect(config.grpc).toEqual({ address: '/run/berth/berth.sock', uid: 0, gid: 1000 });
    expect(config.debug.level).toBe('debug');
  });

  it('accepts an empty file', () => {
    expect(parseConfig('', FILE)).toEqual(defaultConfig());
  });

  it('reports an unknown key with its path and the file', () => {
    const err = errorOf(() => parseConfig('[grpc]\nadress = "/tmp/x.sock"\n', FILE));
    expect(err).toBeInstanceOf(ConfigError);
    expect(errorKind(err)).toBe('invalid-argument');
    expect(err.message).toBe('/etc/berth/config.toml: unknown key "grpc.adress"');
  });

  it('reports an unknown top-level key', () => {
    expect(errorOf(() => parseConfig('oom_score = -999\n', FILE)).message).toBe(
      '/etc/berth/config.toml: unknown key "oom_score"',
    );
  });

  it('reports a wrong type with the file and key path', () => {
    expect(errorOf(() => parseConfig('[grpc]\naddress = 5\n', FILE)).message).toBe(
      '/etc/berth/config.toml: grpc.address: expected string, got number',
    );
  });

  it('reports every problem at once, one line each', () => {
    const err = errorOf(() =>
      parseConfig(
        [
          'version = 3',
          'root = "relative/path"',
          'disabled_plugins = ["a", 7]',
          'plugin_modules = ["./local-plugin"]',
          '[grpc]',
          'uid = -1',
          '[debug]',
          'level = "verbose"',
          '[plugins]',
          'x = 1',
          '[proxy_plugins.p]',
          'type = "runtime"',
        ].join('\n'),
        FILE,
      ),
    ) as ConfigError;
    expect(err.issues.map((i) => i.path)).toEqual([
      'version',
      'root',
      'plugin_modules[0]',
      'disabled_plugins[1]',
      'grpc.uid',
      'debug.level',
      'plugins.x',
      'proxy_plugins.p.type',
      'proxy_plugins.p.address',
    ]);
    expect(err.message.split('\n')).toEqual([
      `${FILE}: version: expected 2, got 3`,
      `${FILE}: root: expected an absolute path`,
      `${FILE}: plugin_modules[0]: expected an npm package name or an absolute path`,
      `${FILE}: disabled_plugins[1]: expected string, got number`,
      `${FILE}: grpc.uid: expected a number >= 0, got -1`,
      `${FILE}: debug.level: expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "verbose"`,
      `${FILE}: plugins.x: expected table, got number`,
      `${FILE}: proxy_plugins.p.type: expected one of "snapshot", "content", "diff", got "runtime"`,
      `${FILE}: proxy_plugins.p.address: missing required key (expected string)`,
    ]);
  });

  it('refuses the same directory for root and state', () => {
    expect(errorOf(() => parseConfig('root = "/srv/berth"\nstate = "/srv/berth/"\n', FILE)).message).toBe(
      `${FILE}: state: root and state must be different paths`,
    );
  });

  it('names the file and line of a TOML syntax error', () => {
    const err = errorOf(() => parseConfig('version = 2\n[grpc]\naddress = \n', FILE)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.issues[0].line).toBe(3);
    expect(err.message).toMatch(/^\/etc\/berth\/config\.toml:3:\d+: invalid TOML: /);
    expect(err.message).not.toContain('\n');
  });
});

describe('loadConfigFile', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-config-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('reads and parses the file, naming it in errors', () => {
    const file = path.join(tmp, 'config.toml');
    fs.writeFileSync(file, 'state = "/run/other"\n');
    expect(loadConfigFile(file).state).toBe('/run/other');
    fs.writeFileSync(file, '[ttrpc]\naddress = false\n');
    expect(errorOf(() => loadConfigFile(file)).message).toBe(`${file}: ttrpc.address: expected string, got boolean`);
  });

  it('reports a missing file as NotFound', () => {
    const err = errorOf(() => loadConfigFile(path.join(tmp, 'nope.toml')));
    expect(errorKind(err)).toBe('not-found');
    expect(err.message).toContain('nope.toml');
  });
});

describe('validatePluginUris', () => {
  const known = ['io.berth.snapshotter.v1.overlayfs', 'io.berth.cri.v1.cri', 'io.berth.snapshotter.v1.stargz'];

  it('accepts tables and lists that name known plugins', () => {
    const config = parseConfig(
      [
        'disabled_plugins = ["io.berth.cri.v1.cri"]',
        'required_plugins = ["io.berth.snapshotter.v1.overlayfs"]',
        '[plugins."io.berth.snapshotter.v1.overlayfs"]',
        'sync_remove = true',
      ].join('\n'),
      FILE,
    );
    expect(() => validatePluginUris(config, known, FILE)).not.toThrow();
  });

  it('names each unknown plugin URI, suggesting a near miss', () => {
    const config = parseConfig(
      [
        'disabled_plugins = ["io.berth.cri.v1.cri", "io.berth.snapshotter.v1.btrfs"]',
        'required_plugins = ["io.berth.snapshoter.v1.overlayfs"]',
        '[plugins."io.berth.snapshotter.v1.overlay"]',
        'sync_remove = true',
      ].join('\n'),
      FILE,
    );
    const err = errorOf(() => validatePluginUris(config, known, FILE));
    expect(errorKind(err)).toBe('invalid-argument');
    expect(err.message.split('\n')).toEqual([
      `${FILE}: plugins."io.berth.snapshotter.v1.overlay": no such plugin "io.berth.snapshotter.v1.overlay" ` +
        '(did you mean "io.berth.snapshotter.v1.overlayfs"?)',
      `${FILE}: disabled_plugins[1]: no such plugin "io.berth.snapshotter.v1.btrfs"`,
      `${FILE}: required_plugins[0]: no such plugin "io.berth.snapshoter.v1.overlayfs" ` +
        '(did you mean "io.berth.snapshotter.v1.overlayfs"?)',
    ]);
  });
});
