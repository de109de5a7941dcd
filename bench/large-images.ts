/**
 * Large-image benchmarks (`npm run bench -- --only large`), images/s of
 * vaeguard and of PyTorch (bench/torch_large.py) in the same run:
 *
 * - patch<p>/<s>.recon: the patch-wise VAE defense on a batch of 299x299
 *   images, for the paper's 16/8, 32/16 and 64/32, with random-weight VAEs of
 *   the Table 3 presets (sampled latents, noise clipped to [-5, 5]; grid,
 *   unfold, VAE, fold, overlap average, 5x5 smoothing);
 * - patch64.trainStep: one Adam step (lr 1e-3) of the 64x64 patch VAE of
 *   Table 3 (100M parameters, nearly all in its dense layers) on a batch of
 *   32 random patches, BCE + 0.01 KL with clipped noise, in patches/s: the
 *   step that `reproduce imagenet` repeats when it trains that VAE;
 * - inception.infer / inception.inputGrad: the imported TF.js Inception V3 of
 *   nsfwjs (299x299, 5 classes) forward, and the input gradient of the
 *   cross-entropy (what every attack step costs). PyTorch runs the same
 *   network rebuilt from the same model.json and shards; both print the
 *   logits of one fixed image so the harness can show they agree.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { grad, rand, randint, tensor, type Tensor } from "../src/core/tensor.js";
import { noGrad, tidy } from "../src/core/engine.js";
import { crossEntropy } from "../src/nn/functional.js";
import { ConvVae, VAE_PRESETS } from "../src/models/vae.js";
import { patchReconstruct, smooth } from "../src/defenses/patch-vae.js";
import { loadTfjsLayersModel } from "../src/models/tfjs.js";
import { extractNsfwjsModels } from "../src/models/tfjs-nsfwjs.js";
import { timeit } from "./classifiers.js";
import { Adam } from "../src/optim/optimizer.js";

/** The 64x64 VAE's training batch in `reproduce imagenet` (DEFAULT_BATCH[64]); torch_large.py uses the same. */
export const PATCH64_TRAIN_BATCH = 32;

export const LARGE_GEOMETRIES: readonly [number, number][] = [
  [16, 8],
  [32, 16],
  [64, 32],
];

export interface LargeBenchOptions {
  threads: number;
  seconds: number;
  /** Images per batch (default 4). */
  batch?: number;
  /** Python with torch for the comparison. */
  python: string;
  /** nsfwjs' Inception V3 model.json (default runs/models/nsfwjs/inception_v3, extracted when missing). */
  modelJson?: string;
  /** Which figures (default all): patch reconstructions, the 64x64 VAE training step, Inception V3. */
  parts?: readonly LargePart[];
}

export type LargePart = "recon" | "train" | "inception";
export const LARGE_PARTS: readonly LargePart[] = ["recon", "train", "inception"];

export interface LargeBenchResult {
  ours: Record<string, number>;
  theirs?: Record<string, number>;
  notes: string[];
}

/** The deterministic images both sides use for the agreement check: frac(i * 0.618034). */
export function fixedInput(batch: number, size: number): Tensor {
  const n = batch * 3 * size * size;
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (i * 0.618034) % 1;
  return tensor(v, [batch, 3, size, size]);
}

