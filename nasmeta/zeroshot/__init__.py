"""Zero-shot NAS: training-free proxies (``@proxy("synflow")``) and the zero-shot search that ranks by them.

Import what you need from the submodules (``nasmeta.zeroshot.registry``, ``.search``, ``.correlate``); this
package ``__init__`` stays free of torch so ``import nasmeta.zeroshot`` is cheap.
"""

from __future__ import annotations

__all__: list[str] = []
