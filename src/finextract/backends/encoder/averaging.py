"""An exponential moving average of the trainable weights (``train.ema_decay``).

Why: the merchant model is trained on generated descriptors and judged on real ones. Averaging
the weights along the end of the trajectory (Polyak averaging; SWA/SWAD for domain shift) lands
in a flatter region than the last step's weights, and flatter solutions hold up better off the
training distribution; it costs one fused ``lerp`` over the trainable weights per step and
nothing at inference.

Written here instead of ``torch.optim.swa_utils.AveragedModel`` because that class deep-copies
the whole model and averages every parameter, frozen ones included (MiniLM's frozen sub-word
table is half its weights: the quickstart's CPU step would pay for it), and its fixed decay
weights a short run's first steps too heavily. This average keeps only trainable tensors, warms
its decay up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, and round-trips through
the run's resume state, so a killed and resumed run ends with the same average.

How the run uses it: checkpoints save, score and serve the *averaged* weights (inside
:meth:`WeightEMA.swapped`); the raw weights the optimizer continues from go into the resume
state (``state.pt``), from which :func:`raw_state` reads them back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STATE_KEY = "ema"


class WeightEMA:
    """The average of ``model``'s trainable parameters, updated after each optimizer step."""

    def __init__(self, model: Any, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema_decay must be between 0 and 1 (exclusive), got {decay}")
        self.decay = decay
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self._params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self._params]
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def update(self) -> None:
        import torch

        d = self.current_decay()
        self.updates += 1
        with torch.no_grad():
            torch._foreach_lerp_(self.shadow, [p.detach() for p in self._params], 1.0 - d)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; the raw ones come back after."""
        import torch

        with torch.no_grad():
            raw = [p.detach().clone() for p in self._params]
            for p, s in zip(self._params, self.shadow):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self._params, raw):
                    p.copy_(r)

    def state_dict(self) -> dict[str, Any]:
        """For the resume state: the update count and the *raw* weights (the checkpoint's model
        files hold the average, so the pair restores both)."""
        return {"updates": self.updates, "decay": self.decay,
                "raw": {n: p.detach().cpu().clone() for n, p in zip(self.names, self._params)}}

    def resume(self, state: dict[str, Any]) -> None:
        """Called on a model loaded from a checkpoint (so holding the average): the average is what
        it holds now, and the raw weights are put back from ``state``."""
        import torch

        raw = state["raw"]
        missing = [n for n in self.names if n not in raw]
        if missing:
            raise ValueError(f"resume state has no raw weights for {missing[:3]} (ema state of another model?)")
        with torch.no_grad():
            self.shadow = [p.detach().clone() for p in self._params]
            for n, p in zip(self.names, self._params):
                p.copy_(raw[n].to(p.device, p.dtype))
        self.updates = int(state["updates"])


def raw_state(state: dict[str, Any]) -> dict[str, Any] | None:
    """The raw (not averaged) trainable weights kept in a checkpoint's resume state, or None when
    the run kept no average. For comparing a run's averaged and raw weights at one step."""
    ema = state.get(STATE_KEY)
    return None if ema is None else ema["raw"]
