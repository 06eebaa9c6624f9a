"""LAMB (You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
ICLR 2020, algorithm 2) as a torch optimizer: the reference Hone's LAMB is checked against.

Per parameter tensor, with bias correction and decoupled weight decay:
    m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
    u = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + wd * p
    p = p - lr * phi(||p||) / ||u|| * u        (phi = identity; ratio 1 when a norm is 0)
This is NVIDIA apex's FusedLAMB with use_nvlamb=True and no gradient pre-normalisation, and
torch-optimizer's Lamb with debias=True and no clamp of the weight norm.
"""
import math

import torch


class Lamb(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p, dtype=torch.float64)
                    state["v"] = torch.zeros_like(p, dtype=torch.float64)
                state["step"] += 1
                t = state["step"]
                g = p.grad.double()
                m, v = state["m"], state["v"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                u = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + group["eps"])
                w = p.double()
                if group["weight_decay"] != 0:
                    u = u + group["weight_decay"] * w
                wn, un = w.norm().item(), u.norm().item()
                trust = wn / un if wn > 0 and un > 0 else 1.0
                p.copy_((w - group["lr"] * trust * u).to(p.dtype))
