/**
 * What an evaluation evaluates, as plain data another process can rebuild it
 * from: the test data and the checkpoints, named by path and by content hash,
 * the defense specs, the attacks and every setting that changes a number.
 * `vaeguard evaluate` builds its sweep from it in this process; the coordinator
 * of a distributed run puts it in every job and a worker rebuilds the same
 * sweep from it (models cached by content hash), refusing a file whose hash is
 * not the one the job names.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { tidy } from "../core/engine.js";
import { CheckpointError, DataError, VaeguardError } from "../core/errors.js";
import { createAttack, type AttackName } from "../attacks/index.js";
import { createDefense, type Defense, type DefenseContext } from "../defenses/index.js";
import { titled } from "../defenses/titled.js";
import { datasetSize, type ImageDataset } from "../data/index.js";
import { loadCheckpoint } from "../models/checkpoint.js";
import { classifierFormat, loadClassifierFile, type ClassifierFileOptions } from "../models/load-classifier.js";
import type { ImageClassifier } from "../models/classifiers.js";
import { PURIFIER_ARCHS, loadPurifier } from "../models/loaders.js";
import type { Purifier } from "../models/purifier.js";
import type { Module } from "../nn/module.js";
import type { ConvVae } from "../models/vae.js";
import type { AttackSpec, SweepContext } from "./run-cell.js";
import { TEST_SETS, type DatasetName } from "./test-sets.js";

/** A checkpoint by path (where to read it) and content (what it must be). */
export interface ModelRef {
  path: string;
  sha256: string;
}

export interface SetupAttack {
  /** Table name; cells name their attack by it. */
  name: string;
  kind: AttackName;
  /** Parameters of the attack's spec (eps comes from the cell, EOT samples from `eot`). */
  params: Record<string, number | boolean>;
  /** This attack's own epsilon grid, when it is not the sweep's (reproduce: I-FGSM's coarser grid). */
  epsilons?: number[];
}

/** How a pretrained classifier file is read (input size, output order); none for vaeguard checkpoints. */
export type ClassifierLoading = Pick<ClassifierFileOptions, "imageSize" | "wnidsFile" | "labelsFile">;

export interface EvaluationSetup {
  dataset: DatasetName;
  dataDir?: string;
  /** The first `samples` images of the test set. */
  samples: number;
  /** sha256 of those images and labels, so a worker with other data files refuses them. */
  dataSha256: string;
  classifier: ModelRef;
  /** Read with these options (a 1000-class model's WordNet order, the data's image size). */
  classifierLoading?: ClassifierLoading;
  vae?: ModelRef;
  /** Patch VAEs for "patchvae" defenses, by patch size ("16", "32", "64"). */
  patchVaes?: Record<string, ModelRef>;
  defenses: string[];
  /** Table names of defenses by spec, where not the defense's own (the paper's "Ensemble"). */
  defenseTitles?: Record<string, string>;
  /** Keep each image's first-pass prediction per defense (paired tests between defenses). */
  keepPredictions?: boolean;
  attacks: SetupAttack[];
  /** EOT samples per gradient on randomized defenses in adaptive mode. */
  eot: number;
  passes: number;
  batchSize: number;
  seed: number;
  shardSize: number;
}

/**
 * sha256 of a model file. A TF.js model.json is hashed with the weight files
 * its manifest lists, in order: its weights are not in the JSON, and a worker
 * must refuse other weights beside the same model.json.
 */
export function fileSha256(path: string): string {
  const hash = createHash("sha256").update(readFileSync(path));
  for (const f of tfjsWeightFiles(path)) hash.update(readFileSync(f));
  return hash.digest("hex");
}

/** The weight files of a TF.js model.json (none for any other file). */
function tfjsWeightFiles(path: string): string[] {
  if (!path.endsWith(".json")) return [];
  let manifest: unknown;
  try {
    manifest = (JSON.parse(readFileSync(path, "utf8")) as { weightsManifest?: unknown }).weightsManifest;
  } catch {
    return [];
  }
  if (!Array.isArray(manifest)) return [];
  return manifest.flatMap((group: { paths?: unknown }) =>
    Array.isArray(group?.paths) ? group.paths.map((p) => join(dirname(path), String(p))) : [],
  );
}

