import { PluginSkipError, PluginType, type PluginRegistration } from '@berth/core';

/** Placeholder registration until the implementation lands: skipped, with a reason. */
export const containersGrpcPlugin: PluginRegistration = {
  type: PluginType.GRPC,
  id: 'containers',
  init() {
    throw new PluginSkipError('not implemented yet');
  },
};
