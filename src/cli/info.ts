/** `vaeguard info`: versions of Node, libtorch, the BLAS in use, threads and devices. */
import type { Command } from "commander";
import { binding } from "../binding.js";
import { availableDevices } from "../core/engine.js";
import { runAction, softwareVersions } from "./common.js";

export function register(program: Command): void {
  program
    .command("info")
    .description("show versions of Node, libtorch, the BLAS library in use, threads and devices")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) =>
      runAction(() => {
        const info = {
          ...softwareVersions(),
          devices: availableDevices().join(", "),
          cuda: String(binding.versions().cuda),
        };
        if (opts.json) {
          console.log(JSON.stringify(info, null, 2));
        } else {
          for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(10)} ${v}`);
        }
      }),
    );
}
