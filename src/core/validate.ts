/**
 * Argument checks with one message template:
 * "Expected integer between 1 and 100 for quality but received 0.5".
 */
import { ArgumentError } from "./errors.js";

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(show).join(", ")}]`;
  if (value === null) return "null";
  if (typeof value === "object") return Object.prototype.toString.call(value);
  return String(value);
}

export function fail(expected: string, name: string, value: unknown): never {
  throw new ArgumentError(`Expected ${expected} for ${name} but received ${show(value)}`);
}

function range(min?: number, max?: number): string {
  if (min !== undefined && max !== undefined) return ` between ${min} and ${max}`;
  if (min !== undefined) return ` of at least ${min}`;
  if (max !== undefined) return ` of at most ${max}`;
  return "";
}

export function checkInt(value: unknown, name: string, min?: number, max?: number): number {
  if (
    typeof value !== "number" ||
    !Number.isInteger(value) ||
    (min !== undefined && value < min) ||
    (max !== undefined && value > max)
  ) {
    fail(`integer${range(min, max)}`, name, value);
  }
  return value;
}

export function checkNumber(value: unknown, name: string, min?: number, max?: number): number {
  if (
    typeof value !== "number" ||
    Number.isNaN(value) ||
    (min !== undefined && value < min) ||
    (max !== undefined && value > max)
  ) {
    fail(`number${range(min, max)}`, name, value);
  }
  return value;
}

export function checkBool(value: unknown, name: string): boolean {
  if (typeof value !== "boolean") fail("boolean", name, value);
  return value;
}

export function checkOneOf<T extends string>(value: unknown, name: string, options: readonly T[]): T {
  if (typeof value !== "string" || !(options as readonly string[]).includes(value)) {
    fail(`one of ${options.map((o) => JSON.stringify(o)).join(", ")}`, name, value);
  }
  return value as T;
}

export function checkIntArray(value: unknown, name: string, length?: number, min?: number): number[] {
  if (
    !Array.isArray(value) ||
    (length !== undefined && value.length !== length) ||
    !value.every((v) => typeof v === "number" && Number.isInteger(v) && (min === undefined || v >= min))
  ) {
    fail(`array of ${length ?? ""}${length !== undefined ? " " : ""}integers${range(min)}`, name, value);
  }
  return value as number[];
}

/** Accept n or [n, n] and return a pair (kernel sizes, strides, padding). */
export function pair(value: number | readonly number[], name: string, min = 0): [number, number] {
  if (typeof value === "number") {
    checkInt(value, name, min);
    return [value, value];
  }
  const a = checkIntArray(value, name, 2, min);
  return [a[0], a[1]];
}

/** The floating-point dtypes: images and gradients must have one of them. */
export const FLOAT_DTYPES: ReadonlySet<string> = new Set(["float32", "float64", "float16", "bfloat16"]);
