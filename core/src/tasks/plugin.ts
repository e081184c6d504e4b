import { PluginSkipError } from '../plugin/plugin-skip-error';
import { PluginType, type PluginRegistration } from '../plugin/types';

/** Placeholder registration until the implementation lands: skipped, with a reason. */
export const tasksServicePlugin: PluginRegistration = {
  type: PluginType.Service,
  id: 'tasks',
  init() {
    throw new PluginSkipError('not implemented yet');
  },
};
