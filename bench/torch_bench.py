"""PyTorch counterparts of vaeguard's benchmarks, run by bench/run.ts in the same process run.

Prints one JSON object: {name: images_per_second}. Same work as the TypeScript side:
batch 128, the paper's Table 1 MNIST CNN (and CIFAR-10 CNN), Adam training step,
inference under no_grad in eval mode, input gradient of the cross-entropy.
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class MnistCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(7 * 7 * 64, 1024)
        self.drop = nn.Dropout(0.4)
        self.fc2 = nn.Linear(1024, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


class ConvBn(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.conv = nn.Conv2d(i, o, 3, padding=1)
        self.bn = nn.BatchNorm2d(o)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Cifar10Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        c = 3
        for w, d in zip([32, 64, 128], [0.2, 0.3, 0.4]):
            layers += [ConvBn(c, w), ConvBn(w, w), nn.MaxPool2d(2), nn.Dropout(d)]
            c = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(4 * 4 * 128, 10)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class MnistVae(nn.Module):
    """vaeguard's VAE_PRESETS.mnist: conv16+pool, conv8+pool, latent 256; mirrored decoder."""

    def __init__(self):
        super().__init__()
        self.enc0 = nn.Conv2d(1, 16, 3, padding=1)
        self.enc1 = nn.Conv2d(16, 8, 3, padding=1)
        self.fcMu = nn.Linear(392, 256)
        self.fcLogvar = nn.Linear(392, 256)
        self.fcDec = nn.Linear(256, 392)
        self.dec0 = nn.ConvTranspose2d(8, 16, 3, padding=1)
        self.dec1 = nn.ConvTranspose2d(16, 1, 3, padding=1)

    def encode(self, x):
        h = F.max_pool2d(F.relu(self.enc0(x)), 2)
        h = F.max_pool2d(F.relu(self.enc1(h)), 2).flatten(1)
        return self.fcMu(h), self.fcLogvar(h)

    def decode(self, z):
        h = F.relu(self.fcDec(z)).reshape(-1, 8, 7, 7)
        h = F.relu(self.dec0(F.interpolate(h, scale_factor=2)))
        return torch.sigmoid(self.dec1(F.interpolate(h, scale_factor=2)))

    def loss(self, x, beta=0.01):
        mu, lv = self.encode(x)
        z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu).clamp(-5, 5)
        n = x.shape[0]
        rec = F.binary_cross_entropy(self.decode(z), x, reduction="sum") / n
        kl = -0.5 * (1 + lv - mu**2 - lv.exp()).sum() / n
        return rec + beta * kl


def bench_vae(vae, batch, seconds):
    x = to_layout(torch.rand(batch, 1, 28, 28))
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)

    def train_step():
        opt.zero_grad()
        vae.loss(x).backward()
        opt.step()

    def reconstruct():
        with torch.no_grad():
            vae.decode(vae.encode(x)[0])

    return {"train": batch * timeit(train_step, seconds), "reconstruct": batch * timeit(reconstruct, seconds)}


# "channels_last" as the fourth argument: models and inputs in channels-last memory, the layout in
# which oneDNN's CPU convolutions are fastest (issue 14, point 4). Off by default: a straightforward
# script, as the field writes it, leaves tensors in NCHW.
CHANNELS_LAST = len(sys.argv) > 4 and sys.argv[4] == "channels_last"
LAYOUT = torch.channels_last if CHANNELS_LAST else torch.contiguous_format


def to_layout(t):
    return t.contiguous(memory_format=LAYOUT)


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


def bench_classifier(model, shape, batch, seconds):
    x = to_layout(torch.rand(batch, *shape))
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step():
        model.train()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    def infer():
        model.eval()
        with torch.no_grad():
            model(x).argmax(1)

    def input_grad():
        model.eval()
        xa = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y)
        (g,) = torch.autograd.grad(loss, [xa])
        return g

    return {
        "train": batch * timeit(train_step, seconds),
        "infer": batch * timeit(infer, seconds),
        "inputGrad": batch * timeit(input_grad, seconds),
    }


def main():
    threads = int(sys.argv[1])
    seconds = float(sys.argv[2])
    which = sys.argv[3].split(",")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if "mnist" in which:
        for k, v in bench_classifier(MnistCnn().to(memory_format=LAYOUT), (1, 28, 28), 128, seconds).items():
            out["mnist." + k] = v
    if "cifar10" in which:
        for k, v in bench_classifier(Cifar10Cnn().to(memory_format=LAYOUT), (3, 32, 32), 128, seconds).items():
            out["cifar10." + k] = v
    if "vae" in which:
        for k, v in bench_vae(MnistVae().to(memory_format=LAYOUT), 128, seconds).items():
            out["mnist-vae." + k] = v
    print(json.dumps(out))


if __name__ == "__main__":
    main()
