"""PyTorch counterpart of bench/purifier.ts: one purifier training step with its attack.

Batch 128: FGSM from a random start (Wong et al. 2020, alpha = 1.25 eps, eps 0.3) against the MNIST VAE
and the Table 1 CNN together (one sample of the latent noise, clipped to [-5, 5]), then one Adam step on
the VAE's parameters on CE + 0.01 * BCE(sum) + 1e-4 * KL, the CNN frozen (eval mode, no parameter gradients).
Prints one JSON object: {"purifier.trainFgsmRs": images per second, "purifier.trainFgsmRs.perCpuSecond": images per
CPU-second of this process}.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_bench import MnistCnn, MnistVae  # noqa: E402


def sample(vae, x):
    mu, lv = vae.encode(x)
    z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu).clamp(-5, 5)
    return vae.decode(z), mu, lv


def bench_purifier(batch, seconds, eps=0.3):
    clf = MnistCnn().eval()
    for p in clf.parameters():
        p.requires_grad_(False)
    vae = MnistVae()
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)

    def step():
        start = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1).requires_grad_(True)
        r, _, _ = sample(vae, start)
        loss = F.cross_entropy(clf(r), y, reduction="none").sum()
        (g,) = torch.autograd.grad(loss, [start])
        with torch.no_grad():
            x_adv = torch.min(torch.max(start + 1.25 * eps * g.sign(), x - eps), x + eps).clamp(0, 1)
        opt.zero_grad()
        r, mu, lv = sample(vae, x_adv)
        n = x.shape[0]
        ce = F.cross_entropy(clf(r), y)
        rec = F.binary_cross_entropy(r, x, reduction="sum") / n
        kl = -0.5 * (1 + lv - mu**2 - lv.exp()).sum() / n
        (ce + 0.01 * rec + 1e-4 * kl).backward()
        opt.step()

    wall, cpu = timeit_wall_and_cpu(step, seconds)
    return {"purifier.trainFgsmRs": batch * wall, "purifier.trainFgsmRs.perCpuSecond": batch * cpu}


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
