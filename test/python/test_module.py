"""gsa.GatedSparseAttention (python/gsa/nn.py), the torch layer.

Runs only where torch is importable (the GPU machine; CI has no torch).
The layer runs on CPU tensors in float32 (the compiled CPU path); its output
is compared with a float64 reference that recomputes the projections and
RoPE from the layer's weights, the selection with gsa_reference.py (SPEC.md
sections 1-2), and the attention per SPEC section 3 on the selected sets the
layer returned.
"""

import copy
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
import gsa  # noqa: E402
from gsa.dsl import maximum, softplus, sqrt, tanh, to_float  # noqa: E402

import gsa_checks as checks  # noqa: E402
import gsa_reference as ref  # noqa: E402

SMALL = dict(d_model=64, n_heads=4, n_kv_heads=2, head_dim=16, indexer_heads=2,
             indexer_dim=8, k_base=8, k_min=4, k_max=16)


def make_layer(seed=0, **overrides):
    torch.manual_seed(seed)
    return gsa.GatedSparseAttention(**{**SMALL, **overrides})


def hidden(seed, B=2, L=40, d_model=64):
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(B, L, d_model, generator=g)


def rope_reference(x, base=10000.0):
    """RoPE as a complex rotation of (x_i, x_{i + D/2}) by t * base^(-2i/D),
    in float64 (an independent formulation of the rotate-half form)."""
    B, L, H, D = x.shape
    half = D // 2
    freqs = base ** (-2.0 * torch.arange(half, dtype=torch.float64) / D)
    theta = torch.arange(L, dtype=torch.float64)[:, None] * freqs[None]
    rotation = torch.polar(torch.ones_like(theta), theta)[None, :, None, :]
    z = torch.complex(x[..., :half], x[..., half:]) * rotation
    return torch.cat([z.real, z.imag], dim=-1)


def reference_inputs(layer, x):
    """The core's inputs recomputed in float64 from the layer's weights."""
    X = x.double()
    B, L, _ = X.shape
    H, KV, D = layer.n_heads, layer.n_kv_heads, layer.head_dim
    lin = lambda m: X @ m.weight.double().T + (m.bias.double() if m.bias is not None else 0.0)
    q, k = lin(layer.q_proj).view(B, L, H, D), lin(layer.k_proj).view(B, L, KV, D)
    if layer.rope:
        q, k = rope_reference(q), rope_reference(k)
    named = dict(q=q, k=k, v=lin(layer.v_proj).view(B, L, KV, D),
                 qi=lin(layer.indexer_q).view(B, L, layer.indexer_heads, layer.indexer_dim),
                 ki=lin(layer.indexer_k), wi=lin(layer.indexer_w),
                 bi=layer.indexer_bias.double())
    if layer.value_gate is not None:
        named["gv"] = lin(layer.value_gate).view(B, L, KV, D)
    if layer.output_gate is not None:
        named["go"] = lin(layer.output_gate).view(B, L, H, D)
    return {n: t.detach().numpy() for n, t in named.items()}


def check_layer_output(layer, x, out, stats, running_var_before, score_mod=None,
                       activation="sigmoid", weighting="sigmoid"):
    """The SPEC acceptance of one forward: selection against the float64
    reference, lse and the projected output on the returned sets."""
    named = reference_inputs(layer, x)
    expected = checks.reference_core(
        named, k_base=layer.k_base, k_min=layer.k_min, k_max=layer.k_max, policy=layer.policy,
        training=layer.training, running_var=running_var_before, momentum=layer.momentum,
        activation=activation, weighting=weighting, score_mod=score_mod)
    idx, cnt = stats.indices.numpy(), stats.counts.numpy()
    checks.check_selection(idx, cnt, expected, k_base=layer.k_base, k_min=layer.k_min,
                           k_max=layer.k_max, policy=layer.policy)
    o_ref, lse_ref = ref.sparse_attention(named["q"], named["k"], named["v"], idx, cnt,
                                          named.get("gv"), named.get("go"),
                                          score_mod=score_mod)
    B, L = cnt.shape
    out_ref = o_ref.reshape(B, L, -1) @ layer.o_proj.weight.double().detach().numpy().T
    assert ref.relative_error(stats.lse.numpy(), lse_ref) < 1e-5
    assert ref.relative_error(out.detach().numpy(), out_ref) < 1e-5
    return expected, named


