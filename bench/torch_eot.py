"""PyTorch counterpart of bench/eot.ts: adaptive PGD with EOT through the MNIST VAE + MNIST CNN.

Written the way torchattacks' EOTPGD is: random start, then per step one loop over the
EOT samples, each a forward/backward pass of the batch, gradients summed. Same models as
torch_bench.py (vaeguard's MNIST CNN and VAE_PRESETS.mnist), the VAE sampling its latent
noise clipped to [-5, 5] as vaeguard's VAE defense does. Prints one JSON object:
{"eot-pgd.b<N>": images_per_second, ...} (images attacked per second).

Usage: torch_eot.py THREADS SECONDS BATCHES(comma-separated)
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

from torch_bench import MnistCnn, MnistVae

EOT_SAMPLES = 10
STEPS = 5
EPS = 0.1


class VaeDefended(torch.nn.Module):
    def __init__(self, vae, cnn):
        super().__init__()
        self.vae = vae
        self.cnn = cnn

    def forward(self, x):
        mu, lv = self.vae.encode(x)
        z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu).clamp(-5, 5)
        return self.cnn(self.vae.decode(z))


def eot_pgd(model, images, labels, eps=EPS, alpha=2.5 * EPS / STEPS, steps=STEPS, eot_iter=EOT_SAMPLES):
    """torchattacks.EOTPGD.forward, minus its device and targeted bookkeeping."""
    adv = images.clone().detach()
    adv = adv + torch.empty_like(adv).uniform_(-eps, eps)
    adv = torch.clamp(adv, 0, 1).detach()
    for _ in range(steps):
        grad = torch.zeros_like(adv)
        adv.requires_grad = True
        for _ in range(eot_iter):
            cost = F.cross_entropy(model(adv), labels)
            grad += torch.autograd.grad(cost, [adv], retain_graph=False, create_graph=False)[0]
        adv = adv.detach() + alpha * grad.sign()
        delta = torch.clamp(adv - images, min=-eps, max=eps)
        adv = torch.clamp(images + delta, min=0, max=1).detach()
    return adv


def attacks_per_second(run, seconds):
    run()  # warm-up
    n = 0
    t0 = time.perf_counter()
    while True:
        run()
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds and n >= 2:
            return n / el


def main():
    threads = int(sys.argv[1])
    seconds = float(sys.argv[2])
    batches = [int(b) for b in sys.argv[3].split(",")]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = VaeDefended(MnistVae(), MnistCnn()).eval()
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for batch in batches:
        x = torch.rand(batch, 1, 28, 28)
        y = torch.randint(0, 10, (batch,))
        out["eot-pgd.b%d" % batch] = batch * attacks_per_second(lambda: eot_pgd(model, x, y), seconds)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
