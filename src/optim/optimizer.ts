/** Optimizers update parameters in place, outside autograd. */
import { keep, noGrad, tidy } from "../core/engine.js";
import { Tensor } from "../core/tensor.js";
import { checkBool, checkNumber } from "../core/validate.js";
import { VaeguardError } from "../core/errors.js";

export abstract class Optimizer {
  protected readonly params: Tensor[];
  private learningRate: number;
  constructor(params: Tensor[], lr: number) {
    if (!Array.isArray(params) || params.length === 0)
      throw new VaeguardError("Optimizer needs a non-empty list of parameters");
    this.params = params;
    this.learningRate = checkNumber(lr, "lr", 0);
  }

  get lr(): number {
    return this.learningRate;
  }

  set lr(v: number) {
    this.learningRate = checkNumber(v, "lr", 0);
  }

  /** Clear the parameters' gradients (set to none, as PyTorch 2 does by default). */
  zeroGrad(): void {
    for (const p of this.params) {
      const g = p.grad;
      if (g) {
        g.dispose();
        p.grad = undefined;
      }
    }
  }

  /** Apply one update from the accumulated gradients. Parameters without a gradient are skipped. */
  step(): void {
    noGrad(() =>
      tidy(() => {
        this.params.forEach((p, i) => {
          const g = p.grad;
          if (g) this.update(p, g, i);
        });
      }),
    );
  }

  protected abstract update(p: Tensor, g: Tensor, index: number): void;

  /** Free the optimizer's state tensors. */
  abstract dispose(): void;

  /** State tensors by name (`<param index>.<slot>`) and scalar settings, for checkpoints. */
  abstract stateDict(): { tensors: Map<string, Tensor>; scalars: Record<string, number[] | number> };
  /** Restore what stateDict() returned (tensors are copied). */
  abstract loadStateDict(state: { tensors: Map<string, Tensor>; scalars: Record<string, number[] | number> }): void;
}

function restoreSlot(slots: (Tensor | undefined)[], tensors: Map<string, Tensor>, name: string): void {
  slots.forEach((old, i) => {
    const t = tensors.get(`${i}.${name}`);
    old?.dispose();
    slots[i] = t ? keep(t.clone()) : undefined;
  });
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** Stochastic gradient descent with momentum, Nesterov and weight decay, as torch.optim.SGD. */
export class SGD extends Optimizer {
  private readonly opts: Required<Omit<SGDOptions, "lr">>;
  private readonly buffers: (Tensor | undefined)[];
  constructor(params: Tensor[], options: SGDOptions) {
    super(params, options.lr);
    this.opts = {
      momentum: checkNumber(options.momentum ?? 0, "momentum", 0),
      dampening: checkNumber(options.dampening ?? 0, "dampening", 0),
      weightDecay: checkNumber(options.weightDecay ?? 0, "weightDecay", 0),
      nesterov: checkBool(options.nesterov ?? false, "nesterov"),
    };
    if (this.opts.nesterov && (this.opts.momentum <= 0 || this.opts.dampening !== 0)) {
      throw new VaeguardError("Nesterov momentum needs momentum > 0 and dampening 0");
    }
    this.buffers = params.map(() => undefined);
  }
  protected update(p: Tensor, g: Tensor, i: number): void {
    const { lr } = this;
    const { momentum, dampening, weightDecay, nesterov } = this.opts;
    let d = weightDecay !== 0 ? g.add(p.mul(weightDecay)) : g;
    if (momentum !== 0) {
      let buf = this.buffers[i];
      if (!buf) {
        buf = keep(d.clone());
        this.buffers[i] = buf;
      } else {
        buf.mul_(momentum).add_(d, 1 - dampening);
      }
      d = nesterov ? d.add(buf.mul(momentum)) : buf;
    }
    p.add_(d, -lr);
  }
  dispose(): void {
    for (const b of this.buffers) b?.dispose();
  }
  stateDict(): { tensors: Map<string, Tensor>; scalars: Record<string, number[] | number> } {
    const tensors = new Map<string, Tensor>();
    this.buffers.forEach((b, i) => b && tensors.set(`${i}.momentum_buffer`, b));
    return { tensors, scalars: { lr: this.lr } };
  }
  loadStateDict(state: { tensors: Map<string, Tensor>; scalars: Record<string, number[] | number> }): void {
    restoreSlot(this.buffers, state.tensors, "momentum_buffer");
    if (typeof state.scalars.lr === "number") this.lr = state.scalars.lr;
  }
}

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** Adam, as torch.optim.Adam (L2 weight decay added to the gradient). */
export class Adam extends Optimizer {
  private readonly opts: { beta1: number; beta2: number; eps: number; weightDecay: number };
  private readonly expAvg: (Tensor | undefined)[];
  private readonly expAvgSq: (Tensor | undefined)[];
  private readonly steps: number[];
  constructor(params: Tensor[], options: AdamOptions = {}) {
    super(params, options.lr ?? 1e-3);
    const [b1, b2] = options.betas ?? [0.9, 0.999];
    this.opts = {
      beta1: checkNumber(b1, "betas[0]", 0, 1),
      beta2: checkNumber(b2, "betas[1]", 0, 1),
      eps: checkNumber(options.eps ?? 1e-8, "eps", 0),
      weightDecay: checkNumber(options.weightDecay ?? 0, "weightDecay", 0),
    };
    this.expAvg = params.map(() => undefined);
    this.expAvgSq = params.map(() => undefined);
    this.steps = params.map(() => 0);
  }
  protected update(p: Tensor, g: Tensor, i: number): void {
    const { lr } = this;
    const { beta1, beta2, eps, weightDecay } = this.opts;
    const grad = weightDecay !== 0 ? g.add(p.mul(weightDecay)) : g;
    let m = this.expAvg[i];
    let v = this.expAvgSq[i];
    if (!m || !v) {
      m = keep(grad.mul(0));
      v = keep(grad.mul(0));
      this.expAvg[i] = m;
      this.expAvgSq[i] = v;
    }
    const step = ++this.steps[i];
    m.lerp_(grad, 1 - beta1);
    v.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
    const bc1 = 1 - beta1 ** step;
    const bc2 = 1 - beta2 ** step;
    const denom = v.sqrt().div_(Math.sqrt(bc2)).add_(eps);
    p.addcdiv_(m, denom, -lr / bc1);
  }
  dispose(): void {
    for (const t of [...this.expAvg, ...this.expAvgSq]) t?.dispose();
  }
  stateDict(): { tensors: Map<string, Tensor>; scalars: Record<string, number[] | number> } {
    const tensors = new Map<string, Tensor>();
    this.expAvg.forEach((t, i) => t && tensors.set(`${i}.exp_avg`, t));
    this.expAvgSq.forEach((t, i) => t && tensors.set(`${i}.exp_avg_sq`, t));
    return { tensors, scalars: { lr: this.lr, step: [...this.steps] } };
  }
  loadStateDict(state: { tensors: Map<string, Tensor>; scalars: Record<string, number[] | number> }): void {
    restoreSlot(this.expAvg, state.tensors, "exp_avg");
    restoreSlot(this.expAvgSq, state.tensors, "exp_avg_sq");
    const steps = state.scalars.step;
    if (Array.isArray(steps)) steps.forEach((s, i) => i < this.steps.length && (this.steps[i] = s));
    if (typeof state.scalars.lr === "number") this.lr = state.scalars.lr;
  }
}
