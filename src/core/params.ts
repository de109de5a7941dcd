/**
 * Parameter declarations. An attack or a defense declares each of its
 * parameters once (type, range, default, doc) in a schema; its constructor
 * checks options against the schema (readOptions), spec strings are parsed
 * by it (spec.ts), and describe() and --help text are read from it, so adding
 * a parameter means adding one entry.
 */
import { ArgumentError } from "./errors.js";
import { checkBool, checkInt, checkNumber, checkOneOf, fail } from "./validate.js";

export type ParamValue = number | boolean | string;
/** Values resolved so far, by parameter name (what a computed default or a check may read). */
export type ParamValues = Readonly<Record<string, ParamValue | undefined>>;

interface ParamBase<T> {
  /** One line for --help. */
  doc: string;
  /** The default, or a function of the parameters declared before this one. */
  default?: T | ((values: ParamValues) => T | undefined);
  /** How a computed or model-dependent default reads in --help and reports ("eps / steps"). */
  defaultText?: string;
  /** Must be given (no default). */
  required?: boolean;
  /** Its key in a spec string, when not its name ("chunk" for chunkSize); matched without case. */
  key?: string;
  /** Takes a bare value in a spec ("jpeg:23"), in declaration order. */
  positional?: boolean;
  /** Placeholder in a spec syntax line ("QUALITY"); default the key in capitals. */
  placeholder?: string;
  /** False when the caller sets it, never a spec (eps comes from the epsilon grid). */
  inSpec?: boolean;
  /** A check beyond type and range, with the message template (fail() of validate.ts). */
  check?: (value: T, values: ParamValues) => void;
}

export interface IntParam extends ParamBase<number> {
  type: "int";
  min?: number;
  max?: number;
}

export interface NumberParam extends ParamBase<number> {
  type: "number";
  min?: number;
  max?: number;
}

export interface BoolParam extends ParamBase<boolean> {
  type: "bool";
  /** A bare word sets it in a spec: "deterministic" is deterministic=true, "nosmooth" smooth=false. */
  flag?: boolean;
}

export interface ChoiceParam extends ParamBase<string> {
  type: "choice";
  choices: readonly string[];
}

export interface StringParam extends ParamBase<string> {
  type: "string";
}

export type Param = IntParam | NumberParam | BoolParam | ChoiceParam | StringParam;
/** Parameters by name, in the order they are checked, described and listed. */
export type Schema = Readonly<Record<string, Param>>;

type ValueType<P> = P extends { type: "bool" }
  ? boolean
  : P extends { type: "choice"; choices: readonly (infer C)[] }
    ? C
    : P extends { type: "string" }
      ? string
      : number;
type Resolved<P> = P extends { default: unknown } | { required: true } ? ValueType<P> : ValueType<P> | undefined;
/** The checked values of a schema: defaulted parameters are always present. */
export type ValuesOf<S extends Schema> = { -readonly [K in keyof S]: Resolved<S[K]> };
/** Options as a caller passes them: every parameter optional except the required ones. */
export type OptionsOf<S extends Schema> = {
  [K in keyof S as S[K] extends { required: true } ? K : never]: ValueType<S[K]>;
} & { [K in keyof S as S[K] extends { required: true } ? never : K]?: ValueType<S[K]> };

/** "integer between 1 and 100", "number of at least 0", "one of "a", "b"": the expectation of a parameter. */
export function expectation(p: Param): string {
  switch (p.type) {
    case "int":
    case "number": {
      const what = p.type === "int" ? "integer" : "number";
      if (p.min !== undefined && p.max !== undefined) return `${what} between ${p.min} and ${p.max}`;
      if (p.min !== undefined) return `${what} of at least ${p.min}`;
      if (p.max !== undefined) return `${what} of at most ${p.max}`;
      return what;
    }
    case "bool":
      return "true or false";
    case "choice":
      return `one of ${p.choices.map((c) => JSON.stringify(c)).join(", ")}`;
    case "string":
      return "non-empty string";
  }
}

