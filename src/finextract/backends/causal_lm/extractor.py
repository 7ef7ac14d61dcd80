"""``CausalLMExtractor``: prompts -> greedy generation -> parsed dicts.

Two decoding paths behind one interface:

* ``generate``: plain batched ``model.generate`` (left padding, greedy, stops at EOS or the
  template's end-of-turn token), then :func:`finextract.prompts.parse_output`.
* ``engine``: the extraction engine (``backends/causal_lm/engine.py``), which can constrain
  decoding to the task's JSON shape.

The same object scores checkpoints during training (wrapping the live peft model) and
serves predictions after loading a run directory, so validation F1 and served outputs come
from one code path. The engine is built once per extractor (lazily, on the first
``predict``) and reused, so its shared-prefix K/V survives across calls and serving
micro-batches; it never modifies the model (it runs a parameter-sharing view), so
scoring a live training model cannot change the training run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from finextract.errors import NotFoundError
from finextract.extractor import Extractor, Prediction
from finextract.prompts import get_style, parse_output, render_prompt
from finextract.tasks import Task

log = logging.getLogger("finextract")


class CausalLMExtractor(Extractor):
    def __init__(self, model: Any, tokenizer: Any, task: Task, style: str = "json-only",
                 enable_thinking: bool | None = None, end_token_id: int | None = None,
                 engine: str = "generate", constrained: bool = True, max_new_tokens: int = 256,
                 batch_size: int = 16, show_progress: bool = False) -> None:
        self.model, self.tokenizer, self.task = model, tokenizer, task
        self.style, self.enable_thinking = style, enable_thinking
        self.end_token_id = end_token_id
        self.engine_name, self.constrained = engine, constrained
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.show_progress = show_progress
        self.last_raw: list[str] = []
        self._engine: Any = None
        tokenizer.padding_side = "left"

    def render(self, text: str) -> str:
        return render_prompt(self.tokenizer, self.task, self.style, text, self.enable_thinking)

    def _stop_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id, self.end_token_id}
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        return sorted(i for i in ids if i is not None)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        texts = list(texts)
        if not texts:
            return []
        if self.engine_name == "engine":  # the engine runs its own eval-mode view of the model
            raws, parsed = self._engine_predict(texts)
        else:
            modes = [(m, m.training) for m in self.model.modules()]
            self.model.eval()
            try:
                raws = self.generate_raw(texts)
                parsed = [parse_output(self.task, r) for r in raws]
            finally:  # restore every module's own mode, not just the top-level flag
                for m, training in modes:
                    m.training = training
        self.last_raw = raws
        return parsed

    @property
    def engine(self) -> Any:
        """The extraction engine of this extractor (built on first use, then kept)."""
        if self._engine is None:
            from finextract.backends.causal_lm.engine import ExtractionEngine

            self._engine = ExtractionEngine(self.model, self.tokenizer, self.task, render=self.render,
                                            constrained=self.constrained, max_new_tokens=self.max_new_tokens,
                                            batch_size=self.batch_size,
                                            answer_marker=get_style(self.style).answer_marker)
        return self._engine

    def _engine_predict(self, texts: list[str]) -> tuple[list[str], list[Prediction]]:
        results = self.engine.extract(texts)
        return [r.raw for r in results], [r.parsed for r in results]

    @torch.no_grad()
    def generate_raw(self, texts: Sequence[str]) -> list[str]:
        """Greedy completions for ``texts`` (special tokens stripped), in order."""
        tok = self.tokenizer
        stop = self._stop_ids()
        pad = tok.pad_token_id if tok.pad_token_id is not None else stop[0]
        device = next(self.model.parameters()).device
        # longest first: batches of similar length waste less compute on padding
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[str] = [""] * len(texts)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        iterator = batches
        if self.show_progress and len(batches) > 1:
            from rich.progress import track

            iterator = track(batches, description="generating", transient=True)
        for idx in iterator:
            prompts = [self.render(texts[i]) for i in idx]
            enc = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt").to(device)
            gen = self.model.generate(**enc, do_sample=False, max_new_tokens=self.max_new_tokens,
                                      eos_token_id=stop, pad_token_id=pad, temperature=None, top_p=None,
                                      top_k=None)
            new = gen[:, enc["input_ids"].shape[1]:]
            for j, i in enumerate(idx):
                out[i] = tok.decode(new[j], skip_special_tokens=True)
        return out

    def describe(self) -> dict[str, Any]:
        base = getattr(self.model, "get_base_model", lambda: self.model)()
        return {"backend": "causal_lm", "task": self.task.name, "model": getattr(base.config, "_name_or_path", ""),
                "parameters": sum(p.numel() for p in base.parameters()), "prompt_style": self.style,
                "decoding": self.engine_name}


def allowed_remote_code(explicit: bool | None, stored: bool, where: Path) -> bool:
    """``trust_remote_code`` for loading a run: only from the user (flag or env), never the run's own config.

    A run directory may come from someone else; its ``config.yaml`` saying
    ``trust_remote_code: true`` must not make predict/eval/serve execute the model folder's
    Python. The user opts in with ``trust_remote_code=True`` (``--trust-remote-code``) or
    ``FINEXTRACT_TRUST_REMOTE_CODE=1``.
    """
    import os

    if explicit is None:
        explicit = os.environ.get("FINEXTRACT_TRUST_REMOTE_CODE", "") not in ("", "0")
    if stored and not explicit:
        log.warning("%s: model.trust_remote_code is true in the run's config but is ignored when loading a run; "
                    "pass --trust-remote-code or set FINEXTRACT_TRUST_REMOTE_CODE=1 if you trust its code", where)
    return bool(explicit)


def load(source: str, checkpoint: str | None = None, allow_template_mismatch: bool = False,
         tokenizer_path: str | None = None, device: str | None = None, trust_remote_code: bool | None = None,
         **overrides: Any):
    """Extractor for a run directory's checkpoint ("best", "last", "step-N", a path, or "merged").

    ``tokenizer_path`` swaps the tokenizer (the template hash check then decides whether
    that is allowed). ``FINEXTRACT_ALLOW_TEMPLATE_MISMATCH=1`` turns the refusal into a
    warning for commands (predict, eval, serve) that have no flag for it. ``overrides`` replace ``decoding`` fields (engine, max_new_tokens, ...).
    ``trust_remote_code`` comes only from the caller (see :func:`allowed_remote_code`).
    """
    import os

    import torch

    from finextract.backends.causal_lm.config import CausalRunConfig
    from finextract.backends.causal_lm.modeling import load_base_model, load_tokenizer, pick_device
    from finextract.backends.causal_lm.template import check_template, ensure_pad_token, template_info
    from finextract.rundir import RunDir

    run = RunDir(Path(source))
    cfg = CausalRunConfig.model_validate(run.read_config())
    task = cfg.load_task()
    remote_code = allowed_remote_code(trust_remote_code, cfg.model.trust_remote_code, run.config_path)
    dev = torch.device(device) if device else pick_device()
    merged = checkpoint == "merged" or (checkpoint and (Path(checkpoint) / "config.json").exists())
    ckpt = (run.root / "merged") if checkpoint == "merged" else run.resolve_checkpoint(checkpoint)
    if not ckpt.exists():
        raise NotFoundError(f"{ckpt}: no such checkpoint")
    tok_dir = tokenizer_path or (run.root / "tokenizer" if (run.root / "tokenizer").exists() else cfg.model.name_or_path)
    tok = load_tokenizer(tok_dir, remote_code)
    info = template_info(tok, task, cfg.prompt.style, cfg.prompt.enable_thinking)
    ensure_pad_token(tok, info.end_token_id)
    allow = allow_template_mismatch or os.environ.get("FINEXTRACT_ALLOW_TEMPLATE_MISMATCH", "") not in ("", "0")
    check_template(ckpt, info, allow)
    if merged:
        model = load_base_model(ckpt, cfg.model.precision, cfg.model.attn_implementation, dev)
    else:
        from peft import PeftModel

        base = load_base_model(cfg.model.name_or_path, cfg.model.precision, cfg.model.attn_implementation, dev,
                               remote_code)
        model = PeftModel.from_pretrained(base, str(ckpt)).to(dev)
    model.eval()
    dec = cfg.decoding.model_copy(update={k: v for k, v in overrides.items() if k in cfg.decoding.model_fields})
    return CausalLMExtractor(model, tok, task, cfg.prompt.style, cfg.prompt.enable_thinking, info.end_token_id,
                             engine=dec.engine, constrained=dec.constrained, max_new_tokens=dec.max_new_tokens,
                             batch_size=dec.batch_size, show_progress=True)