export function benchLarge(o: LargeBenchOptions): LargeBenchResult {
  const batch = o.batch ?? 4;
  const ours: Record<string, number> = {};
  const notes: string[] = [`large: batch ${batch} of 299x299 images`];
  const parts = o.parts ?? LARGE_PARTS;
  const x = rand([batch, 3, 299, 299]);
  for (const [p, s] of parts.includes("recon") ? LARGE_GEOMETRIES : []) {
    const vae = new ConvVae(VAE_PRESETS[`patch${p}`]);
    vae.eval();
    const run = () =>
      tidy(() =>
        noGrad(() => {
          smooth(patchReconstruct(x, (q) => vae.reconstruct(q, { clip: 5 }), p, s));
        }),
      );
    ours[`patch${p}/${s}.recon`] = batch * timeit(run, o.seconds);
    vae.dispose();
  }

  if (parts.includes("train")) {
    const vae = new ConvVae(VAE_PRESETS.patch64);
    vae.train();
    const opt = new Adam(vae.parameters(), { lr: 1e-3 });
    const xb = rand([PATCH64_TRAIN_BATCH, 3, 64, 64]);
    // Phases, for the profile: forward with the loss, backward, Adam update (seconds summed over the timed steps).
    const phase = { forward: 0, backward: 0, adam: 0, cpu: 0, steps: 0 };
    const cpuSeconds = () => {
      const c = process.cpuUsage();
      return (c.user + c.system) / 1e6;
    };
    const step = () =>
      tidy(() => {
        const c0 = cpuSeconds();
        const t0 = performance.now();
        opt.zeroGrad();
        const l = vae.loss(xb, { beta: 0.01, reconstruction: "bce", clip: 5 }).loss;
        const t1 = performance.now();
        l.backward();
        const t2 = performance.now();
        opt.step();
        const t3 = performance.now();
        phase.forward += t1 - t0;
        phase.backward += t2 - t1;
        phase.adam += t3 - t2;
        phase.cpu += cpuSeconds() - c0;
        phase.steps++;
      });
    ours["patch64.trainStep"] = PATCH64_TRAIN_BATCH * timeit(step, o.seconds);
    const total = phase.forward + phase.backward + phase.adam;
    notes.push(
      `large: 64x64 VAE training step, vaeguard time shares: forward+loss ${((100 * phase.forward) / total).toFixed(0)}%, ` +
        `backward ${((100 * phase.backward) / total).toFixed(0)}%, Adam ${((100 * phase.adam) / total).toFixed(0)}%; ` +
        `${((PATCH64_TRAIN_BATCH * phase.steps) / phase.cpu).toFixed(2)} patches per CPU second (process CPU time, which neighbours on a shared machine disturb less than wall time)`,
    );
    opt.dispose();
    vae.dispose();
    xb.dispose();
  }

  let modelJson = o.modelJson ? resolve(o.modelJson) : resolve("runs/models/nsfwjs/inception_v3/model.json");
  let check: number[] | undefined;
  if (!parts.includes("inception")) {
    modelJson = "-";
  } else if (!existsSync(modelJson) && !o.modelJson) {
    modelJson = extractNsfwjsModels(resolve("runs/models/nsfwjs"), { models: ["inception_v3"] })[0].modelJson;
  }
  if (modelJson !== "-" && existsSync(modelJson)) {
    const model = loadTfjsLayersModel(modelJson);
    const y = randint(0, model.numClasses, [batch]);
    check = tidy(() => noGrad(() => model.forward(fixedInput(1, 299)).toArray()));
    ours["inception.infer"] =
      batch * timeit(() => tidy(() => noGrad(() => void model.forward(x).argmax(1))), o.seconds);
    ours["inception.inputGrad"] =
      batch *
      timeit(
        () =>
          tidy((): Tensor => {
            const xa = x.clone().requiresGrad_();
            return grad(crossEntropy(model.forward(xa), y), [xa])[0];
          }).dispose(),
        o.seconds,
      );
    y.dispose();
    model.dispose();
  } else if (modelJson !== "-") {
    notes.push(`large: no Inception V3 at ${modelJson}; run vaeguard models import-nsfwjs`);
  }
  x.dispose();

  let theirs: Record<string, number> | undefined;
  const script = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bench", "torch_large.py");
  if (existsSync(o.python)) {
    const r = spawnSync(
      o.python,
      [
        script,
        String(o.threads),
        String(o.seconds),
        String(batch),
        existsSync(modelJson) ? modelJson : "-",
        parts.join(","),
      ],
      { encoding: "utf8", maxBuffer: 1 << 24, env: { ...process.env, OPENBLAS_NUM_THREADS: String(o.threads) } },
    );
    if (r.status === 0) {
      const parsed = JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, number | number[] | string>;
      theirs = {};
      for (const [k, v] of Object.entries(parsed)) if (typeof v === "number" && k.includes(".")) theirs[k] = v;
      const shares = parsed["patch64.trainStep.shares"];
      if (Array.isArray(shares)) {
        notes.push(
          `large: 64x64 VAE training step, PyTorch time shares: forward+loss ${shares[0]}%, backward ${shares[1]}%, Adam ${shares[2]}%; ` +
            `${parsed["patch64.trainStep.perCpuSecond"]} patches per CPU second`,
        );
      }
      const tcheck = parsed["inception.check"];
      if (check && Array.isArray(tcheck)) {
        const diff = Math.max(...check.map((v, i) => Math.abs(v - tcheck[i])));
        notes.push(
          `large: Inception V3 logits of one fixed image, vaeguard vs PyTorch rebuild: max |difference| ${diff.toExponential(2)}`,
        );
      }
    } else {
      notes.push(`large: PyTorch run failed: ${r.stderr.trim().split("\n").pop()}`);
    }
  } else {
    notes.push(`large: no PyTorch comparison: ${o.python} not found (apt-get install python3-torch)`);
  }
  return { ours, theirs, notes };
}
