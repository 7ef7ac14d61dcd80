"""Batched, prefix-cached, substring-constrained greedy extraction with a causal LM.

Why not ``model.generate``: every prompt shares one long instruction prefix (~700-900
tokens) and a short descriptor suffix; the answer is short JSON whose skeleton is known.
``generate`` recomputes the prefix per text, pays one decode step per skeleton token and
cannot guarantee valid output. This engine

* runs the shared prefix **once** and keeps its K/V as a single batch-1 tensor per layer;
  a custom attention function attends to it by broadcasting (never copied per sequence)
  and merges it with each sequence's own keys in one softmax;
* prefills only the per-text suffixes, in length-sorted batches, into a preallocated
  per-batch K/V buffer ("slots"); all sequences of a batch write the same slots each step,
  and a per-slot validity mask lets a sequence feed fewer tokens than its neighbours;
* decodes greedily, constrained by :mod:`.constrained` (the argmax over allowed tokens:
  identical to plain greedy whenever plain greedy's token is allowed), checking the
  top-k first and computing the full allowed set only when none of them is allowed;
* lets greedy choose among **every** token consistent with the forced skeleton, so the
  model's own tokenization of it (merged ``":"``, ``","``, ``":"","`` for an empty value,
  ``"}``) is allowed. Feeding a literal's canonical tokens instead (the old jump-forward)
  put a fine-tuned model off-distribution: it was trained on ``compact_json`` tokenized as
  one string, where skeleton and values merge, and it then copied wrong values (0/32 on a
  memorised tiny model, against 32/32 unconstrained);
* optional **jump-forward** (``jump_forward=True``, off by default) only skips steps where
  exactly one token is allowed, so it never changes the output, only saves forwards.
* for single-valued JSON-only tasks (the common case) the constraint runs **on the device**:
  each text's transitions of a small position automaton (:class:`.TextTransitions`, built
  once per text) are index tensors, and one step for the whole batch is a few gathers
  (allowed = any transition from the row's positions; masked argmax; next positions by
  scatter). No per-sequence Python runs per step; finished rows leave the batch; the host
  builds the next batch's tables while the device decodes the current one. Multi-valued
  tasks and the two-step prompt keep the per-sequence path below (same output rule).

The engine never changes the model it is given: it runs a *view* that shares the
parameters (no copy, so a live PEFT model's fp32 adapters are seen as they are) but has
its own module objects and config (eval mode, our attention function), or a cast copy when
a dtype/device different from the model's is asked for. Attention state travels as a
keyword argument of the forward call (``finextract_ctx``), which transformers hands to the
registered attention function; nothing module-global, no config swapped per forward.
The shared-prefix K/V is kept across ``extract`` calls and recomputed only when the
prefix or the weights (their in-place version counters) change.

Guarantee: when plain greedy's output is valid, constrained output is identical to it.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from finextract.backends.causal_lm.constrained import (JsonShape, SkeletonTables, State, TextGrammar,
                                                       TextTransitions, TokenVocab)
from finextract.tasks import Task, load_task

ATTN_NAME = "finextract_prefix_shared"


@dataclass
class EngineResult:
    """One text's output: the generated text, its parsed dict (``None`` = invalid), tokens made."""

    raw: str
    parsed: dict | None
    n_new_tokens: int


# ------------------------------------------------------------------ attention + K/V store
@dataclass
class AttentionContext:
    """Per-forward state for :func:`prefix_shared_attention`, passed as the ``finextract_ctx`` kwarg."""

    prefix: list[tuple[torch.Tensor, torch.Tensor]] | None  # per layer [1, Hkv, P, D]
    mask: torch.Tensor | None  # [B, 1, T, K] bool over the sequences' own slots


