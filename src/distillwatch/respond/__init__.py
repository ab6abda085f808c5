"""The respond stage: what enforcing a decision does to a request and its response.

``errors`` builds the one OpenAI-compatible error body every refusal uses; ``throttle``
applies token-weighted rate limits (the ``limits`` library, memory or Redis storage);
``protect`` strips what a distiller learns most from (reasoning, log-probabilities, many
samples) and runs output transforms. The gateway wires them to the engine's decisions.
"""

from distillwatch.respond.errors import Refusal, error_body
from distillwatch.respond.protect import OutputTransform, Protector, ProtectSettings
from distillwatch.respond.throttle import Throttle, ThrottleSettings, TierLimits

__all__ = [
    "OutputTransform",
    "ProtectSettings",
    "Protector",
    "Refusal",
    "Throttle",
    "ThrottleSettings",
    "TierLimits",
    "error_body",
]