function checkValue(p: Param, value: unknown, name: string): ParamValue {
  switch (p.type) {
    case "int":
      return checkInt(value, name, p.min, p.max);
    case "number":
      return checkNumber(value, name, p.min, p.max);
    case "bool":
      return checkBool(value, name);
    case "choice":
      return checkOneOf(value, name, p.choices);
    case "string":
      if (typeof value !== "string" || value === "") fail("non-empty string", name, value);
      return value;
  }
}

function defaultOf(p: Param, values: ParamValues): ParamValue | undefined {
  return typeof p.default === "function" ? p.default(values) : p.default;
}

/**
 * Check `options` against a schema: unknown names are rejected (a typo would
 * otherwise silently use a default), defaults filled in declaration order,
 * every value checked for type and range with the one message template.
 * `owner` names the attack or defense in messages.
 */
export function readOptions<S extends Schema>(owner: string, schema: S, options: unknown): ValuesOf<S> {
  const names = Object.keys(schema);
  const needsObject = names.some((n) => schema[n].required === true);
  if (options === undefined && !needsObject) options = {};
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    fail(`an options object for ${owner}`, "options", options);
  }
  for (const key of Object.keys(options)) {
    if (!names.includes(key)) {
      throw new ArgumentError(`Unknown option "${key}" for ${owner}; expected one of ${names.join(", ")}`);
    }
  }
  const given = options as Record<string, unknown>;
  const values: Record<string, ParamValue | undefined> = {};
  for (const name of names) {
    const p = schema[name];
    const raw = given[name] ?? defaultOf(p, values);
    if (raw === undefined && p.required !== true) {
      values[name] = undefined;
      continue;
    }
    const v = checkValue(p, raw, name);
    (p.check as ((v: ParamValue, all: ParamValues) => void) | undefined)?.(v, values);
    values[name] = v;
  }
  return values as ValuesOf<S>;
}

/** The values of a schema for a report: in declaration order, unset ones left out. */
export function describeValues(schema: Schema, values: ParamValues): Record<string, number | string | boolean> {
  const out: Record<string, number | string | boolean> = {};
  for (const name of Object.keys(schema)) {
    const v = values[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** How a parameter's default reads: its defaultText, its value, or "none". */
export function defaultText(p: Param): string {
  if (p.defaultText !== undefined) return p.defaultText;
  if (p.default === undefined || typeof p.default === "function") return p.required ? "required" : "none";
  return String(p.default);
}

/** The parameters a spec string may set, in declaration order. */
export function specParams(schema: Schema): [string, Param][] {
  return Object.entries(schema).filter(([, p]) => p.inSpec !== false);
}

/** A parameter's key in a spec string. */
export function specKey(name: string, p: Param): string {
  return p.key ?? name;
}

/**
 * --help lines for a schema's spec parameters, one per parameter:
 * "    steps=N        number of iterations M (integer of at least 1; default 10)".
 */
export function describeParams(schema: Schema, indent = "    "): string[] {
  const rows = specParams(schema).map(([name, p]) => {
    const key = specKey(name, p);
    const form = p.positional
      ? `${p.placeholder ?? key.toUpperCase()} or ${key}=${valueHint(p)}`
      : p.type === "bool" && p.flag
        ? `${key}, no${key}`
        : `${key}=${valueHint(p)}`;
    return [form, `${p.doc} (${expectation(p)}; default ${defaultText(p)})`];
  });
  const width = Math.max(0, ...rows.map(([f]) => f.length));
  return rows.map(([f, d]) => `${indent}${f.padEnd(width)}  ${d}`);
}

function valueHint(p: Param): string {
  switch (p.type) {
    case "int":
      return "N";
    case "number":
      return "X";
    case "bool":
      return "true|false";
    case "choice":
      return p.choices.join("|");
    case "string":
      return "TEXT";
  }
}
