import type { interfaces } from 'inversify';
import { FailedPreconditionError, InternalError, NotFoundError } from '../errdefs';
import type { Logger } from '../log';
import { pluginUri } from './container';
import type { PluginRecord } from './types';

/**
 * The outcome of loading plugins: one record per registered plugin for
 * introspection, lookups of the running instances, and shutdown. Bound in the
 * shared container under the `PluginSet` token, so a service (introspection)
 * can inject it.
 */
export interface PluginSet {
  /** Every registered plugin so far: init order first, then disabled ones. */
  records(): PluginRecord[];
  /** The container the plugins were wired into. */
  readonly container: interfaces.Container;
  /** The record of plugin `uri`, if it is registered. */
  record(uri: string): PluginRecord | undefined;
  /** The instance of plugin `type`.`id`; NotFound unless it loaded ('ok'). */
  getById<T>(type: string, id: string): T;
  /** The instance of the one loaded plugin of `type`; NotFound if none, FailedPrecondition if several. */
  getSingle<T>(type: string): T;
  /** Every loaded plugin of `type`, by id, in init order. */
  getByType<T>(type: string): Map<string, T>;
  /**
   * Calls `close()` on every loaded instance that has one, in reverse init order,
   * so a plugin closes before what it depends on. Keeps going past failures and
   * then throws Internal naming them. Later calls return the first call's result.
   */
  closeAll(): Promise<void>;
}
export const PluginSet = Symbol.for('io.berth.PluginSet');

interface Closable {
  close(): unknown;
}

function isClosable(value: unknown): value is Closable {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { close?: unknown }).close === 'function'
  );
}

/** The loader's PluginSet: it appends records as plugins finish loading. */
export class LoadedPluginSet implements PluginSet {
  private readonly list: PluginRecord[] = [];
  private readonly byUri = new Map<string, PluginRecord>();
  private closing?: Promise<void>;

  constructor(
    readonly container: interfaces.Container,
    private readonly logger: Logger,
  ) {}

  records(): PluginRecord[] {
    return [...this.list];
  }

  add(record: PluginRecord): void {
    this.list.push(record);
    this.byUri.set(record.uri, record);
  }

  record(uri: string): PluginRecord | undefined {
    return this.byUri.get(uri);
  }

  getById<T>(type: string, id: string): T {
    const record = this.byUri.get(pluginUri(type, id));
    if (record?.status !== 'ok') {
      throw new NotFoundError(`plugin ${pluginUri(type, id)}: not loaded${record ? ` (${record.status})` : ''}`);
    }
    return record.instance as T;
  }

  getSingle<T>(type: string): T {
    const loaded = this.loaded(type);
    if (loaded.length === 0) throw new NotFoundError(`no plugin of type ${type} is loaded`);
    if (loaded.length > 1) {
      throw new FailedPreconditionError(
        `more than one plugin of type ${type} is loaded: ${loaded.map((r) => r.uri).join(', ')}`,
      );
    }
    return loaded[0].instance as T;
  }

  getByType<T>(type: string): Map<string, T> {
    return new Map(this.loaded(type).map((r) => [r.id, r.instance as T]));
  }

  closeAll(): Promise<void> {
    this.closing ??= this.closeInReverse();
    return this.closing;
  }

  private loaded(type: string): PluginRecord[] {
    return this.list.filter((r) => r.type === type && r.status === 'ok');
  }

  private async closeInReverse(): Promise<void> {
    const failures: string[] = [];
    let firstError: unknown;
    for (const record of [...this.list].reverse()) {
      if (record.status !== 'ok' || !isClosable(record.instance)) continue;
      try {
        await record.instance.close();
        this.logger.debug({ plugin: record.uri }, 'closed plugin');
      } catch (err) {
        this.logger.warn({ plugin: record.uri, err }, 'failed to close plugin');
        failures.push(`${record.uri}: ${err instanceof Error ? err.message : String(err)}`);
        firstError ??= err;
      }
    }
    if (failures.length > 0) {
      throw new InternalError(`closing plugins: ${failures.join('; ')}`, { cause: firstError });
    }
  }
}
