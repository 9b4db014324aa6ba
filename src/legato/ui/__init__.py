"""The web console: a prebuilt single-page app served by `legato serve` at `/`.

The bundle is built from `web/` by `scripts/build-console` and committed under `static/`, so that
installing Legato needs no Node. The console talks to the documented admin API only; this
package serves files and must never expose data or routes of its own.
"""

from __future__ import annotations

from legato.ui.console import install

__all__ = ["install"]
