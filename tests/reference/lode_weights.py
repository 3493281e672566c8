"""The deterministic weights rule shared by Lode's C tests and the PyTorch
reference scripts (tests/lode-test-weights.c is its twin).

Every value comes from integer hashing only, so both sides compute the same
float32 numbers bit for bit; no weights file needs to be committed.

  h      = FNV-1a 32-bit of the tensor's name (UTF-8)
  u(i)   = mix32(h XOR (i * 0x9E3779B9 mod 2^32)) / 2^32, in [0, 1)
  s(i)   = 2 u(i) - 1, in [-1, 1)

and the value of element i (in row-major order) by kind of tensor:
  running_var                           1 + 0.2 u
  running_mean                          0.1 s
  num_batches_tracked                   0
  name contains "gaussian_matrix"       sqrt(3) s           (unit variance)
  1-D "...weight" (norms)               1 + 0.1 s
  1-D anything else (biases, scalars)   0.02 s
  n-D "...weight"                       sqrt(3) s / sqrt(fan_in), fan_in = prod(shape[1:])
  n-D anything else (embeddings, tokens) 0.02 s
Computed in float64 and rounded to float32 once.
"""
import math

import torch

MASK32 = 0xFFFFFFFF


def fnv1a(name: str) -> int:
    h = 0x811C9DC5
    for b in name.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & MASK32
    return h


def mix32(x: int) -> int:
    x &= MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK32
    x ^= x >> 16
    return x


def uniform(name: str, n: int) -> torch.Tensor:
    """u(i) for i in [0, n) as float64."""
    h = fnv1a(name)
    i = torch.arange(n, dtype=torch.int64)
    x = (i * 0x9E3779B9) & MASK32
    x = x ^ h
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK32
    x = x ^ (x >> 16)
    return x.to(torch.float64) / 4294967296.0


def value_tensor(name: str, shape) -> torch.Tensor:
    shape = tuple(int(d) for d in shape)
    n = 1
    for d in shape:
        n *= d
    u = uniform(name, n)
    s = 2.0 * u - 1.0
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        v = 1.0 + 0.2 * u
    elif leaf == "running_mean":
        v = 0.1 * s
    elif leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.int64)
    elif "gaussian_matrix" in name:
        v = math.sqrt(3.0) * s
    elif len(shape) <= 1:
        v = 1.0 + 0.1 * s if leaf == "weight" else 0.02 * s
    elif leaf == "weight":
        fan_in = n // shape[0]
        v = math.sqrt(3.0) * s / math.sqrt(fan_in)
    else:
        v = 0.02 * s
    return v.to(torch.float32).reshape(shape)


@torch.no_grad()
def apply_rule(module: torch.nn.Module, prefix: str = "") -> None:
    """Overwrites every parameter and buffer of module by the rule; names are
    prefix + the state-dict key."""
    for key, t in module.state_dict(keep_vars=True).items():
        v = value_tensor(prefix + key, t.shape)
        t.copy_(v.to(t.dtype))
