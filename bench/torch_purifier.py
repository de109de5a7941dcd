"""PyTorch counterpart of bench/purifier.ts: one purifier training step with its attack, in two settings.

Batch 128, eps 0.3, the CNN frozen (eval mode, no parameter gradients):
- purifier.trainFgsmRs: FGSM from a random start (Wong et al. 2020, alpha = 1.25 eps) against the MNIST VAE
  and the Table 1 CNN together (one sample of the latent noise, clipped to [-5, 5]), then one Adam step on
  the VAE's parameters on CE + 0.01 * BCE(sum) + 1e-4 * KL;
- purifier.conv.trainPgd10: PGD-10 (step 0.25 eps, random start) against ConvPurifier (src/models/purifier.ts)
  and the CNN with the latent noise clipped to 0 (vaeguard's --clip 0), then one Adam step on the same
  objective plus 0.5 x the CE of purified clean images.
Prints one JSON object: for each figure, images per second and ".perCpuSecond", images per CPU-second of this
process.
"""
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_bench import MnistCnn, MnistVae  # noqa: E402


class ConvPurifier(nn.Module):
    """vaeguard's ConvPurifier, MNIST preset: levels of 32 and 64 channels, a 4 x 7 x 7 latent, no skips."""

    def __init__(self, c=1, widths=(32, 64), latent=4):
        super().__init__()
        self.enc = nn.ModuleList()
        in_c = c
        for w in widths:
            self.enc.append(nn.ModuleList([nn.Conv2d(in_c, w, 3, padding=1), nn.Conv2d(w, w, 3, padding=1, stride=2)]))
            in_c = w
        deepest = widths[-1]
        self.to_mu = nn.Conv2d(deepest, latent, 1)
        self.to_logvar = nn.Conv2d(deepest, latent, 1)
        self.from_latent = nn.Conv2d(latent, deepest, 1)
        self.dec = nn.ModuleList()
        for i in range(len(widths) - 1, -1, -1):
            out_c = widths[i - 1] if i > 0 else widths[0]
            self.dec.append(
                nn.ModuleList([nn.Conv2d(widths[i], widths[i], 3, padding=1), nn.Conv2d(widths[i], out_c, 3, padding=1)])
            )
        self.out = nn.Conv2d(widths[0], c, 3, padding=1)

    def encode(self, x):
        h = x
        for a, b in self.enc:
            h = F.relu(b(F.relu(a(h))))
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z):
        h = F.relu(self.from_latent(z))
        for a, b in self.dec:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = F.relu(b(F.relu(a(h))))
        return torch.sigmoid(self.out(h))


def sample(vae, x, clip):
    mu, lv = vae.encode(x)
    z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu).clamp(-clip, clip)
    return vae.decode(z), mu, lv


SETTINGS = [
    # figure, purifier, attack steps, step size in units of eps, latent noise clip, weight of the clean CE
    ("purifier.trainFgsmRs", MnistVae, 1, 1.25, 5.0, 0.0),
    ("purifier.conv.trainPgd10", ConvPurifier, 10, 0.25, 0.0, 0.5),
]


def bench_step(setting, batch, seconds, eps=0.3):
    figure, make, steps, alpha, clip, clean_weight = setting
    clf = MnistCnn().eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    vae = make()
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)

    def attack():
        x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            r, _, _ = sample(vae, x_adv, clip)
            loss = F.cross_entropy(clf(r), y, reduction="none").sum()
            (g,) = torch.autograd.grad(loss, [x_adv])
            with torch.no_grad():
                x_adv = torch.min(torch.max(x_adv + alpha * eps * g.sign(), x - eps), x + eps).clamp(0, 1)
        return x_adv.detach()

    def step():
        x_adv = attack()
        opt.zero_grad()
        r, mu, lv = sample(vae, x_adv, clip)
        n = x.shape[0]
        ce = F.cross_entropy(clf(r), y)
        rec = F.binary_cross_entropy(r, x, reduction="sum") / n
        kl = -0.5 * (1 + lv - mu**2 - lv.exp()).sum() / n
        loss = ce + 0.01 * rec + 1e-4 * kl
        if clean_weight > 0:
            loss = loss + clean_weight * F.cross_entropy(clf(sample(vae, x, clip)[0]), y)
        loss.backward()
        opt.step()

    wall, cpu = timeit_wall_and_cpu(step, seconds)
    return {figure: batch * wall, f"{figure}.perCpuSecond": batch * cpu}


def bench_purifier(batch, seconds):
    out = {}
    for setting in SETTINGS:
        out.update(bench_step(setting, batch, seconds))
    return out


def timeit_wall_and_cpu(fn, seconds):
    """Calls per second of wall time and per second of this process's CPU time (all threads), as bench/purifier.ts."""
    fn()  # warm-up
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds and n >= 3:
            return n / el, n / (time.process_time() - c0)


def main():
    threads = int(sys.argv[1])
    seconds = float(sys.argv[2])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    print(json.dumps(bench_purifier(128, seconds)))


if __name__ == "__main__":
    main()
