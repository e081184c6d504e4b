// Runs one NativeSnapshotter operation and SIGKILLs itself at a chosen rename,
// so the spec can check what a real crash leaves behind. Loads the TypeScript
// sources directly (transpile only), as jest does for the spec itself.
//
//   node crash-child.js <root> <operation: prepare|remove> <key> <parent> <when: before|after> <target pattern>
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const ts = require('typescript');

const repo = path.resolve(__dirname, '../../../..');

require.extensions['.ts'] = (module, filename) => {
  const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
    fileName: filename,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
      useDefineForClassFields: false,
    },
  });
  module._compile(outputText, filename);
};

// The snapshotter needs only these parts of @berth/core; loading all of it
// (gRPC, generated protos) would take the child seconds.
const coreParts = ['errdefs/index.ts', 'log.ts', 'filters/index.ts', 'snapshots/index.ts'];
const virtualCore = path.join(repo, 'core/src/__crash-child-core__.js');
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return request === '@berth/core' ? virtualCore : resolveFilename.call(this, request, ...rest);
};
const coreModule = new Module(virtualCore);
coreModule.filename = virtualCore;
coreModule.loaded = true;
coreModule.exports = Object.assign({}, ...coreParts.map((part) => require(path.join(repo, 'core/src', part))));
require.cache[virtualCore] = coreModule;

const [root, operation, key, parent, when, pattern] = process.argv.slice(2);
const targetPattern = new RegExp(pattern);
const renameSync = fs.renameSync;
fs.renameSync = (from, to) => {
  const hit = targetPattern.test(String(to));
  if (hit && when === 'before') process.kill(process.pid, 'SIGKILL');
  renameSync(from, to);
  if (hit && when === 'after') process.kill(process.pid, 'SIGKILL');
};

const { NativeSnapshotter } = require(path.join(__dirname, '..', 'native-snapshotter.ts'));
(async () => {
  const snapshotter = await NativeSnapshotter.open(root);
  if (operation === 'prepare') await snapshotter.prepare(key, parent);
  else if (operation === 'remove') await snapshotter.remove(key);
  else throw new Error(`unknown operation ${operation}`);
  // Reaching here means the crash point was never hit.
  process.exit(3);
})().catch((err) => {
  console.error(err);
  process.exit(2);
});
