/**
 * Reading a JSON or YAML config file (by extension: .json, .yaml, .yml) into
 * its top-level mapping, with one-line errors that name the file: shared by
 * `vaeguard evaluate --config` and `vaeguard serve --config`, which then check
 * the keys against their own settings.
 */
import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { ArgumentError } from "../core/errors.js";

/** The file's top-level mapping; an empty file is an empty mapping. */
export function readConfigMapping(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ArgumentError(`${file}: cannot read the config file (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  const ext = extname(file).toLowerCase();
  let parsed: unknown;
  if (ext === ".json") {
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new ArgumentError(`${file}: not valid JSON (${(e as Error).message})`);
    }
  } else if (ext === ".yaml" || ext === ".yml") {
    try {
      parsed = parseYaml(text);
    } catch (e) {
      const err = e as Error & { linePos?: { line: number; col: number }[] };
      const first = err.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
      const pos = err.linePos?.[0];
      throw new ArgumentError(
        `${file}: not valid YAML${pos ? ` at line ${pos.line}, column ${pos.col}` : ""} (${first})`,
      );
    }
  } else {
    throw new ArgumentError(`${file}: expected a config file ending in .json, .yaml or .yml`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ArgumentError(`${file}: expected a mapping of settings (key: value) at the top level`);
  }
  return parsed as Record<string, unknown>;
}
