// Pulumi's entry point (Pulumi.yaml `main`). The program is index.ts and components/, run
// compiled: `npm run build:program` compiles it into bin/, and bin/index.js refuses to run when
// its sources changed since (components/program-build.ts). This file only says what to do when
// there is no build at all, instead of Node's bare "Cannot find module".
"use strict";
const fs = require("fs");
const path = require("path");

const built = path.join(__dirname, "bin", "index.js");
if (!fs.existsSync(built)) {
  const pulumi = require("@pulumi/pulumi");
  throw new pulumi.RunError(
    "bin/index.js is missing: Pulumi runs the program compiled from index.ts; nothing was changed.\n" +
      "Fix: run `npm run build:program` in the project directory (after `npm ci`), then run the command again.",
  );
}
module.exports = require(built);
