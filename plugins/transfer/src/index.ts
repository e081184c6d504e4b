import {
  ImageStore,
  LeaseManager,
  NamespacedContentStore,
  PluginRegistration,
  PluginType,
  TransferService,
} from '@berth/core';
import { ImageTransferService } from './transfer-service';

export { ImageTransferService };

/** The daemon-side transfer service (pull, push, import, export). */
export const transferServicePlugin: PluginRegistration<unknown, TransferService> = {
  type: PluginType.Transfer,
  id: 'local',
  requires: [PluginType.Service, PluginType.Lease],
  init(ctx) {
    const service = new ImageTransferService(
      ctx.container.get<NamespacedContentStore>(NamespacedContentStore),
      ctx.container.get<ImageStore>(ImageStore),
      ctx.container.get<LeaseManager>(LeaseManager),
      ctx.logger,
    );
    ctx.container.bind<TransferService>(TransferService).toConstantValue(service);
    return service;
  },
};
