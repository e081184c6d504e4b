import { availableParallelism } from 'os';
import {
  Applier,
  ImageStore,
  LeaseManager,
  NamespacedContentStore,
  PluginRegistration,
  PluginType,
  SnapshotService,
  TransferService,
  z,
} from '@berth/core';
import { WalkingDiffer } from '@berth/differ';
import { ApplyPool } from './apply-pool';
import { removeInterruptedUnpacks } from './recovery';
import { ImageTransferService, type UnpackServices } from './transfer-service';

export { ImageTransferService, type UnpackServices };
export { chainID, chainIDs } from './chain-id';
export {
  configDiffIDs,
  GC_REF_SNAPSHOT_PREFIX,
  SNAPSHOT_REF_LABEL,
  UNCOMPRESSED_LABEL,
  UNPACK_KEY_PREFIX,
  Unpacker,
  type UnpackedLayer,
  type UnpackOptions,
  type UnpackResult,
  type UnpackTarget,
} from './unpacker';
export { removeInterruptedUnpacks, TRANSFER_LEASE_LABEL } from './recovery';
export { ApplyPool } from './apply-pool';
export type { LayerStager } from './staged-apply';

const transferConfig = z
  .object({
    /**
     * Threads that extract layers side by side when unpacking into overlayfs
     * with the walking differ (0: one layer after another, in place).
     */
    unpack_workers: z.number().int().min(0).max(64).default(Math.min(4, Math.max(2, availableParallelism()))),
  })
  .strict();

export type TransferConfig = z.infer<typeof transferConfig>;

/**
 * The daemon-side transfer service (pull with unpack, push, import, export).
 * Snapshots and the differ are looked up per pull, so a berth without them
 * still fetches. At start it removes the extraction snapshots of pulls a
 * previous run was killed in.
 */
export const transferServicePlugin: PluginRegistration<TransferConfig, TransferService> = {
  type: PluginType.Transfer,
  id: 'local',
  requires: [PluginType.Service, PluginType.Lease],
  config: transferConfig,
  async init(ctx) {
    const { container } = ctx;
    const applier = () => (container.isBound(Applier) ? container.get<Applier>(Applier) : undefined);
    const pool = ctx.config.unpack_workers > 0 ? new ApplyPool(ctx.config.unpack_workers, ctx.logger) : undefined;
    const unpack: UnpackServices = {
      snapshots: () => (container.isBound(SnapshotService) ? container.get<SnapshotService>(SnapshotService) : undefined),
      applier,
      // Staged extraction is the walking differ's, with its limits: with another applier, layers go through it, in place.
      stager: () => {
        const differ = applier();
        return pool && differ instanceof WalkingDiffer ? { pool, ...differ.applyDefaults } : undefined;
      },
    };
    const leases = container.get<LeaseManager>(LeaseManager);
    const service = new ImageTransferService(
      container.get<NamespacedContentStore>(NamespacedContentStore),
      container.get<ImageStore>(ImageStore),
      leases,
      ctx.logger,
      unpack,
      pool,
    );
    const snapshots = unpack.snapshots();
    if (snapshots) {
      const namespaces = ctx.getById<{ list(): Promise<{ name: string }[]> }>(PluginType.Service, 'namespaces');
      await removeInterruptedUnpacks({ namespaces, leases, snapshots, logger: ctx.logger }).catch((err: unknown) =>
        ctx.logger.warn({ err }, 'could not look for interrupted unpacks'),
      );
    }
    container.bind<TransferService>(TransferService).toConstantValue(service);
    return service;
  },
};
