#!/usr/bin/python3
"""Run a .tflite model with a reference runtime: Arm NN's TFLite parser and its
reference (CpuRef) backend, which executes quantised models with integer
kernels, as TFLite does.

Needs Debian's python3-pyarmnn and libarmnn-cpuref-backend22 (run with
/usr/bin/python3, the interpreter those packages install into):

    apt-get install python3-pyarmnn libarmnn-cpuref-backend22

    /usr/bin/python3 scripts/tflite-reference.py MODEL.tflite INPUTS.bin OUTPUTS.bin \
        [--count N] [--max-seconds S]

INPUTS.bin holds N input tensors back to back, each in the model input's own
type and shape (for example uint8 [1, 224, 224, 3]). OUTPUTS.bin receives one
output tensor per input, dequantised to float32 (real = scale * (q - zero
point)), appended as each input is done: a run stopped by --max-seconds (or
killed) resumes where OUTPUTS.bin ends. Prints one JSON line at the end:
{"done": k, "count": N, "seconds": ..., "output_shape": [...], ...}.

CpuRef is slow (about 4 CPU seconds per MobileNetV2 image): --max-seconds
keeps each invocation short; call it again to continue.
"""
import argparse
import json
import os
import sys
import time

import numpy as np


class ReferenceError_(Exception):
    """A problem the caller reports in one line."""


class Reference:
    """One .tflite model loaded into Arm NN's CpuRef backend."""

    def __init__(self, model):
        try:
            import pyarmnn as ann
        except ImportError:
            raise ReferenceError_("pyarmnn is missing (apt-get install python3-pyarmnn libarmnn-cpuref-backend22; "
                                  "run with /usr/bin/python3)")
        self.ann = ann
        parser = ann.ITfLiteParser()
        try:
            network = parser.CreateNetworkFromBinaryFile(model)
        except Exception as e:  # Arm NN raises RuntimeError with its own message
            raise ReferenceError_(f"{model}: Arm NN cannot parse it: {e}")
        in_names = parser.GetSubgraphInputTensorNames(0)
        out_names = parser.GetSubgraphOutputTensorNames(0)
        if len(in_names) != 1 or len(out_names) != 1:
            raise ReferenceError_(f"{model}: expected one input and one output")
        self.in_info = parser.GetNetworkInputBindingInfo(0, in_names[0])
        self.out_info = parser.GetNetworkOutputBindingInfo(0, out_names[0])
        self.runtime = ann.IRuntime(ann.CreationOptions())
        try:
            optimized, _ = ann.Optimize(network, [ann.BackendId("CpuRef")], self.runtime.GetDeviceSpec(),
                                        ann.OptimizerOptions())
        except RuntimeError as e:
            raise ReferenceError_(f"no CpuRef backend ({e}); apt-get install libarmnn-cpuref-backend22")
        self.net_id, _ = self.runtime.LoadNetwork(optimized)
        dtypes = {
            ann.DataType_Float32: np.float32,
            ann.DataType_QAsymmU8: np.uint8,
            ann.DataType_QAsymmS8: np.int8,
            ann.DataType_Signed32: np.int32,
        }
        ti = self.in_info[1]
        self.in_dtype = dtypes[ti.GetDataType()]
        self.in_shape = [ti.GetShape()[i] for i in range(ti.GetNumDimensions())]
        to = self.out_info[1]
        self.out_shape = [to.GetShape()[i] for i in range(to.GetNumDimensions())]
        self.out_quantized = to.GetDataType() != ann.DataType_Float32
        self.out_scale, self.out_zero_point = (
            (to.GetQuantizationScale(), to.GetQuantizationOffset()) if self.out_quantized else (1.0, 0))

    def run(self, x):
        """One input (the input's dtype and shape) -> the output dequantised to float32, flattened."""
        ann = self.ann
        inputs = ann.make_input_tensors([self.in_info], [np.ascontiguousarray(x, dtype=self.in_dtype).reshape(self.in_shape)])
        outputs = ann.make_output_tensors([self.out_info])
        self.runtime.EnqueueWorkload(self.net_id, inputs, outputs)
        y = ann.workload_tensors_to_ndarray(outputs)[0].reshape(-1)
        if not self.out_quantized:
            return y.astype(np.float32)
        return (self.out_scale * (y.astype(np.float64) - self.out_zero_point)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("outputs")
    ap.add_argument("--count", type=int, default=None, help="inputs to run (default: all in INPUTS.bin)")
    ap.add_argument("--max-seconds", type=float, default=None, help="stop (resumably) after this long")
    a = ap.parse_args()
    try:
        ref = Reference(a.model)
    except ReferenceError_ as e:
        print(f"tflite-reference: {e}", file=sys.stderr)
        sys.exit(2)
    in_elems = int(np.prod(ref.in_shape))
    raw = np.fromfile(a.inputs, dtype=ref.in_dtype)
    if raw.size % in_elems != 0:
        print(f"tflite-reference: {a.inputs}: {raw.size} values are not a whole number of inputs {ref.in_shape}",
              file=sys.stderr)
        sys.exit(2)
    total = raw.size // in_elems
    count = total if a.count is None else min(a.count, total)
    out_elems = int(np.prod(ref.out_shape))
    done = os.path.getsize(a.outputs) // (4 * out_elems) if os.path.exists(a.outputs) else 0
    # Drop a partly written record from an interrupted run.
    if os.path.exists(a.outputs):
        with open(a.outputs, "r+b") as f:
            f.truncate(done * 4 * out_elems)
    t0 = time.time()
    with open(a.outputs, "ab") as f:
        while done < count:
            if a.max_seconds is not None and time.time() - t0 > a.max_seconds:
                break
            f.write(ref.run(raw[done * in_elems:(done + 1) * in_elems]).tobytes())
            f.flush()
            done += 1
    print(json.dumps({
        "done": done,
        "count": count,
        "seconds": round(time.time() - t0, 1),
        "input_shape": ref.in_shape,
        "output_shape": ref.out_shape,
        "output_quantized": bool(ref.out_quantized),
        "output_scale": ref.out_scale,
        "output_zero_point": ref.out_zero_point,
        "backend": "CpuRef",
        "armnn": ref.ann.ARMNN_VERSION,
    }))


if __name__ == "__main__":
    main()
