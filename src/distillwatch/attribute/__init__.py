"""Campaign attribution: link accounts into campaigns, online and causally.

``keys`` (what accounts share) → ``graph`` (bounded account–key graph) → ``cluster`` (dense,
camouflage-resistant blocks) → ``linker`` (the engine's ``Linker``: incremental attachment,
periodic refresh, campaign evidence) → ``campaigns`` (the ``campaigns.jsonl`` record).
"""

from distillwatch.attribute.campaigns import Campaign, read_campaigns, write_campaigns
from distillwatch.attribute.linker import CampaignLinker, LinkerConfig

__all__ = ["Campaign", "CampaignLinker", "LinkerConfig", "read_campaigns", "write_campaigns"]
