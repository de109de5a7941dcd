/**
 * Module: named parameters and buffers with PyTorch-compatible dotted names
 * (`encoder.conv1.weight`), train/eval mode, state dicts.
 */
import { keep, noGrad } from "../core/engine.js";
import { Tensor } from "../core/tensor.js";
import { CheckpointError, VaeguardError } from "../core/errors.js";

export abstract class Module {
  training = true;
  private readonly _params = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _modules = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  /** Register a learnable tensor; it is kept out of tidy scopes and requires grad. */
  protected registerParameter(name: string, t: Tensor): Tensor {
    this.checkName(name);
    keep(t);
    if (!t.requiresGrad) t.requiresGrad_(true);
    this._params.set(name, t);
    return t;
  }

  /** Register persistent state that is not learned (running statistics). */
  protected registerBuffer(name: string, t: Tensor): Tensor {
    this.checkName(name);
    keep(t);
    this._buffers.set(name, t);
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.checkName(name);
    this._modules.set(name, m);
    return m;
  }

  private checkName(name: string): void {
    if (name === "" || name.includes(".")) throw new VaeguardError(`Invalid parameter or module name '${name}'`);
    if (this._params.has(name) || this._buffers.has(name) || this._modules.has(name)) {
      throw new VaeguardError(`Name '${name}' is already registered in ${this.constructor.name}`);
    }
  }

  children(): [string, Module][] {
    return [...this._modules.entries()];
  }

  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of this._params) out.push([prefix + n, p]);
    for (const [n, m] of this._modules) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, b] of this._buffers) out.push([prefix + n, b]);
    for (const [n, m] of this._modules) out.push(...m.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  /** Parameters and buffers by dotted name, as PyTorch's state_dict(). The tensors are the module's own. */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /**
   * Copy values from a state dict. Every key and shape is checked; the first
   * missing, unexpected or mismatched entry is named in a CheckpointError.
   */
  loadStateDict(state: Map<string, Tensor>, options: { strict?: boolean; source?: string } = {}): void {
    const source = options.source ?? "state dict";
    const own = this.stateDict();
    for (const [name, t] of own) {
      const src = state.get(name);
      if (!src) throw new CheckpointError(source, `missing tensor '${name}' (expected shape [${t.shape.join(", ")}])`);
      if (src.shape.join(",") !== t.shape.join(",")) {
        throw new CheckpointError(
          source,
          `tensor '${name}' has shape [${src.shape.join(", ")}] but this model needs [${t.shape.join(", ")}]`,
        );
      }
    }
    if (options.strict ?? true) {
      for (const name of state.keys()) {
        if (!own.has(name)) throw new CheckpointError(source, `unexpected tensor '${name}' for this model`);
      }
    }
    noGrad(() => {
      for (const [name, t] of own) {
        const src = state.get(name)!;
        if (src.dtype !== t.dtype) {
          const c = src.to(t.dtype);
          t.copy_(c);
          c.dispose();
        } else {
          t.copy_(src);
        }
      }
    });
  }

  train(on = true): this {
    this.training = on;
    for (const m of this._modules.values()) m.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Clear accumulated gradients. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      const g = p.grad;
      if (g) {
        g.dispose();
        p.grad = undefined;
      }
    }
  }

  /** Move parameters and buffers to a device (no-op when already there). */
  to(device: string): this {
    for (const map of [this._params, this._buffers]) {
      for (const [n, t] of map) {
        if (t.device === device) continue;
        const moved = noGrad(() => t.to(device));
        if (t.requiresGrad) moved.requiresGrad_(true);
        keep(moved);
        t.dispose();
        map.set(n, moved);
      }
    }
    for (const m of this._modules.values()) m.to(device);
    this.onMoved();
    return this;
  }

  /** Hook for subclasses that cache parameter references. */
  protected onMoved(): void {}

  /** Number of learnable scalars. */
  numParameters(): number {
    return this.parameters().reduce((a, p) => a + p.size, 0);
  }

  /** Free every parameter and buffer. */
  dispose(): void {
    for (const t of this._params.values()) t.dispose();
    for (const t of this._buffers.values()) t.dispose();
    for (const m of this._modules.values()) m.dispose();
  }
}
