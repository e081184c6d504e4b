import { randomUUID } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { IntrospectionApi, PluginInfo } from '../client/types';
import { parseFilters } from '../filters';
import type { PluginRecord } from '../plugin/types';

/** Reads (or creates once) the server's uuid, so it survives restarts. */
export function loadServerUuid(root: string): string {
  const file = path.join(root, 'uuid');
  try {
    const existing = fs.readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f-]{36}$/.test(existing)) return existing;
  } catch {
    // first start: fall through and create it
  }
  fs.mkdirSync(root, { recursive: true, mode: 0o711 });
  const uuid = randomUUID();
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, uuid + '\n', { mode: 0o644 });
  fs.renameSync(tmp, file);
  return uuid;
}

export function toPluginInfo(record: PluginRecord): PluginInfo {
  return {
    type: record.type,
    id: record.id,
    requires: record.requires,
    status: record.status,
    error: record.error,
    platforms: record.meta.platforms,
    exports: record.meta.exports,
    capabilities: record.meta.capabilities,
  };
}

/** Introspection over the loaded plugin set; filters see `type`, `id` and `status`. */
export class IntrospectionService implements IntrospectionApi {
  constructor(
    private readonly records: () => PluginRecord[],
    private readonly uuid: string,
  ) {}

  async plugins(filters: string[] = []): Promise<PluginInfo[]> {
    const filter = parseFilters(filters);
    return this.records()
      .map(toPluginInfo)
      .filter((p) =>
        filter.match((fieldPath) => {
          const [field, ...rest] = fieldPath;
          switch (field) {
            case 'type':
              return p.type;
            case 'id':
              return p.id;
            case 'status':
              return p.status;
            case 'exports':
              return rest.length ? p.exports[rest.join('.')] : undefined;
            default:
              return undefined;
          }
        }),
      );
  }

  async server(): Promise<{ uuid: string }> {
    return { uuid: this.uuid };
  }
}
