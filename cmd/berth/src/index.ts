export { runCli, buildProgram } from './cli';
export { formatTable } from './output';
