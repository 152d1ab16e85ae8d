"""vlmkit's built-in sinks: ``coco``, ``yolo``, ``annotate`` and ``jsonl``.

They register through the ``vlmkit`` entry-point group like any third-party sink
(:mod:`vlmkit.sinks.plugin`); each module is imported only when its sink is built. Every path
derived from an input key goes through :func:`vlmkit.atomic.safe_join`. Labels from a model are
data: they never name a file, and text UTF-8 cannot encode (lone surrogates) is written as
U+FFFD (the ``jsonl`` sink, like the ledger, keeps it exactly).

All four are two-phase (:class:`vlmkit.StagedSink`): every file is staged whole
under a hidden temporary name and all of them are moved into place together when the sink is
closed — per-image files first, dataset-level files last — so a failure changes no file.
"""
