export { tasksServicePlugin } from './plugin';
export { LocalTaskService, type LocalTaskServiceOptions } from './task-service';
