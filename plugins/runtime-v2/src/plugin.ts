import { PluginSkipError, PluginType, type PluginRegistration } from '@berth/core';

/** Placeholder registration until the implementation lands: skipped, with a reason. */
export const runtimeV2Plugin: PluginRegistration = {
  type: PluginType.Runtime,
  id: 'task',
  init() {
    throw new PluginSkipError('not implemented yet');
  },
};
