"""distillwatch: detect, attribute and stop adversarial distillation of model APIs.

The package is laid out in data-flow order (see ``docs/architecture.md``):
``records`` / ``errors`` / ``config`` / ``clock`` are shared by every stage; then
``log`` (exchange-log formats) → ``store`` (event store) → ``signals`` → ``detect`` →
``policy``, with ``bench`` (traffic generator) and ``cli`` around them.
"""

__version__ = "0.1.0"