class SlotCache:
    """Preallocated per-batch K/V for the suffix + generated tokens (the prefix lives apart).

    Duck-types the part of ``transformers.Cache`` that decoder layers call: ``update``
    writes the step's keys at slots ``[cur, cur+T)`` and returns the filled slots.
    """

    is_compileable = False

    def __init__(self, n_layers: int, batch: int, kv_heads: int, head_dim: int, slots: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        shape = (batch, kv_heads, slots, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.slots = slots
        self.cur = 0
        self.step_len = 0
        self.offset = 0  # prefix length, reported as already-seen tokens

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args: Any, **kw: Any):
        T = key.shape[2]
        self.k[layer_idx][:, :, self.cur:self.cur + T] = key
        self.v[layer_idx][:, :, self.cur:self.cur + T] = value
        end = self.cur + T
        return self.k[layer_idx][:, :, :end], self.v[layer_idx][:, :, :end]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.offset + self.cur

    def get_mask_sizes(self, *args: Any, **kw: Any) -> tuple[int, int]:  # pragma: no cover - unused
        return self.cur + self.step_len, 0


def prefix_shared_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                            value: torch.Tensor, attention_mask: Any, scaling: float | None = None,
                            dropout: float = 0.0, **kwargs: Any):
    """Softmax attention over [shared prefix K/V (batch 1)] + [own slots], grouped-query aware.

    The prefix is multiplied as one ``[Hkv, B*G*T, D] @ [Hkv, D, P]`` product, so its K/V
    are read once per layer per step, not once per sequence. Called without an engine
    context (someone runs the engine's model view directly) it is plain SDPA attention.
    """
    ctx: AttentionContext | None = kwargs.get("finextract_ctx")
    if ctx is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                      dropout=dropout, **kwargs)
    B, H, T, D = query.shape
    Hkv = key.shape[1]
    G = H // Hkv
    scale = scaling if scaling is not None else 1.0 / math.sqrt(D)
    q = query.reshape(B, Hkv, G * T, D)
    s_own = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # [B, Hkv, GT, K]
    mask = ctx.mask
    if mask is not None:
        m = mask[:, :, None].expand(B, 1, G, T, mask.shape[-1]).reshape(B, 1, G * T, mask.shape[-1])
        s_own = s_own.masked_fill(~m, torch.finfo(torch.float32).min)
    prefix = ctx.prefix[module.layer_idx] if ctx.prefix else None
    if prefix is None:
        p = torch.softmax(s_own, dim=-1).to(value.dtype)
        out = torch.matmul(p, value)
    else:
        pk, pv = prefix
        qh = q.transpose(0, 1).reshape(Hkv, B * G * T, D)
        s_pre = torch.bmm(qh, pk[0].transpose(-1, -2)).float() * scale  # [Hkv, BGT, P]
        s_pre = s_pre.reshape(Hkv, B, G * T, -1).transpose(0, 1)  # [B, Hkv, GT, P]
        P = s_pre.shape[-1]
        p = torch.softmax(torch.cat([s_pre, s_own], dim=-1), dim=-1).to(value.dtype)
        p_pre = p[..., :P].transpose(0, 1).reshape(Hkv, B * G * T, P)
        out = torch.matmul(p[..., P:], value)
        out = out + torch.bmm(p_pre, pv[0]).reshape(Hkv, B, G * T, D).transpose(0, 1)
    out = out.reshape(B, Hkv, G, T, D).reshape(B, H, T, D).transpose(1, 2).contiguous()
    return out, None


def _register_attention() -> None:
    from transformers import AttentionInterface

    # No mask function is registered on purpose: the model then builds no mask, and we
    # also hand it our own 4D mask, which transformers passes through untouched.
    AttentionInterface.register(ATTN_NAME, prefix_shared_attention)


# ------------------------------------------------------------------ the model the engine runs
def _shallow_clone(module: torch.nn.Module, memo: dict[int, Any], configs: dict[int, Any]) -> torch.nn.Module:
    """New module objects sharing every parameter and buffer; configs replaced by copies."""
    from transformers import PretrainedConfig

    hit = memo.get(id(module))
    if hit is not None:
        return hit
    new = module.__class__.__new__(module.__class__)
    memo[id(module)] = new
    d = dict(module.__dict__)
    d["_parameters"] = dict(module._parameters)
    d["_buffers"] = dict(module._buffers)
    d["_modules"] = {k: (_shallow_clone(m, memo, configs) if m is not None else None)
                     for k, m in module._modules.items()}
    d.pop("_compiled_call_impl", None)  # a compiled layer's impl is bound to the original object
    for k, v in list(d.items()):
        if isinstance(v, PretrainedConfig):
            if id(v) not in configs:
                configs[id(v)] = copy.copy(v)
            d[k] = configs[id(v)]
    object.__setattr__(new, "__dict__", d)
    return new


def inference_view(model: torch.nn.Module, dtype: torch.dtype | None = None,
                   device: Any = None) -> torch.nn.Module:
    """The model as the engine runs it, without touching ``model``.

    Same dtype and device: a shallow clone (parameters shared, so no memory and always the
    caller's current weights; its own module objects, so ``eval()`` on it leaves the
    caller's training mode alone; its own config, so our attention function is selected
    without changing the caller's). Another dtype/device: a deep copy, cast.
    """
    p = next(model.parameters())
    dev = torch.device(device) if device is not None else p.device
    same_dev = dev.type == p.device.type and (dev.index is None or dev.index == p.device.index)
    configs: dict[int, Any] = {}
    if (dtype is None or dtype == p.dtype) and same_dev:
        view = _shallow_clone(model, {}, configs)
    else:
        view = copy.deepcopy(model).to(device=dev, dtype=dtype or p.dtype)
        from transformers import PretrainedConfig

        for m in view.modules():
            for v in m.__dict__.values():
                if isinstance(v, PretrainedConfig):
                    configs[id(v)] = v
    _register_attention()
    for cfg in configs.values():
        cfg._attn_implementation = ATTN_NAME
    view.eval()
    return view


def weights_version(model: torch.nn.Module) -> int:
    """Sum of the parameters' in-place version counters: changes whenever an optimizer steps."""
    return sum(q._version for q in model.parameters())


