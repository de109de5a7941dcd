/**
 * TorchScript classifiers: a module saved with torch.jit.script or
 * torch.jit.trace (`module.save("model.pt")`), run through libtorch's JIT.
 *
 * The wrapper takes images [N, C, H, W] in [0, 1] and normalises them,
 * (x - mean) / std per channel, before the module sees them, so attacks work
 * in pixel space. Autograd flows through the JIT: input gradients with grad()
 * work as for any other model. The module runs on the CPU.
 */
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { binding, type NativeModule, type NativeTensor } from "../binding.js";
import { keep, noGrad, tidy } from "../core/engine.js";
import { CheckpointError, ShapeError, TorchError } from "../core/errors.js";
import { Tensor, tensor, wrap, zeros } from "../core/tensor.js";
import { checkInt, fail } from "../core/validate.js";
import type { ImageClassifier } from "./classifiers.js";

export interface TorchScriptOptions {
  /** [C, H, W] of the images the module takes. */
  inputShape: readonly [number, number, number];
  /** Number of classes; found with one probe run on zeros when omitted. */
  numClasses?: number;
  /** Per-channel mean subtracted from [0, 1] images (default 0). */
  mean?: number | readonly number[];
  /** Per-channel standard deviation the images are divided by (default 1). */
  std?: number | readonly number[];
}

