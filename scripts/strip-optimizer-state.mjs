#!/usr/bin/env node
// A copy of a vaeguard checkpoint without its optimizer state (stripOptimizerState
// in src/models/checkpoint.ts): how results pages commit the classifier they were
// measured with. Needs the TypeScript built (npm run build:ts).
// Usage: node scripts/strip-optimizer-state.mjs <in.safetensors> <out.safetensors>
import { stripOptimizerState } from "../dist/src/models/checkpoint.js";

const [input, output] = process.argv.slice(2);
if (!input || !output || process.argv.length > 4) {
  console.error("usage: node scripts/strip-optimizer-state.mjs <in.safetensors> <out.safetensors>");
  process.exit(2);
}
try {
  const { kept, dropped } = stripOptimizerState(input, output);
  console.log(`${output}: ${kept} model tensors kept, ${dropped} optimizer tensors dropped`);
} catch (e) {
  console.error(`strip-optimizer-state: ${e.message}`);
  process.exit(1);
}
