"""PyTorch counterparts of bench/large-images.ts, run by it in the same `npm run bench` run.

Usage: torch_large.py THREADS SECONDS BATCH MODEL_JSON|- [PARTS]  (PARTS: comma list of recon,train,inception; default all)

Prints one JSON object: {figure: images_per_second, ...} plus "inception.check", the logits of
the first image of a fixed input, so the TypeScript side can prove both engines ran the same network.

Same work as the TypeScript side:
- patch<p>/<s>.recon: patch-wise reconstruction of BATCH random 299x299 images with a
  random-weight VAE of the paper's Table 3 (p = 16, 32, 64), stride s: the patch grid of
  src/defenses/patch-vae.ts (last patch anchored at 299 - p), cut out with F.unfold per regular
  run of positions, every patch through the VAE as one batch (chunks of at most
  min(4096, 2^22 / (3 p^2)) patches), F.fold back, overlaps divided by their counts, then the
  5x5 smoothing filter (PIL SMOOTH_MORE) with the two border rows and columns copied;
- patch64.trainStep: one Adam step of the 64x64 VAE (Table 3, 100M parameters) on 32 random patches,
  BCE + 0.01 KL with clipped latent noise, in patches/s;
- inception.infer / inception.inputGrad: the TF.js Layers Inception V3 of nsfwjs, rebuilt here
  from its model.json and weight shards (Conv2D, BatchNormalization, Activation, pooling,
  Concatenate, Dense, Dropout, Flatten), NCHW, final softmax removed (logits, as vaeguard's
  importer returns), eval mode; input gradient of the cross-entropy.
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TRAIN_BATCH = 32  # bench/large-images.ts PATCH64_TRAIN_BATCH: the 64x64 VAE's training batch in reproduce imagenet
SMOOTH = [[1, 1, 1, 1, 1], [1, 5, 5, 5, 1], [1, 5, 44, 5, 1], [1, 5, 5, 5, 1], [1, 1, 1, 1, 1]]
PRESETS = {
    16: ((64, 32, 16), 512),
    32: ((64, 32, 16), 512),
    64: ((128, 64, 32), 1024),
}


class ConvVae(nn.Module):
    """src/models/vae.ts for the Table 3 presets: 3x3 same convs, max pool after the first, dense mu/logvar."""

    def __init__(self, size):
        super().__init__()
        chans, latent = PRESETS[size]
        ins = (3,) + chans[:-1]
        self.enc = nn.ModuleList([nn.Conv2d(i, o, 3, padding=1) for i, o in zip(ins, chans)])
        self.side = size // 2
        flat = chans[-1] * self.side * self.side
        self.bottleneck = (chans[-1], self.side, self.side)
        self.fc_mu = nn.Linear(flat, latent)
        self.fc_logvar = nn.Linear(flat, latent)
        self.fc_dec = nn.Linear(latent, flat)
        full = (3,) + chans
        self.dec = nn.ModuleList(
            [nn.ConvTranspose2d(full[i + 1], full[i], 3, padding=1) for i in reversed(range(len(chans)))]
        )

    def encode(self, x):
        h = x
        for i, conv in enumerate(self.enc):
            h = F.relu(conv(h))
            if i == 0:
                h = F.max_pool2d(h, 2)
        f = h.flatten(1)
        return self.fc_mu(f), self.fc_logvar(f)

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(mu + (0.5 * logvar).exp() * torch.randn_like(mu).clamp(-5, 5))

    def loss(self, x, beta=0.01):
        """src/models/vae.ts ConvVae.loss: BCE summed over pixels + beta * KL summed over latents, per image."""
        mu, logvar = self.encode(x)
        r = self.decode(mu + (0.5 * logvar).exp() * torch.randn_like(mu).clamp(-5, 5))
        n = x.shape[0]
        rec = F.binary_cross_entropy(r, x, reduction="sum") / n
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum() / n
        return rec + beta * kl

    def decode(self, z):
        h = F.relu(self.fc_dec(z)).reshape(z.shape[0], *self.bottleneck)
        n = len(self.dec)
        for j, conv in enumerate(self.dec):
            if j == n - 1:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = conv(h)
            h = F.relu(h) if j < n - 1 else torch.sigmoid(h)
        return h


def positions(size, p, s):
    moves = (size - (p - s)) // s + 1
    pos = [i * s for i in range(moves - 1)]
    if not pos or pos[-1] != size - p:
        pos.append(size - p)
    return pos


def runs(pos, s):
    out = []
    for q in pos:
        if out and q == out[-1][0] + out[-1][1] * s:
            out[-1][1] += 1
        else:
            out.append([q, 1])
    return out


def cover(size, p, pos):
    c = torch.zeros(size)
    for q in pos:
        c[q : q + p] += 1
    return c


def smooth(x):
    c = x.shape[1]
    k = torch.tensor(SMOOTH, dtype=x.dtype) / 100
    w = k.reshape(1, 1, 5, 5).expand(c, 1, 5, 5).contiguous()
    f = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), w, groups=c)
    out = x.clone()
    out[:, :, 2:-2, 2:-2] = f[:, :, 2:-2, 2:-2]
    return out


def patch_reconstruct(x, vae, p, s):
    n, c, h, w = x.shape
    rp, cp = positions(h, p, s), positions(w, p, s)
    span = lambda r: (r[1] - 1) * s + p
    pieces = [(r[0], q[0], span(r), span(q), r[1] * q[1]) for r in runs(rp, s) for q in runs(cp, s)]
    total = sum(pc[4] for pc in pieces)
    cols = torch.cat([F.unfold(x[:, :, t : t + hh, l : l + ww], p, stride=s) for t, l, hh, ww, _ in pieces], 2)
    patches = cols.permute(0, 2, 1).reshape(n * total, c, p, p)
    chunk = max(1, min(4096, 2**22 // (c * p * p)))
    rec = torch.cat([vae(patches[i : i + chunk]) for i in range(0, n * total, chunk)], 0)
    rec = rec.reshape(n, total, c * p * p).permute(0, 2, 1)
    out = torch.zeros_like(x)
    off = 0
    for t, l, hh, ww, k in pieces:
        out[:, :, t : t + hh, l : l + ww] += F.fold(rec[:, :, off : off + k], (hh, ww), p, stride=s)
        off += k
    counts = cover(h, p, rp).reshape(1, 1, h, 1) * cover(w, p, cp).reshape(1, 1, 1, w)
    return smooth(out / counts)


# ---------------------------------------------------------------- TF.js Layers Inception V3


def load_weights(model_json):
    folder = os.path.dirname(model_json)
    with open(model_json) as f:
        j = json.load(f)
    weights = {}
    for group in j["weightsManifest"]:
        data = b"".join(open(os.path.join(folder, p), "rb").read() for p in group["paths"])
        off = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            q = spec.get("quantization")
            if q:
                dt = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}[q["dtype"]]
                raw = np.frombuffer(data, dtype=dt, count=count, offset=off)
                off += raw.nbytes
                v = raw.astype(np.float32) if q["dtype"] == "float16" else raw.astype(np.float32) * q["scale"] + q["min"]
            else:
                raw = np.frombuffer(data, dtype=np.float32, count=count, offset=off)
                off += raw.nbytes
                v = raw
            weights[spec["name"]] = torch.from_numpy(np.array(v, dtype=np.float32).reshape(spec["shape"]))
    topo = j["modelTopology"]
    return topo.get("model_config", topo), weights


class KerasGraph(nn.Module):
    """The layer types of Keras' InceptionV3, NCHW; enough for nsfwjs' Inception V3, and it refuses others."""

    def __init__(self, model_json):
        super().__init__()
        config, w = load_weights(model_json)
        self.layers = config["config"]["layers"]
        self.inputs = [n[0] for n in config["config"]["input_layers"]]
        self.output = config["config"]["output_layers"][0][0]
        self.mods = nn.ModuleDict()
        self.kind = {}
        for layer in self.layers:
            name, cls, cfg = layer["name"], layer["class_name"], layer["config"]
            get = lambda k: w[f"{name}/{k}"]
            self.kind[name] = (cls, cfg)
            if cls == "Conv2D":
                k = get("kernel").permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
                kh, kw = k.shape[2:]
                if cfg["padding"] == "same" and tuple(cfg["strides"]) != (1, 1):
                    raise SystemExit(f"unsupported: strided 'same' Conv2D {name}")
                pad = (kh // 2, kw // 2) if cfg["padding"] == "same" else 0
                conv = nn.Conv2d(k.shape[1], k.shape[0], (kh, kw), stride=tuple(cfg["strides"]), padding=pad, bias=cfg["use_bias"])
                conv.weight.data.copy_(k)
                if cfg["use_bias"]:
                    conv.bias.data.copy_(get("bias"))
                self.mods[name] = conv
            elif cls == "BatchNormalization":
                mean, var = get("moving_mean"), get("moving_variance")
                bn = nn.BatchNorm2d(mean.numel(), eps=cfg["epsilon"])
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
                bn.weight.data.copy_(get("gamma") if cfg.get("scale", True) else torch.ones_like(mean))
                bn.bias.data.copy_(get("beta") if cfg.get("center", True) else torch.zeros_like(mean))
                self.mods[name] = bn
            elif cls == "Dense":
                k = get("kernel")
                lin = nn.Linear(k.shape[0], k.shape[1], bias=cfg["use_bias"])
                lin.weight.data.copy_(k.t())
                if cfg["use_bias"]:
                    lin.bias.data.copy_(get("bias"))
                self.mods[name] = lin
            elif cls not in ("InputLayer", "Activation", "MaxPooling2D", "AveragePooling2D", "Concatenate", "Dropout", "Flatten"):
                raise SystemExit(f"unsupported layer {cls} ({name})")

    @staticmethod
    def activation(a, x, final):
        if a == "linear" or (final and a == "softmax"):
            return x
        if a == "relu":
            return F.relu(x)
        if a == "softmax":
            return F.softmax(x, 1)
        raise SystemExit(f"unsupported activation {a}")

    def forward(self, x):
        vals = {self.inputs[0]: x}
        for layer in self.layers:
            name, cls, cfg = layer["name"], layer["class_name"], layer["config"]
            if cls == "InputLayer":
                continue
            ins = [vals[n[0]] for n in layer["inbound_nodes"][0]]
            h = ins[0]
            final = name == self.output
            if cls in ("Conv2D", "Dense"):
                h = self.activation(cfg.get("activation", "linear"), self.mods[name](h), final)
            elif cls == "BatchNormalization":
                h = self.mods[name](h)
            elif cls == "Activation":
                h = self.activation(cfg["activation"], h, final)
            elif cls in ("MaxPooling2D", "AveragePooling2D"):
                k, s = tuple(cfg["pool_size"]), tuple(cfg["strides"])
                pad = (k[0] // 2, k[1] // 2) if cfg["padding"] == "same" else 0
                if cfg["padding"] == "same" and s != (1, 1):
                    raise SystemExit(f"unsupported: strided 'same' pooling {name}")
                if cls == "MaxPooling2D":
                    h = F.max_pool2d(h, k, s, padding=pad)
                else:
                    # TF's "same" average pooling leaves the padding out of the count.
                    h = F.avg_pool2d(h, k, s, padding=pad, count_include_pad=False)
            elif cls == "Concatenate":
                h = torch.cat(ins, 1)
            elif cls == "Flatten":
                h = h.permute(0, 2, 3, 1).flatten(1)  # Keras flattens channels-last
            elif cls == "Dropout":
                pass
            vals[name] = h
        return vals[self.output]


def timeit(fn, seconds):
    fn()  # warm-up
    n = 0
    t0 = time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds and n >= 3:
            return n / el


def fixed_input(batch, size):
    """The same deterministic images as bench/large-images.ts: frac(i * 0.618034) in float32."""
    i = torch.arange(batch * 3 * size * size, dtype=torch.float64)
    return torch.frac(i * 0.618034).float().reshape(batch, 3, size, size)


def main():
    threads, seconds, batch = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    model_json = sys.argv[4] if len(sys.argv) > 4 else "-"
    parts = sys.argv[5].split(",") if len(sys.argv) > 5 else ["recon", "train", "inception"]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    x = torch.rand(batch, 3, 299, 299)
    with torch.no_grad():
        for p, s in ((16, 8), (32, 16), (64, 32)) if "recon" in parts else ():
            vae = ConvVae(p).eval()
            out[f"patch{p}/{s}.recon"] = batch * timeit(lambda: patch_reconstruct(x, vae, p, s), seconds)
            del vae
    if "train" in parts:
        # patch64.trainStep: one Adam step (lr 1e-3) of the 64x64 VAE on TRAIN_BATCH random patches.
        vae = ConvVae(64).train()
        opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
        xb = torch.rand(TRAIN_BATCH, 3, 64, 64)

        phase = [0.0, 0.0, 0.0]
        cpu = [0.0, 0]

        def train_step():
            c0 = time.process_time()
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = vae.loss(xb)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            phase[0] += t1 - t0
            phase[1] += t2 - t1
            phase[2] += t3 - t2
            cpu[0] += time.process_time() - c0
            cpu[1] += 1

        out["patch64.trainStep"] = TRAIN_BATCH * timeit(train_step, seconds)
        out["patch64.trainStep.shares"] = [round(100 * p / sum(phase)) for p in phase]
        out["patch64.trainStep.perCpuSecond"] = "%.2f" % (TRAIN_BATCH * cpu[1] / cpu[0])
        del vae, opt
    if "inception" in parts and model_json != "-" and os.path.exists(model_json):
        net = KerasGraph(model_json).eval()
        with torch.no_grad():
            out["inception.check"] = net(fixed_input(1, 299))[0].tolist()
        y = torch.randint(0, 5, (batch,))

        def infer():
            with torch.no_grad():
                net(x).argmax(1)

        def input_grad():
            xa = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(net(xa), y), [xa])
            return g

        out["inception.infer"] = batch * timeit(infer, seconds)
        out["inception.inputGrad"] = batch * timeit(input_grad, seconds)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