function fmt(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

function isNativeTensor(v: unknown): v is NativeTensor {
  return v instanceof binding.NativeTensor;
}

/** Free every native tensor in a JIT output that we are not going to use. */
function disposeOutput(v: unknown): void {
  if (isNativeTensor(v)) v.dispose();
  else if (Array.isArray(v)) v.forEach(disposeOutput);
  else if (typeof v === "object" && v !== null) Object.values(v).forEach(disposeOutput);
}

function describeOutput(v: unknown): string {
  if (isNativeTensor(v)) return "a tensor";
  if (Array.isArray(v)) return `a tuple or list of ${v.length}`;
  if (v === null) return "None";
  return typeof v === "object" ? "a dictionary" : typeof v;
}

export class TorchScriptClassifier implements ImageClassifier {
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  readonly mean: readonly number[];
  readonly std: readonly number[];
  private module: NativeModule | null;
  private readonly meanT: Tensor | null;
  private readonly invStdT: Tensor | null;

  /** @internal use TorchScriptClassifier.load */
  constructor(
    module: NativeModule,
    readonly source: string,
    options: TorchScriptOptions,
  ) {
    this.module = module;
    try {
      const s = options?.inputShape;
      if (!Array.isArray(s) || s.length !== 3 || !s.every((d) => Number.isInteger(d) && d > 0)) {
        fail("[channels, height, width] of positive integers", "inputShape", s);
      }
      this.inputShape = [s[0], s[1], s[2]];
      const perChannel = (v: number | readonly number[] | undefined, dflt: number, name: string): number[] => {
        const c = s[0];
        if (v === undefined) return new Array<number>(c).fill(dflt);
        if (typeof v === "number" && Number.isFinite(v)) return new Array<number>(c).fill(v);
        if (Array.isArray(v) && v.length === c && v.every((d) => typeof d === "number" && Number.isFinite(d)))
          return [...v];
        return fail(`a number or ${c} numbers`, name, v);
      };
      this.mean = perChannel(options.mean, 0, "mean");
      this.std = perChannel(options.std, 1, "std");
      if (this.std.some((d) => d <= 0)) fail("positive numbers", "std", options.std);
      const identity = this.mean.every((m) => m === 0) && this.std.every((d) => d === 1);
      this.meanT = identity ? null : keep(tensor(Float32Array.from(this.mean), [1, s[0], 1, 1]));
      this.invStdT = identity
        ? null
        : keep(
            tensor(
              Float32Array.from(this.std, (d) => 1 / d),
              [1, s[0], 1, 1],
            ),
          );
      if (options.numClasses !== undefined) {
        this.numClasses = checkInt(options.numClasses, "numClasses", 1);
      } else {
        // Probe in eval mode so batch-norm statistics stay untouched, then restore the mode.
        const wasTraining = this.training;
        this.train(false);
        try {
          const out = noGrad(() => tidy(() => this.forward(zeros([1, ...this.inputShape]))));
          this.numClasses = out.dims[1];
          out.dispose();
        } finally {
          this.train(wasTraining);
        }
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /**
   * Load a TorchScript file. A missing, unreadable or corrupt file gives a
   * CheckpointError naming it (libtorch's own message included).
   */
  static load(path: string, options: TorchScriptOptions): TorchScriptClassifier {
    if (typeof path !== "string" || path === "") fail("a path to a TorchScript .pt file", "path", path);
    const file = resolve(path);
    if (!existsSync(file)) throw new CheckpointError(file, "file not found");
    if (statSync(file).isDirectory()) throw new CheckpointError(file, "is a folder, not a TorchScript file");
    let module: NativeModule;
    try {
      module = binding.jitLoad(file);
    } catch (e) {
      const msg = (e as Error).message.split("\n")[0];
      throw new CheckpointError(file, `not a loadable TorchScript module (${msg})`, { cause: e });
    }
    try {
      return new TorchScriptClassifier(module, file, options);
    } catch (e) {
      if (e instanceof TorchError || e instanceof ShapeError) {
        throw new CheckpointError(
          file,
          `the module does not run on ${fmt([1, ...options.inputShape])} inputs: ${(e as Error).message.split("\n")[0]}`,
          {
            cause: e,
          },
        );
      }
      throw e;
    }
  }

  private get handle(): NativeModule {
    if (this.module === null) throw new CheckpointError(this.source, "this TorchScript model was disposed");
    return this.module;
  }

  /** Logits [N, numClasses] for images [N, C, H, W] in [0, 1]. */
  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor)) fail("a tensor", "x", x);
    const [c, h, w] = this.inputShape;
    if (x.rank !== 4 || x.dims[1] !== c || x.dims[2] !== h || x.dims[3] !== w) {
      throw new ShapeError(`TorchScriptClassifier: expected images [N, ${c}, ${h}, ${w}] but received ${fmt(x.dims)}`);
    }
    return tidy(() => {
      const input = this.meanT && this.invStdT ? x.sub(this.meanT).mul(this.invStdT) : x;
      const out = binding.jitForward(this.handle, [input.handle]);
      if (!isNativeTensor(out)) {
        disposeOutput(out);
        throw new ShapeError(
          `TorchScriptClassifier: the module returned ${describeOutput(out)}; expected a tensor of logits`,
        );
      }
      const y = wrap(out);
      if (y.rank !== 2 || y.dims[0] !== x.dims[0]) {
        throw new ShapeError(
          `TorchScriptClassifier: the module returned shape ${fmt(y.dims)}; expected logits [${x.dims[0]}, classes]`,
        );
      }
      return y;
    });
  }

  get training(): boolean {
    return binding.jitIsTraining(this.handle);
  }

  train(on = true): this {
    binding.jitTrain(this.handle, on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Parameters and buffers by dotted name (PyTorch's state_dict keys). The
   * tensors are new handles on the module's own storage: changing them
   * changes the module; dispose them when done.
   */
  stateDict(): Map<string, Tensor> {
    return new Map(binding.jitNamedParameters(this.handle).map(([n, t]) => [n, wrap(t)] as [string, Tensor]));
  }

  /**
   * Learnable parameters by dotted name. TorchScript does not tell parameters
   * from buffers here, so tensors that require grad count as parameters.
   */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.stateDict()) {
      if (t.requiresGrad) out.push([n, t]);
      else t.dispose();
    }
    return out;
  }

  /** Free the module and the normalisation constants. Safe to call more than once. */
  dispose(): void {
    this.meanT?.dispose();
    this.invStdT?.dispose();
    this.module?.dispose();
    this.module = null;
  }
}

/** Load a TorchScript classifier (see TorchScriptClassifier.load). */
export function loadTorchScriptClassifier(path: string, options: TorchScriptOptions): TorchScriptClassifier {
  return TorchScriptClassifier.load(path, options);
}