function bytesOf(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** sha256 of a data set's images (float32) and labels. */
export function datasetSha256(ds: ImageDataset): string {
  const [images, labels] = tidy(() => [
    ds.images.contiguous().dataSync() as ArrayBufferView,
    ds.labels.contiguous().dataSync() as ArrayBufferView,
  ]);
  return createHash("sha256").update(bytesOf(images)).update(bytesOf(labels)).digest("hex");
}

/**
 * A short key of what the setup computes: content hashes instead of paths, so
 * the same evaluation on machines with other folders has the same key.
 */
export function setupKey(setup: EvaluationSetup): string {
  const { classifier, vae, patchVaes, dataDir: _dataDir, classifierLoading, ...rest } = setup;
  const canonical = {
    ...rest,
    classifier: classifier.sha256,
    vae: vae?.sha256 ?? null,
    // Absent keys leave the key of a setup without them unchanged (jobs already queued keep their ids).
    ...(patchVaes ? { patchVaes: Object.entries(patchVaes).map(([k, r]) => [k, r.sha256]) } : {}),
    ...(classifierLoading ? { classifierLoading: loadingKey(classifierLoading) } : {}),
  };
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex").slice(0, 24);
}

/** The sweep's attacks: each built for the model it attacks, with EOT on randomized ones. */
export function attackSpecs(setup: EvaluationSetup): AttackSpec[] {
  return setup.attacks.map((a) => ({
    name: a.name,
    ...(a.epsilons ? { epsilons: a.epsilons } : {}),
    make: (model, eps) =>
      createAttack(a.kind, model, {
        ...a.params,
        eps,
        ...(model.randomized === true ? { eotSamples: setup.eot } : {}),
      }),
  }));
}

/** The loading options by content: the WordNet-id and label files by hash, not by path. */
function loadingKey(o: ClassifierLoading): unknown[] {
  const hashOf = (f: string | undefined) => (f === undefined ? null : fileSha256(f));
  return [o.imageSize ?? null, hashOf(o.wnidsFile), hashOf(o.labelsFile)];
}

export function loadClassifier(file: string, loading: ClassifierLoading = {}): Module & ImageClassifier {
  // Pretrained classifiers from outside (.tflite, TorchScript, TF.js); vaeguard checkpoints below.
  if (classifierFormat(file) !== "checkpoint") {
    return loadClassifierFile(file, loading).classifier as Module & ImageClassifier;
  }
  const ck = loadCheckpoint(file);
  if (PURIFIER_ARCHS.includes(ck.arch)) {
    ck.model.dispose();
    throw new CheckpointError(file, `holds a '${ck.arch}' model but --classifier needs a classifier`);
  }
  return ck.model as Module & ImageClassifier;
}

/** The paper's VAE, or a purifier trained by `vaeguard train purifier` (either architecture). */
export function loadVae(file: string): Purifier {
  return loadPurifier(file);
}

/**
 * The first `samples` images of a data set's test split (the whole split when it has no more), and the split's size.
 * `cacheDir`: where a loader may keep decoded data (see Recipe.load); it never changes the images.
 */
export async function loadTestData(
  dataset: DatasetName,
  dataDir: string | undefined,
  samples?: number,
  cacheDir?: string,
): Promise<{ test: ImageDataset; total: number }> {
  return TEST_SETS[dataset].load(dataDir, samples, cacheDir);
}

/** The setup's defenses on its models, under their table names; two with one name are an error. */
function buildDefenseList(setup: EvaluationSetup, models: DefenseContext): Defense[] {
  const defenses = setup.defenses.map((s) => titled(createDefense(s, models), setup.defenseTitles?.[s]));
  const names = new Set<string>();
  for (const [i, d] of defenses.entries()) {
    if (names.has(d.name)) {
      throw new VaeguardError(
        `Defenses "${setup.defenses[i]}" and another one are both named "${d.name}"; list it once`,
      );
    }
    names.add(d.name);
  }
  return defenses;
}

/** What names a setup's test images. */
export type DataRef = Pick<EvaluationSetup, "dataset" | "dataDir" | "samples" | "dataSha256">;

function dataKey(setup: DataRef): string {
  return JSON.stringify([setup.dataset, setup.dataDir ?? null, setup.samples, setup.dataSha256]);
}

/**
 * Models, data and sweep contexts, kept between cells: a worker loads a
 * checkpoint once per content hash and the test data once per run.
 */
export class EvaluationCache {
  private readonly models = new Map<string, Module>();
  private data: { key: string; ds: ImageDataset } | undefined;
  private context: { key: string; ctx: SweepContext } | undefined;

  /** A checkpoint whose content has the named hash: from the cache, or read, verified and loaded. */
  model(ref: ModelRef, role: "classifier" | "vae", loading?: ClassifierLoading): Module {
    const cached = this.models.get(ref.sha256);
    if (cached) return cached;
    let actual: string;
    try {
      actual = fileSha256(ref.path);
    } catch (e) {
      throw new CheckpointError(ref.path, `cannot read the checkpoint (${(e as NodeJS.ErrnoException).code ?? e})`);
    }
    if (actual !== ref.sha256) {
      throw new CheckpointError(
        ref.path,
        `has sha256 ${actual.slice(0, 12)} but the run names ${ref.sha256.slice(0, 12)}: this is another checkpoint than the coordinator's; copy its file here`,
      );
    }
    const model = role === "classifier" ? loadClassifier(ref.path, loading) : loadVae(ref.path);
    this.models.set(ref.sha256, model);
    return model;
  }

  /** The setup's test images, loaded by loadTestData or adoptTestData before. */
  testData(setup: EvaluationSetup): ImageDataset {
    if (this.data?.key === dataKey(setup)) return this.data.ds;
    throw new VaeguardError("internal: the test data of this setup was not loaded (call loadTestData first)");
  }

  /** Load the setup's test images (once per run), verified against its data hash. */
  async loadTestData(setup: EvaluationSetup): Promise<ImageDataset> {
    const key = dataKey(setup);
    if (this.data?.key === key) return this.data.ds;
    this.dropData();
    const ds = (await loadTestData(setup.dataset, setup.dataDir, setup.samples)).test;
    const sha = datasetSha256(ds);
    if (datasetSize(ds) !== setup.samples || sha !== setup.dataSha256) {
      ds.images.dispose();
      ds.labels.dispose();
      throw new DataError(
        ds.source,
        `its first ${setup.samples} test images have sha256 ${sha.slice(0, 12)} but the run names ${setup.dataSha256.slice(0, 12)}: this machine has other ${TEST_SETS[setup.dataset].title} files than the coordinator`,
      );
    }
    this.data = { key, ds };
    return ds;
  }

  /** Use test data loaded by the caller for this setup (the coordinator has it already). */
  adoptTestData(setup: DataRef, ds: ImageDataset): void {
    this.dropData();
    this.data = { key: dataKey(setup), ds };
  }

  /** The sweep context of a setup; models no longer named by it are freed. */
  sweepContext(setup: EvaluationSetup): SweepContext {
    const key = JSON.stringify([setupKey(setup), setup.attacks.map((a) => a.name)]);
    if (this.context?.key === key) return this.context.ctx;
    const classifier = this.model(setup.classifier, "classifier", setup.classifierLoading) as Module & ImageClassifier;
    const vae = setup.vae ? (this.model(setup.vae, "vae") as Purifier) : undefined;
    const patchVaes = Object.fromEntries(
      Object.entries(setup.patchVaes ?? {}).map(([k, ref]) => [k, this.model(ref, "vae") as ConvVae]),
    );
    const named = new Set([setup.classifier, setup.vae, ...Object.values(setup.patchVaes ?? {})].map((r) => r?.sha256));
    for (const [sha, m] of this.models) {
      if (!named.has(sha)) {
        m.dispose();
        this.models.delete(sha);
      }
    }
    const ctx: SweepContext = {
      classifier,
      data: this.testData(setup),
      attacks: attackSpecs(setup),
      defenses: buildDefenseList(setup, { vae, patchVaes }),
      batchSize: setup.batchSize,
      passes: setup.passes,
      ...(setup.keepPredictions ? { keepPredictions: true } : {}),
    };
    this.context = { key, ctx };
    return ctx;
  }

  private dropData(): void {
    if (!this.data) return;
    this.data.ds.images.dispose();
    this.data.ds.labels.dispose();
    this.data = undefined;
    this.context = undefined;
  }

  dispose(): void {
    this.dropData();
    for (const m of this.models.values()) m.dispose();
    this.models.clear();
    this.context = undefined;
  }
}
