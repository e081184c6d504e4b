export { tasksServicePlugin } from './plugin';
