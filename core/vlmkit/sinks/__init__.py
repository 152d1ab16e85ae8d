"""vlmkit's built-in sinks: ``coco``, ``yolo``, ``annotate`` and ``jsonl``.

They register through the ``vlmkit`` entry-point group like any third-party sink
(:mod:`vlmkit.sinks.plugin`); each module is imported only when its sink is built. Every file is
written atomically (:mod:`vlmkit.atomic`), and every path derived from an input key goes through
:func:`vlmkit.atomic.safe_join`. Labels from a model are data: they never name a file.
"""