# ---------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------

def test_defaults_follow_table_1():
    layer = gsa.GatedSparseAttention(device="meta")
    assert (layer.d_model, layer.n_heads, layer.n_kv_heads, layer.head_dim) == (4096, 32, 8, 128)
    assert (layer.indexer_heads, layer.indexer_dim) == (4, 64)
    assert (layer.k_base, layer.k_min, layer.k_max) == (2048, 256, 4096)
    assert layer.momentum == 0.99 and layer.policy == "inverse" and layer.rope
    shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    assert shapes == {
        "q_proj.weight": (4096, 4096), "k_proj.weight": (1024, 4096),
        "v_proj.weight": (1024, 4096), "o_proj.weight": (4096, 4096),
        "indexer_q.weight": (256, 4096), "indexer_k.weight": (64, 4096),
        "indexer_w.weight": (4, 4096), "indexer_bias": (4,),
        "output_gate.weight": (4096, 4096), "output_gate.bias": (4096,),
        "value_gate.weight": (1024, 4096), "value_gate.bias": (1024,)}
    assert tuple(layer.running_var.shape) == () and "running_var" in dict(layer.named_buffers())


def test_gate_biases_start_at_zero():
    layer = make_layer()
    for gate in (layer.output_gate, layer.value_gate):
        assert torch.count_nonzero(gate.bias) == 0
        assert torch.allclose(torch.sigmoid(gate(torch.zeros(1, 64))), torch.tensor(0.5))
    assert float(layer.running_var) == 0.0


def test_bad_configurations():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        gsa.GatedSparseAttention(**{**SMALL, "n_kv_heads": 3}, device="meta")
    with pytest.raises(ValueError, match="k_min <= k_base <= k_max"):
        gsa.GatedSparseAttention(**{**SMALL, "k_min": 32}, device="meta")
    with pytest.raises(ValueError, match="momentum"):
        gsa.GatedSparseAttention(**SMALL, momentum=1.0, device="meta")
    with pytest.raises(ValueError, match=r"x must have shape \[B, L, d_model = 64\]"):
        make_layer()(torch.randn(2, 5, 32))


# ---------------------------------------------------------------------------
# Forward against the float64 reference
# ---------------------------------------------------------------------------

def test_training_forward_matches_the_reference():
    layer = make_layer(1).train()
    x = hidden(1)
    with torch.no_grad():
        out, stats = layer(x, return_stats=True)
    assert out.shape == x.shape and out.dtype == torch.float32
    expected, _ = check_layer_output(layer, x, out, stats, running_var_before=0.0)
    # The first training update sets the running variance to the batch's V_bar.
    assert np.isclose(float(layer.running_var), expected["v_bar"], rtol=1e-5)


def test_running_variance_moves_only_in_training():
    layer = make_layer(2).train()
    with torch.no_grad():
        layer(hidden(2))
        first = float(layer.running_var)
        x = hidden(3)
        out, stats = layer(x, return_stats=True)
        expected, _ = check_layer_output(layer, x, out, stats, running_var_before=first)
        blended = 0.99 * first + 0.01 * expected["v_bar"]
        assert np.isclose(float(layer.running_var), blended, rtol=1e-5)
        after_training = float(layer.running_var)
        layer.eval()
        x = hidden(4)
        out, stats = layer(x, return_stats=True)
        assert float(layer.running_var) == after_training
        # Inference reads V_run: the reference with the same value agrees.
        check_layer_output(layer, x, out, stats, running_var_before=float(layer.running_var))


