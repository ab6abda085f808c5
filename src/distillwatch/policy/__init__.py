"""The policy stage: a calibrated suspicion score → an action, from a YAML policy file.

``load_policy()`` validates the file once (errors are one-line :class:`PolicyError`\\ s that
name the file, line and key); :meth:`Policy.decide` is then cheap enough for every exchange.
"""

from distillwatch.policy.decide import Policy
from distillwatch.policy.loader import (
    DEFAULT_POLICY_PATH,
    load_policy,
    policy_from_mapping,
    policy_from_text,
)

__all__ = [
    "DEFAULT_POLICY_PATH",
    "Policy",
    "load_policy",
    "policy_from_mapping",
    "policy_from_text",
]
