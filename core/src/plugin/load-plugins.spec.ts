import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { z } from 'zod';
import { parseConfig } from '../config/config-file';
import { errorKind } from '../errdefs';
import { ContainerModule, createContainer, inject, injectable, pluginToken, PluginSet, PluginSkipError } from './index';
import { loadPlugins, LoadPluginsOptions } from './load-plugins';
import type { InitContext, PluginRegistration } from './types';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-plugins-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function load(registrations: PluginRegistration[], extra: Partial<LoadPluginsOptions> = {}) {
  return loadPlugins({ registrations, root: path.join(tmp, 'root'), state: path.join(tmp, 'state'), ...extra });
}

/** A plugin that notes its init in `log` and returns `{ uri }`. */
function plugin(
  type: string,
  id: string,
  log: string[],
  extra: Partial<PluginRegistration> = {},
): PluginRegistration {
  return {
    type,
    id,
    init: (ctx) => {
      log.push(ctx.uri);
      return { uri: ctx.uri };
    },
    ...extra,
  };
}

const CONTENT = 'io.berth.content.v1';
const METADATA = 'io.berth.metadata.v1';
const SERVICE = 'io.berth.service.v1';
const SNAPSHOTTER = 'io.berth.snapshotter.v1';

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('loadPlugins', () => {
  it('initialises in dependency order and gives each plugin its own root and state', async () => {
    const log: string[] = [];
    let seen: InitContext | undefined;
    const set = await load(
      [
        plugin(SERVICE, 'images', log, { requires: [METADATA] }),
        plugin(METADATA, 'sqlite', log, {
          requires: [CONTENT],
          init: (ctx) => {
            log.push(ctx.uri);
            seen = ctx;
            return { uri: ctx.uri };
          },
        }),
        plugin(CONTENT, 'local', log),
      ],
      { address: '/run/x/berth.sock' },
    );
    expect(log).toEqual([`${CONTENT}.local`, `${METADATA}.sqlite`, `${SERVICE}.images`]);
    expect(set.records().map((r) => [r.uri, r.status])).toEqual([
      [`${CONTENT}.local`, 'ok'],
      [`${METADATA}.sqlite`, 'ok'],
      [`${SERVICE}.images`, 'ok'],
    ]);
    expect(seen?.root).toBe(path.join(tmp, 'root', `${METADATA}.sqlite`));
    expect(seen?.state).toBe(path.join(tmp, 'state', `${METADATA}.sqlite`));
    expect(fs.statSync(seen!.root).isDirectory()).toBe(true);
    expect(fs.statSync(seen!.state).mode & 0o777).toBe(0o700);
    expect(seen?.address).toBe('/run/x/berth.sock');
    expect(seen?.ttrpcAddress).toBe('/run/x/berth.sock.ttrpc');
  });

  it('lets init see only the plugins that loaded before it', async () => {
    const found: Record<string, unknown> = {};
    const set = await load([
      plugin(CONTENT, 'local', []),
      {
        type: METADATA,
        id: 'sqlite',
        requires: [CONTENT],
        init: (ctx) => {
          found.single = ctx.getSingle(CONTENT);
          found.byId = ctx.getById(CONTENT, 'local');
          found.byType = [...ctx.getByType(CONTENT).keys()];
          found.later = (() => {
            try {
              return ctx.getById(SERVICE, 'later');
            } catch (err) {
              return errorKind(err);
            }
          })();
          return {};
        },
      },
      plugin(SERVICE, 'later', [], { requires: [METADATA] }),
    ]);
    expect(found.single).toEqual({ uri: `${CONTENT}.local` });
    expect(found.byId).toBe(found.single);
    expect(found.byType).toEqual(['local']);
    expect(found.later).toBe('not-found');
    expect(set.getById(SERVICE, 'later')).toEqual({ uri: `${SERVICE}.later` });
  });

  it('initialises a "*" plugin last, seeing every other plugin', async () => {
    let seen: string[] = [];
    const set = await load([
      {
        type: 'io.berth.internal.v1',
        id: 'everything',
        requires: ['*'],
        init: (ctx) => {
          seen = [...ctx.getByType(SNAPSHOTTER).keys(), ...ctx.getByType(SERVICE).keys()];
          return {};
        },
      },
      plugin(SERVICE, 'images', [], { requires: [SNAPSHOTTER] }),
      plugin(SNAPSHOTTER, 'native', []),
    ]);
    expect(seen).toEqual(['native', 'images']);
    expect(set.records().map((r) => r.id)).toEqual(['native', 'images', 'everything']);
  });

  it('getSingle refuses when several plugins of the type are loaded', async () => {
    const set = await load([plugin(SNAPSHOTTER, 'a', []), plugin(SNAPSHOTTER, 'b', [])]);
    expect(() => set.getSingle(SNAPSHOTTER)).toThrow(/more than one plugin of type io.berth.snapshotter.v1/);
    expect([...set.getByType(SNAPSHOTTER).keys()]).toEqual(['a', 'b']);
  });

  it('records a throwing init as an error and loads the others', async () => {
    const log: string[] = [];
    const set = await load([
      plugin(SNAPSHOTTER, 'broken', log, {
        init: () => {
          throw new Error('disk on fire');
        },
      }),
      plugin(SNAPSHOTTER, 'native', log),
      plugin(CONTENT, 'local', log, { init: async () => Promise.reject(new Error('async failure')) }),
    ]);
    expect(log).toEqual([`${SNAPSHOTTER}.native`]);
    const broken = set.record(`${SNAPSHOTTER}.broken`);
    expect(broken?.status).toBe('error');
    expect(broken?.error).toBe('disk on fire');
    expect(set.record(`${CONTENT}.local`)).toMatchObject({ status: 'error', error: 'async failure' });
    expect(set.record(`${SNAPSHOTTER}.native`)?.status).toBe('ok');
    expect(errorKind(await rejection(Promise.resolve().then(() => set.getById(SNAPSHOTTER, 'broken'))))).toBe(
      'not-found',
    );
  });

  it('records a PluginSkipError as skipped with its reason, also when wrapped', async () => {
    const set = await load([
      plugin(SNAPSHOTTER, 'btrfs', [], {
        init: () => {
          throw new PluginSkipError('/var/lib/berth is not on btrfs');
        },
      }),
      plugin(SNAPSHOTTER, 'zfs', [], {
        init: () => {
          throw new Error('zfs unusable', { cause: new PluginSkipError('no zfs module') });
        },
      }),
    ]);
    expect(set.record(`${SNAPSHOTTER}.btrfs`)).toMatchObject({
      status: 'skipped',
      error: '/var/lib/berth is not on btrfs',
    });
    expect(set.record(`${SNAPSHOTTER}.zfs`)).toMatchObject({ status: 'skipped', error: 'zfs unusable' });
  });

  it('does not initialise disabled plugins and records them as disabled', async () => {
    const log: string[] = [];
    const set = await load([plugin(SNAPSHOTTER, 'overlayfs', log), plugin(SNAPSHOTTER, 'native', log)], {
      disabledPlugins: [`${SNAPSHOTTER}.overlayfs`],
    });
    expect(log).toEqual([`${SNAPSHOTTER}.native`]);
    expect(set.records().map((r) => [r.id, r.status])).toEqual([
      ['native', 'ok'],
      ['overlayfs', 'disabled'],
    ]);
    expect(fs.existsSync(path.join(tmp, 'root', `${SNAPSHOTTER}.overlayfs`))).toBe(false);
  });

  it('fails a plugin whose required type has no loaded plugin, naming the type', async () => {
    const log: string[] = [];
    const set = await load(
      [
        plugin(SERVICE, 'snapshots', log, { requires: [SNAPSHOTTER] }),
        plugin(SERVICE, 'content', log, { requires: [CONTENT] }),
        plugin(SERVICE, 'images', log, { requires: [METADATA] }),
        plugin(METADATA, 'sqlite', log, {
          init: () => {
            throw new PluginSkipError('no sqlite here');
          },
        }),
        plugin(CONTENT, 'local', log),
      ],
      { disabledPlugins: [`${CONTENT}.local`] },
    );
    expect(log).toEqual([]);
    expect(set.record(`${SERVICE}.snapshots`)).toMatchObject({
      status: 'error',
      error: 'requires io.berth.snapshotter.v1, but no plugin of that type is registered',
    });
    expect(set.record(`${SERVICE}.content`)?.error).toBe(
      'requires io.berth.content.v1, but no plugin of that type is loaded (io.berth.content.v1.local: disabled)',
    );
    expect(set.record(`${SERVICE}.images`)?.error).toBe(
      'requires io.berth.metadata.v1, but no plugin of that type is loaded ' +
        '(io.berth.metadata.v1.sqlite: skipped: no sqlite here)',
    );
  });

  it('starts a plugin when at least one plugin of each required type loaded', async () => {
    const set = await load([
      plugin(SNAPSHOTTER, 'btrfs', [], {
        init: () => {
          throw new PluginSkipError('not btrfs');
        },
      }),
      plugin(SNAPSHOTTER, 'native', []),
      plugin(SERVICE, 'snapshots', [], { requires: [SNAPSHOTTER] }),
    ]);
    expect(set.record(`${SERVICE}.snapshots`)?.status).toBe('ok');
  });

  it('throws naming a required plugin that did not load, after closing the ones that did', async () => {
    const closed: string[] = [];
    const err = await rejection(
      load(
        [
          plugin(CONTENT, 'local', [], { init: () => ({ close: () => void closed.push('content') }) }),
          plugin(SNAPSHOTTER, 'overlayfs', [], {
            init: () => {
              throw new PluginSkipError('overlayfs is not supported');
            },
          }),
          plugin(SNAPSHOTTER, 'native', []),
        ],
        {
          requiredPlugins: [`${SNAPSHOTTER}.overlayfs`, `${SNAPSHOTTER}.native`, 'io.berth.cri.v1.cri'],
        },
      ),
    );
    expect(errorKind(err)).toBe('failed-precondition');
    expect(err.message).toBe(
      'required plugin io.berth.snapshotter.v1.overlayfs is not loaded (skipped: overlayfs is not supported); ' +
        'required plugin io.berth.cri.v1.cri is not loaded (not registered)',
    );
    expect(closed).toEqual(['content']);
  });

  it('treats a disabled required plugin as not loaded', async () => {
    const err = await rejection(
      load([plugin(CONTENT, 'local', [])], {
        disabledPlugins: [`${CONTENT}.local`],
        requiredPlugins: [`${CONTENT}.local`],
      }),
    );
    expect(err.message).toBe('required plugin io.berth.content.v1.local is not loaded (disabled)');
  });

  it('rejects a dependency cycle before initialising anything', async () => {
    const log: string[] = [];
    const err = await rejection(
      load([
        plugin(SERVICE, 'a', log, { requires: [METADATA] }),
        plugin(METADATA, 'b', log, { requires: [SERVICE] }),
      ]),
    );
    expect(err.message).toBe('plugin dependency cycle: io.berth.service.v1.a -> io.berth.metadata.v1.b -> io.berth.service.v1.a');
    expect(log).toEqual([]);
  });

  describe('config', () => {
    const WidgetConfig = z
      .object({
        some_key: z.number().default(3),
        mode: z.enum(['fast', 'safe']).default('safe'),
        nested: z.object({ depth: z.number().int().default(1) }).strict().default({}),
      })
      .strict();
    type WidgetConfig = z.output<typeof WidgetConfig>;

    function widget(seen: WidgetConfig[]): PluginRegistration<WidgetConfig, { ok: true }> {
      return {
        type: 'io.berth.x.v1',
        id: 'y',
        config: WidgetConfig,
        init: (ctx) => {
          seen.push(ctx.config);
          return { ok: true };
        },
      };
    }

    it('gives the schema defaults when the plugin has no table', async () => {
      const seen: WidgetConfig[] = [];
      await load([widget(seen)]);
      expect(seen).toEqual([{ some_key: 3, mode: 'safe', nested: { depth: 1 } }]);
    });

    it('parses the table from the config file', async () => {
      const seen: WidgetConfig[] = [];
      const config = parseConfig(
        [
          `root = "${tmp}/root"`,
          `state = "${tmp}/state"`,
          '[plugins."io.berth.x.v1.y"]',
          'some_key = 7',
          '[plugins."io.berth.x.v1.y".nested]',
          'depth = 4',
        ].join('\n'),
        'config.toml',
      );
      const set = await loadPlugins({ registrations: [widget(seen)], config });
      expect(seen).toEqual([{ some_key: 7, mode: 'safe', nested: { depth: 4 } }]);
      expect(set.record('io.berth.x.v1.y')?.status).toBe('ok');
    });

    it('fails only that plugin, naming the key path, when the table is invalid', async () => {
      const seen: WidgetConfig[] = [];
      const set = await load([widget(seen), plugin(CONTENT, 'local', [])], {
        pluginConfigs: { 'io.berth.x.v1.y': { some_key: 'many', nested: { depth: 2, deep: true } } },
        configSource: '/etc/berth/config.toml',
      });
      expect(seen).toEqual([]);
      const record = set.record('io.berth.x.v1.y');
      expect(record?.status).toBe('error');
      expect(record?.error).toBe(
        '/etc/berth/config.toml: plugins."io.berth.x.v1.y".some_key: expected number, got string\n' +
          '/etc/berth/config.toml: unknown key \'plugins."io.berth.x.v1.y".nested.deep\'',
      );
      expect(set.record(`${CONTENT}.local`)?.status).toBe('ok');
      expect(fs.existsSync(path.join(tmp, 'root', 'io.berth.x.v1.y'))).toBe(false);
    });

    it('fails a plugin without a schema that was given a table', async () => {
      const set = await load([plugin(CONTENT, 'local', [])], { pluginConfigs: { [`${CONTENT}.local`]: { a: 1 } } });
      expect(set.record(`${CONTENT}.local`)).toMatchObject({
        status: 'error',
        error: 'plugins."io.berth.content.v1.local": this plugin takes no configuration',
      });
    });
  });

  describe('inversify', () => {
    interface Store {
      name: string;
    }

    /** A collaborator from a plugin's module that injects another plugin's instance. */
    @injectable()
    class ImageServiceImpl {
      constructor(@inject(pluginToken(METADATA, 'sqlite')) readonly store: Store) {}
    }
    const ImageService = Symbol.for('io.berth.test.ImageService');

    const metadataPlugin: PluginRegistration<unknown, Store> = {
      type: METADATA,
      id: 'sqlite',
      init: () => ({ name: 'sqlite store' }),
    };

    it('loads a plugin module and injects an earlier plugin through pluginToken', async () => {
      const imagesPlugin: PluginRegistration<unknown, ImageServiceImpl> = {
        type: SERVICE,
        id: 'images',
        requires: [METADATA],
        module: new ContainerModule((bind) => {
          bind(ImageService).to(ImageServiceImpl);
        }),
        init: (ctx) => ctx.container.get<ImageServiceImpl>(ImageService),
      };
      const container = createContainer();
      const set = await load([imagesPlugin, metadataPlugin], { container });
      const images = set.getById<ImageServiceImpl>(SERVICE, 'images');
      expect(images.store).toBe(set.getById(METADATA, 'sqlite'));
      expect(container.get(pluginToken(SERVICE, 'images'))).toBe(images);
      // Singleton by default: the module's service is one object.
      expect(container.get(ImageService)).toBe(images);
      expect(container.get(PluginSet)).toBe(set);
    });

    it('unloads the module of a plugin that does not come up', async () => {
      const container = createContainer();
      const set = await load(
        [
          {
            type: SERVICE,
            id: 'images',
            module: new ContainerModule((bind) => {
              bind(ImageService).toConstantValue('half-built');
            }),
            init: () => {
              throw new PluginSkipError('not today');
            },
          },
        ],
        { container },
      );
      expect(set.record(`${SERVICE}.images`)?.status).toBe('skipped');
      expect(container.isBound(ImageService)).toBe(false);
      expect(container.isBound(pluginToken(SERVICE, 'images'))).toBe(false);
    });
  });

  describe('closeAll', () => {
    it('closes loaded instances in reverse init order, past failures, once', async () => {
      const closed: string[] = [];
      const closing = (name: string, fail = false) => ({
        close: async () => {
          closed.push(name);
          if (fail) throw new Error(`${name} would not close`);
        },
      });
      const set = await load([
        plugin(SERVICE, 'images', [], { requires: [METADATA], init: () => closing('images') }),
        plugin(METADATA, 'sqlite', [], { requires: [CONTENT], init: () => closing('metadata', true) }),
        plugin(CONTENT, 'local', [], { init: () => closing('content') }),
        plugin(SNAPSHOTTER, 'plain', [], { init: () => ({ noClose: true }) }),
      ]);
      const err = await rejection(set.closeAll());
      expect(closed).toEqual(['images', 'metadata', 'content']);
      expect(errorKind(err)).toBe('internal');
      expect(err.message).toBe('closing plugins: io.berth.metadata.v1.sqlite: metadata would not close');
      await set.closeAll().catch(() => undefined);
      expect(closed).toHaveLength(3);
    });
  });
});