def test_eval_mode_needs_a_running_variance():
    layer = make_layer(3).eval()
    with torch.no_grad(), pytest.raises(ValueError, match="reads the running variance"):
        layer(hidden(5))
    fixed = make_layer(3, policy="fixed", k_min=8).eval()
    with torch.no_grad():
        _, stats = fixed(hidden(5), return_stats=True)
    assert torch.equal(stats.counts[0], torch.clamp(torch.arange(1, 41), max=8).int())


def test_gqa_without_gates_or_rope():
    layer = make_layer(4, n_heads=4, n_kv_heads=1, value_gate=False, output_gate=False,
                       rope=False).train()
    x = hidden(6, B=1, L=33)
    with torch.no_grad():
        out, stats = layer(x, return_stats=True)
    check_layer_output(layer, x, out, stats, running_var_before=0.0)
    assert stats.gate_g1_mean is None and stats.gate_g2_mean is None


def soft_cap(score, b, h, q_idx, kv_idx):
    return 3.0 * tanh(score / 3.0) - 0.02 * to_float(q_idx - kv_idx)


def floor_policy(mean, var, v_bar, t):
    return maximum(8.0 * sqrt(v_bar / var), to_float(t + 1) / 4.0)


def test_dsl_variant_in_the_layer():
    layer = make_layer(5, activation=softplus, policy=floor_policy, score_mod=soft_cap,
                       k_max=24).train()
    x = hidden(7)
    with torch.no_grad():
        out, stats = layer(x, return_stats=True)
    check_layer_output(layer, x, out, stats, running_var_before=0.0, score_mod=soft_cap,
                       activation=softplus)
    t = np.arange(40)
    assert np.all(stats.counts.numpy() >= np.minimum(np.floor((t + 1) / 4.0), 24))


def test_bf16_parameters_on_the_cpu():
    layer = make_layer(6).train()
    x = hidden(8)
    low = copy.deepcopy(layer).to(torch.bfloat16)
    with torch.no_grad():
        out = layer(x)
        out_low = low(x.to(torch.bfloat16))
    assert out_low.dtype == torch.bfloat16
    # bf16 rounds every projection (and can move near-tied selections).
    assert ref.relative_error(out_low.float().numpy(), out.numpy()) < 0.1


def test_backward_is_refused_plainly():
    layer = make_layer(7).train()
    out = layer(hidden(9))
    with pytest.raises(NotImplementedError, match="no backward pass"):
        out.sum().backward()


# ---------------------------------------------------------------------------
# Statistics (SPEC section 5)
# ---------------------------------------------------------------------------

