#!/usr/bin/env node
// Stands in for the desktop browser of clients that open one (set as $BROWSER): logs in,
// approves, and delivers the code to the client's callback at $MOP_DELIVER_PREFIX.
import { browseAndDeliver } from './browser.mjs';

browseAndDeliver(process.argv[2], process.env.MOP_DELIVER_PREFIX).then(
  () => process.exit(0),
  (e) => { console.error(`open-url: ${e.message}`); process.exit(1); },
);
