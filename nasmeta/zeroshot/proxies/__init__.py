"""One module per proxy (or a small group); each registers itself with ``@proxy``.  Loaded on first use by
``nasmeta.zeroshot.registry``."""
