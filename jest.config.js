// One jest run over every workspace. Packages import each other by name; the
// mapper points those names at their TypeScript sources so a test sees one copy
// of every module (compiled lib/ output is only for the binaries tests spawn).
const fs = require('fs');
const path = require('path');

const root = __dirname;
const { workspaces } = require('./package.json');

function packageDirs() {
  const dirs = [];
  for (const pattern of workspaces) {
    if (pattern.endsWith('/*')) {
      const parent = path.join(root, pattern.slice(0, -2));
      if (!fs.existsSync(parent)) continue;
      for (const name of fs.readdirSync(parent)) dirs.push(path.join(parent, name));
    } else {
      dirs.push(path.join(root, pattern));
    }
  }
  return dirs.filter((d) => fs.existsSync(path.join(d, 'package.json')));
}

const moduleNameMapper = {};
for (const dir of packageDirs()) {
  const { name } = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const entry = path.join(dir, 'src', 'index.ts');
  if (fs.existsSync(entry)) moduleNameMapper[`^${name.replace('/', '\\/')}$`] = entry;
}

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>'],
  testMatch: ['**/*.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/lib/'],
  modulePathIgnorePatterns: ['<rootDir>/.*/lib/'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.jest.json' }],
  },
  moduleNameMapper,
  setupFiles: ['reflect-metadata'],
  testTimeout: 60000,
};
