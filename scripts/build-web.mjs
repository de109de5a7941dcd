// Bundles the web page of `vaeguard serve` (src/serve/web, TypeScript) with esbuild into dist/web:
// app.js, index.html and style.css, which the server reads at start-up. Run by `npm run build:ts`.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "src", "serve", "web");
const out = join(root, "dist", "web");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(src, "main.ts")],
  bundle: true,
  format: "esm",
  target: "es2020",
  platform: "browser",
  outfile: join(out, "app.js"),
  sourcemap: false,
  logLevel: "warning",
});
for (const f of ["index.html", "style.css"]) copyFileSync(join(src, f), join(out, f));
