import type * as grpc from '@grpc/grpc-js';
import {
  errorKind,
  InvalidArgumentError,
  isSnapshotCleaner,
  NotFoundError,
  NotImplementedError,
  serverStream,
  unary,
  type Logger,
  type Snapshotter,
} from '@berth/core';
import type { snapshotsV1 } from '@berth/proto';
import { toProtoInfo, toProtoMount } from './convert';

/** containerd sends listings in batches of this many. */
const LIST_BATCH = 100;

/**
 * Which snapshotter a request's `snapshotter` field selects: a map by name, or
 * a function (return the one snapshotter for any name to serve a single one,
 * as containerd's proxy plugins put their own name there). A function throws
 * (NotFound) for names it does not serve.
 */
export type SnapshotterSource = ReadonlyMap<string, Snapshotter> | ((name: string) => Snapshotter);

function resolver(source: SnapshotterSource): (name: string) => Snapshotter {
  if (typeof source === 'function') return source;
  return (name) => {
    const sn = source.get(name);
    if (!sn) {
      const known = [...source.keys()].map((n) => JSON.stringify(n)).join(', ') || 'none';
      throw new NotFoundError(`snapshotter ${JSON.stringify(name)} not loaded (serving: ${known})`);
    }
    return sn;
  };
}

export interface SnapshotsServerOptions {
  /** Gets one debug line per call (warn for unexpected failures). */
  logger?: Logger;
}

/**
 * containerd.services.snapshots.v1.Snapshots over raw snapshotters: no
 * namespaces, keys as given. This is what containerd's `proxy_plugins` (and
 * berth's ProxySnapshotter) talk to; add it with
 * `server.addService(snapshotsV1.SnapshotsService, snapshotsServer(source))`.
 */
export function snapshotsServer(source: SnapshotterSource, options: SnapshotsServerOptions = {}): snapshotsV1.SnapshotsServer {
  const get = resolver(source);
  const { logger } = options;

  function logFailure(fields: Record<string, unknown>, err: unknown): void {
    const kind = errorKind(err);
    const level = kind === 'unknown' || kind === 'internal' ? 'warn' : 'debug';
    logger?.[level]({ ...fields, kind, err: err instanceof Error ? err.message : String(err) }, 'snapshots call failed');
  }

  /** A unary handler that logs each call: failures clients expect (NotFound...) at debug, the rest at warn. */
  function logged<Req extends { snapshotter: string }, Res>(method: string, handler: (req: Req) => Promise<Res>) {
    return unary<Req, Res>(async (req) => {
      const fields = { method, snapshotter: req.snapshotter, key: (req as { key?: string }).key };
      try {
        const res = await handler(req);
        logger?.debug(fields, 'snapshots call');
        return res;
      } catch (err) {
        logFailure(fields, err);
        throw err;
      }
    });
  }

  return {
    prepare: logged('Prepare', async (req: snapshotsV1.PrepareSnapshotRequest) => ({
      mounts: (await get(req.snapshotter).prepare(req.key, req.parent, { labels: req.labels })).map(toProtoMount),
    })),
    view: logged('View', async (req: snapshotsV1.ViewSnapshotRequest) => ({
      mounts: (await get(req.snapshotter).view(req.key, req.parent, { labels: req.labels })).map(toProtoMount),
    })),
    mounts: logged('Mounts', async (req: snapshotsV1.MountsRequest) => ({
      mounts: (await get(req.snapshotter).mounts(req.key)).map(toProtoMount),
    })),
    commit: logged('Commit', async (req: snapshotsV1.CommitSnapshotRequest) => {
      await get(req.snapshotter).commit(req.name, req.key, { labels: req.labels });
      return {};
    }),
    remove: logged('Remove', async (req: snapshotsV1.RemoveSnapshotRequest) => {
      await get(req.snapshotter).remove(req.key);
      return {};
    }),
    stat: logged('Stat', async (req: snapshotsV1.StatSnapshotRequest) => ({
      info: toProtoInfo(await get(req.snapshotter).stat(req.key)),
    })),
    update: logged('Update', async (req: snapshotsV1.UpdateSnapshotRequest) => {
      const sn = get(req.snapshotter);
      if (!req.info?.name) throw new InvalidArgumentError('update: info.name is required');
      const paths = req.updateMask && req.updateMask.length > 0 ? req.updateMask : undefined;
      return { info: toProtoInfo(await sn.update({ name: req.info.name, labels: req.info.labels }, paths)) };
    }),
    list: serverStream(async (req, call, signal) => {
      let batch: snapshotsV1.Info[] = [];
      const send = async () => {
        const full = !call.write({ info: batch });
        batch = [];
        if (full) await drained(call, signal);
      };
      try {
        for await (const info of get(req.snapshotter).walk(req.filters)) {
          if (signal.aborted) return;
          batch.push(toProtoInfo(info));
          if (batch.length === LIST_BATCH) await send();
        }
        if (batch.length > 0 && !signal.aborted) await send();
      } catch (err) {
        logFailure({ method: 'List', snapshotter: req.snapshotter, filters: req.filters }, err);
        throw err;
      }
      logger?.debug({ method: 'List', snapshotter: req.snapshotter, filters: req.filters }, 'snapshots call');
    }),
    usage: logged('Usage', async (req: snapshotsV1.UsageRequest) => {
      const { size, inodes } = await get(req.snapshotter).usage(req.key);
      return { size, inodes };
    }),
    cleanup: logged('Cleanup', async (req: snapshotsV1.CleanupRequest) => {
      const sn = get(req.snapshotter);
      if (!isSnapshotCleaner(sn)) {
        throw new NotImplementedError(`snapshotter ${JSON.stringify(req.snapshotter)} does not implement Cleanup`);
      }
      await sn.cleanup();
      return {};
    }),
  };
}

/** Waits for the stream's buffer to drain, or for the call to end. */
function drained(call: grpc.ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    call.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
