// Prints jest's counts as the one closing line CI reads ("N passed, N failed")
// and fails when a test was skipped on a machine where nothing may be skipped
// (root: every root-only test must have run).
const fs = require('fs');
const file = process.argv[2];
let report;
try {
  report = JSON.parse(fs.readFileSync(file, 'utf8'));
} catch (err) {
  console.error(`no jest results in ${file}: ${err.message}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const passed = report.numPassedTests;
const failed = report.numFailedTests + report.numRuntimeErrorTestSuites;
const skipped = report.numPendingTests + report.numTodoTests;
let status = failed > 0 ? 1 : 0;
if (skipped > 0 && process.getuid && process.getuid() === 0) {
  const names = [];
  for (const suite of report.testResults) {
    for (const t of suite.assertionResults) {
      if (t.status === 'pending' || t.status === 'skipped' || t.status === 'todo') names.push(t.fullName);
    }
  }
  console.error(`${skipped} test(s) were skipped while running as root, where none may be:`);
  for (const n of names.slice(0, 20)) console.error(`  - ${n}`);
  status = 1;
}
if (report.numTotalTests === 0) status = 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(status);
