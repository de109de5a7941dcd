/** Parameter initialisers matching PyTorch's defaults. */
import { noGrad } from "../core/engine.js";
import { Tensor } from "../core/tensor.js";

/** fan_in and fan_out as torch.nn.init._calculate_fan_in_and_fan_out computes them. */
export function fans(shape: readonly number[]): [number, number] {
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return [shape[1] * receptive, shape[0] * receptive];
}

export function uniform_(t: Tensor, bound: number): Tensor {
  return noGrad(() => t.uniform_(-bound, bound));
}

/** kaiming_uniform_(a = sqrt(5)), the default for Linear and Conv weights: bound = 1 / sqrt(fan_in). */
export function kaimingUniformDefault_(t: Tensor): Tensor {
  const [fanIn] = fans(t.dims);
  const gain = Math.sqrt(2 / (1 + 5));
  return uniform_(t, gain * Math.sqrt(3 / fanIn));
}

/** The default bias init of Linear and Conv layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function defaultBias_(bias: Tensor, weightShape: readonly number[]): Tensor {
  const [fanIn] = fans(weightShape);
  return uniform_(bias, fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0);
}

export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const [fi, fo] = fans(t.dims);
  return uniform_(t, gain * Math.sqrt(6 / (fi + fo)));
}
