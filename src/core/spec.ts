/**
 * The one spec grammar of attacks and defenses:
 *
 *   NAME[:ARGUMENT[:ARGUMENT...]]    ARGUMENT = KEY=VALUE | VALUE | FLAG
 *
 * e.g. "pgd:steps=40:restarts=2", "jpeg:23", "vae:samples=8:deterministic",
 * "patchvae:64/32:nosmooth". A bare VALUE fills the kind's positional
 * parameters in order; a FLAG (a bare word) sets a boolean parameter that
 * allows it ("deterministic" true, "nosmooth" smooth false). Keys match
 * without case. The parameters, their types and their spec keys come from
 * the kind's schema (params.ts). Commas never occur inside a spec, so a list
 * of specs is comma-separated.
 *
 * The old defense syntax, arguments separated by commas ("vae:samples=8,clip=2"),
 * is still read, with a deprecation warning.
 */
import { ArgumentError } from "./errors.js";
import { fail } from "./validate.js";
import { specKey, specParams, type Param, type ParamValue, type Schema } from "./params.js";

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** A decimal number written in full ("0.5", "-2", "1e-3"); undefined for anything else ("0x10", "", "1,5"). */
export function parseNumber(text: string): number | undefined {
  const t = text.trim();
  return NUMBER.test(t) ? Number(t) : undefined;
}

export interface SplitSpec {
  /** The kind, lower case ("pgd", "jpeg"). */
  name: string;
  /** Everything after the first ":", as written ("" when there is none). */
  rest: string;
  /** The arguments, split on ":" (and on "," in the old defense syntax). */
  args: string[];
  /** True when the arguments used the old comma syntax. */
  legacy: boolean;
}

/** Split a spec into its kind and arguments; `legacyCommas` reads the old defense syntax. */
export function splitSpec(text: string, legacyCommas = false): SplitSpec {
  const t = text.trim();
  const colon = t.indexOf(":");
  const name = (colon < 0 ? t : t.slice(0, colon)).trim().toLowerCase();
  const rest = colon < 0 ? "" : t.slice(colon + 1).trim();
  const legacy = legacyCommas && rest.includes(",");
  const args = colon < 0 ? [] : rest.split(legacy ? /[:,]/ : ":").map((a) => a.trim());
  return { name, rest, args, legacy };
}

const warned = new Set<string>();

/** Warn once per spec that it uses the old comma syntax, with the same spec in the new one. */
export function warnLegacySpec(text: string, split: SplitSpec): void {
  if (!split.legacy || warned.has(text)) return;
  warned.add(text);
  const modern = [split.name, ...split.args].join(":");
  process.emitWarning(`spec "${text}" separates its arguments with ","; this syntax is deprecated, write "${modern}"`, {
    type: "DeprecationWarning",
    code: "VAEGUARD_SPEC_COMMAS",
  });
}

/** A spec value (text, or a number or boolean from a config file) as a parameter of type p. */
export function specValue(p: Param, raw: unknown, where: string): ParamValue {
  switch (p.type) {
    case "int":
    case "number": {
      const n = typeof raw === "number" ? raw : typeof raw === "string" ? parseNumber(raw) : undefined;
      const what = p.type === "int" ? "integer" : "number";
      if (n === undefined || !Number.isFinite(n) || (p.type === "int" && !Number.isInteger(n))) fail(what, where, raw);
      return n;
    }
    case "bool":
      if (raw === true || raw === "true" || raw === "1" || raw === 1) return true;
      if (raw === false || raw === "false" || raw === "0" || raw === 0) return false;
      return fail("true or false", where, raw);
    case "choice":
    case "string":
      if (typeof raw !== "string") fail(p.type === "choice" ? "a name" : "text", where, raw);
      return raw;
  }
}

/** Reads a positional value that stands for several parameters ("64/32": patchSize and stride). */
export type PositionalReader = (raw: string, label: string) => Record<string, ParamValue>;

export interface SpecReadOptions {
  /** `kind` in "pgd takes steps, ...". */
  kind: string;
  /** The spec as messages name it: `attack spec "pgd:steps=3"`. */
  label: string;
  /** Readers of composite positional values, by parameter name. */
  positional?: Record<string, PositionalReader>;
}

