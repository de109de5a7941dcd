"""
Issue 14, point 4: the fp32 matmul paths for the dense layers of the 64x64 patch VAE (32768 -> 1024 twice, 1024 -> 32768),
timed in PyTorch on the same libtorch build as vaeguard (Debian 1.13): linear through the BLAS (the default path of
both engines), oneDNN's linear on to_mkldnn weights, and addmm with a pre-transposed weight. Forward only, no grad.
Usage: /usr/bin/python3 bench/torch_dense_paths.py [threads]   (a few seconds; not part of npm run bench)
"""
import sys
import torch
from torch_bench import timeit

torch.manual_seed(0)
threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.set_num_threads(threads)
flat, latent = 32768, 1024
def best(fn, rounds=3, seconds=0.5):
    """Seconds per call, the best of a few rounds of torch_bench's timeit (the least disturbed)."""
    return min(1 / timeit(fn, seconds) for _ in range(rounds))
blas = [w for w in torch.__config__.show().replace(",", " ").split() if w.startswith("BLAS_INFO=")]
print("torch", torch.__version__, "threads", threads, "mkldnn", torch.backends.mkldnn.is_available(), *blas)
for B in (32, 81, 256):
    x = torch.rand(B, flat); z = torch.rand(B, latent)
    # One encoder layer called twice stands for fcMu and fcLogvar (same shape, same cost); dec is fcDec.
    enc = torch.nn.Linear(flat, latent); dec = torch.nn.Linear(latent, flat)
    with torch.no_grad():
        ref_e = enc(x); ref_d = dec(z)
        t_blas = best(lambda: (enc(x), enc(x), dec(z)))
        # oneDNN: weights and inputs in its blocked layout (what mkldnn_linear / to_mkldnn give)
        we = enc.weight.to_mkldnn(); be = enc.bias.to_mkldnn(); wd = dec.weight.to_mkldnn(); bd = dec.bias.to_mkldnn()
        def onednn():
            xm = x.to_mkldnn(); zm = z.to_mkldnn()
            a = torch._C._nn.mkldnn_linear(xm, we, be); b = torch._C._nn.mkldnn_linear(xm, we, be)
            c = torch._C._nn.mkldnn_linear(zm, wd, bd)
            return a.to_dense(), b.to_dense(), c.to_dense()
        t_dnn = best(onednn)
        a, _, c = onednn()
        d1 = (a - ref_e).abs().max().item(); d2 = (c - ref_d).abs().max().item()
        # matmul with a pre-transposed contiguous weight (another BLAS call shape)
        wt = enc.weight.t().contiguous(); wdt = dec.weight.t().contiguous()
        t_mm = best(lambda: (torch.addmm(enc.bias, x, wt), torch.addmm(enc.bias, x, wt), torch.addmm(dec.bias, z, wdt)))
        d3 = (torch.addmm(enc.bias, x, wt) - ref_e).abs().max().item()
    print(f"batch {B}: BLAS linear {t_blas*1e3:.1f} ms, oneDNN {t_dnn*1e3:.1f} ms ({t_blas/t_dnn:.2f}x, max diff {max(d1,d2):.1e}), "
          f"addmm pre-transposed {t_mm*1e3:.1f} ms ({t_blas/t_mm:.2f}x, max diff {d3:.1e})")
