import * as grpc from '@grpc/grpc-js';
import {
  ContentInfo,
  ContentWriter,
  GrpcService,
  IngestStatus,
  InvalidArgumentError,
  namespaceOf,
  NamespacedContentStore,
  OutOfRangeError,
  PluginRegistration,
  PluginType,
  serverStream,
  toGrpcStatus,
  unary,
} from '@berth/core';
import { contentV1 } from '@berth/proto';
import { leaseOf } from './lease-header';

/** containerd streams listings in batches; this keeps each message well under 16 MiB. */
const LIST_BATCH = 100;
/** Read chunks: large enough for throughput, small enough for the 4 MiB default window. */
const READ_CHUNK = 1 << 20;

function toInfo(info: ContentInfo): contentV1.Info {
  return { digest: info.digest, size: info.size, createdAt: info.createdAt, updatedAt: info.updatedAt, labels: info.labels };
}

function toStatus(s: IngestStatus): contentV1.Status {
  return { ref: s.ref, offset: s.offset, total: s.total, expected: s.expected, startedAt: s.startedAt, updatedAt: s.updatedAt };
}

type WriteCall = grpc.ServerDuplexStream<contentV1.WriteContentRequest, contentV1.WriteContentResponse>;

/**
 * The requests of a server stream, one at a time. (grpc-js server streams do
 * not end their async iterator on the client's half-close, so listen for 'end'.)
 */
async function* requestsOf<T>(call: grpc.ServerDuplexStream<T, unknown>): AsyncGenerator<T> {
  const queue: T[] = [];
  let ended = false;
  let failed: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  call.on('data', (req: T) => {
    queue.push(req);
    // Hold the client back while we are behind (each request may carry 1 MiB).
    if (queue.length > 8) call.pause();
    notify();
  });
  call.on('end', () => {
    ended = true;
    notify();
  });
  call.on('error', (err: Error) => {
    failed = err;
    notify();
  });
  for (;;) {
    if (queue.length) {
      const next = queue.shift() as T;
      if (queue.length <= 2) call.resume();
      yield next;
    } else if (failed) throw failed;
    else if (ended) return;
    else await new Promise<void>((resolve) => (wake = resolve));
  }
}

/**
 * The Write bidi stream with containerd's protocol: the first message names the
 * ref; STAT reports the ingest, WRITE appends at `offset` (0 on a non-empty
 * ingest restarts it), COMMIT writes any data then verifies and commits. Every
 * request gets one response; the writer is released when the stream ends.
 */
async function handleWrite(content: NamespacedContentStore, call: WriteCall): Promise<void> {
  let writer: ContentWriter | undefined;
  // Asked once: status() flushes the writer's buffer, which per message would
  // turn every 64 KiB request into its own disk write.
  let startedAt: Date | undefined;
  let knownTotal = 0;
  try {
    const store = content.forNamespace(namespaceOf(call), { lease: leaseOf(call) });
    for await (const req of requestsOf(call)) {
      if (!writer) {
        if (!req.ref) throw new InvalidArgumentError('first message of a write must name a ref');
        writer = await store.writer({ ref: req.ref, expected: { size: req.total || undefined, digest: req.expected || undefined } });
      } else if (req.ref && req.ref !== writer.ref) {
        throw new InvalidArgumentError(`write stream for ref ${JSON.stringify(writer.ref)} got ref ${JSON.stringify(req.ref)}`);
      }
      if (!startedAt) {
        const status = await writer.status();
        startedAt = status.startedAt;
        knownTotal = status.total;
      }
      const total = req.total || knownTotal;
      if (req.action === contentV1.WriteAction.WRITE || req.action === contentV1.WriteAction.COMMIT) {
        if (req.data.length > 0 || req.action === contentV1.WriteAction.WRITE) {
          if (req.offset === 0 && writer.offset > 0 && req.data.length > 0) await writer.truncate(0);
          else if (req.offset > 0 && req.offset !== writer.offset) {
            throw new OutOfRangeError(`write @${req.offset} must occur at the current offset ${writer.offset}`);
          }
          if (req.data.length > 0) await writer.write(req.data);
        }
      } else if (req.action !== contentV1.WriteAction.STAT) {
        throw new InvalidArgumentError(`unknown write action ${req.action}`);
      }
      const response: contentV1.WriteContentResponse = {
        action: req.action,
        startedAt,
        updatedAt: new Date(),
        offset: writer.offset,
        total,
        digest: '',
      };
      if (req.action === contentV1.WriteAction.COMMIT) {
        await writer.commit(total, req.expected, { labels: req.labels });
        response.digest = writer.digest();
      } else if (req.action === contentV1.WriteAction.STAT) {
        response.digest = writer.digest();
      }
      call.write(response);
    }
    call.end();
  } catch (err) {
    call.emit('error', toGrpcStatus(err));
  } finally {
    await writer?.close().catch(() => undefined);
  }
}

/** containerd.services.content.v1.Content over the namespaced content store. */
export const contentGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'content',
  requires: [PluginType.Service],
  init: (ctx) => {
    const content = ctx.container.get<NamespacedContentStore>(NamespacedContentStore);
    const view = (call: { metadata: grpc.Metadata }) =>
      content.forNamespace(namespaceOf(call), { lease: leaseOf(call) });
    return {
      register(server: grpc.Server) {
        const impl: contentV1.ContentServer = {
          info: unary(async (req, call) => ({ info: toInfo(await view(call).info(req.digest)) })),
          update: unary(async (req, call) => {
            if (!req.info) throw new InvalidArgumentError('info is required');
            const info = await view(call).update({ digest: req.info.digest, labels: req.info.labels }, req.updateMask ?? []);
            return { info: toInfo(info) };
          }),
          list: serverStream(async (req, call, signal) => {
            let batch: contentV1.Info[] = [];
            for await (const info of view(call).walk(req.filters)) {
              if (signal.aborted) return;
              batch.push(toInfo(info));
              if (batch.length === LIST_BATCH) {
                call.write({ info: batch });
                batch = [];
              }
            }
            if (batch.length) call.write({ info: batch });
          }),
          delete: unary(async (req, call) => {
            await view(call).delete(req.digest);
            return {};
          }),
          read: serverStream(async (req, call, signal) => {
            const stream = await view(call).read(req.digest, { offset: req.offset, length: req.size > 0 ? req.size : undefined });
            let offset = req.offset;
            try {
              for await (const chunk of stream as AsyncIterable<Buffer>) {
                if (signal.aborted) return;
                for (let i = 0; i < chunk.length; i += READ_CHUNK) {
                  const data = chunk.subarray(i, i + READ_CHUNK);
                  // Respect flow control so a slow reader doesn't make us buffer the blob.
                  if (!call.write({ offset, data })) await new Promise((r) => call.once('drain', r));
                  offset += data.length;
                }
              }
            } finally {
              stream.destroy();
            }
          }),
          status: unary(async (req, call) => ({ status: toStatus(await view(call).status(req.ref)) })),
          listStatuses: unary(async (req, call) => ({
            statuses: (await view(call).listStatuses(req.filters)).map(toStatus),
          })),
          write: (call) => void handleWrite(content, call),
          abort: unary(async (req, call) => {
            await view(call).abort(req.ref);
            return {};
          }),
        };
        server.addService(contentV1.ContentService, impl);
      },
    };
  },
};
