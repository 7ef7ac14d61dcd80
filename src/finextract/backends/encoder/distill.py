"""Shallower encoders and knowledge distillation: the CPU speed lever past quantization.

Why: the forward's cost is linear in the number of transformer layers, and int8 already
took most of what arithmetic can give on 2 cores (issue 16). A 3-layer student does half
the work of MiniLM-L6. Trained on labels alone it loses accuracy; trained to match a
fine-tuned teacher's full output distribution (soft targets, Hinton et al. 2015) on the
same generated data, and started from the teacher's own layers, heads and feature
embeddings (the DistilBERT recipe), it keeps most of it.

- ``model.num_layers: N`` keeps N of the encoder's layers, evenly spaced, first and last
  included (6 -> 3 keeps layers 0, 2 and 5).
- ``train.distill_from: RUN`` starts the student from RUN's best checkpoint (same
  tokenizer, features and heads, so the teacher's outputs line up token by token) and adds
  ``distill_weight * T^2 * KL(teacher/T || student/T)`` to the label loss, over the BIO
  logits of every real token and, with pointer heads, over each key's start/end positions.

- ``model.ffn_size: N`` narrows every layer's feed-forward block (MiniLM: 1536 -> N neurons),
  the other half of a layer's arithmetic. Neurons are ranked once, before training, by how
  much they move the layer's output on the first training records (mean |activation| times
  the norm of their output weights); the rest are cut and distillation trains the narrower
  model to make up for them. Structured pruning, not sparsity: the saved model is a plain
  BERT with a smaller ``intermediate_size``, so ONNX export and int8 need nothing new.

Written here because it is a few lines on top of our own Tagger (its extra embeddings and
pointer head are ours), not something a library ships for this model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finextract.errors import ConfigError, InputError


def layer_indices(total: int, keep: int) -> list[int]:
    """``keep`` layer indices out of ``total``, evenly spaced, first and last included."""
    if not 1 <= keep <= total:
        raise ConfigError(f"model.num_layers: {keep} is not between 1 and the encoder's {total} layers")
    if keep == 1:
        return [total - 1]
    return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})


def keep_layers(hf_model: Any, keep: int) -> list[int]:
    """Cut a BERT-like/MPNet model (``base_model.encoder.layer``) down to ``keep`` layers in place;
    returns the kept indices. The config is updated, so ``save_pretrained`` writes a model that
    loads as the shallow one."""
    import torch

    base = hf_model.base_model
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError("model.num_layers: this encoder has no encoder.layer list to shorten")
    idx = layer_indices(len(layers), keep)
    if len(idx) == len(layers):
        return idx
    base.encoder.layer = torch.nn.ModuleList([layers[i] for i in idx])
    for new, layer in enumerate(base.encoder.layer):  # attention modules that know their index (cache slots)
        attn = getattr(getattr(layer, "attention", None), "self", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = new
    hf_model.config.num_hidden_layers = len(idx)
    if getattr(base, "config", hf_model.config) is not hf_model.config:
        base.config.num_hidden_layers = len(idx)
    return idx


def teacher_checkpoint(run_dir: str) -> tuple[Path, Any]:
    """The teacher run's best checkpoint and its config (refused when it is not an encoder run)."""
    from finextract.backends.encoder.config import EncoderRunConfig
    from finextract.rundir import RunDir

    run = RunDir(Path(run_dir))
    if not run.config_path.exists():
        raise InputError(f"train.distill_from: {run.root} is not a run directory (no config.yaml)")
    data = run.read_config()
    if data.get("backend") != "encoder":
        raise InputError(f"train.distill_from: {run.config_path} is a {data.get('backend')!r} run; "
                         "the teacher must be an encoder run")
    tcfg = EncoderRunConfig.model_validate(data)
    ckpt = run.resolve_checkpoint("best")
    if not (ckpt / "labels.json").exists():
        raise InputError(f"train.distill_from: {run.root} has no finished best checkpoint ({ckpt})")
    return ckpt, tcfg


def check_compatible(student: Any, teacher: Any) -> None:
    """The student inherits the teacher's tokenizer, features and heads: those settings must agree."""
    same = ("name_or_path", "max_length", "case_features", "lexical_features", "layout_features", "pointer_head")
    diff = [f"model.{f} (teacher {getattr(teacher.model, f)!r}, student {getattr(student.model, f)!r})"
            for f in same if getattr(teacher.model, f) != getattr(student.model, f)]
    if teacher.task != student.task:
        diff.append(f"task (teacher {teacher.task!r}, student {student.task!r})")
    if diff:
        raise ConfigError("train.distill_from: student and teacher must agree on " + "; ".join(diff))
    if student.lora.enabled:
        raise ConfigError("train.distill_from: distil into a fully trained student (lora.enabled: false)")


