import * as grpc from '@grpc/grpc-js';
import { PassThrough, Writable } from 'stream';
import {
  BlobProgress,
  GrpcService,
  Image,
  InvalidArgumentError,
  namespaceOf,
  PluginRegistration,
  PluginType,
  RegistryOptions,
  serverStream,
  toGrpcStatus,
  TransferService,
} from '@berth/core';
import { transferV1 } from '@berth/proto';
import { toProtoDescriptor } from './descriptors';

/** Progress is sent at most this often; the last state always goes out. */
const PROGRESS_INTERVAL_MS = 100;

function toProtoImage(image: Image): transferV1.Image {
  return {
    name: image.name,
    target: toProtoDescriptor(image.target),
    labels: image.labels,
    createdAt: image.createdAt,
    updatedAt: image.updatedAt,
  };
}

function fromRegistry(r: transferV1.RegistryOptions | undefined): RegistryOptions {
  return {
    plainHttp: r?.plainHttp || undefined,
    hostsDir: r?.hostsDir || undefined,
    credentials: r?.credentials || undefined,
    progressTimeoutMs: r?.progressTimeoutMs || undefined,
    skipVerify: r?.skipVerify || undefined,
  };
}

/** Coalesces progress callbacks into at most one message per interval. */
function progressWriter(call: grpc.ServerWritableStream<unknown, transferV1.TransferProgress>) {
  let pending: BlobProgress[] | undefined;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    if (pending) call.write({ blobs: pending.map((b) => ({ ...b, unpack: b.unpack ?? '' })), image: undefined, done: false });
    pending = undefined;
  };
  return {
    onProgress(blobs: BlobProgress[]) {
      pending = blobs;
      timer ??= setTimeout(flush, PROGRESS_INTERVAL_MS);
    },
    finish(image?: Image) {
      if (timer) clearTimeout(timer);
      flush();
      call.write({ blobs: [], image: image ? toProtoImage(image) : undefined, done: true });
    },
  };
}

/** berth.services.transfer.v1.Transfer: daemon-side pull, push, import, export. */
export const transferGrpcPlugin: PluginRegistration<unknown, GrpcService> = {
  type: PluginType.GRPC,
  id: 'transfer',
  requires: [PluginType.Transfer],
  init: (ctx) => {
    const transfer = ctx.container.get<TransferService>(TransferService);
    return {
      register(server: grpc.Server) {
        const impl: transferV1.TransferServer = {
          pull: serverStream(async (req, call, signal) => {
            if (!req.ref) throw new InvalidArgumentError('ref is required');
            const progress = progressWriter(call);
            const image = await transfer.pull(namespaceOf(call), req.ref, {
              platforms: req.platforms,
              allPlatforms: req.allPlatforms,
              registry: fromRegistry(req.registry),
              name: req.name || undefined,
              labels: req.labels,
              unpack: req.unpack,
              snapshotter: req.snapshotter || undefined,
              onProgress: progress.onProgress,
              signal,
            });
            progress.finish(image);
          }),
          push: serverStream(async (req, call, signal) => {
            if (!req.name) throw new InvalidArgumentError('name is required');
            const progress = progressWriter(call);
            await transfer.push(namespaceOf(call), req.name, {
              ref: req.ref || undefined,
              platforms: req.platforms,
              allPlatforms: req.allPlatforms,
              registry: fromRegistry(req.registry),
              onProgress: progress.onProgress,
              signal,
            });
            progress.finish();
          }),
          import: (call, callback) => {
            const archive = new PassThrough();
            let started: Promise<Image[]> | undefined;
            let namespace: string;
            try {
              namespace = namespaceOf(call);
            } catch (err) {
              callback(toGrpcStatus(err) as unknown as grpc.ServiceError);
              return;
            }
            call.on('data', (req: transferV1.ImportRequest) => {
              if (!started) {
                started = transfer.import(namespace, archive, {
                  baseName: req.options?.baseName || undefined,
                  indexName: req.options?.indexName || undefined,
                  unpack: req.options?.unpack,
                  snapshotter: req.options?.snapshotter || undefined,
                });
                started.then(
                  (images) => callback(null, { images: images.map(toProtoImage) }),
                  (err: unknown) => callback(toGrpcStatus(err) as unknown as grpc.ServiceError),
                );
              }
              if (req.data.length && !archive.write(req.data)) {
                call.pause();
                archive.once('drain', () => call.resume());
              }
            });
            call.on('end', () => archive.end());
            call.on('error', (err) => archive.destroy(err));
          },
          export: serverStream(async (req, call) => {
            const sink = new Writable({
              write(chunk: Buffer, _enc, done) {
                if (call.write({ data: chunk })) done();
                else call.once('drain', () => done());
              },
            });
            await transfer.export(namespaceOf(call), req.names, sink, {
              platforms: req.platforms,
              allPlatforms: req.allPlatforms,
            });
          }),
        };
        server.addService(transferV1.TransferService, impl);
      },
    };
  },
};
