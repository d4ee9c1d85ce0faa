#!/usr/bin/env node
// The compiled CLI does the work; this file exists so npm can link a bin before `npm run build` has made dist/.
import '../dist/cli.js';
