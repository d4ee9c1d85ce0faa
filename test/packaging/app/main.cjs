'use strict';
// The scenario as a CommonJS application runs it: every package through require().
require('./scenario.cjs')
  .run(
    async (name) => require(name),
    (name) => require.resolve(name),
    process.argv.slice(2),
  )
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
