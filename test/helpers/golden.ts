/**
 * Reading the PyTorch golden values in test/golden/*.json (made by
 * test/golden/make_golden.py) and turning their tensors into engine tensors.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { tensor, type DType, type Tensor } from "../../src/core/tensor.js";

export interface TensorSpec {
  shape: number[];
  dtype: DType;
  data: number[];
}

export interface GoldenCase {
  inputs: Record<string, TensorSpec>;
  expected: Record<string, TensorSpec>;
}

/** The folder test/golden of the repository, whether this runs from test/ or from dist/test/. */
export function goldenPath(file: string): string {
  // Compiled, this module lives in dist/test/helpers/; the JSON stays in test/golden/.
  return fileURLToPath(new URL(`../../../test/golden/${file}`, import.meta.url));
}

export function readGolden<T = unknown>(file: string): T {
  const parsed = JSON.parse(readFileSync(goldenPath(file), "utf8")) as { cases?: unknown; keys?: unknown };
  return parsed as T;
}

export function loadCases(file: string): Record<string, GoldenCase> {
  return readGolden<{ cases: Record<string, GoldenCase> }>(file).cases;
}

/** An engine tensor holding exactly the values of a golden tensor. */
export function fromSpec(spec: TensorSpec): Tensor {
  return tensor(spec.data, spec.shape, { dtype: spec.dtype });
}

/** Every input of a case as a tensor (the caller frees them, usually with tidy). */
export function inputsOf(c: GoldenCase): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(c.inputs)) out[k] = fromSpec(v);
  return out;
}
