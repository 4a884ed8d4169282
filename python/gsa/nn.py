"""gsa.nn: the Gated Sparse Attention layer as a torch.nn.Module.

    layer = gsa.GatedSparseAttention(d_model=4096)     # the paper's Table 1
    out = layer(x)                                     # x [B, L, d_model]
    out, stats = layer(x, return_stats=True)           # SPEC section 5

The projections are ordinary torch Linear layers; the attention core (the
gated indexer, adaptive top-k, sparse SDPA with the G2 and G1 gates) is one
call of gsa.functional.gated_sparse_attention: CPU tensors run the compiled
CPU path in float32, CUDA tensors go to the same entry point unchanged.
The core has no backward pass yet: calling backward through it raises.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Optional

try:
    import torch
    from torch import nn as _nn
except ImportError as exc:  # keep `import gsa` working without torch
    raise ImportError("gsa.nn (gsa.GatedSparseAttention) needs PyTorch, which is not "
                      "installed; gsa.functional and gsa.dsl work without it") from exc

import numpy as np

from . import functional

__all__ = ["GatedSparseAttention", "GSAStats", "apply_rope"]


def apply_rope(x, positions, base=10000.0):
    """Rotary position embedding (the rotate-half form) of x [B, L, H, D] at
    positions [L] or [B, L]: dimension i and i + D/2 rotate by
    positions * base^(-2i/D)."""
    D = x.shape[-1]
    half = D // 2
    inv_freq = base ** (-torch.arange(half, dtype=torch.float32, device=x.device) * 2.0 / D)
    pos = positions.to(device=x.device, dtype=torch.float32)
    if pos.dim() == 1:
        pos = pos[None]
    angles = pos[..., None] * inv_freq                      # [B|1, L, half]
    cos = angles.cos()[:, :, None, :]
    sin = angles.sin()[:, :, None, :]
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


@dataclass
class GSAStats:
    """What SPEC section 5 lets a user ask for, from one forward pass.

    first_token_attention: mean over batch, heads and queries t >= 1 of
        a[t, h, 0] (0 where position 0 is not selected); NaN when L == 1.
    gate_g1_mean / gate_g2_mean: mean sigmoid of the output / value gate
        logits (None when the gate is off).
    k_histogram: int64 [k_max + 1], how many query rows selected k positions.
    mean_k: the mean selected-set size.
    indices [B, L, k_max] (int32, ascending, -1 padded), counts [B, L],
    lse [B, L, n_h]: the core's outputs; q [B, L, n_h, d], k [B, L, n_kv, d]
    (after RoPE) and scale: the core's inputs, kept for indexer_recall().
    indexer_recall(): on demand (it costs a dense attention), the mean over
        rows of |S_t & dense top-k_t| / k_t, where the dense top-k_t ranks
        positions by the causal attention probabilities averaged over heads.
    """
    first_token_attention: float
    gate_g1_mean: Optional[float]
    gate_g2_mean: Optional[float]
    k_histogram: Any
    mean_k: float
    indices: Any
    counts: Any
    lse: Any
    q: Any = field(default=None, repr=False)
    k: Any = field(default=None, repr=False)
    scale: float = field(default=1.0, repr=False)

    def indexer_recall(self, block=256):
        """Mean over rows of |S_t & dense top-k_t| / k_t (float64, `block`
        query rows at a time)."""
        q, k = self.q.double(), self.k.double()
        B, L, H, D = q.shape
        group = H // k.shape[2]
        k_heads = k.repeat_interleave(group, dim=2)           # [B, L, H, D]
        idx = self.indices.to(q.device).long()
        cnt = self.counts.to(q.device).long()
        slots = torch.arange(idx.shape[-1], device=q.device)
        positions = torch.arange(L, device=q.device)
        hits = 0.0
        rows = 0
        for t0 in range(0, L, block):
            t1 = min(L, t0 + block)
            scores = torch.einsum("bthd,bshd->bhts", q[:, t0:t1], k_heads) * self.scale
            causal = positions[None, :] <= positions[t0:t1, None]  # [T, L]
            scores = scores.masked_fill(~causal, float("-inf"))
            p = torch.softmax(scores, dim=-1).mean(dim=1)          # [B, T, L]
            # Rank by probability, ties to the larger position (as the selection
            # does): a stable argsort of the reversed row keeps equal values in
            # descending position order; L - 1 - j maps back to positions.
            order = (L - 1) - torch.argsort(p.flip(-1), dim=-1, descending=True, stable=True)
            rank = torch.empty_like(order)
            rank.scatter_(-1, order, positions.expand_as(order).clone())
            k_t = cnt[:, t0:t1]
            dense_top = (rank < k_t[..., None]) & causal[None]
            # Mark the selected positions; padding slots write to a spare column L.
            valid = slots < k_t[..., None]
            sel_idx = torch.where(valid, idx[:, t0:t1], L)
            selected = torch.zeros(B, t1 - t0, L + 1, dtype=torch.bool, device=q.device)
            selected.scatter_(-1, sel_idx, True)
            selected = selected[..., :L]
            overlap = (dense_top & selected).sum(-1).double()
            hits += (overlap / k_t.clamp(min=1).double()).sum().item()
            rows += k_t.numel()
        return hits / rows


class _CoreFunction(torch.autograd.Function):
    """The compiled core inside autograd: forward runs it, backward says
    plainly that it does not exist yet (rather than dropping gradients)."""

    @staticmethod
    def forward(ctx, run, q, k, v, qi, ki, wi, bi, gv, go):
        o, lse, idx, cnt = run(q, k, v, qi, ki, wi, bi, gv, go)
        ctx.mark_non_differentiable(lse, idx, cnt)
        return o, lse, idx, cnt

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError(
            "gsa.GatedSparseAttention: the compiled attention core has no backward pass yet "
            "(SPEC.md section 4's training is not built); run the layer under torch.no_grad() "
            "or detach its output")


class GatedSparseAttention(_nn.Module):
    """One GSA attention layer (paper section 4, SPEC.md).

    Defaults are the paper's Table 1 (7B-class): d_model 4096, 32 query and 8
    key/value heads of dimension 128, 4 indexer heads of dimension 64,
    k_base 2048 in [256, 4096]; the running variance's momentum is 0.99.

    Parameters: q_proj, k_proj, v_proj (GQA), o_proj; the indexer's
    indexer_q (W^{Iq}, H_I * d_I), indexer_k (W^{Ik}, d_I, shared by the
    indexer heads), indexer_w (W^{Iw}, H_I) and indexer_bias (b, H_I);
    output_gate (G1, n_heads * d_k) and value_gate (G2, n_kv_heads * d_k),
    both with zero bias so that sigmoid(gate) = 0.5 for a zero input.
    Buffer: running_var (the reference variance V_run), updated only in
    training mode, read in eval mode.

    activation, weighting, policy and score_mod take what
    gsa.functional.gated_sparse_attention takes: names or Python functions
    traced by gsa.dsl.
    """

    def __init__(self, d_model=4096, n_heads=32, n_kv_heads=8, head_dim=None,
                 indexer_heads=4, indexer_dim=64, k_base=2048, k_min=256, k_max=4096,
                 policy="inverse", momentum=0.99, value_gate=True, output_gate=True,
                 rope=True, rope_base=10000.0, activation="sigmoid", weighting="sigmoid",
                 score_mod=None, scale=None, index_scale=None, device=None, dtype=None):
        super().__init__()
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(f"d_model = {d_model} is not a multiple of n_heads = {n_heads}: "
                                 "pass head_dim")
            head_dim = d_model // n_heads
        if n_kv_heads < 1 or n_heads % n_kv_heads:
            raise ValueError(f"n_heads = {n_heads} must be a multiple of n_kv_heads = "
                             f"{n_kv_heads}")
        if rope and head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
        if not 1 <= k_min <= k_base <= k_max:
            raise ValueError(f"need 1 <= k_min <= k_base <= k_max, got k_min = {k_min}, "
                             f"k_base = {k_base}, k_max = {k_max}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.head_dim, self.indexer_heads, self.indexer_dim = head_dim, indexer_heads, indexer_dim
        self.k_base, self.k_min, self.k_max = k_base, k_min, k_max
        self.policy, self.momentum = policy, momentum
        self.rope, self.rope_base = rope, rope_base
        self.activation, self.weighting, self.score_mod = activation, weighting, score_mod
        self.scale, self.index_scale = scale, index_scale
        self.last_stats = None

        made = {"device": device, "dtype": dtype}
        self.q_proj = _nn.Linear(d_model, n_heads * head_dim, bias=False, **made)
        self.k_proj = _nn.Linear(d_model, n_kv_heads * head_dim, bias=False, **made)
        self.v_proj = _nn.Linear(d_model, n_kv_heads * head_dim, bias=False, **made)
        self.o_proj = _nn.Linear(n_heads * head_dim, d_model, bias=False, **made)
        self.indexer_q = _nn.Linear(d_model, indexer_heads * indexer_dim, bias=False, **made)
        self.indexer_k = _nn.Linear(d_model, indexer_dim, bias=False, **made)
        self.indexer_w = _nn.Linear(d_model, indexer_heads, bias=False, **made)
        self.indexer_bias = _nn.Parameter(torch.zeros(indexer_heads, device=device,
                                                      dtype=torch.float32))
        self.output_gate = (_nn.Linear(d_model, n_heads * head_dim, bias=True, **made)
                            if output_gate else None)
        self.value_gate = (_nn.Linear(d_model, n_kv_heads * head_dim, bias=True, **made)
                           if value_gate else None)
        for gate in (self.output_gate, self.value_gate):
            if gate is not None:
                _nn.init.zeros_(gate.bias)  # sigmoid(0) = 0.5 (paper section 3.5)
        self.register_buffer("running_var", torch.zeros((), device=device, dtype=torch.float32))

    def extra_repr(self):
        return (f"d_model={self.d_model}, n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}, "
                f"head_dim={self.head_dim}, indexer={self.indexer_heads}x{self.indexer_dim}, "
                f"k={self.k_base} in [{self.k_min}, {self.k_max}], policy={self._policy_name()}, "
                f"momentum={self.momentum}, rope={self.rope}")

    def _policy_name(self):
        return self.policy if isinstance(self.policy, str) else "custom"

    def forward(self, x, positions=None, return_stats=False):
        """x [B, L, d_model] -> [B, L, d_model]; with return_stats, also a
        GSAStats (kept as self.last_stats too). positions [L] or [B, L]
        (default 0..L-1) place the RoPE rotation."""
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape [B, L, d_model = {self.d_model}], got "
                             f"{tuple(x.shape)}")
        B, L, _ = x.shape
        H, KV, D = self.n_heads, self.n_kv_heads, self.head_dim
        q = self.q_proj(x).view(B, L, H, D)
        k = self.k_proj(x).view(B, L, KV, D)
        v = self.v_proj(x).view(B, L, KV, D)
        if self.rope:
            if positions is None:
                positions = torch.arange(L, device=x.device)
            q = apply_rope(q, positions, self.rope_base)
            k = apply_rope(k, positions, self.rope_base)
        qi = self.indexer_q(x).view(B, L, self.indexer_heads, self.indexer_dim)
        ki = self.indexer_k(x)
        wi = self.indexer_w(x)
        gv = self.value_gate(x).view(B, L, KV, D) if self.value_gate is not None else None
        go = self.output_gate(x).view(B, L, H, D) if self.output_gate is not None else None

        o, lse, idx, cnt = _CoreFunction.apply(self._run_core, q, k, v, qi, ki, wi,
                                               self.indexer_bias, gv, go)
        out = self.o_proj(o.reshape(B, L, H * D))
        if not return_stats:
            return out
        self.last_stats = self._stats(q, k, gv, go, lse, idx, cnt)
        return out, self.last_stats

    def _run_core(self, q, k, v, qi, ki, wi, bi, gv, go):
        """One call of the compiled core; updates running_var in training."""
        needs_reference = self._policy_name() != "fixed"
        running = self._running_value()
        if not self.training and needs_reference and not (running > 0 and math.isfinite(running)):
            raise ValueError(
                f"gsa.GatedSparseAttention: policy '{self._policy_name()}' in eval mode reads "
                f"the running variance, which is {running}: run training-mode forwards first "
                "(module.train()) or set module.running_var")
        cuda = q.is_cuda
        if cuda:
            prepare = lambda t: None if t is None else t.detach().contiguous()
        else:
            # The CPU path computes in float32 (SPEC: fp32 accepted on the CPU).
            prepare = lambda t: None if t is None else t.detach().to(torch.float32).contiguous()
        result = functional.gated_sparse_attention(
            prepare(q), prepare(k), prepare(v), prepare(qi), prepare(ki), prepare(wi),
            prepare(bi), prepare(gv), prepare(go),
            k_base=self.k_base, k_min=self.k_min, k_max=self.k_max, policy=self.policy,
            running_var=running if (self.training or needs_reference) else None,
            training=self.training, momentum=self.momentum, scale=self.scale,
            index_scale=self.index_scale, activation=self.activation,
            weighting=self.weighting, score_mod=self.score_mod)
        o, lse, idx, cnt = (torch.as_tensor(r, device=q.device) for r in result[:4])
        if self.training:
            updated = float(result[4])
            self.running_var.fill_(updated)
            self._running_seen = (self.running_var._version, self.running_var.data_ptr())
            self._running_cached = updated
        return o.to(q.dtype), lse, idx, cnt

    def _running_value(self):
        """running_var as a float. Reading a CUDA buffer waits for every kernel
        queued before it, so the value is read again only when the buffer
        changed since the last read (its version counter, or a new tensor
        after .to() / load_state_dict): an eval-mode forward does not wait
        for the previous one."""
        seen = (self.running_var._version, self.running_var.data_ptr())
        if getattr(self, "_running_seen", None) != seen:
            self._running_cached = float(self.running_var)
            self._running_seen = seen
        return self._running_cached

    @torch.no_grad()
    def _stats(self, q, k, gv, go, lse, idx, cnt):
        B, L, H, D = q.shape
        group = H // self.n_kv_heads
        scale = self.scale if self.scale is not None else 1.0 / math.sqrt(D)
        # a[t, h, 0] = exp(score(t, h, 0) - lse[t, h]) where 0 is in S_t.
        k0 = k[:, 0].double().repeat_interleave(group, dim=1)           # [B, H, D]
        score0 = torch.einsum("bthd,bhd->bth", q.double(), k0) * scale  # [B, L, H]
        if self.score_mod is not None:
            b_ix, t_ix, h_ix = np.meshgrid(np.arange(B), np.arange(L), np.arange(H),
                                           indexing="ij")
            # Index arguments as arrays, so that conditions are numpy bools.
            modified = self.score_mod(score0.cpu().numpy(), b_ix, h_ix, t_ix,
                                      np.zeros_like(t_ix))
            score0 = torch.as_tensor(np.broadcast_to(np.asarray(modified, np.float64),
                                                     score0.shape).copy(), device=q.device)
        slots = torch.arange(idx.shape[-1], device=idx.device)
        zero_selected = ((idx == 0) & (slots < cnt[..., None])).any(-1)  # [B, L]
        a0 = torch.exp(score0 - lse.double()) * zero_selected[..., None]
        first_token = a0[:, 1:].mean().item() if L > 1 else float("nan")
        return GSAStats(
            first_token_attention=first_token,
            gate_g1_mean=torch.sigmoid(go.double()).mean().item() if go is not None else None,
            gate_g2_mean=torch.sigmoid(gv.double()).mean().item() if gv is not None else None,
            k_histogram=torch.bincount(cnt.flatten().long().cpu(), minlength=self.k_max + 1),
            mean_k=cnt.double().mean().item(),
            indices=idx, counts=cnt, lse=lse,
            q=q.detach(), k=k.detach(), scale=scale)
