// Lets the unpack worker run from its TypeScript sources (jest runs the
// sources, and there is no compiled apply-worker.js beside them): .ts files
// are transpiled as they are required. Packages (@berth/differ) load from
// their compiled lib/, as for any other process.
'use strict';
const fs = require('node:fs');
const ts = require('typescript');

require.extensions['.ts'] = (module, filename) => {
  const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
    fileName: filename,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
    },
  });
  module._compile(outputText, filename);
};
