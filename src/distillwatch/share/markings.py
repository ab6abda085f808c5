"""Shared reference objects: the five TLP 2.0 marking definitions and the MITRE ATLAS entries.

The TLP 2.0 objects are the ones OASIS publishes (cti-stix-common-objects,
``extension-definition-specifications/tlp-2.0``): fixed ids, ``created`` 2022-10-01, and the
TLP 2.0 property extension ``extension-definition--60a3c5c5-…``. ``stix2.TLP_*`` are TLP 1.0
(``definition_type: tlp``) and are not used.
"""

from __future__ import annotations

import uuid
from typing import Final

import stix2

TLP2_EXTENSION: Final = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_IDS: Final = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
TLP2_CREATED: Final = "2022-10-01T00:00:00.000Z"


def tlp2(level: str) -> stix2.v21.MarkingDefinition:
    """The published TLP 2.0 marking definition of ``level`` (clear … red).

    >>> tlp2("amber").name
    'TLP:AMBER'
    """
    return stix2.v21.MarkingDefinition(
        id=TLP2_IDS[level],
        created=TLP2_CREATED,
        name=f"TLP:{level.upper()}",
        extensions={TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level}},
    )


def all_tlp2() -> list[stix2.v21.MarkingDefinition]:
    return [tlp2(level) for level in TLP2_IDS]


ATLAS_URL: Final = "https://atlas.mitre.org"
CASE_STUDY: Final = {
    "source_name": "mitre-atlas",
    "external_id": "AML.CS0056",
    "url": f"{ATLAS_URL}/studies/AML.CS0056",
    "description": "ATLAS case study of model extraction by distillation through an API.",
}
TECHNIQUES: Final = {
    "AML.T0024.002": (
        "Extract AI Model",
        "Query an AI model's inference API to train a functionally equivalent copy "
        "(adversarial distillation).",
    ),
    "AML.T0008.005": (
        "AI Service Proxies",
        "Route queries through proxy services and many accounts to hide the extraction "
        "campaign's scale and origin.",
    ),
}
_ATLAS_NS: Final = uuid.UUID("0a4f5c84-6c1e-5a54-8f3e-4e0c2b7d9a11")


def attack_pattern(technique: str) -> stix2.v21.AttackPattern:
    """The attack-pattern object of an ATLAS technique (deterministic id, no creator).

    >>> attack_pattern("AML.T0024.002").external_references[0].external_id
    'AML.T0024.002'
    """
    name, description = TECHNIQUES[technique]
    return stix2.v21.AttackPattern(
        id=f"attack-pattern--{uuid.uuid5(_ATLAS_NS, technique)}",
        created="2025-01-01T00:00:00.000Z",
        modified="2025-01-01T00:00:00.000Z",
        name=name,
        description=description,
        external_references=[
            {
                "source_name": "mitre-atlas",
                "external_id": technique,
                "url": f"{ATLAS_URL}/techniques/{technique}",
            },
            CASE_STUDY,
        ],
    )