def distill_loss(student: Any, teacher: Any, labels: Any, n_labels: int, temperature: float) -> Any:
    """Mean soft-target KL over real tokens (BIO logits) and over positions per key (pointer logits)."""
    import torch
    import torch.nn.functional as F

    T = temperature
    valid = labels != -100
    s, t = student.float(), teacher.float()
    bio_s, bio_t = s[..., :n_labels][valid], t[..., :n_labels][valid]  # [N, L]
    loss = F.kl_div(F.log_softmax(bio_s / T, -1), F.log_softmax(bio_t / T, -1), log_target=True,
                    reduction="batchmean")
    if s.shape[-1] > n_labels:  # pointer heads: a distribution over positions per key and end
        mask = valid.clone()
        mask[:, 0] = True  # the null option
        ps = s[..., n_labels:].masked_fill(~mask[..., None], -1e4).transpose(1, 2)  # [B, 2K, T]
        pt = t[..., n_labels:].masked_fill(~mask[..., None], -1e4).transpose(1, 2)
        ps, pt = ps.reshape(-1, ps.shape[-1]), pt.reshape(-1, pt.shape[-1])
        loss = loss + F.kl_div(F.log_softmax(ps / T, -1), F.log_softmax(pt / T, -1), log_target=True,
                               reduction="batchmean")
    return loss * (T * T)


def ffn_pairs(hf_model: Any) -> list[tuple[Any, Any, Any]]:
    """``(layer, up, down)`` per transformer layer: the FFN's two linear maps (BERT and MPNet name
    them ``intermediate.dense`` and ``output.dense``)."""
    layers = getattr(getattr(hf_model.base_model, "encoder", None), "layer", None)
    pairs = []
    for layer in layers or []:
        up = getattr(getattr(layer, "intermediate", None), "dense", None)
        down = getattr(getattr(layer, "output", None), "dense", None)
        if up is None or down is None:
            raise ConfigError("model.ffn_size: this encoder's layers have no intermediate.dense/output.dense pair")
        pairs.append((layer, up, down))
    if not pairs:
        raise ConfigError("model.ffn_size: this encoder has no encoder.layer list")
    return pairs


def ffn_importance(tagger: Any, batches: list[dict[str, Any]]) -> list[Any]:
    """Per layer, one score per FFN neuron: mean |activation| over the real tokens of ``batches``
    times the norm of the neuron's output weights, i.e. how much it moves the residual stream
    on this data. Neurons that never fire on descriptors score about zero."""
    import torch

    pairs = ffn_pairs(tagger.model)
    sums = [torch.zeros(up.out_features, dtype=torch.float64) for _, up, _ in pairs]
    count = 0
    mask_box: dict[str, Any] = {}

    def hook(i: int) -> Any:
        def record(_module: Any, _inputs: Any, output: Any) -> None:
            real = mask_box["mask"].reshape(-1).bool()
            act = output.detach().reshape(-1, output.shape[-1])[real]
            sums[i] += act.abs().sum(0).double().cpu()
        return record

    handles = [layer.intermediate.register_forward_hook(hook(i)) for i, (layer, _, _) in enumerate(pairs)]
    was_training = tagger.training
    tagger.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                mask_box["mask"] = batch["attention_mask"]
                tagger(**{k: v for k, v in batch.items() if k != "labels"})
                count += int(batch["attention_mask"].sum())
    finally:
        for h in handles:
            h.remove()
        tagger.train(was_training)
    return [s / max(count, 1) * down.weight.detach().norm(dim=0).double().cpu() for s, (_, _, down) in zip(sums, pairs)]


def prune_ffn(tagger: Any, size: int, scores: list[Any] | None = None) -> list[list[int]]:
    """Keep ``size`` neurons of every layer's FFN (the highest ``scores``; by weight norms when none),
    in place; returns the kept indices per layer. The config's ``intermediate_size`` is updated, so
    the saved model loads (and exports) as the narrower one."""
    import torch

    pairs = ffn_pairs(tagger.model)
    width = pairs[0][1].out_features
    if not 1 <= size <= width:
        raise ConfigError(f"model.ffn_size: {size} is not between 1 and the encoder's FFN width {width}")
    kept: list[list[int]] = []
    for i, (layer, up, down) in enumerate(pairs):
        score = scores[i] if scores is not None else (up.weight.norm(dim=1) * down.weight.norm(dim=0)).detach().cpu()
        idx = torch.sort(torch.topk(score, size).indices).values
        kept.append(idx.tolist())
        if size == width:
            continue
        new_up = torch.nn.Linear(up.in_features, size, bias=up.bias is not None).to(up.weight)
        new_down = torch.nn.Linear(size, down.out_features, bias=down.bias is not None).to(down.weight)
        with torch.no_grad():
            rows = idx.to(up.weight.device)
            new_up.weight.copy_(up.weight[rows])
            if up.bias is not None:
                new_up.bias.copy_(up.bias[rows])
            new_down.weight.copy_(down.weight[:, rows])
            if down.bias is not None:
                new_down.bias.copy_(down.bias)
        layer.intermediate.dense, layer.output.dense = new_up, new_down
    for cfg in {id(c): c for c in (tagger.model.config, getattr(tagger.model.base_model, "config", None)) if c}.values():
        cfg.intermediate_size = size
    return kept
