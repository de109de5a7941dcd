"""The MNIST reproduction of Luo & Pfister (2018) as a plain PyTorch script, for
`npm run bench -- --only pipeline` (bench/pipeline.ts runs it beside vaeguard's
`reproduce` pipeline and compares wall time per stage and the accuracy tables).

Written the way such scripts usually are: tensors from the IDX files, a
DataLoader over a TensorDataset, Adam, a validation pass per epoch, FGSM and
I-FGSM as short functions, a loop over attacks x epsilons x test batches x
defenses. No caching across the epsilon grid, nothing batched across defenses:
that is the baseline the issue asks vaeguard to beat.

Usage: torch_pipeline.py WORK_JSON. WORK_JSON (made by bench/pipeline.ts)
holds the threads, seed, data folder, image counts, epochs, batch sizes, beta
and the epsilon grids. Prints progress on stderr and one JSON object on the
last line of stdout: per-stage wall times, the clean accuracy and the table.
"""
import io
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

try:  # What the field uses for the JPEG baseline; Debian's /usr/bin/python3 may lack it.
    from PIL import Image
    import PIL

    JPEG_ENGINE = f"PIL {PIL.__version__}"
except ImportError:
    Image = None
    JPEG_ENGINE = "no PIL: JPEG's lossy step (8x8 DCT, IJG quality-scaled quantisation) in torch, no entropy coding"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(folder, split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte"))
    y = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte"))
    return torch.from_numpy(x.copy()).float().div(255).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


# ---------------------------------------------------------------- models (Table 1 CNN, Table 2 VAE)


# The same model classes as the single-step benchmark (torch_bench.py, beside this file).
from torch_bench import MnistCnn  # noqa: E402
from torch_bench import MnistVae as BenchVae  # noqa: E402


class MnistVae(BenchVae):
    """torch_bench's VAE with the sampling and forward pass a training loop calls."""

    def sample(self, mu, lv):
        # The authors clip the latent noise to [-5, 5].
        return mu + torch.exp(0.5 * lv) * torch.randn_like(mu).clamp(-5, 5)

    def forward(self, x):
        mu, lv = self.encode(x)
        return self.decode(self.sample(mu, lv)), mu, lv


def vae_loss(rec, x, mu, lv, beta):
    n = x.shape[0]
    bce = F.binary_cross_entropy(rec, x, reduction="sum") / n
    kl = -0.5 * (1 + lv - mu**2 - lv.exp()).sum() / n
    return bce + beta * kl, bce, kl


# ---------------------------------------------------------------- training


def train_classifier(model, train_loader, val_loader, epochs, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        model.train()
        total, seen = 0.0, 0
        for x, y in train_loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            seen += len(y)
        log(f"classifier epoch {epoch + 1}/{epochs}: loss {total / seen:.4f} val acc {accuracy(model, val_loader):.4f}")


def train_vae(vae, train_loader, val_loader, epochs, lr, beta):
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    for epoch in range(epochs):
        vae.train()
        total, seen = 0.0, 0
        for x, _ in train_loader:
            opt.zero_grad()
            rec, mu, lv = vae(x)
            loss, _, _ = vae_loss(rec, x, mu, lv, beta)
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
            seen += len(x)
        vae.eval()
        rec_sum, mse_sum = 0.0, 0.0
        with torch.no_grad():
            for x, _ in val_loader:
                rec, mu, lv = vae(x)
                rec_sum += vae_loss(rec, x, mu, lv, beta)[1].item() * len(x)
                mse_sum += (vae.decode(mu) - x).square().sum().item()
        n = len(val_loader.dataset)
        log(f"vae epoch {epoch + 1}/{epochs}: loss {total / seen:.4f} val rec {rec_sum / n:.4f} mse {mse_sum / n:.4f}")


def accuracy(model, loader):
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return correct / len(loader.dataset)


# ---------------------------------------------------------------- attacks (gray-box: they see the classifier only)


def fgsm(model, x, y, eps):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


def ifgsm(model, x, y, eps, steps=10):
    alpha = eps / steps
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv


# ---------------------------------------------------------------- defenses


def jpeg_pil(x, quality):
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        img = Image.fromarray((x[i, 0] * 255).round().clamp(0, 255).byte().numpy(), mode="L")
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        buf.seek(0)
        out[i, 0] = torch.from_numpy(np.array(Image.open(buf), dtype=np.float32) / 255)
    return out


# The IJG (Annex K) luminance table, scaled by quality as libjpeg's jpeg_quality_scaling does.
_LUMA = torch.tensor(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float32,
)
_k = torch.arange(8, dtype=torch.float32)
_DCT = torch.cos((2 * _k[None, :] + 1) * _k[:, None] * torch.pi / 16) * torch.where(
    _k[:, None] == 0, torch.tensor(1 / 8) ** 0.5, torch.tensor(2 / 8) ** 0.5
)


def jpeg_dct(x, quality):
    """Grayscale baseline JPEG's lossy path without its (lossless) entropy coding: edge-padded 8x8 blocks,
    float DCT, quantise, dequantise, inverse DCT. libjpeg's integer DCTs may round a pixel differently."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    q = ((_LUMA * scale + 50) / 100).floor().clamp(1, 255)
    n, _, h, w = x.shape
    ph, pw = -h % 8, -w % 8
    p = (x * 255).round().clamp(0, 255)
    p = F.pad(p, (0, pw, 0, ph), mode="replicate") - 128
    blocks = p.reshape(n, (h + ph) // 8, 8, (w + pw) // 8, 8).permute(0, 1, 3, 2, 4)
    coef = _DCT @ blocks @ _DCT.T
    rec = _DCT.T @ ((coef / q).round() * q) @ _DCT
    rec = rec.permute(0, 1, 3, 2, 4).reshape(n, 1, h + ph, w + pw)[:, :, :h, :w]
    return (rec + 128).round().clamp(0, 255) / 255


def make_defenses(specs, vae):
    """Defenses by reproduce's spec names (none, jpeg:Q, vae), named as vaeguard's tables name them."""
    jpeg = jpeg_pil if Image is not None else jpeg_dct

    def vae_defense(x):  # one sampled reconstruction, the paper's defense
        with torch.no_grad():
            mu, lv = vae.encode(x)
            return vae.decode(vae.sample(mu, lv))

    defenses = {}
    for spec in specs:
        if spec == "none":
            defenses["No defense"] = lambda x: x
        elif spec.startswith("jpeg:"):
            q = int(spec.split(":")[1])
            defenses[f"JPEG {q}"] = lambda x, q=q: jpeg(x, q)
        elif spec == "vae":
            defenses["VAE"] = vae_defense
        else:
            raise ValueError(f"unknown defense {spec}")
    return defenses


# ---------------------------------------------------------------- evaluation


def evaluate(model, defenses, test_loader, attack, eps):
    correct = {name: 0 for name in defenses}
    rel_l2 = 0.0
    for x, y in test_loader:
        x_adv = attack(model, x, y, eps) if eps > 0 else x
        rel_l2 += ((x_adv - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).sum().item()
        with torch.no_grad():
            for name, defend in defenses.items():
                correct[name] += (model(defend(x_adv)).argmax(1) == y).sum().item()
    n = len(test_loader.dataset)
    return {"relL2": rel_l2 / n, "accuracy": {k: v / n for k, v in correct.items()}}


def main():
    work = json.loads(sys.argv[1])
    torch.set_num_threads(work["threads"])
    torch.manual_seed(work["seed"])
    stages = {}

    t0 = time.perf_counter()
    x_all, y_all = load_mnist(work["dataDir"], "train")
    perm = torch.randperm(len(y_all))
    val_idx, train_idx = perm[: work["validationImages"]], perm[work["validationImages"] :]
    train_idx = train_idx[: work["trainImages"]]
    train_set = TensorDataset(x_all[train_idx], y_all[train_idx])
    val_set = TensorDataset(x_all[val_idx], y_all[val_idx])
    train_loader = DataLoader(train_set, batch_size=work["batchSize"], shuffle=True)
    val_loader = DataLoader(val_set, batch_size=256)
    # Trained models are saved once, as such scripts do (vaeguard checkpoints every epoch, to resume).
    tmp = tempfile.TemporaryDirectory(prefix="torch-pipeline-")
    out_dir = tmp.name

    model = MnistCnn()
    train_classifier(model, train_loader, val_loader, work["epochs"]["classifier"], work["lr"])
    torch.save(model.state_dict(), os.path.join(out_dir, "mnist-classifier.pt"))
    stages["classifier"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    vae = MnistVae()
    train_vae(vae, train_loader, val_loader, work["epochs"]["vae"], work["lr"], work["beta"])
    torch.save(vae.state_dict(), os.path.join(out_dir, "mnist-vae.pt"))
    stages["vae"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    x_test, y_test = load_mnist(work["dataDir"], "test")
    test_set = TensorDataset(x_test[: work["testImages"]], y_test[: work["testImages"]])
    test_loader = DataLoader(test_set, batch_size=work["evalBatchSize"])
    model.eval()
    vae.eval()
    clean = accuracy(model, test_loader)
    log(f"classifier clean accuracy on {len(test_set)} test images: {clean:.4f}")
    defenses = make_defenses(work["defenses"], vae)
    rows = []
    for name, attack, grid in [("FGSM", fgsm, work["epsilons"]), ("I-FGSM", ifgsm, work["ifgsmEpsilons"])]:
        for eps in grid:
            r = evaluate(model, defenses, test_loader, attack, eps)
            rows.append({"attack": name, "epsilon": eps, **r})
            log(f"{name} eps {eps}: " + ", ".join(f"{k} {v:.4f}" for k, v in r["accuracy"].items()))
    stages["evaluation"] = time.perf_counter() - t2
    tmp.cleanup()

    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "jpeg": JPEG_ENGINE,
                "stages": stages,
                "cleanAccuracy": clean,
                "rows": rows,
                # Linux reports ru_maxrss in kB.
                "peakRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