def test_statistics_match_their_definitions():
    layer = make_layer(8, k_base=6, k_min=2, k_max=12).train()
    x = hidden(10)
    with torch.no_grad():
        out, stats = layer(x, return_stats=True)
    assert layer.last_stats is stats
    _, named = check_layer_output(layer, x, out, stats, running_var_before=0.0)
    idx, cnt = stats.indices.numpy(), stats.counts.numpy()
    B, L = cnt.shape
    H, D = layer.n_heads, layer.head_dim
    group = H // layer.n_kv_heads

    # First-token attention: a[t, h, 0] from a softmax over S_t, in float64.
    first = []
    for b in range(B):
        for t in range(1, L):
            sel = idx[b, t, :cnt[b, t]]
            for h in range(H):
                scores = named["k"][b, sel, h // group] @ named["q"][b, t, h] / np.sqrt(D)
                p = np.exp(scores - scores.max())
                p /= p.sum()
                first.append(p[list(sel).index(0)] if 0 in sel else 0.0)
    assert np.isclose(stats.first_token_attention, np.mean(first), rtol=1e-5, atol=1e-9)
    assert 0.0 < stats.first_token_attention < 1.0

    sig = lambda a: 1.0 / (1.0 + np.exp(-a))
    assert np.isclose(stats.gate_g1_mean, sig(named["go"]).mean(), rtol=1e-5)
    assert np.isclose(stats.gate_g2_mean, sig(named["gv"]).mean(), rtol=1e-5)

    hist = stats.k_histogram.numpy()
    assert hist.shape == (13,) and hist.sum() == B * L
    assert np.array_equal(hist, np.bincount(cnt.ravel(), minlength=13))
    assert np.isclose(stats.mean_k, cnt.mean())

    # Indexer recall against the dense top-k_t of the head-averaged causal
    # attention, from the core's own q and k.
    q, k = stats.q.double().numpy(), stats.k.double().numpy()
    recalls = []
    for b in range(B):
        for t in range(L):
            probs = np.zeros(t + 1)
            for h in range(H):
                s = k[b, :t + 1, h // group] @ q[b, t, h] * stats.scale
                e = np.exp(s - s.max())
                probs += e / e.sum() / H
            order = np.lexsort((-np.arange(t + 1), -probs))   # larger p, then larger s
            top = set(order[:cnt[b, t]].tolist())
            recalls.append(len(top & set(idx[b, t, :cnt[b, t]].tolist())) / cnt[b, t])
    assert np.isclose(stats.indexer_recall(), np.mean(recalls), atol=1e-12)
    assert np.isclose(stats.indexer_recall(block=7), np.mean(recalls), atol=1e-12)


def test_first_token_attention_sees_score_mod():
    # A score_mod that pushes position 0 up makes the sink measure grow.
    boost = lambda s, b, h, q_idx, kv_idx: gsa.dsl.where(kv_idx == 0, s + 4.0, s)
    x = hidden(11)
    plain = make_layer(9, k_min=16, k_base=16).train()
    boosted = make_layer(9, k_min=16, k_base=16, score_mod=boost).train()
    with torch.no_grad():
        _, s_plain = plain(x, return_stats=True)
        out, s_boost = boosted(x, return_stats=True)
    assert s_boost.first_token_attention > 2 * s_plain.first_token_attention
    check_layer_output(boosted, x, out, s_boost, running_var_before=0.0,
                       score_mod=lambda s, b, h, q, kv: s + 4.0 if kv == 0 else s)


# ---------------------------------------------------------------------------
# CUDA tensors: the same entry point
# ---------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_functional_core_on_cuda_matches_the_reference():
    # bf16 inputs are exact in float64, so the reference sees what the GPU saw.
    # Tolerances: the GPU's sigmoids are tanh.approx (~1e-4 per head), so
    # sets are compared where the margin exceeds 2e-3, and the output is bf16.
    rng = np.random.default_rng(20)
    x = checks.random_core_inputs(rng, B=2, L=200, n_h=8, n_kv=2, d=64, H_I=4, d_I=32)
    dev = {n: torch.from_numpy(a).to(device="cuda", dtype=torch.bfloat16) for n, a in x.items()}
    dev["bi"] = torch.from_numpy(x["bi"]).cuda()   # the bias stays f32, as in the layer
    exact = {n: t.double().cpu().numpy() for n, t in dev.items()}
    kw = dict(k_base=16, k_min=8, k_max=48, training=True, running_var=0.0)
    out = gsa.functional.gated_sparse_attention(**dev, **kw, policy=floor_policy,
                                                score_mod=soft_cap)
    o, lse, idx, cnt = (t.cpu() for t in out[:4])
    assert out[0].is_cuda and out[0].dtype == torch.bfloat16 and isinstance(out[4], float)
    expected = checks.reference_core(exact, **kw, policy=floor_policy, score_mod=soft_cap)
    checks.check_selection(idx.numpy(), cnt.numpy(), expected, k_base=16, k_min=8, k_max=48,
                           policy=floor_policy, score_tolerance=2e-3, budget_tolerance=1e-2)
    o_ref, lse_ref = ref.sparse_attention(exact["q"], exact["k"], exact["v"], idx.numpy(),
                                          cnt.numpy(), exact["gv"], exact["go"],
                                          score_mod=soft_cap)
    assert ref.relative_error(o.float().numpy(), o_ref) < 1e-2
    assert ref.relative_error(lse.numpy(), lse_ref) < 1e-3
    assert np.isclose(out[4], expected["new_running_var"], rtol=1e-2)


@cuda
@pytest.mark.parametrize("H_I, d_I, tiles", [(4, 64, "1"), (4, 64, "0"), (16, 64, "1"),
                                             (2, 32, "1")])
def test_functional_indexer_on_cuda_matches_the_reference(H_I, d_I, tiles, monkeypatch):
    # Over query tiles (wgmma, H_I up to 16) and the CUDA-core kernel
    # (indexer-query-tiles=0; d_I 32 takes it either way), against float64
    # on the bf16 values; tanh.approx sigmoids: ~1e-4 per head.
    monkeypatch.setenv("GSA_GPU_OPTIONS", f"indexer-query-tiles={tiles}")
    rng = np.random.default_rng(21)
    B, L = 2, 333
    x = {"qi": rng.standard_normal((B, L, H_I, d_I)), "ki": rng.standard_normal((B, L, d_I)),
         "wi": rng.standard_normal((B, L, H_I)), "bi": 0.1 * rng.standard_normal(H_I)}
    dev = {n: torch.from_numpy(a).to(device="cuda", dtype=torch.bfloat16) for n, a in x.items()}
    exact = {n: t.double().cpu().numpy() for n, t in dev.items()}
    scores = gsa.functional.indexer(**dev).cpu().numpy()
    expected = ref.indexer_scores(**exact)
    below = np.tril(np.ones((L, L), dtype=bool))
    assert np.isneginf(scores[:, ~below]).all()
    assert np.abs(scores[:, below] - expected[:, below]).max() < 2e-3


@cuda
def test_functional_indexer_refuses_mixed_devices():
    qi = np.zeros((1, 8, 4, 64), np.float32)
    ki = torch.zeros((1, 8, 64), dtype=torch.bfloat16, device="cuda")
    with pytest.raises(ValueError, match="'qi' is not a CUDA tensor but 'ki' is one"):
        gsa.functional.indexer(qi, ki)


@cuda
def test_functional_core_on_cuda_checks_a_number_running_var():
    # The runtime checks host values only; a number is checked in Python.
    rng = np.random.default_rng(21)
    x = checks.random_core_inputs(rng, B=1, L=64, n_h=4, n_kv=1, d=64, H_I=4, d_I=64)
    dev = {n: torch.from_numpy(a).to(device="cuda", dtype=torch.bfloat16) for n, a in x.items()}
    kw = dict(k_base=8, k_min=4, k_max=16, policy="inverse")
    with pytest.raises(ValueError, match="in training mode the running variance"):
        gsa.functional.gated_sparse_attention(**dev, **kw, training=True,
                                              running_var=float("nan"))
    with pytest.raises(ValueError, match="must be finite and positive"):
        gsa.functional.gated_sparse_attention(**dev, **kw, running_var=0.0)


@cuda
def test_layer_on_cuda_tensors():
    layer = make_layer(10, head_dim=32).train()   # the GPU kernel takes d_k % 32 == 0
    x = hidden(12)
    with torch.no_grad():
        expected = layer(x)
    gpu = copy.deepcopy(layer).to(device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        out, stats = gpu(x.to(device="cuda", dtype=torch.bfloat16), return_stats=True)
    assert out.is_cuda and out.dtype == torch.bfloat16
    # bf16 projections: loosely the float32 layer's output...
    assert ref.relative_error(out.float().cpu().numpy(), expected.numpy()) < 0.1
    # ...and exactly the attention of the core's own q and k on its sets.
    q, k = stats.q.double().cpu().numpy(), stats.k.double().cpu().numpy()
    idx, cnt = stats.indices.cpu().numpy(), stats.counts.cpu().numpy()
    v = np.zeros_like(k)
    _, lse_ref = ref.sparse_attention(q, k, v, idx, cnt)
    assert ref.relative_error(stats.lse.cpu().numpy(), lse_ref) < 1e-3
    assert float(gpu.running_var) > 0 and np.isfinite(stats.first_token_attention)
