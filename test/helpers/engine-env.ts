/**
 * What an engine getter returns in a fresh process started with one environment variable set: how the
 * tests check that VAEGUARD_CHANNELS_LAST and VAEGUARD_FAST_MAXPOOL are read at load.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export function engineSettingUnder(getter: string, variable: string, value: string): string {
  const engine = fileURLToPath(new URL("../../src/core/engine.js", import.meta.url));
  const probe = `import(${JSON.stringify(engine)}).then((e) => console.log(e[${JSON.stringify(getter)}]()))`;
  const r = spawnSync(process.execPath, ["-e", probe], {
    env: { ...process.env, [variable]: value },
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`${variable}=${value}: ${r.stderr}`);
  return r.stdout.trim();
}