/**
 * The options a spec's arguments give, by parameter name, typed but not yet
 * range-checked (the constructor does that with the schema). `given` holds
 * KEY=VALUE pairs (key undefined for a bare value or flag); config files give
 * pairs with typed values directly.
 */
export function readSpecArguments(
  schema: Schema,
  given: readonly (readonly [string | undefined, unknown])[],
  o: SpecReadOptions,
): Record<string, ParamValue> {
  const params = specParams(schema);
  const positional = params.filter(([, p]) => p.positional);
  const flags = params.filter(([, p]) => p.type === "bool" && p.flag);
  const takesBare = positional.length > 0 || flags.length > 0;
  const out: Record<string, ParamValue> = {};
  const set = (name: string, value: ParamValue) => {
    if (name in out) throw new ArgumentError(`Parameter "${name}" given twice in ${o.label}`);
    out[name] = value;
  };
  const values: string[] = [];
  for (const [key, raw] of given) {
    if (key !== undefined) {
      const hit = params.find(([name, p]) => specKey(name, p).toLowerCase() === key.toLowerCase());
      if (hit === undefined) {
        const keys = params.map(([name, p]) => specKey(name, p));
        throw new ArgumentError(
          `Unknown parameter "${key}" in ${o.label}; ${o.kind} takes ${keys.length > 0 ? keys.join(", ") : "no parameters"}`,
        );
      }
      const [name, p] = hit;
      set(name, specValue(p, raw, `${name} in ${o.label}`));
      continue;
    }
    const text = String(raw);
    const word = text.toLowerCase();
    const flag = flags.find(([name, p]) => [specKey(name, p), `no${specKey(name, p)}`].includes(word));
    if (flag !== undefined) {
      set(flag[0], word === specKey(flag[0], flag[1]).toLowerCase());
    } else if (!takesBare || text === "" || /^[a-z]+$/i.test(text)) {
      throw badArgument(text, takesBare, flags, o.label);
    } else {
      values.push(text);
    }
  }
  if (values.length > positional.length) {
    throw new ArgumentError(`Too many values in ${o.label}: ${values.join(", ")} (at most ${positional.length})`);
  }
  values.forEach((text, i) => {
    const [name, p] = positional[i];
    const reader = o.positional?.[name];
    if (reader === undefined) {
      set(name, specValue(p, text, `${name} in ${o.label}`));
      return;
    }
    for (const [n, v] of Object.entries(reader(text, o.label))) set(n, v);
  });
  return out;
}

function badArgument(text: string, takesBare: boolean, flags: [string, Param][], label: string): ArgumentError {
  if (!takesBare)
    return new ArgumentError(`Expected KEY=VALUE after ":" in ${label} but received ${JSON.stringify(text)}`);
  if (text === "") return new ArgumentError(`Empty argument in ${label}`);
  const names = flags.map(([name, p]) => specKey(name, p));
  return new ArgumentError(
    `Unknown flag "${text}" in ${label}; expected ${names.length > 0 ? `one of ${names.join(", ")}` : "none"}`,
  );
}

/** Split spec arguments into [key, value] pairs; a bare value or flag has no key. */
export function specPairs(args: readonly string[], label: string): [string | undefined, string][] {
  return args.map((a) => {
    const eq = a.indexOf("=");
    if (eq < 0) return [undefined, a];
    const key = a.slice(0, eq).trim();
    const value = a.slice(eq + 1).trim();
    if (key === "" || value === "") {
      throw new ArgumentError(`Expected KEY=VALUE after ":" in ${label} but received ${JSON.stringify(a)}`);
    }
    return [key, value];
  });
}

/** The canonical spec of given options: NAME:key=value... in declaration order (same settings, same text). */
export function canonicalSpec(kind: string, schema: Schema, options: Readonly<Record<string, ParamValue>>): string {
  const parts = specParams(schema)
    .filter(([name]) => options[name] !== undefined)
    .map(([name, p]) => `${specKey(name, p)}=${options[name]}`);
  return [kind, ...parts].join(":");
}
