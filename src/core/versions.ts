/** The software a result was made with, for reports: vaeguard, Node, libtorch, the BLAS library, threads. */
import { realpathSync } from "node:fs";
import { binding } from "../binding.js";
import { getNumThreads } from "./engine.js";

export function blasLibrary(): string {
  for (const p of ["/usr/lib/x86_64-linux-gnu/libblas.so.3", "/usr/lib/aarch64-linux-gnu/libblas.so.3"]) {
    try {
      return realpathSync(p);
    } catch {
      // not on this architecture
    }
  }
  return "unknown";
}

export function softwareVersions(): Record<string, string> {
  const v = binding.versions();
  return {
    vaeguard: "0.1.0",
    node: process.version,
    libtorch: v.torch,
    blas: blasLibrary(),
    threads: String(getNumThreads()),
  };
}
