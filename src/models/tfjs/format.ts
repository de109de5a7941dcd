/**
 * The TF.js Layers format as the importer reads it: model.json types, the
 * error for what it does not rebuild, and small JSON helpers.
 */
import { CheckpointError } from "../../core/errors.js";

export interface TfjsQuantization {
  dtype: "uint8" | "uint16" | "float16";
  scale?: number;
  min?: number;
}

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: TfjsQuantization;
  /** "optimizer" for optimizer state saved beside the model; such weights are ignored. */
  group?: string;
}

export interface TfjsWeightsGroup {
  paths: string[];
  weights: TfjsWeightSpec[];
}

export interface TfjsModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string;
  modelTopology: unknown;
  weightsManifest?: TfjsWeightsGroup[];
  userDefinedMetadata?: Record<string, unknown>;
}

/** A layer type or activation this importer does not rebuild. */
export class UnsupportedLayerError extends CheckpointError {
  constructor(
    file: string,
    readonly layerType: string,
    readonly layerName: string,
    what = "layer type",
  ) {
    super(file, `unsupported ${what} '${layerType}' (layer '${layerName}')`);
  }
}

export type Json = Record<string, unknown>;

export function isObj(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function fmt(s: readonly (number | null)[]): string {
  return `[${s.map((d) => (d === null ? "?" : d)).join(", ")}]`;
}

export function product(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}