# ------------------------------------------------------------------------------- engine
_WORKER_TABLES: SkeletonTables | None = None  # set in the parent just before the pool forks


def _build_transitions(texts: list[str]) -> list[tuple[str, int, Any, float]]:
    """Worker side of ``prep_workers``: arrays only (the tables stay in each process)."""
    out = []
    for t in texts:
        t0 = time.perf_counter()
        tt = TextTransitions(t, _WORKER_TABLES)  # type: ignore[arg-type]
        out.append((t, tt.n_positions, tt.arrays(), time.perf_counter() - t0))
    return out


class _Seq:
    """Decoding bookkeeping for one text in a batch."""

    __slots__ = ("idx", "grammar", "state", "pending", "out_ids", "out_bytes", "done", "pos",
                 "n_new", "phase", "analysis_ids", "forced_finish", "glued")

    def __init__(self, idx: int, grammar: TextGrammar | None, pos: int, phase: str) -> None:
        self.idx = idx
        self.grammar = grammar
        self.state: State | None = grammar.initial() if grammar is not None else None
        self.pending: list[int] = []
        self.out_ids: list[int] = []
        self.out_bytes = b""
        self.done = False
        self.pos = pos
        self.n_new = 0
        self.phase = phase  # "analysis" | "json" | "free"
        self.analysis_ids: list[int] = []
        self.forced_finish: bytes | None = None
        self.glued = 0  # bytes of JSON the model wrote inside its marker token


