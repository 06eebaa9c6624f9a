"""Golden values for Hone's optimizers and learning-rate schedules (issue: training recipes).

Writes tests/fixtures/golden/recipes.json:
- "schedules": the multiplier of the base learning rate at every step of a 40-step run with
  5 warmup steps, from transformers' schedule functions (cosine with hard restarts,
  polynomial decay) and PyTorch's schedulers (ExponentialLR, CyclicLR in its three modes,
  OneCycleLR). The PyTorch ones run over the steps after warmup; the warmup itself is the
  linear rise transformers uses (to the schedule's first value), composed here by hand.
- "distillation": the knowledge-distillation loss of a few rows of student logits against
  teacher logits and labels, `alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) *
  cross_entropy(s, y)` (batch means, as torch's `kl_div(..., reduction="batchmean")` and
  `cross_entropy`), and its gradient with respect to the student's logits, by autograd.
- "optimizers": three steps of torch.optim.SGD (momentum, Nesterov, plain with L2 decay) and of
  the LAMB reference (tests/reference/lamb.py) on two small tensors in two parameter groups
  (a weight with decay at the full rate, a bias without decay at half the rate), with the
  gradients, learning rates and resulting values, in float64.

Usage: python tests/reference/make_recipe_fixtures.py tests/fixtures/golden/recipes.json
"""
import json
import math
import os
import sys

import torch
from transformers import (
    get_cosine_with_hard_restarts_schedule_with_warmup,
    get_polynomial_decay_schedule_with_warmup,
)

sys.path.insert(0, os.path.dirname(__file__))
from lamb import Lamb  # noqa: E402

TOTAL, WARMUP = 40, 5


def opt(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def values(sched, o, n):
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr()[0])
        o.step()
        sched.step()
    return out


def transformers_schedule(make):
    o = opt()
    return values(make(o), o, TOTAL + 1)


def after_warmup(start, make):
    """Linear warmup to `start`, then a torch scheduler over the remaining steps."""
    o = opt()
    rest = values(make(o), o, TOTAL - WARMUP + 1)
    return [start * s / WARMUP for s in range(WARMUP)] + rest


def schedules():
    span = TOTAL - WARMUP
    rows = {}
    rows["cosine_restarts"] = dict(
        params=dict(cycles=3),
        multipliers=transformers_schedule(
            lambda o: get_cosine_with_hard_restarts_schedule_with_warmup(o, WARMUP, TOTAL, 3)))
    rows["polynomial"] = dict(
        params=dict(min_ratio=0.1, power=2.0),
        multipliers=transformers_schedule(
            lambda o: get_polynomial_decay_schedule_with_warmup(o, WARMUP, TOTAL, lr_end=0.1,
                                                                power=2.0)))
    rows["exponential"] = dict(
        params=dict(gamma=0.93),
        multipliers=after_warmup(1.0, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.93)))
    gamma = 0.01 ** (1 / span)
    rows["exponential_derived"] = dict(
        params=dict(min_ratio=0.01),
        multipliers=after_warmup(1.0, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma)))
    for mode, extra in [("triangular", {}), ("triangular2", {}), ("exp_range", dict(gamma=0.97))]:
        base = 0.2
        half = span / (2 * 3)

        def make(o, mode=mode, extra=extra):
            return torch.optim.lr_scheduler.CyclicLR(
                o, base_lr=base, max_lr=1.0, step_size_up=half, mode=mode,
                cycle_momentum=False, **extra)

        rows[f"cyclic_{mode}"] = dict(
            params=dict(min_ratio=base, cycles=3, cyclic_mode=mode, **extra),
            multipliers=after_warmup(base, make))
    o = opt()
    one = torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=1.0, total_steps=TOTAL, pct_start=WARMUP / TOTAL, anneal_strategy="cos",
        div_factor=1 / 0.04, final_div_factor=1e4, three_phase=False, cycle_momentum=False)
    rows["one_cycle"] = dict(params=dict(min_ratio=0.04), multipliers=values(one, o, TOTAL))
    return dict(total_steps=TOTAL, warmup_steps=WARMUP, schedules=rows)


def optimizer_case(name, make, steps=3):
    g = torch.Generator().manual_seed(7)
    weight = torch.nn.Parameter(torch.randn(4, 3, generator=g, dtype=torch.float64))
    bias = torch.nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64) * 0.1)
    initial = dict(weight=weight.detach().clone().tolist(), bias=bias.detach().clone().tolist())
    base_lr, wd = 0.05, 0.1
    o = make([dict(params=[weight], lr=base_lr, weight_decay=wd),
              dict(params=[bias], lr=base_lr * 0.5, weight_decay=0.0)])
    grads, lrs = [], []
    for step in range(steps):
        gw = torch.randn(4, 3, generator=g, dtype=torch.float64)
        gb = torch.randn(3, generator=g, dtype=torch.float64)
        weight.grad, bias.grad = gw, gb
        lr = base_lr * (1.0 - 0.2 * step)
        o.param_groups[0]["lr"] = lr
        o.param_groups[1]["lr"] = lr * 0.5
        o.step()
        grads.append(dict(weight=gw.tolist(), bias=gb.tolist()))
        lrs.append(lr)
    return dict(name=name, weight_decay=wd, bias_lr_scale=0.5, initial=initial, grads=grads,
                lrs=lrs, final=dict(weight=weight.detach().tolist(), bias=bias.detach().tolist()))


def optimizers():
    return [
        dict(rule=dict(kind="sgd", momentum=0.9, nesterov=False),
             **optimizer_case("sgd", lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9))),
        dict(rule=dict(kind="sgd", momentum=0.9, nesterov=True),
             **optimizer_case("sgd_nesterov",
                              lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9, nesterov=True))),
        dict(rule=dict(kind="sgd", momentum=0.0, nesterov=False),
             **optimizer_case("sgd_plain", lambda g: torch.optim.SGD(g, lr=0.05))),
        dict(rule=dict(kind="lamb", beta1=0.9, beta2=0.999, eps=1e-6),
             **optimizer_case("lamb",
                              lambda g: Lamb(g, lr=0.05, betas=(0.9, 0.999), eps=1e-6))),
    ]


def distillation():
    g = torch.Generator().manual_seed(11)
    cases = []
    for alpha, temperature, classes in [(0.5, 2.0, 3), (1.0, 4.0, 2), (0.3, 1.0, 5)]:
        rows = 4
        student = (torch.randn(rows, classes, generator=g, dtype=torch.float64) * 2).requires_grad_()
        teacher = torch.randn(rows, classes, generator=g, dtype=torch.float64) * 2
        labels = torch.randint(0, classes, (rows,), generator=g)
        soft = torch.nn.functional.kl_div(
            torch.log_softmax(student / temperature, -1), torch.softmax(teacher / temperature, -1),
            reduction="batchmean") * temperature ** 2
        hard = torch.nn.functional.cross_entropy(student, labels)
        loss = alpha * soft + (1 - alpha) * hard
        loss.backward()
        cases.append(dict(alpha=alpha, temperature=temperature, classes=classes,
                          student=student.detach().flatten().tolist(),
                          teacher=teacher.flatten().tolist(), labels=labels.tolist(),
                          loss=loss.item(), grad=student.grad.flatten().tolist()))
    return cases


def main():
    out = sys.argv[1]
    data = dict(schedules(), distillation=distillation(), optimizers=optimizers())
    with open(out, "w") as f:
        json.dump(data, f, indent=1)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
