import { PluginSkipError, PluginType, type PluginRegistration } from '@berth/core';

/** Placeholder registration until the implementation lands: skipped, with a reason. */
export const tasksGrpcPlugin: PluginRegistration = {
  type: PluginType.GRPC,
  id: 'tasks',
  init() {
    throw new PluginSkipError('not implemented yet');
  },
};
