#!/usr/bin/env node
// Stub so npm can link the binary before the first build; the code lives in lib/.
require('../lib/main.js');
