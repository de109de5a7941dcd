/**
 * A classifier at the data set's resolution: images of any size (the NIPS
 * 2017 set: 299x299) are resized to the wrapped model's input inside the
 * differentiable model, so attacks and defenses work on the full-size image
 * and the gradient flows back through the resize.
 *
 * The resize is bilinear with half-pixel centres (libtorch's interpolate,
 * align_corners false, no antialiasing): each output pixel blends the 2x2
 * source pixels around its centre. sharp's default resize (lanczos3, which
 * libvips widens by the shrink factor when it downsamples) low-pass filters
 * first; for 299 -> 224 the two differ by a few grey levels per pixel
 * (measured in scripts/verify-tflite.py and docs/results).
 *
 * An optional label map reorders (and pads) the outputs into the data set's
 * class index, e.g. Darknet's class order -> the 1001-class ImageNet index.
 */
import { Tensor, tensor } from "../core/tensor.js";
import { keep, noGrad, tidy } from "../core/engine.js";
import { ShapeError } from "../core/errors.js";
import { checkInt, fail } from "../core/validate.js";
import { Module } from "../nn/module.js";
import * as F from "../nn/functional.js";
import type { ImageClassifier } from "./classifiers.js";
import type { LabelMap } from "./label-map.js";

/** Logit of classes a mapped model does not have (ImageNet's "background"): softmax gives it 0. */
export const ABSENT_CLASS_LOGIT = -1e4;

export interface ResizedClassifierOptions {
  /** Size of the images this classifier takes: S or [height, width] (default 299). Other sizes are resized too. */
  inputSize?: number | readonly [number, number];
  labelMap?: LabelMap;
}

/** The wrapped model: a Module (its parameters become this module's), or another classifier such as TorchScript's. */
type Inner = ImageClassifier & { dispose?: () => void };

export class ResizedClassifier extends Module implements ImageClassifier {
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  readonly labelMap: LabelMap | null;
  private readonly modelSize: [number, number];
  private index: Tensor | null = null;

  constructor(
    readonly model: Inner,
    options: ResizedClassifierOptions = {},
  ) {
    super();
    if (model instanceof Module) this.registerModule("model", model);
    const s = options.inputSize ?? 299;
    const [h, w] = typeof s === "number" ? [s, s] : [s[0], s[1]];
    checkInt(h, "inputSize height", 1);
    checkInt(w, "inputSize width", 1);
    const [c, mh, mw] = model.inputShape;
    this.inputShape = [c, h, w];
    this.modelSize = [mh, mw];
    const map = options.labelMap ?? null;
    this.labelMap = map;
    if (map) {
      if (map.inputClasses !== model.numClasses) {
        fail(`a label map for ${model.numClasses} classes`, "labelMap", `a map for ${map.inputClasses} classes`);
      }
      // Absent classes read an extra column holding ABSENT_CLASS_LOGIT.
      const idx = Array.from(map.source, (k) => (k < 0 ? model.numClasses : k));
      this.index = keep(noGrad(() => tensor(BigInt64Array.from(idx.map(BigInt)), [idx.length])));
      this.numClasses = idx.length;
    } else {
      this.numClasses = model.numClasses;
    }
    this.training = model.training;
  }

  /** Logits [N, numClasses] for images [N, C, H, W] in [0, 1] of any height and width. */
  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor)) fail("a tensor", "x", x);
    const c = this.inputShape[0];
    if (x.rank !== 4 || x.dims[1] !== c) {
      throw new ShapeError(`ResizedClassifier: expected images [N, ${c}, H, W] but received [${x.dims.join(", ")}]`);
    }
    return tidy(() => {
      const [mh, mw] = this.modelSize;
      const same = x.dims[2] === mh && x.dims[3] === mw;
      const input = same ? x : F.interpolate(x, { size: [mh, mw], mode: "bilinear", alignCorners: false });
      const y = this.model.forward(input);
      if (!this.index) return y;
      if (this.index.device !== y.device) {
        const old = this.index;
        this.index = keep(noGrad(() => old.to(y.device)));
        old.dispose();
      }
      const padded = y.pad([0, 1], "constant", ABSENT_CLASS_LOGIT);
      return padded.indexSelect(1, this.index);
    });
  }

  override train(on = true): this {
    super.train(on);
    if (!(this.model instanceof Module)) this.model.train(on);
    return this;
  }

  override dispose(): void {
    this.index?.dispose();
    super.dispose();
    if (!(this.model instanceof Module)) this.model.dispose?.();
  }
}