class ExtractionEngine:
    """Fast greedy extraction over many texts; see the module docstring for how.

    ``render(text)`` must give the full prompt string for a text (same instruction prefix
    for every text). ``constrained=False`` decodes plainly (for comparison); its output is
    parsed with :func:`finextract.prompts.parse_output`. ``answer_marker``: free analysis
    text first (at most ``analysis_max_tokens``), then the marker (forced if the model does
    not write it), then the JSON. ``model`` is never modified (see :func:`inference_view`):
    ``dtype``/``device`` default to the model's own; asking for others makes a cast copy.
    Build one engine per model and reuse it: the shared-prefix K/V is kept across calls.
    ``device_constraint=False`` forces the per-sequence path (for comparisons).
    """

    def __init__(self, model: Any, tokenizer: Any, task: "Task | str", render: Callable[[str], str],
                 constrained: bool = True, max_new_tokens: int = 256, batch_size: int = 64,
                 answer_marker: str | None = None, device: Any = None, dtype: Any = None, *,
                 jump_forward: bool = False, prefix_cache: bool = True, topk: int = 8,
                 analysis_max_tokens: int | None = None, marker_suffix: str = "\n",
                 json_separators: tuple[str, str] = (",", ":"), progress: bool = False,
                 device_constraint: bool = True, sync_every: int = 4, profile: bool = False,
                 prep_workers: int = 0, cache_texts: int = 1024) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be at least 1")
        self.task = load_task(task)
        self.tokenizer = tokenizer
        self.render = render
        self.constrained = constrained
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.answer_marker = answer_marker
        self.jump_forward = jump_forward
        self.prefix_cache = prefix_cache
        self.topk = topk
        self.analysis_max_tokens = analysis_max_tokens or max(16, max_new_tokens // 2)
        self.marker_suffix = marker_suffix
        self.progress = progress
        self.device_constraint = device_constraint
        self.sync_every = max(1, sync_every)
        self.profile = profile
        self.prep_workers = prep_workers
        self.cache_texts = cache_texts
        self._pool: Any = None
        self._transitions: dict[str, TextTransitions] = {}  # per-text tables, kept across calls
        p = next(model.parameters())
        self._source = model
        self._want = (dtype, device)
        self.model = inference_view(model, dtype, device)
        q = next(self.model.parameters())
        self.device, self.dtype = q.device, q.dtype
        self._copied = q is not p
        self._source_version = weights_version(model)
        cfg = self.model.config
        self.n_layers = cfg.num_hidden_layers
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.vocab = TokenVocab.for_tokenizer(tokenizer)
        self.shape = JsonShape(tuple(self.task.key_names), self.task.multi_valued, *json_separators)
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        eos_ids = set(eos if isinstance(eos, list) else ([eos] if eos is not None else []))
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self.eos_ids = eos_ids
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos_ids), 0)
        self._prefix_ids: list[int] | None = None
        self._prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._prefix_key: tuple | None = None
        self._marker_ids = (self.vocab.forced_tokens((answer_marker + marker_suffix).encode("utf-8"))
                            if answer_marker else [])
        self._special_mask: torch.Tensor | None = None
        self._tables = (SkeletonTables.get(self.shape, self.vocab)
                        if constrained and not self.shape.multi and not answer_marker else None)
        self.stats: dict[str, float] = {}
        self.reset_stats()

    def reset_stats(self) -> None:
        """Counters for tests and benchmarks (forwards, prefix computations, timings in s)."""
        self.stats = {"forwards": 0, "slots": 0, "fallbacks": 0, "prefix_computes": 0, "steps": 0,
                      "rows_stepped": 0, "t_prep": 0.0, "t_prep_wall": 0.0, "t_forward": 0.0, "t_mask": 0.0, "texts_prepared": 0}
        self.prep_times: dict[str, float] = {}  # text -> seconds of host constraint work (device path)

    def _refresh_copy(self) -> None:
        """A cast copy goes stale when the caller's weights change: copy again."""
        if self._copied and weights_version(self._source) != self._source_version:
            self.model = inference_view(self._source, *self._want)
            self._source_version = weights_version(self._source)

    # ------------------------------------------------------------------ prefix
    def _encode(self, prompt: str) -> list[int]:
        return self.tokenizer.encode(prompt, add_special_tokens=False)

    def _shared_prefix(self) -> list[int]:
        """Token prefix common to the prompts of two unrelated texts (template-agnostic)."""
        if self._prefix_ids is None:
            a, b = self._encode(self.render("0")), self._encode(self.render("Zq, 9."))
            n = 0
            while n < min(len(a), len(b)) and a[n] == b[n]:
                n += 1
            self._prefix_ids = a[:n]
        return self._prefix_ids

    def _forward(self, ids: torch.Tensor, pos: torch.Tensor, cache: SlotCache, mask: torch.Tensor,
                 prefix: list | None, keep: int = 0) -> torch.Tensor:
        """One model call on ``ids`` [B, T]; returns last-layer logits [B, T, V] (float)."""
        cache.step_len = ids.shape[1]
        out = self.model(input_ids=ids, position_ids=pos, past_key_values=cache, use_cache=True,
                         attention_mask=mask, logits_to_keep=keep,
                         finextract_ctx=AttentionContext(prefix, mask))
        return out.logits

    @torch.inference_mode()
    def _ensure_prefix_kv(self, n: int) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        if n == 0:
            return None
        key = (tuple(self._shared_prefix()), weights_version(self.model))
        if self._prefix_kv is None or self._prefix_key != key or self._prefix_kv[0][0].shape[2] < n:
            self._prefix_key = key
            self.stats["prefix_computes"] += 1
            ids = torch.tensor([self._shared_prefix()], device=self.device)
            L = ids.shape[1]
            cache = SlotCache(self.n_layers, 1, self.kv_heads, self.head_dim, L, self.dtype, self.device)
            causal = torch.ones(L, L, dtype=torch.bool, device=self.device).tril()[None, None]
            self._forward(ids, torch.arange(L, device=self.device)[None], cache, causal, None)
            self._prefix_kv = [(k, v) for k, v in zip(cache.k, cache.v)]
        return [(k[:, :, :n], v[:, :, :n]) for k, v in self._prefix_kv]

    # ------------------------------------------------------------------ public
    def extract(self, texts: Sequence[str]) -> list[EngineResult]:
        """Extract every text; results in input order."""
        texts = list(texts)
        if not texts:
            return []
        self._refresh_copy()
        prompts = [self._encode(self.render(t)) for t in texts]
        prefix = self._shared_prefix() if self.prefix_cache else []
        P = len(prefix)
        for ids in prompts:  # a text whose tokens merge into the prefix shortens the shared part
            n = 0
            while n < P and n < len(ids) - 1 and ids[n] == prefix[n]:
                n += 1
            P = n
        order = sorted(range(len(texts)), key=lambda i: len(prompts[i]))
        results: list[EngineResult | None] = [None] * len(texts)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        on_device = self._tables is not None and self.device_constraint and not self.jump_forward
        bar = None
        if self.progress:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task_id = bar.add_task("extracting", total=len(texts))
        try:
            prepared = self._transitions
            if on_device:
                for _ in self._prepare(prepared, [texts[i] for i in batches[0]]):
                    pass
            for bi, batch in enumerate(batches):
                b_texts = [texts[i] for i in batch]
                b_suffixes = [prompts[i][P:] for i in batch]
                if on_device:
                    nxt = [texts[i] for i in batches[bi + 1]] if bi + 1 < len(batches) else []
                    out = self._run_batch_positions(b_texts, b_suffixes, P, prepared,
                                                    self._prepare(prepared, nxt))
                else:
                    out = self._run_batch(b_texts, b_suffixes, P)
                for i, res in zip(batch, out):
                    results[i] = res
                if bar is not None:
                    bar.advance(task_id, len(batch))
        finally:
            if bar is not None:
                bar.stop()
            while len(self._transitions) > self.cache_texts:  # oldest first (dicts keep insertion order)
                self._transitions.pop(next(iter(self._transitions)))
        return results  # type: ignore[return-value]

    def _prepare(self, store: dict[str, TextTransitions], texts: list[str]) -> Iterator[None]:
        """Build each text's transition tables into ``store``, yielding between pieces of work.

        The decode loop pulls this generator a few times per step, so the next batch's
        tables are built (host work) while the device runs the current batch. With
        ``prep_workers`` > 0 the texts go to a pool of forked worker processes instead
        and the generator only polls for their results.
        """
        todo = [t for t in dict.fromkeys(texts) if t not in store]
        pool = self._prep_pool() if len(todo) >= 16 else None
        if pool is not None:
            t0 = time.perf_counter()
            step = max(8, -(-len(todo) // (4 * self.prep_workers)))
            futs = [pool.submit(_build_transitions, todo[i:i + step]) for i in range(0, len(todo), step)]
            while not all(f.done() for f in futs):
                yield None
            for f in futs:
                for text, n_pos, arr, dt in f.result():
                    store[text] = TextTransitions.from_arrays(self._tables, n_pos, arr)  # type: ignore[arg-type]
                    self.prep_times[text] = dt
                    self.stats["texts_prepared"] += 1
            self.stats["t_prep_wall"] += time.perf_counter() - t0
            return
        for t in todo:
            t0 = time.perf_counter()
            store[t] = TextTransitions(t, self._tables)  # type: ignore[arg-type]
            dt = time.perf_counter() - t0
            self.stats["t_prep"] += dt
            self.prep_times[t] = dt
            self.stats["texts_prepared"] += 1
            yield None

    def _prep_pool(self):
        """Forked workers for table building (they run plain Python and numpy, never CUDA)."""
        if self.prep_workers <= 0:
            return None
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            global _WORKER_TABLES
            _WORKER_TABLES = self._tables
            self._pool = ProcessPoolExecutor(self.prep_workers, mp_context=multiprocessing.get_context("fork"))
        return self._pool

    def close(self) -> None:
        """Stop the table-building workers, if any."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ batch, device constraint
    @torch.inference_mode()
    def _run_batch_positions(self, texts: list[str], suffixes: list[list[int]], P: int,
                             prepared: dict[str, TextTransitions], prepare_next: Iterator[None]) -> list[EngineResult]:
        """Constrained greedy decoding with the constraint on the device (single-valued JSON)."""
        import numpy as np

        dev = self.device
        tables = self._tables
        assert tables is not None
        for _ in self._prepare(prepared, texts):  # normally already done while the last batch ran
            pass
        trans = [prepared[t] for t in texts]
        B = len(texts)
        S_len = max(len(s) for s in suffixes)
        steps = self.max_new_tokens
        slots = S_len + steps + 1
        prefix_kv = self._ensure_prefix_kv(P)
        cache = SlotCache(self.n_layers, B, self.kv_heads, self.head_dim, slots, self.dtype, dev)
        cache.offset = P
        valid = torch.ones(B, slots, dtype=torch.bool)
        ids = torch.full((B, S_len), self.pad_id, dtype=torch.long)
        pos = torch.full((B, S_len), P, dtype=torch.long)
        for b, s in enumerate(suffixes):
            ids[b, S_len - len(s):] = torch.tensor(s, dtype=torch.long)
            pos[b, S_len - len(s):] = torch.arange(P, P + len(s))
            valid[b, :S_len - len(s)] = False
        valid = valid.to(dev)
        # per-row transition tables, padded; padding rows start from an always-empty column
        R = max(len(t.tok) for t in trans)
        N = max(t.n_positions for t in trans) + 1
        dummy = N - 1
        arr = np.full((5, B, R), -1, dtype=np.int64)
        arr[1:3] = dummy
        arr[0] = 0
        for b, t in enumerate(trans):
            k = len(t.tok)
            arr[0, b, :k], arr[1, b, :k], arr[2, b, :k], arr[3, b, :k], arr[4, b, :k] = t.tok, t.frm, t.to, t.tag, t.nk
        tok, frm, to, tag, nk = torch.from_numpy(arr).to(dev).unbind(0)
        spos = torch.zeros(B, N, dtype=torch.bool, device=dev)
        spos[:, tables.initial] = True
        key = torch.zeros(B, dtype=torch.long, device=dev)
        out = torch.full((B, steps), -1, dtype=torch.long, device=dev)
        stuck = torch.zeros(B, dtype=torch.bool, device=dev)
        pos_t = torch.tensor([P + len(s) for s in suffixes], dtype=torch.long, device=dev)
        rows = list(range(B))  # original row of each current row (finished rows leave the batch)
        finished: dict[int, tuple[torch.Tensor, bool]] = {}
        neg = torch.tensor(float("-inf"), device=dev)
        per_step = max(1, -(-B // max(1, steps // 3)))  # next batch's texts prepared per step
        logits = self._timed_step(ids.to(dev), pos.to(dev), cache, valid, prefix_kv)
        for t in range(steps):
            t0 = time.perf_counter() if self.profile else 0.0
            ended = spos[:, tables.DONE] | stuck
            on = spos.gather(1, frm) & ((tag < 0) | (tag == key[:, None]))
            sc = torch.where(on, logits.gather(1, tok), neg)
            best, j = sc.max(1)
            live = (best > neg) & ~ended
            stuck |= ~live & ~ended
            ch = tok.gather(1, j[:, None]).squeeze(1)
            fire = (on & (tok == ch[:, None]) & live[:, None]).to(torch.int32)
            moved = torch.zeros(spos.shape, dtype=torch.int32, device=dev).scatter_add_(1, to, fire) > 0
            spos = torch.where(live[:, None], moved, spos)
            spos[:, dummy] = False
            nkj = nk.gather(1, j[:, None]).squeeze(1)
            key = torch.where(live & (nkj >= 0), nkj, key)
            out[:, t] = torch.where(live, ch, -1)
            self.stats["steps"] += 1
            self.stats["rows_stepped"] += len(rows)
            if self.profile:
                torch.cuda.synchronize() if dev.type == "cuda" else None
                self.stats["t_mask"] += time.perf_counter() - t0
            if t == steps - 1:
                break
            if (t + 1) % self.sync_every == 0:
                ended = spos[:, tables.DONE] | stuck
                n_active = int((~ended).sum())
                if n_active == 0:
                    break
                if n_active <= len(rows) // 2 and len(rows) >= 8:  # drop finished rows
                    keep = torch.nonzero(~ended).squeeze(1)
                    gone = torch.nonzero(ended).squeeze(1)
                    gone_out, gone_done = out[gone].cpu(), spos[gone, tables.DONE].cpu()
                    for r, o, d in zip(gone.tolist(), gone_out, gone_done.tolist()):
                        finished[rows[r]] = (o, d)
                    rows = [rows[r] for r in keep.tolist()]
                    spos, key, out, stuck, pos_t, ch, live = (x[keep] for x in (spos, key, out, stuck, pos_t, ch, live))
                    tok, frm, to, tag, nk, valid = (x[keep] for x in (tok, frm, to, tag, nk, valid))
                    cache.k = [x[keep] for x in cache.k]
                    cache.v = [x[keep] for x in cache.v]
            feed = torch.where(live, ch, self.pad_id)
            pos_t = pos_t + 1
            logits = self._timed_step(feed[:, None], (pos_t - 1)[:, None], cache, valid, prefix_kv)
            for _ in range(per_step):
                next(prepare_next, None)
        for _ in prepare_next:
            pass
        final_out, final_done = out.cpu(), spos[:, tables.DONE].cpu().tolist()
        for i, r in enumerate(rows):
            finished[r] = (final_out[i], final_done[i])
        return [self._positions_result(texts[r], *finished[r]) for r in range(B)]

    def _timed_step(self, ids, pos, cache, valid, prefix_kv) -> torch.Tensor:
        if not self.profile:
            return self._step(ids, pos, cache, valid, prefix_kv)
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        logits = self._step(ids, pos, cache, valid, prefix_kv)
        sync()
        self.stats["t_forward"] += time.perf_counter() - t0
        return logits

    def _positions_result(self, text: str, out: torch.Tensor, done: bool) -> EngineResult:
        toks = [int(x) for x in out.tolist() if x >= 0]
        body = b"".join(self.vocab.token_bytes[x] or b"" for x in toks)
        if not done:  # budget spent (or no move left): close validly, as the per-sequence path does
            g = TextGrammar(text, self.shape, self.vocab)
            st = g.feed(g.initial(), body)
            assert st is not None, "device constraint produced bytes the grammar rejects"
            drop, tail = g.completion(st)
            body = (body[:len(body) - drop] if drop else body) + tail
        json_text = body.decode("utf-8", "surrogatepass")
        return EngineResult(json_text, self.task.normalize_output(json.loads(json_text)), len(toks))

    # ------------------------------------------------------------------ batch
    @torch.inference_mode()
    def _run_batch(self, texts: list[str], suffixes: list[list[int]], P: int) -> list[EngineResult]:
        dev = self.device
        B = len(texts)
        S = max(len(s) for s in suffixes)
        budget = self.max_new_tokens + (self.analysis_max_tokens + len(self._marker_ids) if self.answer_marker else 0)
        slots = S + 2 * budget + 8
        prefix_kv = self._ensure_prefix_kv(P)
        cache = SlotCache(self.n_layers, B, self.kv_heads, self.head_dim, slots, self.dtype, dev)
        cache.offset = P
        valid = torch.zeros(B, slots, dtype=torch.bool, device=dev)
        ids = torch.full((B, S), self.pad_id, dtype=torch.long)
        pos = torch.full((B, S), P, dtype=torch.long)
        for b, s in enumerate(suffixes):
            ids[b, S - len(s):] = torch.tensor(s, dtype=torch.long)
            pos[b, S - len(s):] = torch.arange(P, P + len(s))
        lens = torch.tensor([len(s) for s in suffixes])
        valid[:, :S] = (torch.arange(S)[None] >= (S - lens)[:, None]).to(dev)
        seqs = []
        for b, t in enumerate(texts):
            g = TextGrammar(t, self.shape, self.vocab) if self.constrained else None
            phase = "analysis" if self.answer_marker else ("json" if self.constrained else "free")
            seqs.append(_Seq(b, g, P + len(suffixes[b]), phase))
        logits = self._step(ids.to(dev), pos.to(dev), cache, valid, prefix_kv)
        while True:
            self._decide(seqs, logits, budget)
            active = [s for s in seqs if not s.done]
            if not active:
                break
            room = slots - cache.cur
            if room <= 0:
                for s in active:
                    self._finish(s)
                break
            T = min(room, max(len(s.pending) for s in active))
            ids = torch.full((B, T), self.pad_id, dtype=torch.long)
            pos = torch.zeros((B, T), dtype=torch.long)
            k = torch.zeros(B, dtype=torch.long)
            for s in active:  # right-align each row's tokens: its last real token is column T-1
                feed = s.pending[:T]
                s.pending = s.pending[T:]
                n = len(feed)
                if n:
                    ids[s.idx, T - n:] = torch.tensor(feed)
                    pos[s.idx, T - n:] = torch.arange(s.pos, s.pos + n)
                pos[s.idx, :T - n] = s.pos
                s.pos += n
                k[s.idx] = n
            valid[:, cache.cur:cache.cur + T] = (torch.arange(T)[None] >= (T - k)[:, None]).to(dev)
            logits = self._step(ids.to(dev), pos.to(dev), cache, valid, prefix_kv)
        return [self._result(s) for s in seqs]

    def _step(self, ids: torch.Tensor, pos: torch.Tensor, cache: SlotCache, valid: torch.Tensor,
              prefix_kv: list | None) -> torch.Tensor:
        """Feed ``ids`` at the next slots; logits of the last column, [B, V] float.

        Rows are left-padded (prefill) or right-aligned (decode), so every row's last real
        token is the last column and the LM head runs on one position per row.
        """
        T = ids.shape[1]
        end = cache.cur + T
        slot = torch.arange(end, device=ids.device)
        causal = slot[None, :] <= (cache.cur + torch.arange(T, device=ids.device))[:, None]  # [T, end]
        mask = valid[:, None, None, :end] & causal[None, None]
        logits = self._forward(ids, pos, cache, mask, prefix_kv, keep=1)
        cache.cur = end
        self.stats["forwards"] += 1
        self.stats["slots"] += T
        return logits[:, -1].float()

    # ------------------------------------------------------------------ choosing tokens
    def _decide(self, seqs: list[_Seq], logits: torch.Tensor, budget: int) -> None:
        """Pick each active sequence's next token(s) from the step's logits."""
        need = [s for s in seqs if not s.done and not s.pending]
        if not need:
            return
        if any(s.phase == "analysis" for s in need):
            if self._special_mask is None:
                m = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
                for t in self.eos_ids | set(self.tokenizer.all_special_ids):
                    if 0 <= t < m.numel():
                        m[t] = True
                self._special_mask = m
        greedy = top = None
        if self.constrained:
            top = torch.topk(logits, min(self.topk, logits.shape[-1]), dim=-1).indices.tolist()
        else:
            greedy = logits.argmax(-1).tolist()
        fallback: list[_Seq] = []
        for s in need:
            if s.n_new >= budget or (s.phase == "json" and s.n_new - len(s.analysis_ids) >= self.max_new_tokens):
                self._finish(s)
                continue
            if s.phase == "free":
                self._push(s, [greedy[s.idx]])  # type: ignore[index]
            elif s.phase == "analysis":
                self._analysis_step(s, logits[s.idx])
            else:
                self._json_step(s, top[s.idx], fallback)  # type: ignore[index]
        if fallback:
            self.stats["fallbacks"] += len(fallback)
            rows = torch.tensor([s.idx for s in fallback], device=logits.device)
            allowed = [s.grammar.allowed(s.state) for s in fallback]  # type: ignore[union-attr]
            width = max(len(a) for a in allowed)
            idx = torch.zeros(len(fallback), width, dtype=torch.long)
            ok = torch.zeros(len(fallback), width, dtype=torch.bool)
            for r, a in enumerate(allowed):
                idx[r, :len(a)] = torch.tensor(a, dtype=torch.long)
                ok[r, :len(a)] = True
            idx, ok = idx.to(logits.device), ok.to(logits.device)
            vals = logits[rows[:, None], idx].masked_fill(~ok, float("-inf"))
            best = idx.gather(1, vals.argmax(-1, keepdim=True)).squeeze(1).tolist()
            for s, t in zip(fallback, best):
                self._take(s, t)

    def _push(self, s: _Seq, toks: list[int]) -> None:
        """Queue ``toks`` to be fed next step; stop a free-running sequence at EOS."""
        for t in toks:
            s.n_new += 1
            if s.phase == "free" and t in self.eos_ids:
                s.done = True
                return
            s.out_ids.append(t)
            s.pending.append(t)

    def _analysis_step(self, s: _Seq, row: torch.Tensor) -> None:
        """Free text until the marker appears (or the cap), then hand over to the JSON phase."""
        t = int(row.masked_fill(self._special_mask, float("-inf")).argmax())  # type: ignore[arg-type]
        s.analysis_ids.append(t)
        self._push(s, [t])
        marker, suffix = self.answer_marker or "", self.marker_suffix
        text = self.tokenizer.decode(s.analysis_ids)
        glued = lead = b""
        if marker in text:
            rest = text.rsplit(marker, 1)[1]
            if suffix.startswith(rest):
                # the rest of the suffix is not forced as its own tokens: the JSON grammar
                # starts with it (constrained) or the model just goes on (free), so a model
                # that merges it with the JSON's first bytes (``\n{"``) keeps its tokenization
                lead = suffix[len(rest):].encode("utf-8")
                forced = ""
            else:  # the model went on past the marker inside this token
                forced = ""
                glued = rest[len(suffix):].encode("utf-8") if rest.startswith(suffix) else rest.encode("utf-8")
        elif len(s.analysis_ids) >= self.analysis_max_tokens:
            forced = marker + suffix
        else:
            return
        toks = self.vocab.forced_tokens(forced.encode("utf-8")) if forced else []
        s.analysis_ids += toks
        self._push(s, toks)
        s.phase = "json" if self.constrained else "free"
        if self.constrained:
            if glued:
                nxt = s.grammar.feed(s.state, glued)  # type: ignore[union-attr,arg-type]
                if nxt is None:  # unusable continuation: end with the empty answer
                    self._finish(s)
                    return
                s.state, s.out_bytes, s.glued = nxt, glued, len(glued)
            elif lead:
                s.state = replace(s.state, lit=lead + s.state.lit)  # type: ignore[arg-type]
            self._advance_json(s)

    def _json_step(self, s: _Seq, top: list[int], fallback: list[_Seq]) -> None:
        g, st = s.grammar, s.state
        assert g is not None and st is not None
        for t in top:
            if g.try_token(st, t) is not None:
                self._take(s, t)
                return
        fallback.append(s)

    def _take(self, s: _Seq, t: int) -> None:
        s.state = s.grammar.try_token(s.state, t)  # type: ignore[union-attr,arg-type]
        s.out_bytes += self.vocab.token_bytes[t] or b""
        self._push(s, [t])
        self._advance_json(s)

    def _advance_json(self, s: _Seq) -> None:
        """Mark the sequence done at the closing brace; jump-forward over forced tokens.

        Jump-forward only takes a token when it is the *only* allowed one: the constrained
        argmax would pick it whatever the logits, so skipping its forward pass cannot change
        the output. Feeding a literal's canonical tokenization instead is not safe: a model
        trained on whole-string tokenized JSON writes the skeleton with merged tokens
        (``":"","``, ``"}``), and a different split puts it off-distribution.
        """
        g = s.grammar
        assert g is not None and s.state is not None
        while self.jump_forward and s.state.mode == "lit":
            allowed = g.allowed(s.state)
            if len(allowed) != 1:
                break
            t = allowed[0]
            s.state = g.try_token(s.state, t)  # type: ignore[assignment]
            s.out_bytes += self.vocab.token_bytes[t] or b""
            self._push(s, [t])
            assert s.state is not None
        if s.state.mode == "done":
            s.done = True
            s.pending = []

    def _finish(self, s: _Seq) -> None:
        """Budget spent: close the JSON validly (constrained) or stop (free)."""
        s.done = True
        s.pending = []
        if s.phase in ("json", "analysis") and self.constrained:
            if s.phase == "analysis":
                s.analysis_ids += list(self._marker_ids)
            drop, tail = s.grammar.completion(s.state)  # type: ignore[union-attr,arg-type]
            s.forced_finish = (s.out_bytes[:len(s.out_bytes) - drop] if drop else s.out_bytes) + tail

    # ------------------------------------------------------------------ results
    def _result(self, s: _Seq) -> EngineResult:
        if not self.constrained:
            raw = self.tokenizer.decode(s.out_ids, skip_special_tokens=True)
            return EngineResult(raw, self._parse_free(raw), s.n_new)
        body = s.forced_finish if s.forced_finish is not None else s.out_bytes
        json_text = body.decode("utf-8", "surrogatepass")
        parsed = self.task.normalize_output(json.loads(json_text))
        if self.answer_marker:
            head = self.tokenizer.decode(s.analysis_ids, skip_special_tokens=True)
            raw = head + body[s.glued:].decode("utf-8", "surrogatepass")
        else:
            raw = json_text
        return EngineResult(raw, parsed, s.n_new)

    def _parse_free(self, raw: str) -> dict | None:
        try:
            from finextract.prompts import parse_output
        except ImportError:  # pragma: no cover - prompts module absent
            parse_output = None
        if parse_output is not None:
            return parse_output(self.task, raw)
        text = raw.rsplit(self.answer_marker, 1)[1] if self.answer_marker and self.answer_marker in raw else raw
        try:
            return self.task.normalize_output(json.loads(text))
        except ValueError:
            return None


__all__ = ["ExtractionEngine", "EngineResult", "SlotCache", "AttentionContext", "inference_view",
           "prefix_shared_attention", "weights_version"]
