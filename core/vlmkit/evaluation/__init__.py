"""Evaluation: score a run against ground truth (``vlmkit eval``, :func:`vlmkit.evaluate`), and
pilot several settings on a labeled sample before labeling the rest.

Modules, one job each: :mod:`~vlmkit.evaluation.groundtruth` (COCO / YOLO),
:mod:`~vlmkit.evaluation.matching` (images and classes), :mod:`~vlmkit.evaluation.metrics`
(pycocotools), :mod:`~vlmkit.evaluation.ocr` (CER / WER), :mod:`~vlmkit.evaluation.facts`
(the ledger's own numbers), :mod:`~vlmkit.evaluation.evaluate` (all of it for one run),
:mod:`~vlmkit.evaluation.pilot` (the sweep) and :mod:`~vlmkit.evaluation.report` (tables and
the chart). Nothing here calls a model except the pilot, which does it through ordinary
``Session.run`` calls.
"""

from __future__ import annotations

from vlmkit.evaluation.evaluate import Evaluation, evaluate
from vlmkit.evaluation.pilot import PilotReport, PilotRow, Setting, pilot

__all__ = ["Evaluation", "PilotReport", "PilotRow", "Setting", "evaluate", "pilot"]
